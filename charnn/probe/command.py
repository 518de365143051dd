"""charnn probe: the command-line face of the probe stage."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from charnn.argtypes import rule_of as rule
from charnn.config import TrainConfig
from charnn.errors import CharnnError, UsageError
from charnn.probe.languages import LANGUAGES, SYNTAXES
from charnn.probe.options import FEATURE_SETS, HTML_MAX_MB, MAX_CHARS, ProbeOptions


def add_probe_options(parser: argparse.ArgumentParser) -> None:
    """The flags of charnn probe; the parser's handler becomes command_probe."""
    source = parser.add_argument_group("model and text")
    source.add_argument("--run", help="run directory (default: the newest under runs/)")
    source.add_argument("--checkpoint", help="a checkpoint file instead of --run")
    source.add_argument(
        "--which", choices=("best", "last"), default="best", help="which checkpoint of the run (default: best)"
    )
    source.add_argument(
        "--text",
        help="the probe text (UTF-8), read as one stream from a zero state; task:NAME, or nothing for a "
        "run trained on a task, probes freshly generated sequences of the task (from a seed "
        "other than the run's own: the report says which)",
    )
    source.add_argument(
        "--max-chars",
        type=MAX_CHARS,
        default=100_000,
        help="probe at most this many characters; a longer text is cut (default: 100000)",
    )
    source.add_argument(
        "--unknown",
        choices=("error", "replace"),
        default="replace",
        help="characters the model never saw: map them to the unknown id and say how many (replace, the "
        "default: a probe describes the text, it claims no loss) or stop and list them (error)",
    )
    labels = parser.add_argument_group("features and scoring")
    labels.add_argument(
        "--features",
        choices=FEATURE_SETS,
        help="which labels to rank units against: code (strings, comments, brackets, indentation, column), "
        "tweets (hashtags, mentions, URLs, quotes, capitals, position), task (a synthetic task's ground "
        "truth; the default for a task's sequences) or none (only your --feature and --labels)",
    )
    labels.add_argument(
        "--feature",
        action="append",
        default=[],
        metavar="NAME=REGEX",
        help="a hypothesis of your own: a binary feature, True on the characters of each match of REGEX "
        "(Python's re, over the whole text; (?m) for ^ and $ at line ends), scored, controlled and "
        "ablated like the built-in ones (targets: each match's last character); repeatable; with "
        "--features none, the only features",
    )
    labels.add_argument(
        "--labels",
        action="append",
        default=[],
        metavar="FILE",
        help="labels of your own, one per character of the probe text (after --max-chars): a JSON object "
        "{NAME: [label, ...]} of bools or numbers, null where a label is undefined, or a .npy array "
        "(bool, int with -1 undefined, or float; named after the file); repeatable",
    )
    labels.add_argument(
        "--language",
        choices=LANGUAGES,
        default="auto",
        help="with --features code: whose rules find strings and comments: "
        + ", ".join(f"{name} ({syntax.description})" for name, syntax in SYNTAXES.items())
        + ". auto (default): the --text file's name (.py, .c, .java, .js, .go, .rs, .sh, .pm, "
        "Makefile ...), else the interpreter its '#!' first line names (for a text of many scripts: "
        "most of their '#!' lines), else python or c, guessed from how the text's lines end and "
        "whether they are # comments",
    )
    labels.add_argument(
        "--task",
        help="with --features task: count, selective-count, ab-memory or copy "
        "(default: the task the checkpoint was trained on)",
    )
    labels.add_argument(
        "--top", type=rule(ProbeOptions, "top"), default=5, help="units reported per feature (default: 5)"
    )
    labels.add_argument(
        "--heldout-fraction",
        type=rule(ProbeOptions, "heldout_fraction"),
        default=0.5,
        help="the last part of the text, held out: units are chosen on the rest and scored on it (default: 0.5)",
    )
    labels.add_argument("--no-control", action="store_true", help="skip the untrained same-shape control model")
    labels.add_argument(
        "--seed",
        type=rule(ProbeOptions, "seed"),
        default=0,
        help="seed of the control model and of the random units (default: 0)",
    )
    ablation = parser.add_argument_group("ablation")
    ablation.add_argument(
        "--random-units",
        type=rule(ProbeOptions, "random_units"),
        default=100,
        help="random units of the same layer each flagged unit's ablation is compared with (default: 100)",
    )
    ablation.add_argument(
        "--ablate",
        choices=("zero", "mean"),
        default="zero",
        help="replace an ablated unit's h and c with 0 or with its mean over the text (default: zero)",
    )
    ablation.add_argument(
        "--no-ablation", action="store_true", help="rank units only; skip the ablations (much faster)"
    )
    ablation.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="the ablation's matrix products: fp32 (default), or bf16 on a CPU with AMX or AVX-512 BF16: a "
        'little faster, deltas a little off fp32\'s (docs/results/benchmarks.md, "Probing"); refused elsewhere, '
        "and on a GPU, whose fused fp32 kernels are faster",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--json", metavar="OUT", help="write the report as JSON to OUT")
    output.add_argument(
        "--html",
        metavar="OUT",
        help="write the one-file HTML explorer to OUT: it opens from disk in a browser (no server, no "
        "network) and colours the text by any unit. It always holds the text, the model's top-5 next "
        "characters, every feature's labels and every state of every flagged unit (255 levels); "
        "the other units are added while the file stays under --html-max-mb: every state of every "
        "unit, else h and c, else h, each at 255, 31 or 15 levels, else none (the page greys out "
        "what is missing). A text too long for even the flagged units is cut, and the page says so. "
        "Opens in Chrome 80+, Firefox 113+, Safari 16.4+ (it inflates its data with DecompressionStream)",
    )
    output.add_argument(
        "--html-max-mb",
        type=HTML_MAX_MB,
        default=5.0,
        metavar="MB",
        help="size budget of --html in MB of 10^6 bytes, at least 0.5 (default: 5): the text and the flagged "
        "units always go in, the other units as far as they fit (what a budget holds: docs/explorer.md)",
    )
    output.add_argument(
        "--html-no-model",
        action="store_true",
        help="leave the live model out of --html (by default the page carries the model's weights, float16 "
        "or int8, where they fit beside at least 10,000 characters, and runs it on text the user types)",
    )
    output.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    output.add_argument(
        "--threads",
        type=rule(ProbeOptions, "threads"),
        default=None,
        help="CPU threads for the batched ablation (default: torch's, all cores). Recording one stream "
        "always uses 1. While other jobs share the cores a second thread mostly waits: give 1 there "
        '(docs/results/benchmarks.md, "Probing")',
    )
    output.add_argument(
        "--quiet", action="store_true", help="no progress bars and no tables (errors still go to stderr)"
    )
    parser.set_defaults(handler=command_probe)


