"""The command line: charnn corpus | train | generate | eval | probe | bench.

Every failure a user can cause ends as one line on stderr and a non-zero exit, never a traceback:
2 for a flag value outside what the flag allows, whatever the data (``--layers 0``, ``--seed -1``);
1 for a well-formed value whose data or machine will not do: a missing or damaged file, a corpus too
short for ``--batch-size`` × ``--seq-len``, a run directory another process holds, a full disk.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

from charnn.argtypes import rule_of as rule
from charnn.bench.command import add_bench_options
from charnn.config import CELL_NAMES, SETTING_GROUPS, TrainConfig, flag, rule_for
from charnn.errors import CharnnError, is_out_of_memory
from charnn.precision import CUDA_AUTO, PRECISIONS
from charnn.probe.command import add_probe_options
from charnn.sample_options import SAMPLE_PRECISIONS, SampleOptions
from charnn.sources import ERROR_MODES, TWEET_FORMATS, ReaderOptions

TRAIN_DEFAULTS_NOTE = (
    "With no flags: 10 minutes of the defaults shown, the settings measured best for it on a 2-core CPU; on a GPU "
    "try --layers 3 --hidden 512 --seq-len 100 --batch-size 64 --max-steps 20000."
)


class Parser(argparse.ArgumentParser):
    """argparse that says what is wrong in one line and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        import re

        # a rule's refusal reads as it does from Python: "--layers must be a whole number >= 1, not 0"
        message = re.sub(r"^argument (--[\w-]+)(?:/[^:]*)?: must be ", r"\1 must be ", message)
        self.exit(2, f"{self.prog}: error: {message}{self.suggestion(message)} (see --help)\n")

    def suggestion(self, message: str) -> str:
        """For a mistyped flag, the flag it is closest to: "; did you mean --max-minutes?"."""
        import difflib

        if not message.startswith("unrecognized arguments: "):
            return ""
        known = set(self._option_string_actions)
        for action in self._actions:  # the subcommand's flags: the top-level parser reports their leftovers
            if isinstance(getattr(action, "choices", None), dict) and getattr(self, "command", None) in action.choices:
                known |= set(action.choices[self.command]._option_string_actions)
        for word in message.removeprefix("unrecognized arguments: ").split():
            if word.startswith("--"):
                close = difflib.get_close_matches(word.split("=")[0], sorted(known), n=1, cutoff=0.75)
                if close:
                    return f"; did you mean {close[0]}?"
        return ""


DASH_VALUE_FLAGS = ("--clamp", "--prime", "--stop")  # values that may start with "-": --clamp -1:0=1, --prime "-x"


def join_dash_values(argv: Sequence[str]) -> list[str]:
    """`--clamp -1:0=1` as `--clamp=-1:0=1`: argparse takes a value starting with "-" for an unknown flag and
    stops with "expected one argument". A value starting with "--" is left alone (it may be a flag)."""
    joined: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        if token == "--":
            joined.append(token)
            joined.extend(tokens)
            break
        if token in DASH_VALUE_FLAGS:
            value = next(tokens, None)
            if value is None:
                joined.append(token)
            elif value.startswith("-") and not value.startswith("--"):
                joined.append(f"{token}={value}")
            else:
                joined.extend((token, value))
        else:
            joined.append(token)
    return joined


