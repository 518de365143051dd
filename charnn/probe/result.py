"""What a probe found: its options, its result, and the JSON report built from them (schema below).

    {"layer_numbering": "1-based", "model": {...}, "text": {"path", "chars", ...}, "split": {...},
     "features": {NAME: {"kind": "binary"|"ordinal", "metric": "auroc"|"spearman",
                         "control_best": x, "pass_threshold": t, "share_passing": s, ...,
                         "units": [{"layer", "unit", "state", "score", "heldout_score", "sign",
                                    "ablation": {"target_delta", "other_delta", "random_percentile", ...}}]}},
     "saturation": [{"layer": 1, "gates": {"i": {"left": [...], "right": [...], ...}}}],
     "strings": {"threshold", "inside_string", "inside_multiline_string", "inside_oneline_string", "both_kinds",
                 "met_by": "one unit" | "one unit for each kind" | null} (null without string features), ...}

Units are sorted by heldout_score, best first; layers count from 1, as charnn generate --clamp does.
The pipeline fills these in; the report (tables, --json) and the explorer (--html) read them.
"""

from __future__ import annotations

import html
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from charnn.errors import CharnnError, UsageError
from charnn.model import CharRNN
from charnn.probe.ablate import LayerAblation, percentile_among
from charnn.probe.labels import Feature
from charnn.probe.options import (
    HTML_MAX_MB,
    ProbeOptions,  # noqa: F401 - the options a result was made with; pipeline imports them here
)
from charnn.probe.record import Recording
from charnn.probe.score import CHANCE, PASS_THRESHOLDS, FeatureScores, Split


@dataclass
class ProbeResult:
    """What a probe found: the JSON report (`.report`; its schema is build_report's), and the text, labels and
    recording an explorer page draws from. Made by charnn.probe.pipeline; from charnn.load(...).probe() and the
    command line it also holds the model and its vocabulary, so that it can write the page, which runs the model."""

    report: dict
    text: str
    features: dict[str, Feature]
    recording: Recording
    split: Split
    scores: dict[str, FeatureScores]
    notes: list[str] = field(default_factory=list)  # what a reader should know: a cut text, a feature not scored
    workdir: tempfile.TemporaryDirectory | None = None  # holds the recording's files when it is memory-mapped
    model: Any = None  # the CharRNN probed
    vocab: Any = None  # its Vocab

    def units(self, feature: str) -> list[dict]:
        """The feature's top units, best first:
        {"layer", "unit", "state", "score", "heldout_score", "ablation", ...}."""
        found = self.report["features"]
        if feature not in found:
            raise UsageError(f"no feature '{feature}' in this probe; it has: {', '.join(found)}")
        return found[feature]["units"]

    # what follows shows and writes the result: the report and the page's modules sit after this one in the flow
    def table(self) -> Any:
        """The report as rich renderables, one table per feature (print them with rich, or just show them)."""
        from rich.console import Group

        from charnn.probe.report import report_renderables

        return Group(*report_renderables(self.report, self.notes))

    def print(self, console: Any = None) -> None:
        """Print the tables (to a rich Console; default: a new one on stdout)."""
        from rich.console import Console

        from charnn.probe.report import print_report

        print_report(self.report, console or Console(), self.notes)

    def to_json(self, path: str | Path | None = None) -> str:
        """The report as JSON text; with a path, also written there (atomically)."""
        from charnn.probe.report import write_json

        if path is not None:
            write_json(self.report, path)
        return json.dumps(self.report, indent=1)

    def to_html(self, path: str | Path | None = None, max_mb: float = 5.0, live: bool = True) -> str:
        """The one-file explorer page (it opens from disk; no server); with a path, also written there.
        live=False leaves the model's weights out (the page then cannot run it on the user's own text)."""
        from charnn.atomic import atomic_write_bytes
        from charnn.probe.html import build_html

        self._check_page(max_mb)
        page, _ = build_html(self, self.model, self.vocab, max_mb, live=live)
        if path is not None:
            try:
                atomic_write_bytes(Path(path), page.encode("utf-8"))
            except OSError as err:
                raise CharnnError(f"cannot write --html '{path}': {err.strerror or err}") from None
        return page

    def write_html(self, path: str | Path, max_mb: float = 5.0, live: bool = True) -> dict:
        """Write the explorer page (never half-written); returns what it holds: bytes, chars, coverage, live model."""
        from charnn.probe.html import write_html

        self._check_page(max_mb)
        return write_html(self, path, self.model, self.vocab, max_mb, live=live)

    def _check_page(self, max_mb: float) -> None:
        HTML_MAX_MB.check("html-max-mb", max_mb)
        if self.model is None or self.vocab is None:
            raise CharnnError("this probe result holds no model: probe with charnn.load(...).probe() to write its page")

    def _repr_html_(self) -> str:
        """Jupyter shows the explorer inline: the whole page in an iframe's srcdoc, self-contained (2 MB at most).
        Not sandboxed: a sandbox without allow-same-origin stops the page inflating its data."""
        page = self.to_html(max_mb=2.0)
        return (
            f'<iframe srcdoc="{html.escape(page, quote=True)}" style="width: 100%; height: 640px; border: 1px solid '
            '#ccc"></iframe>'
        )

    def close(self) -> None:
        """Remove the memory-mapped recording files, if any (only a very long probe has them)."""
        if self.workdir is not None:
            self.workdir.cleanup()
            self.workdir = None

    def __repr__(self) -> str:
        best = []
        for name, feature in self.report["features"].items():
            if feature["units"]:
                unit = feature["units"][0]
                best.append(
                    f"{name}: {unit['layer']}:{unit['unit']} {unit['state']} ({feature['metric']} "
                    f"{unit['heldout_score']})"
                )
        more = "; ..." if len(best) > 4 else ""
        return f"ProbeResult({len(self.report['features'])} features; best: " + "; ".join(best[:4]) + more + ")"


