"""Quality: the best validation loss a time budget reaches, with the recipe charnn train takes for it."""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from charnn.bench.settings import BenchSettings, recommended_cpu_config
from charnn.config import recipe_label, recipe_named
from charnn.errors import CharnnError, UsageError


# ----- quality -----------------------------------------------------------------------------------
def resolve_quality_corpus(path: str) -> str:
    """The quality corpus: a text file that exists, or a corpus charnn builds itself (stdlib, task:NAME)."""
    if path == "stdlib" or path.startswith("task:") or Path(path).is_file():
        return path
    raise CharnnError(f"the quality corpus '{path}' does not exist; give --quality-corpus a text file, or stdlib")


def apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """The config with --quality-set KEY=VALUE changes, each converted to the field's type."""
    known = config.flat()
    changes = {}
    for key, text in overrides.items():
        name = key.replace("-", "_")
        if name not in known or name in ("corpus", "out", "max_steps", "max_minutes", "decay_steps", "recipe"):
            raise UsageError(f"--quality-set: '{key}' is not a training setting the quality run lets you change")
        current = known[name]
        try:
            if isinstance(current, bool):
                value = {"true": True, "false": False}[str(text).lower()]
            elif isinstance(current, int):
                value = int(text)
            elif isinstance(current, float):
                value = float(text)
            else:
                value = text
        except (KeyError, ValueError):
            raise UsageError(f"--quality-set {key}={text}: '{text}' is not a valid {type(current).__name__}") from None
        changes[name] = value
    recipe = recipe_named(config.recipe)
    label = recipe_label(recipe, changes) if recipe else config.recipe  # "10min, --lr 0.004": what was changed
    changed = replace(config.with_settings(changes), recipe=label)
    changed.validate()
    return changed


def measure_quality(settings: BenchSettings, status: Callable[[str], None], progress: bool) -> dict:
    """Best val loss on the quality corpus (90/10 split) after a fixed wall-clock budget, with the settings charnn
    train takes for that budget."""
    from charnn.trainer import Trainer

    corpus = resolve_quality_corpus(settings.quality_corpus)
    recommended = recommended_cpu_config(corpus, settings.quality_out, settings.cache_dir, settings.budget_minutes)
    base = apply_overrides(recommended, settings.quality_overrides)
    # --max-minutes without --max-steps: the trainer times its first steps and plans its schedule to end with the budget
    config = replace(base, max_steps=None, max_minutes=settings.budget_minutes)
    status("quality: training (the step count is planned from the first steps' speed)")
    trainer = Trainer(config, overwrite=True, progress=progress, console=Console(stderr=True, quiet=not progress))
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the trainer's per-evaluation lines must not mix into --json
            began = time.perf_counter()
            result = trainer.run()
            wall = time.perf_counter() - began
    finally:
        trainer.close()
    planned = result.plans[-1].target if result.plans else None
    best_nats = result.best_val_bpc * math.log(2) if result.best_val_bpc is not None else None
    return {
        "corpus": corpus,
        "split": config.split,
        "budget_minutes": settings.budget_minutes,
        "settings": config.to_json(),
        "planned_steps": planned,
        "plans": [asdict(plan) for plan in result.plans],
        "steps": result.steps,
        "stopped_by": result.stopped_by,
        "seconds": result.seconds,
        "wall_seconds": wall,
        "wall_over_budget": wall / (settings.budget_minutes * 60),
        "final_lr_over_floor": result.final_lr / (config.lr * config.min_lr_ratio) if config.min_lr_ratio else None,
        "chars_seen": result.steps * config.batch_size * config.seq_len,
        "best_val_bits_per_char": result.best_val_bpc,
        "best_val_nats_per_char": best_nats,
        "last_val_bits_per_char": result.last_val_bpc,
        "run": str(result.directory),
    }