def add_corpus_options(parser: argparse.ArgumentParser, with_defaults: bool = True) -> None:
    """Options that say how to read a corpus."""
    default = (lambda v: v) if with_defaults else (lambda v: None)
    reader, train = ReaderOptions(), TrainConfig()
    group = parser.add_argument_group("corpus options")
    group.add_argument(
        "--ext",
        nargs="+",
        default=default(None),
        metavar="EXT",
        help="file extensions to take from a directory of code (default: common source extensions)",
    )
    group.add_argument(
        "--text-field",
        default=default(None),
        help="JSON field or CSV column holding a tweet's text (default: text / full_text)",
    )
    group.add_argument(
        "--errors",
        choices=ERROR_MODES,
        default=default(reader.errors),
        help="invalid UTF-8: stop with the file and byte offset (strict) or substitute U+FFFD (replace)",
    )
    group.add_argument(
        "--tweet-format",
        choices=TWEET_FORMATS,
        default=default(reader.tweet_format),
        help="how to read a file: auto (by extension), text (one document), lines (one tweet per line), jsonl, json, "
        "csv, archive (tweets.js)",
    )
    group.add_argument(
        "--task-sequences",
        type=rule_for("task_sequences"),
        default=default(reader.task_sequences),
        help="sequences to generate for task:NAME corpora",
    )
    group.add_argument("--task-seed", type=int, default=default(reader.task_seed), help="seed of task:NAME corpora")
    group.add_argument(
        "--shuffle-files",
        type=rule_for("shuffle_files"),
        default=default(None),
        metavar="SEED",
        help="read a directory's files in a random order fixed by SEED instead of path order, so that "
        "training windows and the val/test splits mix kinds of file (default: path order)",
    )
    group.add_argument(
        "--split", default=default(train.split), help="train,val,test fractions, cut at document boundaries"
    )
    group.add_argument(
        "--cache-dir", default=default(train.cache_dir), help="where encoded corpora are cached (memory-mapped .npy)"
    )