def read_probe_text(path: str) -> str:
    """The probe text, exactly as stored (no newline translation); a clear error when it cannot be read."""
    file = Path(path)
    if not file.exists():
        raise CharnnError(f"--text '{path}' does not exist")
    if file.is_dir():
        raise CharnnError(f"--text '{path}' is a directory; give one text file")
    try:
        with open(file, encoding="utf-8", newline="") as handle:
            text = handle.read()
    except UnicodeDecodeError as err:
        raise CharnnError(f"--text '{path}' is not UTF-8 (byte offset {err.start}); convert it first") from None
    except OSError as err:
        raise CharnnError(f"cannot read --text '{path}': {err.strerror or err}") from None
    return text.removeprefix("\ufeff")


def check_output_target(flag: str, path: str) -> None:
    """Refuse a --json or --html path that cannot be written, before spending minutes on the probe."""
    if not path:
        raise UsageError(f"{flag} needs a file name")
    target = Path(path)
    if target.is_dir():
        raise CharnnError(
            f"{flag} '{path}' is a directory; give a file name such as {target / ('probe.' + flag.removeprefix('--'))}"
        )
    if target.exists() and not target.is_file():
        raise CharnnError(f"{flag} '{path}' exists and is not a regular file (a device, a pipe ...); give a file name")
    parent = target.parent
    if not parent.is_dir():
        raise CharnnError(f"{flag} '{path}': the directory '{parent}' does not exist")


