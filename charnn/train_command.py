"""charnn train's command line: its flags (each setting's default and rule read from charnn.config), the corpus
options it shares with charnn corpus, and the command, which is charnn.train with the flags given."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

from charnn.config import CELL_NAMES, SETTING_GROUPS, TrainConfig, flag, rule_for
from charnn.precision import CUDA_AUTO, PRECISIONS
from charnn.sources import ERROR_MODES, TWEET_FORMATS, ReaderOptions

TRAIN_DEFAULTS_NOTE = (
    "With no flags: 10 minutes of the defaults shown, the settings measured best for it on a 2-core CPU; on a GPU "
    "try --layers 3 --hidden 512 --seq-len 100 --batch-size 64 --max-steps 20000."
)


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
