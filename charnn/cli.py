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

from charnn.bench.command import add_bench_options
from charnn.errors import CharnnError, is_out_of_memory
from charnn.probe.command import add_probe_options
from charnn.sample_command import add_generate_options, command_generate
from charnn.train_command import TRAIN_DEFAULTS_NOTE, add_corpus_options, add_train_options, command_train


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


def command_corpus(args: argparse.Namespace) -> int:
    """charnn corpus: encode and summarise."""
    from rich.console import Console

    from charnn.corpus import SPLIT_NAMES, parse_fractions
    from charnn.corpus_cache import load_corpus
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