def build_parser() -> Parser:
    """The whole CLI."""
    from charnn import __version__

    parser = Parser(prog="charnn", description="Character-level RNN text generation that explains its own neurons.")
    parser.add_argument("--version", action="version", version=f"charnn {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    corpus = commands.add_parser(
        "corpus",
        help="read, encode and cache a corpus; print its summary",
        description="Read SRC, encode it to the cache and print a summary table.",
    )
    corpus.add_argument(
        "source",
        metavar="SRC",
        help="a text file, a directory of code, a tweet file, 'stdlib', or "
        "task:count|task:selective-count|task:ab-memory|task:copy",
    )
    add_corpus_options(corpus)
    corpus.add_argument("--no-cache", action="store_true", help="encode without reading or writing the cache")
    corpus.add_argument("--write-text", metavar="FILE", help="also write the decoded corpus (or --write-split) to FILE")
    corpus.add_argument(
        "--write-split", choices=("all", "train", "val", "test"), default="all", help="which part --write-text writes"
    )
    corpus.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars and no summary table; only the path of a cache it wrote (and errors) are printed",
    )

    train = commands.add_parser(
        "train",
        help="train a model (python train.py)",
        description="Train a char-RNN with truncated BPTT. " + TRAIN_DEFAULTS_NOTE,
    )
    add_train_options(train)

    generate = commands.add_parser(
        "generate",
        help="sample text from a trained model (python generate.py)",
        description="Sample from a run's checkpoint; with no --run, the newest run under runs/.",
    )
    add_generate_options(generate)

    evaluate = commands.add_parser(
        "eval",
        help="bits per character of a model on a text",
        description="Read FILE as one stream and print the model's bits and nats per character.",
    )
    evaluate.add_argument("--run", help="run directory (default: the newest under runs/)")
    evaluate.add_argument("--checkpoint", help="a checkpoint file instead of --run")
    evaluate.add_argument("--which", choices=("best", "last"), default="best", help="which checkpoint of the run")
    evaluate.add_argument("--text", required=True, help="the text file to evaluate on (UTF-8)")
    evaluate.add_argument(
        "--unknown",
        choices=("error", "replace"),
        default="error",
        help="characters outside the vocabulary: stop and list them (error) or map them to the unknown id (replace)",
    )
    evaluate.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps or auto")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    add_probe_options(
        commands.add_parser(
            "probe",
            help="find and test interpretable units",
            description="Record every state of a model over a text, label the text, rank units on held-out text and "
            "ablate the best.",
        )
    )
    add_bench_options(commands.add_parser("bench", help="throughput and quality benchmarks beside their baselines"))
    return parser


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """Training flags; defaults are None here so that --resume can tell which flags were given."""
    from charnn.config import DEFAULT_MINUTES, RECIPES

    d = SimpleNamespace(**TrainConfig().flat())
    parser.add_argument("--corpus", help=f"what to train on: a path, 'stdlib' or task:NAME (default: {d.corpus})")
    parser.add_argument("--out", help="run directory (default: runs/<corpus name>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out exactly where last.pt left it")
    parser.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    recipes = "; ".join(
        f"{recipe.name}: " + (" ".join(f"--{flag(k)} {v:g}" for k, v in recipe.changes.items()) or "the defaults")
        for recipe in RECIPES
    )
    model = parser.add_argument_group(
        "model",
        "The defaults are what a bare run trains. A fresh run timed by --max-minutes M alone (no --max-steps or "
        "--epochs; a run given no length is M = 10) takes the recipe of the largest budget not above M, unless "
        f"--cell, --layers, --hidden or --embed is given; flags given change single settings of it ({recipes}; "
        "docs/training.md).",
    )
    model.add_argument(
        "--recipe",
        metavar="NAME",
        help=f"auto (the default): the rule above; {', '.join(recipe.name for recipe in RECIPES)}: that recipe, "
        "whatever the length; none: the defaults",
    )
    model.add_argument("--cell", choices=CELL_NAMES, help=f"recurrent cell (default: {d.cell})")
    model.add_argument("--layers", type=rule_for("layers"), help=f"recurrent layers (default: {d.layers})")
    model.add_argument("--hidden", type=rule_for("hidden"), help=f"units per layer (default: {d.hidden})")
    model.add_argument("--embed", type=rule_for("embed"), help=f"character embedding size (default: {d.embed})")
    model.add_argument(
        "--dropout",
        type=rule_for("dropout"),
        help=f"dropout between layers and before the decoder, in [0, 1) (default: {d.dropout})",
    )
    loop = parser.add_argument_group("training")
    loop.add_argument(
        "--seq-len",
        type=rule_for("seq_len"),
        help=f"characters per stream per step: the BPTT truncation (default: {d.seq_len})",
    )
    loop.add_argument("--batch-size", type=rule_for("batch_size"), help=f"parallel streams (default: {d.batch_size})")
    loop.add_argument("--lr", type=rule_for("lr"), help=f"peak AdamW learning rate (default: {d.lr})")
    loop.add_argument(
        "--min-lr-ratio",
        type=rule_for("min_lr_ratio"),
        help=f"final learning rate as a fraction of --lr (default: {d.min_lr_ratio})",
    )
    loop.add_argument(
        "--warmup-steps",
        type=rule_for("warmup_steps"),
        help=f"linear warm-up steps (default: {d.warmup_steps})",
    )
    loop.add_argument(
        "--weight-decay", type=rule_for("weight_decay"), help=f"AdamW weight decay (default: {d.weight_decay})"
    )
    loop.add_argument(
        "--grad-clip", type=rule_for("grad_clip"), help=f"gradient-norm clipping (default: {d.grad_clip})"
    )
    loop.add_argument(
        "--max-steps",
        type=rule_for("max_steps"),
        help=f"optimizer steps to train; the learning rate decays to its floor at the last "
        "(default: from --epochs or --max-minutes; given neither, the run is --max-minutes "
        f"{DEFAULT_MINUTES:g})",
    )
    loop.add_argument(
        "--decay-steps",
        type=rule_for("decay_steps"),
        help="steps over which the learning rate decays (default: --max-steps)",
    )
    loop.add_argument(
        "--max-minutes",
        type=rule_for("max_minutes"),
        help=f"train for this many minutes (a fresh run given no length: {DEFAULT_MINUTES:g}): without --max-steps "
        "the first steps are timed and the step count planned so that the schedule (evaluations included) ends with "
        "the budget, re-planned once if the speed drifts; with --max-steps, a cap that stops with a checkpoint",
    )
    loop.add_argument(
        "--epochs",
        type=rule_for("epochs"),
        help="passes over the train split: without --max-steps they set the step count (and "
        "the schedule ends with them); with it, a cap",
    )
    loop.add_argument(
        "--eval-every",
        type=rule_for("eval_every"),
        help=f"validate, sample and checkpoint every N steps (default: {d.eval_every})",
    )
    loop.add_argument(
        "--eval-chars",
        type=rule_for("eval_chars"),
        help=f"validation characters per evaluation, 0 = the whole split (default: {d.eval_chars})",
    )
    loop.add_argument(
        "--sample-chars",
        type=rule_for("sample_chars"),
        help=f"characters of sample text at each evaluation (default: {d.sample_chars})",
    )
    loop.add_argument(
        "--log-every",
        type=rule_for("log_every"),
        help=f"TensorBoard and progress-bar update interval in steps (default: {d.log_every})",
    )
    loop.add_argument("--seed", type=rule_for("seed"), help=f"random seed (default: {d.seed})")
    loop.add_argument(
        "--no-carry",
        dest="carry_state",
        action="store_const",
        const=False,
        help="reset the hidden state every step instead of carrying it (an experiment: shows what the carry buys)",
    )
    loop.add_argument(
        "--device",
        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps (default: auto); under torchrun "
        "each process takes the GPU of its LOCAL_RANK",
    )
    loop.add_argument(
        "--dist-timeout",
        type=rule_for("dist_timeout"),
        metavar="MINUTES",
        help=f"under torchrun, how long a rank waits for the others in a collective while rank 0 alone works "
        f"(encoding an uncached corpus, evaluating a large split) (default: {d.dist_timeout:g})",
    )
    loop.add_argument(
        "--deterministic",
        action="store_const",
        const=True,
        help="deterministic GPU kernels (cuDNN and cuBLAS), so that a run on one GPU repeats itself bit for bit, "
        "more slowly; on a CPU runs repeat exactly without it",
    )
    loop.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="what forward and backward compute in (weights, optimizer and checkpoints stay fp32): fp32; bf16 "
        "(everything a device computes in bf16: the recurrence too, cast explicitly on a GPU, where it needs "
        "cuDNN 9.13+); bf16-head (embedding and decoder bf16, recurrence fp32/TF32); fp16 (GPU only, loss "
        f"scaled). auto: bf16 on a CPU with AVX-512 BF16 or AMX, {CUDA_AUTO} on a GPU of compute capability "
        "8.0+, else fp32; the run's table says what ran in which dtype (docs/gpu.md) (default: auto)",
    )
    loop.add_argument("--quiet", action="store_true", help="no progress bar")
    add_corpus_options(parser, with_defaults=False)


