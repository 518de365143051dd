"""What a training run is made of (TrainConfig: every flag of charnn train, saved as config.json and in every
checkpoint) and its learning-rate schedule. Importing it imports no torch, so the command line can show
the defaults without loading one.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from charnn.argtypes import DROPOUT, POSITIVE, SEED, check_rules, real, ruled, whole
from charnn.errors import CharnnError, UsageError
from charnn.precision import PRECISIONS
from charnn.sources import TASK_SEQUENCES

MODEL_FLAGS = ("cell", "layers", "hidden", "embed", "dropout")
DEFAULT_MAX_STEPS = 1000  # a TrainConfig built directly, with neither max_steps, epochs nor max_minutes
DEFAULT_MINUTES = 10.0  # a fresh run given no length (--max-steps, --epochs, --max-minutes) trains this long
RECIPE_SHAPE = ("cell", "layers", "hidden", "embed")  # giving any of these turns the budget's recipe off
LENGTHS = {"max_steps", "epochs", "max_minutes"}  # how long a run is
PLAN_MARGIN = 0.02  # a time budget's plan ends this fraction early, so that a little noise still reaches the last step
MAX_SAMPLE_CHARS = 100_000  # preview text per evaluation
MAX_PARAMETERS = 1_000_000_000  # ~16 GB with AdamW's state: far beyond any char-RNN, and a typo guard


@dataclass
class TrainConfig:
    """Everything a run is made of; saved as config.json and inside every checkpoint."""

    corpus: str = "stdlib"
    out: str = "runs/stdlib"
    ext: list[str] | None = None
    text_field: str | None = None
    errors: str = "strict"
    tweet_format: str = "auto"
    task_sequences: int = ruled(20000, TASK_SEQUENCES)
    task_seed: int = 0
    shuffle_files: int | None = ruled(None, whole(0))
    split: str = "0.9,0.05,0.05"
    cell: str = "lstm"
    layers: int = ruled(2, whole(1))
    hidden: int = ruled(256, whole(1))
    embed: int = ruled(64, whole(1))
    dropout: float = ruled(0.1, DROPOUT)
    seq_len: int = ruled(128, whole(1))
    batch_size: int = ruled(64, whole(1))
    lr: float = ruled(2e-3, POSITIVE)
    min_lr_ratio: float = ruled(0.1, real("a number in [0, 1]", lambda value: 0 <= value <= 1))
    warmup_steps: int = ruled(50, whole(0))
    weight_decay: float = ruled(0.01, real("a finite number >= 0", lambda value: value >= 0))
    grad_clip: float = ruled(1.0, POSITIVE)
    max_steps: int | None = ruled(
        None, whole(1)
    )  # None: from --epochs, planned for --max-minutes, or DEFAULT_MAX_STEPS
    decay_steps: int | None = ruled(None, whole(1))  # the cosine horizon; None means max_steps
    step_plan: str | None = None  # what set max_steps when --max-steps did not: "epochs" or "max-minutes"
    max_minutes: float | None = ruled(None, POSITIVE)
    epochs: float | None = ruled(None, POSITIVE)
    eval_every: int = ruled(200, whole(1))
    eval_chars: int = ruled(250_000, whole(0))
    sample_chars: int = ruled(300, whole(0, MAX_SAMPLE_CHARS))
    log_every: int = ruled(10, whole(1))
    seed: int = ruled(1337, SEED)
    carry_state: bool = True  # False resets the state every step (for experiments: shows what the carry buys)
    deterministic: bool = False  # deterministic GPU kernels: a run on one GPU repeats itself bit for bit, slower
    device: str = "auto"
    dist_timeout: float = ruled(30.0, POSITIVE)  # minutes a rank waits in a collective under torchrun
    precision: str = "auto"  # charnn.precision.PRECISIONS; a run records the policy it resolved to
    cache_dir: str = "runs/.cache"
    recipe: str | None = None  # the RECIPES entry a time budget picked ("10 min"), None when the shape was given

    def validate(self) -> None:
        """Reject values outside what is allowed, naming the flag: each field's rule, then what spans fields."""
        check_rules(self)
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        from charnn.cells import gate_rows
        from charnn.corpus import parse_fractions
        from charnn.model import ModelConfig

        parse_fractions(self.split)
        ModelConfig(
            vocab_size=2, cell=self.cell, layers=self.layers, hidden=self.hidden, embed=self.embed, dropout=self.dropout
        )
        gates = gate_rows(self.cell) * self.hidden
        recurrent = gates * (self.embed + self.hidden + 2) + (self.layers - 1) * gates * (2 * self.hidden + 2)
        if recurrent > MAX_PARAMETERS:
            raise UsageError(
                f"--layers {self.layers} --hidden {self.hidden} --embed {self.embed} make a model of over "
                f"{recurrent:,} parameters; charnn allows up to {MAX_PARAMETERS:,}"
            )

    def to_json(self) -> dict:
        """JSON-able dict of the config."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        """Rebuild a saved config, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        data = {"precision": "fp32", **data}  # runs saved before --precision existed trained in fp32
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Recipe:
    """The settings that reached the lowest val loss in a wall-clock budget on a 2-core CPU (docs/benchmarks.md,
    "Recipes"): a fresh run of `minutes` or more without shape flags trains them."""

    minutes: float
    settings: dict
    measured: str  # what it reached, and where

    @property
    def name(self) -> str:
        return f"{self.minutes:g} min"


