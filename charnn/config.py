"""The settings of a training run, each declared once with its default and its rule: the model's shape
(ModelConfig), how to read the corpus (charnn.sources.ReaderOptions) and the loop's (TrainConfig, which
holds the other two). `charnn train --help`, a bare `python train.py` and `charnn.train()` all read these
defaults. A recipe is a named change to them that a time budget picks, or the user names (RECIPES).

What a run decides for itself (its precision policy, device, planned steps) is recorded beside these
settings by the trainer, never written into them. Importing this module imports no torch, so the command
line can show the defaults without loading one.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from charnn.argtypes import DROPOUT, POSITIVE, SEED, check_rules, real, ruled, whole
from charnn.errors import CharnnError, UsageError
from charnn.precision import PRECISIONS
from charnn.sources import ReaderOptions

CELL_NAMES = ("lstm", "gru", "rnn")
DEFAULT_MINUTES = 10.0  # a run given no length (--max-steps, --epochs, --max-minutes) trains this long
LENGTHS = ("max_steps", "epochs", "max_minutes")  # how long a run is
RECIPE_SHAPE = ("cell", "layers", "hidden", "embed")  # giving any of these keeps a budget's recipe off
# what the recipe searches varied: a run's table names those given that differ from what was measured
RECIPE_SETTINGS = (
    *RECIPE_SHAPE,
    "dropout",
    "batch_size",
    "seq_len",
    "lr",
    "warmup_steps",
    "min_lr_ratio",
    "weight_decay",
)
PLAN_MARGIN = 0.02  # a time budget's plan ends this fraction early, so that a little noise still reaches the last step
MAX_SAMPLE_CHARS = 100_000  # preview text per evaluation
MAX_PARAMETERS = 1_000_000_000  # ~16 GB with AdamW's state: far beyond any char-RNN, and a typo guard


@dataclass(frozen=True)
class ModelConfig:
    """The shape of a CharRNN; saved in every checkpoint. vocab_size is the corpus's, known once it is read.
    The defaults are the ones a bare run trains: they won the 5- and 10-minute searches on a 2-core CPU
    (docs/results/benchmarks.md, "Recipes")."""

    vocab_size: int | None = ruled(None, whole(1))
    cell: str = "lstm"
    layers: int = ruled(2, whole(1))
    hidden: int = ruled(384, whole(1))
    embed: int = ruled(64, whole(1))
    dropout: float = ruled(0.0, DROPOUT)

    def __post_init__(self) -> None:
        if self.cell not in CELL_NAMES:
            raise UsageError(f"--cell must be one of {', '.join(CELL_NAMES)}, not '{self.cell}'")
        check_rules(self)

    def to_json(self) -> dict:
        """The config as a JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ModelConfig:
        """Rebuild a model's config saved with to_json; unknown or missing keys are a clear error."""
        names = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or not set(data) <= names or not isinstance(data.get("vocab_size"), int):
            raise CharnnError(f"the saved model config is not one charnn understands: {data!r:.200}")
        return cls(**data)


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of charnn train, as asked: saved in config.json and in every checkpoint.

    Build one from the flat names the command line and charnn.train() use with `TrainConfig.of(hidden=512, ...)`;
    `config.flat()` gives them back."""

    corpus: str = "stdlib"  # a path, "stdlib" or "task:NAME"
    out: str | None = None  # the run directory; None: runs/<corpus name> (run_dir)
    reader: ReaderOptions = field(default_factory=ReaderOptions)
    split: str = "0.9,0.05,0.05"
    cache_dir: str = "runs/.cache"
    model: ModelConfig = field(default_factory=ModelConfig)
    seq_len: int = ruled(128, whole(1))
    batch_size: int = ruled(64, whole(1))
    lr: float = ruled(3e-3, POSITIVE)
    min_lr_ratio: float = ruled(0.1, real("a number in [0, 1]", lambda value: 0 <= value <= 1))
    warmup_steps: int = ruled(50, whole(0))
    weight_decay: float = ruled(0.01, real("a finite number >= 0", lambda value: value >= 0))
    grad_clip: float = ruled(1.0, POSITIVE)
    max_steps: int | None = ruled(None, whole(1))
    decay_steps: int | None = ruled(None, whole(1))  # the cosine horizon; None: the run's last step
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
    precision: str = "auto"  # charnn.precision.PRECISIONS; the policy it resolves to is recorded beside
    dist_timeout: float = ruled(30.0, POSITIVE)  # minutes a rank waits in a collective under torchrun
    recipe: str | None = None  # the RECIPES entry these settings took, with the flags given that change it (--recipe)

    @classmethod
    def of(cls, **settings: Any) -> TrainConfig:
        """A config from flat settings (hidden=512, ext=[".py"], lr=1e-3); the others keep their defaults."""
        return cls().with_settings(settings)

    def with_settings(self, settings: dict[str, Any]) -> TrainConfig:
        """This config with some flat settings changed; an unknown name is a UsageError that suggests the closest."""
        groups: dict[str, dict[str, Any]] = {"": {}, "model": {}, "reader": {}}
        for name, value in settings.items():
            group = SETTING_GROUPS.get(name)
            if group is None:
                import difflib

                close = difflib.get_close_matches(name, list(SETTING_GROUPS), n=1)
                raise UsageError(
                    f"unknown training setting '{name}'" + (f" (did you mean '{close[0]}'?)" if close else "")
                )
            groups[group][name] = value
        return replace(
            self,
            model=replace(self.model, **groups["model"]),
            reader=replace(self.reader, **groups["reader"]),
            **groups[""],
        )

    def flat(self) -> dict[str, Any]:
        """Every setting by its flat name (the command line's, with underscores)."""
        values = {name: getattr(self, name) for name in SETTING_GROUPS if SETTING_GROUPS[name] == ""}
        values.update({name: getattr(self.model, name) for name in MODEL_SETTINGS})
        values.update({name: getattr(self.reader, name) for name in READER_SETTINGS})
        return values

    @property
    def run_dir(self) -> str:
        """Where the run goes: --out, else runs/<a name made from the corpus>."""
        if self.out:
            return self.out
        stem = Path(str(self.corpus).replace("task:", "task-")).stem or "run"
        return f"runs/{''.join(c if c.isalnum() or c in '-_' else '_' for c in stem)}"

    @property
    def minutes(self) -> float | None:
        """The run's time budget: --max-minutes, or DEFAULT_MINUTES for a run given no length at all."""
        if all(getattr(self, name) is None for name in LENGTHS):
            return DEFAULT_MINUTES
        return self.max_minutes

    def validate(self) -> None:
        """Reject values outside what is allowed, naming the flag: each field's rule, then what spans fields."""
        check_rules(self)
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        from charnn.cells import gate_rows
        from charnn.corpus import parse_fractions

        parse_fractions(self.split)
        shape = self.model
        gates = gate_rows(shape.cell) * shape.hidden
        recurrent = gates * (shape.embed + shape.hidden + 2) + (shape.layers - 1) * gates * (2 * shape.hidden + 2)
        if recurrent > MAX_PARAMETERS:
            raise UsageError(
                f"--layers {shape.layers} --hidden {shape.hidden} --embed {shape.embed} make a model of over "
                f"{recurrent:,} parameters; charnn allows up to {MAX_PARAMETERS:,}"
            )

    def to_json(self) -> dict:
        """JSON-able dict of the config (the model and reader options nested)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        """Rebuild a saved config, nested or flat (runs saved before the settings were nested), ignoring names
        this version does not know."""
        flat = {key: value for key, value in data.items() if key not in ("model", "reader")}
        for group in ("model", "reader"):
            if isinstance(data.get(group), dict):
                flat.update(data[group])
        flat = {"precision": "fp32", **flat}  # runs saved before --precision existed trained in fp32
        return cls.of(**{key: value for key, value in flat.items() if key in SETTING_GROUPS})


MODEL_SETTINGS = tuple(f.name for f in fields(ModelConfig) if f.name != "vocab_size")
READER_SETTINGS = tuple(f.name for f in fields(ReaderOptions))
# every flat setting name and the part of TrainConfig it lives in ("": TrainConfig itself)
SETTING_GROUPS = {
    **{f.name: "" for f in fields(TrainConfig) if f.name not in ("model", "reader")},
    **dict.fromkeys(MODEL_SETTINGS, "model"),
    **dict.fromkeys(READER_SETTINGS, "reader"),
}


def setting_field(name: str) -> Any:
    """The dataclass field that declares a flat setting (its default and its rule)."""
    owner = {"": TrainConfig, "model": ModelConfig, "reader": ReaderOptions}[SETTING_GROUPS[name]]
    return next(f for f in fields(owner) if f.name == name)


def default_of(name: str) -> Any:
    """A flat setting's default, as the dataclass declares it (for --help)."""
    declared = setting_field(name)
    return declared.default_factory() if callable(declared.default_factory) else declared.default


def rule_for(name: str) -> Any:
    """A flat setting's rule: the flag's argparse type."""
    return setting_field(name).metadata["rule"]


@dataclass(frozen=True)
class Recipe:
    """A named change to the defaults, measured best for a wall-clock budget on a 2-core CPU
    (docs/results/benchmarks.md, "Recipes"): a fresh run of `minutes` or more, timed by --max-minutes alone and
    given no shape flag, takes it, under the flags given (--recipe NAME takes it whatever the length)."""

    name: str
    minutes: float
    changes: dict


RECIPES = (  # what each reached, and where: docs/results/benchmarks.md, "Recipes"
    Recipe("5min", 5, {}),  # the defaults themselves won the 5- and 10-minute searches
    Recipe("10min", 10, {}),
    Recipe("30min", 30, {"hidden": 512, "dropout": 0.2, "lr": 2e-3}),  # wider, and dropout against overfitting
)


def recipe_for(minutes: float) -> Recipe:
    """The recipe of the largest budget not above `minutes` (the smallest one below them all)."""
    fitting = [recipe for recipe in RECIPES if recipe.minutes <= minutes]
    return max(fitting, key=lambda r: r.minutes) if fitting else min(RECIPES, key=lambda r: r.minutes)


def recipe_named(name: str | None) -> Recipe | None:
    """The RECIPES entry of that name ("10min"; the label of a run that changed it, "10min, --lr 0.001", works
    too), or None."""
    base = (name or "").split(",")[0].strip()
    return next((recipe for recipe in RECIPES if recipe.name == base), None)


def recipe_label(recipe: Recipe, given: dict) -> str:
    """The recipe's name, and the settings given that change what was measured: "30min, --lr 0.001"."""
    measured = {**TrainConfig().flat(), **recipe.changes}
    changed = [
        f"--{flag(k)} {given[k]:g}" if isinstance(given[k], float) else f"--{flag(k)} {given[k]}"
        for k in RECIPE_SETTINGS
        if k in given and given[k] != measured[k]
    ]
    return ", ".join([recipe.name, *changed])


def merge_train_config(given: dict, resume: bool = False) -> TrainConfig:
    """A run's settings: the defaults, then (resuming) the run's saved config.json, then the settings `given`
    (flat names; what the user did not give is left out, and None counts as not given). The command line and
    charnn.train both build theirs here.

    recipe (--recipe): "auto" (or not given): a fresh run whose length is a time budget alone (--max-minutes M,
    or no length at all: DEFAULT_MINUTES) and that names no shape (RECIPE_SHAPE) takes the budget's recipe;
    a RECIPES name: that recipe, whatever the length; "none": the defaults. The settings given change single
    settings of it. Resuming a run with --max-steps given drops its time budget unless --max-minutes is given
    too: the steps say how long."""
    given = {k: v for k, v in given.items() if v is not None}
    requested = given.pop("recipe", "auto")
    names = [recipe.name for recipe in RECIPES]
    if requested not in ("auto", "none", *names):
        raise UsageError(f"--recipe must be auto, none or one of {', '.join(names)}, not {requested!r}")
    if resume and requested != "auto":
        raise UsageError("--recipe chooses a fresh run's settings; --resume keeps the run's own")
    base = TrainConfig()
    if requested not in ("auto", "none"):
        recipe = recipe_named(requested)
        base = replace(base.with_settings(recipe.changes), recipe=recipe_label(recipe, given))
    elif resume:
        out = given.get("out")
        if not out:
            raise UsageError("--resume needs --out, the run directory to continue")
        base = saved_settings(Path(out))
        changed = [k for k in RECIPE_SHAPE if k in given and given[k] != getattr(base.model, k)]
        if changed:
            names = ", ".join(f"--{k} {given[k]} (saved: {getattr(base.model, k)})" for k in changed)
            raise CharnnError(f"--resume: flags contradict the saved model in '{out}': {names}")
        planned = (saved_plan(Path(out)).get("steps") or {}).get("from") == "max-minutes"
        if planned and "max_steps" in given and "max_minutes" not in given:
            base = replace(base, max_minutes=None)  # the budget only planned the steps; the steps given say how long
    elif (
        requested == "auto"
        and not {"max_steps", "epochs", *RECIPE_SHAPE} & given.keys()
        and isinstance(given.get("max_minutes", DEFAULT_MINUTES), (int, float))
    ):  # a budget that is not a number is for validation to refuse
        recipe = recipe_for(given.get("max_minutes", DEFAULT_MINUTES))
        base = base.with_settings(recipe.changes)
        base = replace(base, recipe=recipe_label(recipe, given))
    return base.with_settings(given)


def saved_settings(run_dir: Path) -> TrainConfig:
    """The settings a run directory's config.json holds (TrainConfig's defaults where it holds none)."""
    saved = run_dir / "config.json"
    if not saved.is_file():
        return TrainConfig()
    try:
        record = json.loads(saved.read_text())
        return TrainConfig.from_json(record["train"] if "resolved" in record else legacy_settings(record["train"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CharnnError(f"'{saved}' is damaged; it is not the config.json charnn writes") from None


def legacy_settings(train: dict) -> dict:
    """The settings of a config.json written before what a run resolved was kept apart: the planned steps and the
    resolved precision were written into them."""
    train = dict(train)
    if train.pop("step_plan", None) is not None:
        train["max_steps"] = None  # planned by a budget or by --epochs, not asked for
    if isinstance(train.get("recipe"), str):
        train["recipe"] = train["recipe"].replace(" min", "min")
    return train


def saved_plan(run_dir: Path) -> dict:
    """What a run directory's config.json says the run resolved (its planned steps, precision, device): {} if
    nothing, or for runs saved before it was kept apart, what their settings held."""
    try:
        record = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    if "resolved" in record:
        return record["resolved"]
    train = record.get("train") or {}
    plan = {"precision": {"name": train.get("precision", "fp32")}}
    if train.get("step_plan") and train.get("max_steps"):
        plan["steps"] = {"target": train["max_steps"], "from": train["step_plan"]}
    return plan


def flag(name: str) -> str:
    """The command-line spelling of a setting."""
    return name.replace("_", "-")


def learning_rate(config: TrainConfig, step: int, horizon: int | None) -> float:
    """Linear warm-up to --lr, then cosine decay to lr × min-lr-ratio at `horizon` (--decay-steps, else the run's
    last step; while a time budget's step count is still being measured, None: the rate holds at its peak)."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    horizon = config.decay_steps or horizon
    if horizon is None:
        return config.lr
    span = max(horizon - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * progress))


def evaluations_between(done: int, target: int, eval_every: int) -> int:
    """Evaluations a run makes from step `done` (exclusive) to `target`: one every eval_every steps and one at
    the end."""
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
