"""The probe's findings as JSON (one object, schema below) and as rich tables, one per feature.

    {"layer_numbering": "1-based", "model": {...}, "text": {"path", "chars", ...}, "split": {...},
     "features": {NAME: {"kind": "binary"|"ordinal", "metric": "auroc"|"spearman",
                         "control_best": x, "pass_threshold": t, "share_passing": s, ...,
                         "units": [{"layer", "unit", "state", "score", "heldout_score", "sign",
                                    "ablation": {"target_delta", "other_delta", "random_percentile", ...}}]}},
     "saturation": [{"layer": 1, "gates": {"i": {"left": [...], "right": [...], ...}}}], ...}

Units are sorted by heldout_score, best first; layers count from 1, as charnn generate --clamp does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.table import Table

from charnn.corpus import atomic_write_bytes
from charnn.errors import CharnnError
from charnn.model import CharRNN
from charnn.probe.features import Feature
from charnn.probe.score import CHANCE, PASS_THRESHOLDS, FeatureScores, Split

if TYPE_CHECKING:
    from charnn.probe.ablate import LayerAblation
    from charnn.probe.pipeline import ProbeOptions

REPORT_VERSION = 1


def _number(value: Any, digits: int = 6) -> float | None:
    """A JSON-safe float (None for missing or NaN)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else round(value, digits)


def _unit_ablation(ablation: dict[int, LayerAblation], unit: dict, target_row: int, other_row: int) -> dict:
    from charnn.probe.ablate import percentile_among

    ref = unit["ref"]
    layer = ablation[ref.layer]
    deltas = layer.deltas[ref.unit]
    band = layer.band(ref.unit, target_row)
    band = band[~np.isnan(band)]
    target = deltas[target_row]
    return {
        "target_delta": _number(target),
        "other_delta": _number(deltas[other_row]),
        "random_percentile": _number(percentile_among(target, band), 2),
        "random_units": int(len(band)),
        "random_band": None if len(band) == 0 else {
            "p5": _number(np.percentile(band, 5)),
            "median": _number(np.median(band)),
            "p95": _number(np.percentile(band, 95)),
            "max": _number(band.max()),
        },
    }


def build_report(
    *,
    meta: dict,
    model: CharRNN,
    text: str,
    split: Split,
    features: dict[str, Feature],
    scores: dict[str, FeatureScores],
    control_scores: dict[str, FeatureScores] | None,
    top_units: dict[str, list[dict]],
    ablation: dict[int, LayerAblation] | None,
    mask_rows: dict[tuple[str, str], int],
    options: ProbeOptions,
    language: str | None,
    saturation: list[dict],
    skipped: dict[str, str],
    timings: dict[str, float],
) -> dict:
    """The JSON-able report of a probe."""
    cfg = model.config
    report: dict[str, Any] = {
        "charnn_probe_report": REPORT_VERSION,
        "layer_numbering": "1-based",
        "model": {
            "checkpoint": meta.get("checkpoint"),
            "step": meta.get("step"),
            "corpus": meta.get("corpus"),
            "cell": cfg.cell,
            "layers": cfg.layers,
            "hidden": cfg.hidden,
            "embed": cfg.embed,
            "vocab_size": cfg.vocab_size,
            "parameters": model.num_parameters(),
        },
        "text": {"path": meta.get("text_path"), "chars": len(text), "truncated_from": meta.get("truncated_from"),
                 "unknown_chars": meta.get("unknown_chars", 0)},
        "feature_set": options.feature_set,
        "task": options.task if options.feature_set == "task" else None,
        "language": language,
        "split": split.to_json(),
        "control": {"kind": "untrained model of the same shape", "seed": options.seed} if control_scores is not None else None,
        "ablation": None if ablation is None else {
            "method": options.ablate,
            "acts_on": "the unit's h (and c) at every step, inside the recurrence",
            "random_units_per_layer": min(options.random_units, cfg.hidden - 1),  # compared with each unit, never itself
            "random_units_requested": options.random_units,
            "seed": options.seed,
            "chars": len(text),
            "loss": "nats/char; position i's loss predicts text[i + 1]; target = the feature's target positions, other = the rest",
        },
        "pass_thresholds": dict(PASS_THRESHOLDS),
        "features": {},
        "skipped_features": dict(skipped),
        "saturation": [
            {"layer": layer["layer"], "gates": {
                gate: {"left": [_number(v, 4) for v in values["left"]], "right": [_number(v, 4) for v in values["right"]],
                       "mean_left": _number(values["mean_left"], 4), "mean_right": _number(values["mean_right"], 4)}
                for gate, values in layer["gates"].items()}}
            for layer in saturation
        ],
        "saturation_thresholds": {"left": "< 0.1", "right": "> 0.9"},
        "timings_s": {name: round(seconds, 2) for name, seconds in timings.items()},
    }
    for name, feature_scores in scores.items():
        metric = feature_scores.metric
        threshold = PASS_THRESHOLDS[metric]
        feature = features[name]
        labels = feature_scores.labels
        control = control_scores.get(name) if control_scores else None
        units = []
        for unit in top_units[name]:
            ref = unit["ref"]
            entry = {"layer": ref.layer, "unit": ref.unit, "state": ref.state, "score": _number(unit["score"]),
                     "heldout_score": _number(unit["heldout_score"]), "sign": unit["sign"]}
            entry["ablation"] = (_unit_ablation(ablation, unit, mask_rows[(name, "target")], mask_rows[(name, "other")])
                                 if ablation is not None else None)
            units.append(entry)
        report["features"][name] = {
            "kind": feature.kind,
            "metric": metric,
            "description": feature.description,
            "labelled_chars": int(labels.valid.sum()),
            "target_chars": int(np.asarray(feature.targets[: len(text) - 1], dtype=bool).sum()),
            "chance": CHANCE[metric],
            "control_best": _number(control.best_heldout()) if control else None,
            "pass_threshold": threshold,
            "share_passing": _number(feature_scores.share_passing(threshold), 4),
            "control_share_passing": _number(control.share_passing(threshold), 4) if control else None,
            "units": units,
        }
    return report