# 2 × 384 without dropout won the 5- and 10-minute searches (docs/benchmarks.md, "Recipes"): dropout 0.1
# made a training step ~25% slower on the CPU measured, and ~10 passes over a corpus are too few to overfit it
BIG_FAST = dict(
    cell="lstm",
    layers=2,
    hidden=384,
    embed=64,
    dropout=0.0,
    batch_size=64,
    seq_len=128,
    lr=3e-3,
    warmup_steps=50,
    min_lr_ratio=0.1,
    weight_decay=0.01,
)
RECIPES = (
    Recipe(5, BIG_FAST, "tinyshakespeare val 1.484 nats in 5 min (Xeon, bf16)"),
    Recipe(
        10,
        BIG_FAST,
        "tinyshakespeare val 1.470 nats in 10 min (Xeon, bf16); the old 2 × 256 with dropout 0.1: 1.537–1.542",
    ),
    # 30 minutes: ~16 M characters, 16 passes over tinyshakespeare; 2 × 512 with dropout 0.2 beat every 10-minute figure
    Recipe(
        30,
        {**BIG_FAST, "hidden": 512, "dropout": 0.2, "lr": 2e-3},
        "tinyshakespeare val 1.442 nats in 30 min (Xeon, bf16), best at step 1,200 of 2,049: it overfits after",
    ),
)


def recipe_for(minutes: float) -> Recipe:
    """The recipe of the largest budget not above `minutes` (the smallest one below them all)."""
    fitting = [recipe for recipe in RECIPES if recipe.minutes <= minutes]
    return (
        max(fitting, key=lambda recipe: recipe.minutes) if fitting else min(RECIPES, key=lambda recipe: recipe.minutes)
    )


def recipe_named(name: str | None) -> Recipe | None:
    """The RECIPES entry of that name ("10 min"), or None."""
    return next((recipe for recipe in RECIPES if recipe.name == name), None)


def recipe_label(recipe: Recipe, given: dict) -> str:
    """The recipe's name, and the settings given that change it: "10 min, --lr 0.001"."""
    changed = [
        f"--{flag(k)} {given[k]:g}" if isinstance(given[k], float) else f"--{flag(k)} {given[k]}"
        for k in recipe.settings
        if k in given and given[k] != recipe.settings[k]
    ]
    return ", ".join([recipe.name, *changed])


