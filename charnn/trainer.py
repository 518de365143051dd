"""The training loop: truncated BPTT with a carried state, AdamW, warm-up and cosine decay, clipping, periodic
validation in bits per character, atomic best/last checkpoints, exact resume, a NaN guard, SIGINT/SIGTERM and
DDP when launched by torchrun. Its decisions live beside it: the time budget's plan (budget.py), the loss
tally (tally.py), what a run shows and records (run_record.py).
"""

from __future__ import annotations

import math
import signal
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from tqdm.auto import tqdm

from charnn.batches import DeviceBatches, StreamBatches
from charnn.budget import Plan, TimeBudget
from charnn.checkpoint import checkpoint_path
from charnn.config import TrainConfig, learning_rate, saved_plan
from charnn.corpus import Corpus, parse_fractions
from charnn.corpus_cache import load_corpus
from charnn.device import (
    Distributed,
    autocast_for,
    deterministic_kernels,
    memory_guard,
    pick_device,
    resolve_precision,
)
from charnn.errors import CharnnError
from charnn.evaluate import LN2
from charnn.model import State, detach_state, new_model
from charnn.precision import grad_scaler
from charnn.run_record import (
    Run,
    config_record,
    estimate_evaluation_seconds,
    setup_warnings,
    start_table,
    summary_table,
)
from charnn.run_state import evaluate_and_save, resume_from_last
from charnn.rundir import RunDirectory
from charnn.sources import CorpusSpec
from charnn.tally import StepTally, TallyReading


class StopRequested:
    """Turns SIGINT/SIGTERM into a flag the loop checks after each step."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequested:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def handle(self, signum: int, frame: Any) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C means now
        self.signal = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


class TrainingStopped(CharnnError):
    """The run stopped early by a signal; the checkpoint was written. Exit code 128 + signal."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.exit_code = 128 + signum


@dataclass
class Schedule:
    """How long the run is: the step it stops at, and what set it."""

    target: int | None  # None while a time budget's steps are still to be planned
    source: str  # max-steps, epochs or max-minutes


@dataclass
class Clock:
    """The loop's time: the deadline of --max-minutes, a time budget's planner, and where training time is counted."""

    deadline: float | None
    budget: TimeBudget | None
    started: float  # since the last evaluation: training time, not evaluation's
    recent: float  # since the last reading: the chars/s shown
    chars_per_second: float = 0.0
    last_val: float | None = None

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline


FUSED_ADAMW_DEVICES = ("cpu", "cuda", "mps")


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW, fused into one kernel per step where this torch has it for the device (CPU from torch 2.4):
    the same update to float tolerance, with less per-step overhead (docs/results/benchmarks.md)."""
    options = dict(lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99))
    if next(model.parameters()).device.type not in FUSED_ADAMW_DEVICES:  # elsewhere fused=True fails at the first step
        return torch.optim.AdamW(model.parameters(), **options)
    try:
        return torch.optim.AdamW(model.parameters(), fused=True, **options)
    except (RuntimeError, TypeError):  # older torch, or a device without the fused kernel
        return torch.optim.AdamW(model.parameters(), **options)


def eval_batches(ids, batch_size: int, seq_len: int, device: torch.device) -> DeviceBatches | None:
    """Validation streams on device: as many as the split allows up to batch_size; None when too short for one."""
    streams = min(batch_size, (len(ids) - 1) // seq_len)
    return DeviceBatches(StreamBatches(ids, streams, seq_len, split_name="val"), device) if streams >= 1 else None


def load_training_corpus(config: TrainConfig, progress: bool) -> Corpus:
    """The corpus a config names, encoded and cached."""
    return load_corpus(CorpusSpec.of(config.corpus, config.reader), cache_dir=config.cache_dir, progress=progress)


class Trainer:
    """One training run: set up from its settings (fresh or resumed), then `run()`. The settings are never
    changed; what the run decides (precision, planned steps) is its own state, recorded beside them."""

    def __init__(
        self,
        config: TrainConfig,
        resume: bool = False,
        overwrite: bool = False,
        progress: bool = True,
        console: Console | None = None,
    ):
        config.validate()
        self.config = config
        self.resume = resume
        self.progress = progress
        self.console = console or Console(stderr=True)
        self.run_dir = Path(config.run_dir)
        self.directory = RunDirectory(self.run_dir)
        self.settings = ExitStack()  # process-wide torch settings this run changes, restored by close()
        try:
            self.set_up(resume, overwrite)
        except BaseException:
            self.close()
            raise

    # ----- set-up -------------------------------------------------------------------------
    def set_up(self, resume: bool, overwrite: bool) -> None:
        """Device, process group, precision, run directory, corpus, batches, model, optimizer; then the resumed
        state."""
        config = self.config
        # before the run's first CUDA work: cuBLAS reads its deterministic setting once
        self.settings.enter_context(
            deterministic_kernels(config.deterministic, cuda=config.device not in ("cpu", "mps"))
        )
        self.device = pick_device(config.device)
        self.dist = Distributed.from_environment(self.device, config.dist_timeout)
        saved = saved_plan(self.run_dir) if resume else {}
        # a resumed run computes as it did, unless told otherwise; refused before any work if this device cannot
        requested = saved.get("precision", {}).get("name", "auto") if config.precision == "auto" else config.precision
        self.precision = resolve_precision(
            requested, self.device, config.model.cell, str(self.run_dir) if resume else None
        )
        self.dist.on_main(lambda: self.directory.claim(resume, overwrite, self.console))
        torch.manual_seed(config.seed + self.dist.rank)  # every device's generator
        # rank 0 encodes (and caches) first, the others then read its cache: not every rank encoding at once
        self.corpus = self.dist.on_main(lambda: load_training_corpus(config, self.progress))
        if not self.dist.is_main:
            self.corpus = load_training_corpus(config, False)
        self.vocab = self.corpus.vocab
        self.set_up_batches()
        self.schedule = self.first_schedule(saved.get("steps"))
        self.model_config = replace(config.model, vocab_size=self.vocab.size)
        shape = f"building a {self.model_config.layers} × {self.model_config.hidden} {self.model_config.cell.upper()}"
        with memory_guard(self.device, shape, "--hidden or --layers"):
            self.model = new_model(self.model_config, self.device)
        self.optimizer = make_optimizer(self.model, config.lr, config.weight_decay)
        self.scaler = grad_scaler(self.precision, self.device.type)  # None unless the policy scales the loss (fp16)
        self.tally = StepTally(self.device)
        self.step = 0
        self.state: State | None = None
        self.best_val_bpc: float | None = None
        self.history: list[dict] = []
        self.train_seconds = 0.0
        self.last_train_loss: float | None = None
        self.saved_step: int | None = None  # step of the last.pt this run has written or resumed from
        if resume and checkpoint_path(self.run_dir, "last").is_file():
            resume_from_last(self)
        elif resume:  # stopped before its first checkpoint: nothing to restore, so the run starts again
            self.best_val_bpc = self.directory.best_score()
            self.dist.on_main(lambda: self.directory.rewrite_metrics(self.history))
        self.ddp_model = self.wrap_distributed()
        self.autocast = autocast_for(self.precision, self.device)

    def set_up_batches(self) -> None:
        """The train streams of this rank, and the validation streams, made on the device."""
        config = self.config
        splits = self.corpus.splits(parse_fractions(config.split))
        self.train_batches = StreamBatches(
            splits["train"],
            config.batch_size,
            config.seq_len,
            first_stream=self.dist.rank * config.batch_size,
            total_streams=config.batch_size * self.dist.world,
            split_name="train",
        )
        self.train_feed = DeviceBatches(self.train_batches, self.device)  # the same batches, made on the device
        self.val_batches = eval_batches(splits["val"], config.batch_size, config.seq_len, self.device)

    def first_schedule(self, saved_steps: dict | None) -> Schedule:
        """--max-steps, or --epochs' steps, whichever ends first; resumed, the steps the run's time budget planned;
        else a time budget's steps, planned once the first steps are timed."""
        max_steps, epoch_steps = self.config.max_steps, self.epoch_steps()
        if max_steps is not None and (epoch_steps is None or max_steps <= epoch_steps):
            return Schedule(max_steps, "max-steps")
        if epoch_steps is not None:
            return Schedule(epoch_steps, "epochs")
        if saved_steps and saved_steps.get("from") == "max-minutes":
            return Schedule(int(saved_steps["target"]), "max-minutes")
        return Schedule(None, "max-minutes")

    def epoch_steps(self) -> int | None:
        """The steps --epochs makes (None without it)."""
        if self.config.epochs is None:
            return None
        return max(1, math.ceil(self.config.epochs * self.train_batches.steps_per_epoch))

    def wrap_distributed(self) -> torch.nn.Module:
        """The model DDP-wrapped when running under torchrun, else the model itself."""
        if not self.dist.active:
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=ids)

    # ----- one step -----------------------------------------------------------------------
    def learning_rate(self, step: int) -> float:
        """The schedule's rate at a step (it holds at its peak while a time budget's steps are being planned)."""
        return learning_rate(self.config, step, self.schedule.target)

    def train_step(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on the next batch; returns (loss in nats, gradient norm) as tensors on the device.

        Nothing here waits for the device: the loss and the norm go into `self.tally`, which the loop reads
        every --log-every steps and before every evaluation. A non-finite step is found there and stops the
        run before anything is saved (its update has been applied, but no checkpoint ever holds it).
        """
        step_in_epoch = self.step % self.train_batches.steps_per_epoch
        if step_in_epoch == 0:
            self.state = None  # the streams wrap round: start from a zero state
        x, y = self.train_feed.batch(step_in_epoch)
        lr = self.learning_rate(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with self.autocast:
            logits, state = self.ddp_model(x, self.state, self.precision.recurrent_dtype)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.optimizer.step()
        else:  # the gradients are unscaled before clipping; a step whose gradients overflowed is skipped
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
        # the carried state is kept in fp32 (the recurrence hands it back in its own dtype)
        self.state = tuple(s.float() for s in detach_state(state)) if self.config.carry_state else None
        self.step += 1
        loss, grad_norm = loss.detach(), grad_norm.detach()
        self.tally.add(loss, grad_norm, self.step, overflow_skips=self.scaler is not None)
        return loss, grad_norm

    # ----- the loop -----------------------------------------------------------------------
    def run(self) -> Run:
        """Train until max-steps, epochs, max-minutes or a signal; returns the finished Run."""
        writer = self.announce()
        clock = self.start_clock()
        bar = tqdm(
            total=self.schedule.target,
            initial=min(self.step, self.schedule.target or self.step),
            desc="training",
            unit="step",
            disable=not (self.progress and self.dist.is_main),
            dynamic_ncols=True,
        )
        cfg = self.config
        out_of_time = False
        try:
            running_out = f"--batch-size (now {cfg.batch_size}) or --seq-len (now {cfg.seq_len})"
            with StopRequested() as stop, memory_guard(self.device, "training", running_out):
                while not out_of_time and (self.schedule.target is None or self.step < self.schedule.target):
                    self.train_step()
                    bar.update(1)
                    if self.block_ends(stop, clock):
                        out_of_time = self.end_block(stop, clock, bar, writer)
        finally:
            bar.close()
            if writer:
                writer.close()
        return self.finish(clock, out_of_time)

    def announce(self) -> Any:
        """The start table and warnings (rank 0), config.json, and the TensorBoard writer (None but on rank 0)."""
        if self.dist.is_main:
            self.console.print(start_table(self))
            for warning in setup_warnings(self):
                self.console.print(f"[yellow]warning:[/] {warning}")
        self.dist.on_main(lambda: self.directory.write_config(config_record(self)))
        return self.dist.on_main(self.open_writer)

    def start_clock(self) -> Clock:
        """The deadline of the time budget, and its planner when the steps are still to be planned."""
        minutes = self.config.minutes
        now = time.monotonic()
        budget = None
        if self.schedule.target is None:  # time the first steps, then plan
            began = self.main_clock()
            budget = TimeBudget(self.step, began, began + minutes * 60, self.config.eval_every, cap=self.epoch_steps())
        return Clock(now + minutes * 60 if minutes else None, budget, now, now)

    def block_ends(self, stop: StopRequested, clock: Clock) -> bool:
        """Whether this step ends a block of steps: the loop then reads the tally, logs, and may evaluate or stop."""
        cfg, step = self.config, self.step
        due = (
            step % cfg.log_every == 0
            or step % cfg.eval_every == 0
            or step == self.schedule.target
            or (clock.budget is not None and clock.budget.wants_reading(step))
        )
        wants_to_stop = stop.signal is not None or clock.out_of_time()
        return due or (wants_to_stop and not self.dist.active)  # under DDP a stop is decided together, at a block's end

    def end_block(self, stop: StopRequested, clock: Clock, bar: tqdm, writer: Any) -> bool:
        """The end of a block of steps: the one wait for the device and the one collective that decides for every
        rank; then the logs, the budget's readings, an evaluation when due, a stop. True when out of time."""
        reading = self.tally.read()
        signalled, out_of_time, failed = self.dist.any(stop.signal is not None, clock.out_of_time(), reading.failed)
        if failed:
            raise self.dist.everyone(
                self.numeric_failure(
                    reading.failure_text()
                    if reading.failed
                    else "the loss or the gradient became NaN or infinite in another process"
                )
            )
        self.log_reading(reading, clock, bar, writer)
        budget = clock.budget
        if budget is not None and budget.wants_reading(self.step):
            plan = budget.reading(self.step, self.main_clock(), lambda: estimate_evaluation_seconds(self))
            if plan is not None:
                self.adopt_plan(plan, bar, writer)
                clock.recent = time.monotonic()  # chars/s counts training, not the estimate's evaluation
        if self.step % self.config.eval_every == 0 or self.step == self.schedule.target or signalled or out_of_time:
            self.train_seconds += time.monotonic() - clock.started
            clock.started = time.monotonic()
            clock.last_val = evaluate_and_save(self, writer, bar)
            if budget is not None:
                now, seconds = self.dist.from_main(lambda: (time.monotonic(), time.monotonic() - clock.started))
                plan = budget.evaluated(self.step, now, seconds)
                if plan is not None and not (signalled or out_of_time):
                    self.adopt_plan(plan, bar, writer)
            clock.recent = time.monotonic()  # chars/s counts training, not evaluation
        if signalled:
            name = signal.Signals(stop.signal).name if stop.signal else "a signal to another process"
            raise self.dist.everyone(
                TrainingStopped(
                    f"stopped by {name} at step {self.step:,}; '{checkpoint_path(self.run_dir, 'last')}' is saved; "
                    f"continue with: python train.py --out {self.run_dir} --resume",
                    stop.signal or signal.SIGTERM,
                )
            )
        return out_of_time

    def log_reading(self, reading: TallyReading, clock: Clock, bar: tqdm, writer: Any) -> None:
        """A block's loss and speed on the progress bar and in TensorBoard."""
        now = time.monotonic()
        clock.chars_per_second = (
            reading.steps * self.train_batches.chars_per_step * self.dist.world / max(now - clock.recent, 1e-9)
        )
        clock.recent = now
        bar.set_postfix(
            loss=f"{reading.mean_loss:.3f}",
            val_bpc=f"{clock.last_val:.3f}" if clock.last_val else "-",
            chars_s=f"{clock.chars_per_second:,.0f}",
            refresh=False,
        )
        if writer:
            writer.add_scalar("train/loss_nats", reading.mean_loss, self.step)
            writer.add_scalar("train/bits_per_char", reading.mean_loss / LN2, self.step)
            writer.add_scalar("train/learning_rate", self.learning_rate(self.step - 1), self.step)
            writer.add_scalar("train/grad_norm", reading.grad_norm, self.step)
            if self.scaler is not None:
                writer.add_scalar("train/overflow_skipped_steps", reading.skipped, self.step)
            writer.add_scalar("train/chars_per_second", clock.chars_per_second, self.step)
        self.last_train_loss = reading.mean_loss

    def adopt_plan(self, plan: Plan, bar: tqdm, writer: Any) -> None:
        """Make a time budget's plan the run's schedule: config.json's record, the progress bar, one line."""
        self.schedule = Schedule(plan.target, "max-minutes")
        self.dist.on_main(lambda: self.directory.write_config(config_record(self)))
        bar.total = plan.target
        bar.refresh()
        if self.dist.is_main:
            bar.write(plan.describe(self.train_batches.chars_per_step * self.dist.world, self.config.minutes))
        if writer:
            writer.add_scalar("train/planned_steps", plan.target, self.step)

    def finish(self, clock: Clock, out_of_time: bool) -> Run:
        """The finished Run, and its summary table (rank 0)."""
        target = self.schedule.target
        run = Run(
            self.run_dir,
            self.step,
            self.best_val_bpc,
            clock.last_val,
            self.train_seconds,
            clock.chars_per_second,
            "max-minutes" if out_of_time else self.schedule.source,
            self.history,
            [] if clock.budget is None else clock.budget.plans,
            self.learning_rate(max(self.step - 1, 0)),
        )
        if self.dist.is_main:
            if out_of_time and self.schedule.source == "max-minutes" and self.step < (target or 0):
                self.console.print(
                    f"[yellow]note:[/] the budget ran out at step {self.step:,} of the {target:,} planned: the machine "
                    f"was slower than measured, and the learning rate had not reached its floor"
                )
            self.console.print(summary_table(self, run))
        self.dist.close()
        return run

    def main_clock(self) -> float:
        """Rank 0's clock, on every rank (a time budget's decisions must be the same everywhere)."""
        return self.dist.from_main(time.monotonic)

    def close(self) -> None:
        """Release the run directory and restore the torch settings the run changed."""
        self.directory.release()
        self.settings.close()

    def numeric_failure(self, what: str) -> CharnnError:
        """The error that stops a run whose numbers blew up; it says which checkpoint is left and what to do."""
        last, lr = checkpoint_path(self.run_dir, "last"), self.config.lr
        if self.saved_step is not None:
            kept = (
                f"'{last}' keeps the last good state (step {self.saved_step:,}); lower --lr (now {lr:g}) "
                "or --grad-clip and continue with --resume, or start again with --overwrite"
            )
        else:
            kept = (
                f"no checkpoint had been saved yet; lower --lr (now {lr:g}) or --grad-clip and start "
                "again with --resume or --overwrite"
            )
        return CharnnError(f"{what}; the run stopped without saving it: {kept}")

    def open_writer(self) -> Any:
        """A TensorBoard writer on the run directory."""
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.run_dir))


def run_training(config: TrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True) -> Run:
    """Train a model as the settings say; with resume, continue the run in its directory exactly."""
    trainer = Trainer(config, resume=resume, overwrite=overwrite, progress=progress)
    try:
        return trainer.run()
    finally:
        trainer.close()