def add_generate_options(parser: argparse.ArgumentParser) -> None:
    """Sampling flags."""
    parser.add_argument("--run", help="run directory (default: the newest under runs/)")
    parser.add_argument("--checkpoint", help="a checkpoint file instead of --run")
    parser.add_argument(
        "--which", choices=("best", "last"), default="best", help="which checkpoint of the run (default: best)"
    )
    parser.add_argument(
        "--length",
        type=rule(SampleOptions, "length"),
        default=500,
        help="characters to generate per sample (default: 500)",
    )
    parser.add_argument(
        "--temperature",
        type=rule(SampleOptions, "temperature"),
        default=0.8,
        help="> 0 sharpens (<1) or flattens (>1) the distribution; 0 = greedy argmax (default: 0.8)",
    )
    parser.add_argument(
        "--greedy", action="store_true", help="always take the most likely character (same as --temperature 0)"
    )
    parser.add_argument(
        "--top-k", type=rule(SampleOptions, "top_k"), help="sample only from the K most likely characters"
    )
    parser.add_argument(
        "--top-p",
        type=rule(SampleOptions, "top_p"),
        help="sample only from the smallest set of characters whose probability reaches P, in (0, 1]",
    )
    parser.add_argument(
        "--prime", default="", help="text to warm the state on; the output starts with it unless --no-echo"
    )
    parser.add_argument("--prime-file", help="read the priming text from a file")
    parser.add_argument("--no-echo", action="store_true", help="do not print the priming text")
    parser.add_argument(
        "--seed",
        type=rule(SampleOptions, "seed"),
        help="random seed: same seed, checkpoint and options give the same text",
    )
    parser.add_argument(
        "--num-samples",
        type=rule(SampleOptions, "num_samples"),
        default=1,
        help="samples generated together as one batch (default: 1)",
    )
    parser.add_argument("--stop", help="end a sample when it produces this string (e.g. $'\\n' for one tweet)")
    parser.add_argument(
        "--unknown",
        choices=("error", "replace"),
        default="error",
        help="priming characters outside the vocabulary: stop (error) or map to the unknown id (replace)",
    )
    parser.add_argument(
        "--clamp",
        action="append",
        default=[],
        metavar="LAYER:UNIT=VALUE",
        help="hold a unit's h (in [-1, 1]; or an LSTM's c with LAYER:UNIT:c=VALUE) at a value inside every "
        "step, where the layer above and the output read it; layers from 1, as the probe numbers them (-1 is the top "
        "layer: --clamp -1:0=1 works); "
        "repeatable",
    )
    parser.add_argument("--out", help="also write the samples to this file")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, mps or auto")
    parser.add_argument(
        "--precision",
        choices=SAMPLE_PRECISIONS,
        default="fp32",
        help="fp32 (default), or bf16: each step's matrix products in bf16, faster on a CPU with AVX-512 BF16 "
        "or AMX and on recent GPUs; the distribution is close to fp32's, not equal (charnn bench measures both)",
    )


