"""The probe's report for people and files: rich tables, one per feature, and the JSON (--json).

The report itself, and its schema, are built in charnn.probe.result.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from charnn.atomic import atomic_write_bytes
from charnn.errors import CharnnError


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
    for column, justify in (
        ("layer", "right"),
        ("unit", "right"),
        ("state", "center"),
        ("sign", "center"),
        ("select", "right"),
        ("held-out", "right"),
        ("Δtarget", "right"),
        ("Δother", "right"),
        ("pct", "right"),
    ):
        table.add_column(column, justify=justify)
    for unit in feature["units"]:
        ablation = unit["ablation"] or {}
        heldout = unit["heldout_score"]
        passing = heldout is not None and heldout >= feature["pass_threshold"]
        table.add_row(
            str(unit["layer"]),
            str(unit["unit"]),
            unit["state"],
            "+" if unit["sign"] > 0 else "−",
            _fmt(unit["score"]),
            f"[bold green]{_fmt(heldout)}[/]" if passing else _fmt(heldout),
            _fmt(ablation.get("target_delta"), 4),
            _fmt(ablation.get("other_delta"), 4),
            _fmt(ablation.get("random_percentile"), 1),
        )
    return table


def report_renderables(report: dict, notes: list[str] | None = None) -> list:
    """What print_report prints, as rich renderables: a heading, one table per feature, gate saturation, notes."""
    text = report["text"]
    model = report["model"]
    out: list = [
        f"[bold]charnn probe[/]: {model['cell'].upper()} {model['layers']}×{model['hidden']} on "
        f"{text['path'] or 'text'} ({text['chars']:,} chars; selection {report['split']['selection']['stop']:,}, "
        f"held-out {report['split']['heldout']['stop'] - report['split']['heldout']['start']:,})"
        f"{'; strings and comments lexed as ' + report['language'] if report.get('language') else ''}; "
        f"layers count from 1"
    ]
    for name, feature in report["features"].items():
        out.append(feature_table(name, feature))
    if report.get("strings"):
        out.append(strings_line(report["strings"]))
    for name, reason in report["skipped_features"].items():
        out.append(f"[yellow]not scored[/] {name}: {reason}")
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
        out.append(table)
    elif saturation:
        out.append(f"gate saturation: none to measure, a plain {model['cell'].upper()} has no gates")
    for note in notes or []:
        out.append(f"[yellow]note[/]: {note}")
    return [Text.from_markup(item) if isinstance(item, str) else item for item in out]


def strings_line(summary: dict) -> str:
    """One line: is the quote-tracking target met, by one unit or by one unit for each kind of string."""
    threshold = summary["threshold"]
    found = f"inside_string best held-out {_fmt(summary['inside_string'])}"
    if summary["both_kinds"]:
        found += (
            f"; by kind: multiline {_fmt(summary['inside_multiline_string'])}, "
            f"one-line {_fmt(summary['inside_oneline_string'])}"
        )
    verdict = f"[green]met by {summary['met_by']}[/]" if summary["met_by"] else "[yellow]not met[/]"
    kinds = " (or one unit for each kind of string)" if summary["both_kinds"] else ""
    return f"strings: {found}; the quote-tracking target, a unit at ≥ {threshold:g}{kinds}, is {verdict}"


def print_report(report: dict, console: Console | None = None, notes: list[str] | None = None) -> None:
    """Print one table per feature, then the notes."""
    console = console or Console()
    for item in report_renderables(report, notes):
        console.print(item)
