"""What a training run shows and records: its start and summary tables, its warnings, config.json's record and
a checkpoint's JSON part. The settings the run was asked for are kept apart from what it resolved itself (its
precision policy, device and planned steps), so config.json's "train" is what the user asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.table import Table

from charnn.budget import Plan
from charnn.checkpoint import checkpoint_path
from charnn.corpus import parse_fractions
from charnn.device import timed
from charnn.evaluate import evaluate, preview_sample

if TYPE_CHECKING:
    from charnn.trainer import Trainer


@dataclass
class Run:
    """A finished training run: where it is and what it reached (charnn.train returns it)."""

    directory: Path
    steps: int
    best_val_bpc: float | None  # best validation bits per character
    last_val_bpc: float | None
    seconds: float
    chars_per_second: float
    stopped_by: str  # max-steps, epochs or max-minutes
    history: list[dict] = field(default_factory=list)  # one record per evaluation (metrics.jsonl)
    plans: list[Plan] = field(default_factory=list)  # a time budget's step plans, first to last
    final_lr: float | None = None  # the learning rate of the last step

    @property
    def planned_steps(self) -> list[int]:
        """The steps each of a time budget's plans set, first to last."""
        return [plan.target for plan in self.plans]

    def load(self, which: str = "best", device: str = "cpu") -> Any:
        """The run's model (its best.pt, or last.pt): charnn.load, which sits above training in the flow."""
        from charnn.api import load

        return load(self.directory, which=which, device=device)

    def __repr__(self) -> str:
        best = f"{self.best_val_bpc:.4f}" if self.best_val_bpc is not None else "-"
        return f"Run('{self.directory}', steps={self.steps:,}, best_val_bpc={best}, stopped_by='{self.stopped_by}')"


CHECKPOINT_BYTES_PER_SECOND = 200e6  # a guess at how fast a checkpoint is written, before one has been


def resolved(trainer: Trainer) -> dict:
    """What the run decided for itself: the precision policy, the device and processes, the steps and what set
    them (None while a time budget is still timing its first steps), the recipe its settings took."""
    schedule = trainer.schedule
    return {
        "precision": trainer.precision.to_json(trainer.model_config.cell),
        "device": str(trainer.device),
        "processes": trainer.dist.world,
        "steps": {"target": schedule.target, "from": schedule.source} if schedule.target is not None else None,
        "recipe": trainer.config.recipe,
        "torch": torch.__version__,
    }


def config_record(trainer: Trainer) -> dict:
    """What config.json holds: the settings as asked, what the run resolved, and the model it builds."""
    return {
        "train": trainer.config.to_json(),
        "resolved": resolved(trainer),
        "model": trainer.model_config.to_json(),
        "vocab_size": trainer.vocab.size,
    }


def checkpoint_meta(trainer: Trainer) -> dict:
    """The JSON part of a checkpoint."""
    steps_per_epoch = trainer.train_batches.steps_per_epoch
    corpus = trainer.corpus
    return {
        "model": trainer.model_config.to_json(),
        "vocab": trainer.vocab.to_json(),
        "train": trainer.config.to_json(),
        "resolved": resolved(trainer),
        "step": trainer.step,
        "best_val_bpc": trainer.best_val_bpc,
        "train_seconds": trainer.train_seconds,
        "history": trainer.history,
        "data_position": {
            "step_in_epoch": trainer.step % steps_per_epoch,
            "epoch": trainer.step // steps_per_epoch,
            "world": trainer.dist.world,
        },
        "corpus": {"name": corpus.name, "kind": corpus.kind, "chars": len(corpus)},
        "torch": torch.__version__,
    }