TASK_PROBE_SEQUENCES = 2000  # about 16,000-32,000 characters: enough for every task label to vary in both parts


def fresh_task_text(text_flag: str | None, task_flag: str | None, meta: dict) -> tuple[str, str, str, str]:
    """For --text task:NAME or no --text: (task, text, name, note), sequences the run never trained on."""
    from charnn.probe.pipeline import resolve_task
    from charnn.tasks import make_task_text

    named = text_flag.removeprefix("task:") if text_flag else None
    if named and task_flag and named != task_flag.removeprefix("task:"):
        raise UsageError(f"--text task:{named} and --task {task_flag} name different tasks")
    trained = TrainConfig.from_json(meta.get("train") or {})
    if not named and not task_flag and not trained.corpus.startswith("task:"):
        raise UsageError(f"--text is needed: the run was trained on '{trained.corpus}', not on a task:NAME corpus")
    task = resolve_task(named or task_flag, "task", meta)
    trained_seed = trained.reader.task_seed
    seed = trained_seed + 1 if trained.corpus == f"task:{task}" else trained_seed
    text = make_task_text(task, TASK_PROBE_SEQUENCES, seed=seed)
    seed_note = f" (the run trained on seed {trained_seed})" if seed != trained_seed else ""
    return (
        task,
        text,
        f"task:{task} seed {seed}",
        (f"probing {TASK_PROBE_SEQUENCES:,} freshly generated {task} sequences, task seed {seed}{seed_note}"),
    )


def command_probe(args: argparse.Namespace) -> int:
    """charnn probe: record, label, score, ablate, report."""
    from rich.console import Console

    from charnn.api import Model
    from charnn.device import pick_device
    from charnn.probe.labels.custom import parse_pattern
    from charnn.sample import resolve_checkpoint

    for flag, path in (("--json", args.json), ("--html", args.html)):
        if path is not None:
            check_output_target(flag, path)
    model = Model(resolve_checkpoint(args.run, args.checkpoint, args.which), pick_device(args.device))
    features, task, text, text_path, notes = args.features, args.task, None, args.text, []
    if args.text is None or args.text.startswith("task:"):
        features = features or "task"
        task, text, text_path, note = fresh_task_text(args.text, task, model.checkpoint.meta)
        notes.append(note)
    elif features is None:
        raise UsageError("--features is needed: code, tweets, task or none")
    else:
        text = read_probe_text(args.text)
    result = model.probe(
        text,
        features=features,
        task=task if features == "task" else args.task,
        language=args.language,
        top=args.top,
        heldout_fraction=args.heldout_fraction,
        random_units=args.random_units,
        ablate=args.ablate,
        precision=args.precision,
        ablation=not args.no_ablation,
        control=not args.no_control,
        seed=args.seed,
        max_chars=args.max_chars,
        unknown=args.unknown,
        threads=args.threads,
        patterns=[parse_pattern(spec) for spec in args.feature],
        labels=args.labels,
        progress=not args.quiet and sys.stderr.isatty(),
        text_path=text_path,
    )
    result.notes[:0] = notes
    try:
        if args.json is not None:
            result.to_json(args.json)
        written = (
            result.write_html(args.html, args.html_max_mb, live=not args.html_no_model)
            if args.html is not None
            else None
        )
        if not args.quiet:
            console = Console()
            result.print(console)
            if written:
                shown = written["chars"]
                cut = (
                    f" (the first {shown:,} of {written['probed_chars']:,} characters)"
                    if shown < written["probed_chars"]
                    else ""
                )
                console.print(
                    f"wrote {args.html}: {written['bytes'] / 1e6:.2f} MB{cut}; holds {written['coverage']}",
                    markup=False,
                    highlight=False,
                )
                console.print(
                    f"live model: {written['live']} weights (type your own text in the page)"
                    if written["live"]
                    else written["live_note"],
                    markup=False,
                    highlight=False,
                )
    finally:
        result.close()
    return 0