REPORT_VERSION = 1


def _number(value: Any, digits: int = 6) -> float | None:
    """A JSON-safe float (None for missing or NaN)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) or math.isinf(value) else round(value, digits)


def _unit_ablation(ablation: dict[int, LayerAblation], unit: dict, target_row: int, other_row: int) -> dict:
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
        "random_band": None
        if len(band) == 0
        else {
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
        "text": {
            "path": meta.get("text_path"),
            "chars": len(text),
            "truncated_from": meta.get("truncated_from"),
            "unknown_chars": meta.get("unknown_chars", 0),
        },
        "feature_set": options.feature_set,
        "task": options.task if options.feature_set == "task" else None,
        "language": language,
        "split": split.to_json(),
        "control": {"kind": "untrained model of the same shape", "seed": options.seed}
        if control_scores is not None
        else None,
        "ablation": None
        if ablation is None
        else {
            "method": options.ablate,
            "precision": options.precision,
            "acts_on": "the unit's h (and c) at every step, inside the recurrence",
            "random_units_per_layer": min(
                options.random_units, cfg.hidden - 1
            ),  # compared with each unit, never itself
            "random_units_requested": options.random_units,
            "seed": options.seed,
            "chars": len(text),
            "loss": "nats/char; position i's loss predicts text[i + 1]; target = the feature's target positions, "
            "other = the rest",
        },
        "pass_thresholds": dict(PASS_THRESHOLDS),
        "features": {},
        "skipped_features": dict(skipped),
        "saturation": [
            {
                "layer": layer["layer"],
                "gates": {
                    gate: {
                        "left": [_number(v, 4) for v in values["left"]],
                        "right": [_number(v, 4) for v in values["right"]],
                        "mean_left": _number(values["mean_left"], 4),
                        "mean_right": _number(values["mean_right"], 4),
                    }
                    for gate, values in layer["gates"].items()
                },
            }
            for layer in saturation
        ],
        "saturation_thresholds": {"left": "< 0.1", "right": "> 0.9"},
        "timings_s": {name: round(seconds, 2) for name, seconds in timings.items()},
    }
    for name, feature_scores in scores.items():
        metric = feature_scores.metric
        threshold = PASS_THRESHOLDS[metric]
        feature = features[name]
        feature = feature_scores.feature
        control = control_scores.get(name) if control_scores else None
        units = []
        for unit in top_units[name]:
            ref = unit["ref"]
            entry = {
                "layer": ref.layer,
                "unit": ref.unit,
                "state": ref.state,
                "score": _number(unit["score"]),
                "heldout_score": _number(unit["heldout_score"]),
                "sign": unit["sign"],
            }
            entry["ablation"] = (
                _unit_ablation(ablation, unit, mask_rows[(name, "target")], mask_rows[(name, "other")])
                if ablation is not None
                else None
            )
            units.append(entry)
        report["features"][name] = {
            "kind": feature.kind,
            "metric": metric,
            "description": feature.description,
            "labelled_chars": int(feature.defined_mask.sum()),
            "target_chars": int(feature.target_mask[: len(text) - 1].sum()),
            "chance": CHANCE[metric],
            "control_best": _number(control.best_heldout()) if control else None,
            "pass_threshold": threshold,
            "share_passing": _number(feature_scores.share_passing(threshold), 4),
            "control_share_passing": _number(control.share_passing(threshold), 4) if control else None,
            "units": units,
        }
    report["strings"] = strings_summary(report["features"])
    return report


def strings_summary(features: dict) -> dict | None:
    """Whether the quote-tracking target is met: by one inside_string unit, or, where the text has both kinds
    of string, by one unit for each kind (a model may keep docstrings and one-line strings apart). None for a
    text without string features."""

    def best(name: str) -> float | None:
        units = features.get(name, {}).get("units") or []
        scores = [unit["heldout_score"] for unit in units if unit["heldout_score"] is not None]
        return max(scores) if scores else None

    if "inside_string" not in features:
        return None
    threshold = features["inside_string"]["pass_threshold"]
    one, multi, oneline = best("inside_string"), best("inside_multiline_string"), best("inside_oneline_string")
    both_kinds = "inside_multiline_string" in features and "inside_oneline_string" in features
    by_kinds = both_kinds and multi is not None and oneline is not None and min(multi, oneline) >= threshold
    met_by = "one unit" if one is not None and one >= threshold else ("one unit for each kind" if by_kinds else None)
    return {
        "threshold": threshold,
        "inside_string": one,
        "inside_multiline_string": multi if both_kinds else None,
        "inside_oneline_string": oneline if both_kinds else None,
        "both_kinds": both_kinds,
        "met_by": met_by,
    }
