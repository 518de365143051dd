"""The lab's goals for charnn bench's figures, and the reference figures they are set against: read a report
that `charnn bench --json` wrote and say, goal by goal, whether it is met.

    charnn bench --json > report.json
    python benchmarks/goals.py report.json

The goals were set for a 2-core AVX-512 CPU (docs/results/benchmarks.md); they are the lab's, not the product's, so
they live here and not in the charnn package.
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.table import Table

NANOGPT_CPU_NATS = 1.88  # nanoGPT's published CPU recipe on tinyshakespeare (~3 min): the quality run's reference


def goal(what: str, value: float | None, threshold: float, higher_is_better: bool = True, text: str = "") -> dict:
    """A goal, its threshold and whether the measured value meets it."""
    met = None if value is None else (value >= threshold if higher_is_better else value <= threshold)
    return {
        "what": what,
        "value": value,
        "threshold": threshold,
        "higher_is_better": higher_is_better,
        "text": text or (f"≥ {threshold:g}" if higher_is_better else f"≤ {threshold:g}"),
        "met": met,
    }


def goals(sections: dict) -> list[dict]:
    """The goals for a 2-core AVX-512 CPU, each with the measured value and whether it is met."""
    out = []
    for result in sections.get("train", []):
        shape = result["shape"]
        if (shape["layers"], shape["hidden"]) == (3, 512):
            out.append(goal("train 3×512: trainer / bare loop", result["ratio"]["median"], 1.0))
            out.append(goal("train 3×512: fraction of the matmul ceiling", result["charnn_fraction_of_ceiling"], 0.70))
        elif (shape["layers"], shape["hidden"]) == (2, 128):
            out.append(goal("train 2×128: trainer / bare loop", result["ratio"]["median"], 1.0))
    sample = sections.get("sample")
    if sample:
        out.append(goal("sample 1 stream: charnn / naive", sample["single"]["ratio"]["median"], 3.0))
        out.append(
            goal(
                f"sample {sample['batched']['streams']} streams: chars/s",
                sample["batched"]["charnn_chars_per_s"]["median"],
                12000,
            )
        )
    encode = sections.get("encode")
    if encode:
        out.append(goal("encode: MB/s", encode["sizes"][-1]["charnn_mb_per_s"]["median"], 100))
        out.append(
            goal(
                "encode: peak RSS growth, MB per MB of corpus",
                encode["charnn_rss_growth_per_mb"],
                0.05,
                higher_is_better=False,
                text="≤ 0.05 (flat)",
            )
        )
    quality = sections.get("quality")
    if quality:
        out.append(
            goal(
                "quality: best val nats/char",
                quality["best_val_nats_per_char"],
                NANOGPT_CPU_NATS,
                higher_is_better=False,
                text=f"< {NANOGPT_CPU_NATS} (nanoGPT CPU recipe)",
            )
        )
        if quality.get("wall_over_budget") is not None and quality.get("final_lr_over_floor") is not None:
            miss = max(abs(quality["wall_over_budget"] - 1), quality["final_lr_over_floor"] - 1)
            out.append(
                goal(
                    "quality: the schedule ends with the budget",
                    miss,
                    0.05,
                    higher_is_better=False,
                    text="wall within 5% of the budget, last lr within 5% of the floor",
                )
            )
    return out


def goals_table(found: list[dict]) -> Table:
    """The goals as a rich table: what, the measured value, the goal, met."""
    table = Table(title="charnn bench: the lab's goals")
    for column in ("what", "measured", "goal", "met?"):
        table.add_column(column, overflow="fold")
    for item in found:
        value = "-" if item["value"] is None else f"{item['value']:,.3f}"
        table.add_row(
            item["what"], value, item["text"], {True: "[green]yes[/]", False: "[red]no[/]", None: "-"}[item["met"]]
        )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Say which of the lab's goals a charnn bench --json report meets.")
    parser.add_argument("report", help="the JSON charnn bench --json printed")
    parser.add_argument("--json", action="store_true", help="print the goals as JSON")
    args = parser.parse_args(argv)
    try:
        with open(args.report, encoding="utf-8") as handle:
            report = json.load(handle)
    except (OSError, ValueError) as err:
        print(f"goals: cannot read '{args.report}': {err}", file=sys.stderr)
        return 1
    found = goals(report.get("sections", {}))
    if args.json:
        print(json.dumps(found, indent=1))
    else:
        Console().print(goals_table(found))
    return 0 if all(item["met"] for item in found) else 1


if __name__ == "__main__":
    sys.exit(main())