def command_corpus(args: argparse.Namespace) -> int:
    """charnn corpus: encode and summarise."""
    from rich.console import Console

    from charnn.corpus import SPLIT_NAMES, load_corpus, parse_fractions
    from charnn.sources import CorpusSpec

    fractions = parse_fractions(args.split)
    corpus = load_corpus(
        CorpusSpec.of(args.source, args), cache_dir=None if args.no_cache else args.cache_dir, progress=not args.quiet
    )
    corpus.split_bounds(fractions)  # a corpus too short for --split is refused, quiet or not
    if not args.quiet:
        Console().print(corpus.summary_table(fractions))
    elif corpus.cache_path and not corpus.from_cache:
        print(corpus.cache_path)
    if args.write_text:
        if args.write_split == "all":
            start, stop = 0, len(corpus)
        else:
            start, stop = corpus.split_bounds(fractions)[SPLIT_NAMES.index(args.write_split)]
        write_text_file(Path(args.write_text), corpus, start, stop)
    return 0


def write_text_file(path: Path, corpus, start: int, stop: int, block: int = 1 << 22) -> None:
    """Decode corpus[start:stop] into a file, a block at a time."""
    try:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            for offset in range(start, stop, block):
                handle.write(corpus.text(offset, min(offset + block, stop)))
    except OSError as err:
        raise CharnnError(f"cannot write '{path}': {err.strerror}") from None


def given_train_settings(args: argparse.Namespace) -> dict:
    """The training flags given (argparse leaves the others None), by config field name."""
    return {k: v for k, v in vars(args).items() if v is not None and k in SETTING_GROUPS}


def train_config_from_args(args: argparse.Namespace):
    """The flags given over the saved config (with --resume) and the defaults."""
    from charnn.config import merge_train_config

    return merge_train_config(given_train_settings(args), args.resume)


def command_train(args: argparse.Namespace) -> int:
    """charnn train: charnn.train with the flags given."""
    from charnn.api import train

    train(resume=args.resume, overwrite=args.overwrite, progress=not args.quiet, **given_train_settings(args))
    return 0


def command_generate(args: argparse.Namespace) -> int:
    """charnn generate: a loaded model's stream (one sample) or samples (many) to stdout, and --out."""
    from charnn.api import Model
    from charnn.device import pick_device
    from charnn.sample import Clamp, SampleOptions, resolve_checkpoint

    prime = args.prime
    if args.prime_file:
        try:
            prime = Path(args.prime_file).read_text(encoding="utf-8-sig")  # -sig: a BOM is not part of the text
        except (OSError, UnicodeDecodeError) as err:
            raise CharnnError(
                f"cannot read --prime-file '{args.prime_file}': {getattr(err, 'strerror', None) or err}"
            ) from None
    settings = dict(
        length=args.length,
        temperature=0.0 if args.greedy else args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        prime=prime,
        seed=args.seed,
        stop=args.stop,
        echo=not args.no_echo,
        unknown=args.unknown,
        precision=args.precision,
    )
    clamps = [Clamp.parse(c) for c in args.clamp]
    SampleOptions(
        num_samples=args.num_samples, clamps=clamps, **settings
    ).validate()  # flags first, before any file is read
    model = Model(resolve_checkpoint(args.run, args.checkpoint, args.which), pick_device(args.device))
    out = sys.stdout
    if args.num_samples == 1:
        pieces = []
        for piece in model.stream(clamp=clamps, **settings):
            out.write(piece)
            out.flush()
            pieces.append(piece)
        out.write("\n")
        written = "".join(pieces)
    else:  # many streams print at the end
        texts = model.generate(num_samples=args.num_samples, clamp=clamps, **settings)
        written = "".join(f"--- sample {i + 1} ---\n{t}\n" for i, t in enumerate(texts))
        out.write(written)
    out.flush()
    if args.out:
        try:
            Path(args.out).write_text(written, encoding="utf-8")
        except OSError as err:
            raise CharnnError(f"cannot write --out '{args.out}': {err.strerror}") from None
    return 0


