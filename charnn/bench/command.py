"""The command line of charnn bench: its flags (no torch needed to offer them) and the command itself."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from charnn.argtypes import POSITIVE, whole
from charnn.bench.settings import SECTIONS, BenchSettings, recommended_cpu_config
from charnn.errors import CharnnError
from charnn.precision import PRECISIONS


def section_list(text: str) -> list[str]:
    """argparse type: comma-separated section names."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    bad = [name for name in names if name not in SECTIONS]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"takes one or more of {', '.join(SECTIONS)} separated by commas, not '{text}'"
        )
    return names


def key_value(text: str) -> tuple[str, str]:
    """argparse type: KEY=VALUE."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"takes KEY=VALUE (e.g. hidden=384), not '{text}'")
    return key, value


def add_bench_options(parser: argparse.ArgumentParser) -> None:
    """The flags of `charnn bench`."""
    parser.description = (
        "Measure training, sampling and encoding throughput, each beside a baseline measured in the same run "
        "(medians of interleaved repeats, min and max shown); --quality adds val loss after a fixed budget."
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, steps and characters: about a minute")
    parser.add_argument(
        "--quality",
        action="store_true",
        help="also train on --quality-corpus for --budget-minutes and report the best val loss (long)",
    )
    parser.add_argument(
        "--budget-minutes",
        type=POSITIVE,
        default=10.0,
        help="wall-clock budget of --quality (default: 10); it trains the recipe charnn train takes for that budget",
    )
    parser.add_argument(
        "--only",
        type=section_list,
        metavar="SECTIONS",
        help=f"run only these sections, comma-separated: {', '.join(SECTIONS)}",
    )
    parser.add_argument(
        "--repeats", type=whole(1), help="interleaved repeats of each measurement (default: 5, 3 with --quick)"
    )
    parser.add_argument("--threads", type=whole(1), help="torch threads (default: torch's own choice)")
    parser.add_argument(
        "--wait-quiet",
        type=POSITIVE,
        metavar="SECONDS",
        help="on a shared machine: before each repeat, wait up to SECONDS for other processes to leave the CPUs "
        "idle, and measure a pair they disturbed again",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="the trainer's --precision (default: auto, as charnn train); the bare loop computes the same way",
    )
    parser.add_argument(
        "--encode-file",
        metavar="FILE",
        help="a large text file to encode (default: the standard library, repeated to each size)",
    )
    parser.add_argument(
        "--cache-dir", default="runs/.cache", help="where the training corpus is cached (default: runs/.cache)"
    )
    parser.add_argument(
        "--quality-corpus",
        default=BenchSettings.quality_corpus,
        help="the --quality corpus: a text file, or stdlib or task:NAME (default: stdlib; the figures in "
        "docs/results/benchmarks.md are on tinyshakespeare)",
    )
    parser.add_argument(
        "--quality-out",
        default="runs/bench-quality",
        help="run directory of --quality, replaced each time (default: runs/bench-quality)",
    )
    parser.add_argument(
        "--divergence-run",
        metavar="RUN",
        help="the trained run whose next-character distributions bf16 sampling is compared on (default: the "
        "newest run under runs/; random weights when there is none, whose flat distributions understate it)",
    )
    parser.add_argument(
        "--quality-set",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a recommended --quality setting, e.g. hidden=384 or seq_len=256; repeatable",
    )
    parser.set_defaults(handler=command_bench)


def command_bench(args: argparse.Namespace) -> int:
    """charnn bench: run, then print the table or the JSON."""
    import torch
    from rich.console import Console

    from charnn.bench.quality import apply_overrides, resolve_quality_corpus
    from charnn.bench.run import run_bench
    from charnn.bench.table import render_table

    if args.only:
        sections = list(dict.fromkeys(args.only))
        if "cuda" in sections and not torch.cuda.is_available():
            raise CharnnError("--only cuda: no CUDA GPU is available here")
    else:
        sections = (
            ["train", "sample", "encode"]
            + (["cuda"] if torch.cuda.is_available() else [])
            + (["quality"] if args.quality else [])
        )
    changes: dict[str, Any] = {
        "budget_minutes": args.budget_minutes,
        "cache_dir": args.cache_dir,
        "encode_file": args.encode_file,
        "quality_corpus": args.quality_corpus,
        "quality_out": args.quality_out,
        "quality_overrides": dict(args.quality_set),
        "threads": args.threads,
        "wait_quiet": args.wait_quiet or 0.0,
        "precision": args.precision,
        "divergence_run": args.divergence_run,
    }
    if args.repeats:
        changes["repeats"] = args.repeats
    settings = BenchSettings.quick(**changes) if args.quick else BenchSettings(**changes)
    if "train" in sections:  # a bf16 this CPU cannot compute fails now, not after the ceiling measurements
        from charnn.device import resolve_precision

        resolve_precision(settings.precision, torch.device("cpu"))
    if "quality" in sections:
        # fail before the long parts, not after: a bad flag first, then a missing file
        apply_overrides(recommended_cpu_config("x", "x", "x", settings.budget_minutes), settings.quality_overrides)
        resolve_quality_corpus(settings.quality_corpus)
    if (
        settings.divergence_run and "sample" in sections
    ):  # a run that is not there fails now, not after the training part
        from charnn.sample import resolve_checkpoint

        resolve_checkpoint(settings.divergence_run)
    if settings.encode_file and "encode" in sections and not Path(settings.encode_file).is_file():
        raise CharnnError(f"--encode-file '{settings.encode_file}' does not exist")
    console = Console(stderr=True)
    report = run_bench(settings, sections, progress=console.is_terminal, console=console)
    report["command"] = "charnn bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else "charnn bench"
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        console = Console()
        if not console.is_terminal:
            console = Console(width=160)  # a file or a pipe: do not fold the table into 80 columns
        console.print(render_table(report))
    return 0