def estimate_evaluation_seconds(trainer: Trainer) -> float:
    """What one evaluation will cost (validation, sample, two checkpoints), before any has run: one validation
    batch timed and scaled, a short sample timed and scaled, the checkpoints guessed from their size."""
    config, model = trainer.config, trainer.model

    def work() -> float:
        seconds = 0.0
        val = trainer.val_batches
        if val is not None:
            one = [timed(lambda: evaluate(model, val, trainer.device, val.chars_per_step)) for _ in range(2)][-1]
            steps = val.steps_per_epoch
            if config.eval_chars:
                steps = max(1, min(steps, config.eval_chars // val.chars_per_step))
            seconds += one * steps
        if config.sample_chars:
            length = min(config.sample_chars, 32)
            sample = timed(lambda: preview_sample(model, trainer.vocab, length, seed=0))
            seconds += sample * config.sample_chars / length
        # two checkpoints of the weights and AdamW's two moments
        return seconds + 2 * 3 * 4 * model.num_parameters() / CHECKPOINT_BYTES_PER_SECOND

    return trainer.dist.from_main(work)


def start_table(trainer: Trainer) -> Table:
    """The rich table shown before training."""
    cfg, shape, corpus = trainer.config, trainer.model_config, trainer.corpus
    table = Table(title="charnn train", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    fractions = parse_fractions(cfg.split)
    splits = corpus.split_bounds(fractions)
    table.add_row("corpus", f"{corpus.name} ({corpus.kind}, {len(corpus):,} chars, {corpus.documents:,} documents)")
    table.add_row(
        "splits",
        " / ".join(f"{n} {b - a:,}" for n, (a, b) in zip(("train", "val", "test"), splits))
        + f" (cut {corpus.split_method(fractions)})",
    )
    table.add_row("vocabulary", f"{len(trainer.vocab.chars)} characters")
    recipe = ""
    if cfg.recipe:
        recipe = f" (recipe: {cfg.recipe}" + (")" if trainer.resume else "; shape flags choose your own)")
    table.add_row(
        "model",
        f"{shape.layers} × {shape.hidden} {shape.cell.upper()}, embed {shape.embed}, dropout {shape.dropout}: "
        f"{trainer.model.num_parameters():,} parameters{recipe}",
    )
    table.add_row(
        "batches",
        f"{cfg.batch_size * trainer.dist.world} streams × {cfg.seq_len} chars; "
        f"{trainer.train_batches.steps_per_epoch:,} steps per epoch",
    )
    target, source = trainer.schedule.target, trainer.schedule.source
    if target is None:
        steps = f"{cfg.minutes:g} min (steps planned from the first steps' speed)"
    else:
        steps = f"{target:,} steps" + (f" (from --{source})" if source != "max-steps" else "")
        steps += f" or {cfg.minutes:g} min" if cfg.minutes else ""
    table.add_row(
        "schedule", steps + f", AdamW lr {cfg.lr:g}, warm-up {cfg.warmup_steps}, cosine to ×{cfg.min_lr_ratio:g}"
    )
    processes = f" × {trainer.dist.world} processes (DDP)" if trainer.dist.active else ""
    table.add_row("device", f"{trainer.device}{processes}, {torch.get_num_threads()} threads")
    table.add_row("precision", f"{trainer.precision.name}: {trainer.precision.describe(shape.cell)}")
    table.add_row("run", f"{trainer.run_dir}" + (f" (resuming at step {trainer.step:,})" if trainer.resume else ""))
    return table


def setup_warnings(trainer: Trainer) -> list[str]:
    """char-rnn's friendly warnings: too few batches, a model much larger than its data, no validation split."""
    warnings = []
    steps = trainer.train_batches.steps_per_epoch
    if steps < 10:
        warnings.append(
            f"the train split gives only {steps} steps per epoch; each epoch repeats the same few batches "
            "(lower --batch-size or --seq-len)"
        )
    train_chars = len(trainer.train_batches.ids)
    params = trainer.model.num_parameters()
    if params > 10 * train_chars:
        warnings.append(
            f"the model has {params:,} parameters for {train_chars:,} training characters: it will memorise; use a "
            "smaller --hidden or more data"
        )
    if trainer.val_batches is None:
        warnings.append("no validation split large enough for one batch: best.pt tracks training loss only")
    return warnings


def summary_table(trainer: Trainer, run: Run) -> Table:
    """The rich table shown at the end (a signal raises TrainingStopped instead)."""
    run_dir = trainer.run_dir
    table = Table(title="charnn: training finished", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("steps", f"{run.steps:,} (stopped by {run.stopped_by})")
    table.add_row("best val", f"{run.best_val_bpc:.4f} bits/char" if run.best_val_bpc is not None else "-")
    table.add_row("time", f"{run.seconds / 60:.1f} min, {run.chars_per_second:,.0f} chars/s at the end")
    table.add_row("checkpoints", f"{checkpoint_path(run_dir, 'best')}, {checkpoint_path(run_dir, 'last')}")
    table.add_row("sample", f"python generate.py --run {run_dir} --length 500")
    table.add_row("tensorboard", f"tensorboard --logdir {run_dir}")
    return table