def write_json(report: dict, path: str | Path) -> None:
    """Write the report to a file (one JSON object) through a temporary file and a rename: never half-written."""
    try:
        atomic_write_bytes(Path(path), (json.dumps(report, indent=1) + "\n").encode("utf-8"))
    except OSError as err:
        raise CharnnError(f"cannot write --json '{path}': {err.strerror or err}") from None


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def feature_table(name: str, feature: dict) -> Table:
    """A rich table of one feature's top units."""
    metric = feature["metric"]
    control = _fmt(feature["control_best"])
    share = feature["share_passing"]
    share_text = "-" if share is None else f"{100 * share:.1f}%"
    control_share = feature.get("control_share_passing")
    control_share_text = "" if control_share is None else f" (control {100 * control_share:.1f}%)"
    table = Table(
        title=f"{name}: {feature['kind']}, {metric}",
        caption=f"select/held-out: {metric} on each part; Δ: loss change (nats/char) when the unit is ablated, on the "
                f"{feature['target_chars']:,} target chars and elsewhere; pct: percentile among random units. "
                f"Untrained control best {control}; units passing {feature['pass_threshold']} held-out: {share_text}"
                f"{control_share_text}",
    )
    for column, justify in (("layer", "right"), ("unit", "right"), ("state", "center"), ("sign", "center"),
                            ("select", "right"), ("held-out", "right"), ("Δtarget", "right"),
                            ("Δother", "right"), ("pct", "right")):
        table.add_column(column, justify=justify)
    for unit in feature["units"]:
        ablation = unit["ablation"] or {}
        heldout = unit["heldout_score"]
        passing = heldout is not None and heldout >= feature["pass_threshold"]
        table.add_row(
            str(unit["layer"]), str(unit["unit"]), unit["state"], "+" if unit["sign"] > 0 else "−",
            _fmt(unit["score"]), f"[bold green]{_fmt(heldout)}[/]" if passing else _fmt(heldout),
            _fmt(ablation.get("target_delta"), 4), _fmt(ablation.get("other_delta"), 4),
            _fmt(ablation.get("random_percentile"), 1),
        )
    return table


def print_report(report: dict, console: Console | None = None, notes: list[str] | None = None) -> None:
    """Print one table per feature, then the notes."""
    console = console or Console()
    text = report["text"]
    model = report["model"]
    console.print(f"[bold]charnn probe[/]: {model['cell'].upper()} {model['layers']}×{model['hidden']} on "
                  f"{text['path'] or 'text'} ({text['chars']:,} chars; selection {report['split']['selection']['stop']:,}, "
                  f"held-out {report['split']['heldout']['stop'] - report['split']['heldout']['start']:,})"
                  f"{'; strings and comments lexed as ' + report['language'] if report.get('language') else ''}; "
                  f"layers count from 1")
    for name, feature in report["features"].items():
        console.print(feature_table(name, feature))
    for name, reason in report["skipped_features"].items():
        console.print(f"[yellow]not scored[/] {name}: {reason}")
    saturation = report["saturation"]
    if saturation and saturation[0]["gates"]:
        table = Table(title="gate saturation: share of steps < 0.1 (left) or > 0.9 (right), mean over units")
        table.add_column("layer", justify="right")
        gates = list(saturation[0]["gates"])
        for gate in gates:
            table.add_column(f"{gate} left", justify="right")
            table.add_column(f"{gate} right", justify="right")
        for layer in saturation:
            cells = []
            for gate in gates:
                cells += [_fmt(layer["gates"][gate]["mean_left"], 2), _fmt(layer["gates"][gate]["mean_right"], 2)]
            table.add_row(str(layer["layer"]), *cells)
        console.print(table)
    elif saturation:
        console.print(f"gate saturation: none to measure, a plain {model['cell'].upper()} has no gates")
    for note in notes or []:
        console.print(f"[yellow]note[/]: {note}")