def merge_train_config(given: dict, resume: bool = False) -> TrainConfig:
    """A run's config: the defaults, then (resuming) the run's saved config.json, then the settings `given`
    (config field names; what the user did not give is left out). A fresh run without `out` goes to
    runs/<corpus name>. The command line and charnn.train both build theirs here.

    A fresh run given no length trains DEFAULT_MINUTES; a fresh run whose length is a time budget alone
    (no --max-steps or --epochs) and that names no shape (RECIPE_SHAPE) takes the budget's recipe, under
    the settings given. Resuming a run whose steps a budget planned with --max-steps given drops the
    budget: the steps given say how long now."""
    unknown = sorted(set(given) - {f.name for f in fields(TrainConfig)})
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], [f.name for f in fields(TrainConfig)], n=1)
        raise UsageError(
            f"unknown training setting '{unknown[0]}'" + (f" (did you mean '{close[0]}'?)" if close else "")
        )
    kept = sorted({"recipe", "step_plan"} & given.keys())
    if kept:
        raise UsageError(
            f"'{kept[0]}' is written by charnn train itself (what a time budget chose), not a setting to give"
        )
    given = {
        k: v for k, v in given.items() if v is not None or k not in LENGTHS
    }  # None: not given (as on the command line)
    base = TrainConfig().to_json()
    if resume:
        out = given.get("out")
        if not out:
            raise UsageError("--resume needs --out, the run directory to continue")
        saved = Path(out) / "config.json"
        if saved.is_file():
            try:
                base = TrainConfig.from_json(
                    json.loads(saved.read_text())["train"]
                ).to_json()  # fills what older runs lack
            except (ValueError, KeyError, TypeError):
                raise CharnnError(f"'{saved}' is damaged; it is not the config.json charnn writes") from None
        model_changes = [k for k in ("cell", "layers", "hidden", "embed") if k in given and given[k] != base.get(k)]
        if model_changes:
            names = ", ".join(f"--{k} {given[k]} (saved: {base[k]})" for k in model_changes)
            raise CharnnError(f"--resume: flags contradict the saved model in '{out}': {names}")
    if "max_steps" in given:
        if base.get("step_plan") == "max-minutes" and "max_minutes" not in given:
            base["max_minutes"] = None  # the budget only planned the steps; steps given now replace that plan
        base["step_plan"] = None  # the setting says how long, not a plan of an earlier process
    if not resume:
        if not LENGTHS & given.keys():
            given = {**given, "max_minutes": DEFAULT_MINUTES}
        minutes = given.get("max_minutes")
        if (
            isinstance(minutes, (int, float)) and not {"max_steps", "epochs", *RECIPE_SHAPE} & given.keys()
        ):  # else validation speaks
            recipe = recipe_for(minutes)
            base.update(recipe.settings, recipe=recipe_label(recipe, given))
    base.update(given)
    if "out" not in given and not resume:
        base["out"] = default_run_dir(base["corpus"])
    return TrainConfig.from_json(base)


def default_run_dir(corpus: str) -> str:
    """runs/<a name made from the corpus>."""
    stem = Path(str(corpus).replace("task:", "task-")).stem or "run"
    return f"runs/{''.join(c if c.isalnum() or c in '-_' else '_' for c in stem)}"


def flag(name: str) -> str:
    """The command-line spelling of a config field."""
    return name.replace("_", "-")


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up to --lr, then cosine decay to lr × min-lr-ratio at max-steps (while a time budget's
    step count is still being measured, the rate holds at its peak)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    horizon = config.decay_steps or config.max_steps
    if horizon is None:
        return config.lr
    span = max(horizon - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * progress))


def evaluations_between(done: int, target: int, eval_every: int) -> int:
    """Evaluations a run makes from step `done` (exclusive) to `target`: one every eval_every steps and one at the
    end."""
    if target <= done:
        return 0
    return target // eval_every - done // eval_every + (0 if target % eval_every == 0 else 1)


def steps_within(seconds: float, done: int, step_seconds: float, eval_seconds: float, eval_every: int) -> int:
    """The step to stop at so that the steps after `done`, and the evaluations among them (each with its
    checkpoints and sample), take at most `seconds`: at least done + 1."""
    step_seconds, eval_seconds = max(step_seconds, 1e-9), max(eval_seconds, 0.0)
    steps = int(max(seconds - eval_seconds, 0.0) / (step_seconds + eval_seconds / eval_every))
    cost = lambda n: n * step_seconds + evaluations_between(done, done + n, eval_every) * eval_seconds  # noqa: E731
    while steps > 1 and cost(steps) > seconds:
        steps -= 1
    while cost(steps + 1) <= seconds:
        steps += 1
    return done + max(steps, 1)