def command_eval(args: argparse.Namespace) -> int:
    """charnn eval: bits per character on a text."""
    from rich.console import Console
    from rich.table import Table

    from charnn.api import Model
    from charnn.device import pick_device
    from charnn.sample import resolve_checkpoint
    from charnn.sources import open_source

    model = Model(resolve_checkpoint(args.run, args.checkpoint, args.which), pick_device(args.device))
    text = "".join(chunk for chunk, _ in open_source(args.text, tweet_format="text").chunks())
    result = model.evaluate(text, unknown=args.unknown, progress=not args.json, name=f"'{args.text}'")
    checkpoint = model.checkpoint
    result.update({"text": args.text, "checkpoint": str(checkpoint.path), "step": checkpoint.meta.get("step")})
    if args.json:
        print(json.dumps(result))
    else:
        table = Table(title=f"charnn eval: {args.text}", show_header=False)
        for key in ("bits_per_char", "nats_per_char", "chars", "unknown_chars", "checkpoint", "step"):
            value = result[key]
            table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
        Console().print(table)
    return 0


COMMANDS = {"corpus": command_corpus, "train": command_train, "generate": command_generate, "eval": command_eval}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = build_parser()
    argv = join_dash_values(sys.argv[1:] if argv is None else argv)
    parser.command = next((word for word in argv if not word.startswith("-")), None)  # for "did you mean"
    args = parser.parse_args(argv)
    handler = COMMANDS.get(args.command) or getattr(args, "handler", None)
    try:
        return handler(args)
    except CharnnError as err:
        say(f"charnn {args.command}: {err}")
        if err.every_rank:
            leave_process_group()
        return err.exit_code
    except KeyboardInterrupt:
        say(f"charnn {args.command}: interrupted")
        return 130
    except BrokenPipeError:  # e.g. `charnn generate | head`
        sys.stderr.close()
        return 0
    except OSError as err:  # the machine, not the input: a full disk, a read-only or vanished directory
        where = f" ('{err.filename}')" if err.filename else ""
        say(f"charnn {args.command}: {err.strerror or err}{where}")
        return 1
    except (RuntimeError, MemoryError) as err:  # a stage without a memory_guard of its own
        if not is_out_of_memory(err):
            raise
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        say(
            f"charnn {args.command}: ran out of memory ({first}); lower the batch, the text or the model, or use "
            "--device cpu"
        )
        return 1


def say(line: str) -> None:
    """Write one line to stderr in one write: under torchrun every rank shares the pipe, and print's two writes
    (the text, then the newline) let two ranks' sentences run together on one line."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def leave_process_group() -> None:
    """Under torchrun, after an error every rank raised at the same point, wait until every rank has said it
    before this one exits: torchrun ends the others as soon as one exits with an error, and one would go
    without a word. (An error of one rank alone exits at once: the others are elsewhere, and torchrun ends them.)"""
    if "torch.distributed" not in sys.modules:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        try:
            from charnn.device import barrier

            barrier()
            dist.destroy_process_group()
        except Exception:  # noqa: BLE001 - another rank is already gone; there is nothing left to wait for
            pass


def entry_point() -> None:
    """The console script."""
    sys.exit(main())


if __name__ == "__main__":
    entry_point()
