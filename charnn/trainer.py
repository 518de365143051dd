"""The training loop: truncated BPTT with a carried state, AdamW, warm-up + cosine decay, clipping,
periodic validation in bits per character, atomic best/last checkpoints, exact resume, TensorBoard,
tqdm, rich summaries, a NaN guard, SIGINT/SIGTERM handling and DDP when launched by torchrun.
A little over 500 lines, as one job: set-up, resume, the loop with its stops and its time budget's
plans, and evaluate-and-save all share the Trainer's state (the decisions are in budget.py and tally.py).
"""

from __future__ import annotations

import math
import signal
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from tqdm.auto import tqdm

from charnn.batches import DeviceBatches, StreamBatches
from charnn.budget import Plan, TimeBudget
from charnn.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from charnn.config import DEFAULT_MAX_STEPS, MODEL_FLAGS, TrainConfig, flag, learning_rate
from charnn.corpus import Corpus, load_corpus, parse_fractions
from charnn.device import (
    Distributed,
    autocast_for,
    deterministic_kernels,
    memory_guard,
    pick_device,
    resolve_precision,
    restore_rng,
    rng_snapshot,
    timed,
)
from charnn.errors import CharnnError
from charnn.evaluate import LN2, evaluate, preview_sample
from charnn.model import ModelConfig, State, detach_state, new_model
from charnn.precision import grad_scaler
from charnn.rundir import RunDirectory
from charnn.sources import CorpusSpec
from charnn.tally import StepTally, TallyReading  # noqa: F401 - TallyReading is what StepTally.read() gives the loop


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
class TrainResult:
    """What a finished run reports."""

    run_dir: Path
    step: int
    best_val_bpc: float | None
    last_val_bpc: float | None
    seconds: float
    chars_per_second: float
    stopped_by: str = "max-steps"
    history: list[dict] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)  # a time budget's step plans, first to last
    final_lr: float | None = None  # the learning rate of the last step


FUSED_ADAMW_DEVICES = ("cpu", "cuda", "mps")


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW, fused into one kernel per step where this torch has it for the device (CPU from torch 2.4):
    the same update to float tolerance, with less per-step overhead (docs/benchmarks.md)."""
    options = dict(lr=lr, weight_decay=weight_decay, betas=(0.9, 0.99))
    if (
        next(model.parameters()).device.type not in FUSED_ADAMW_DEVICES
    ):  # elsewhere fused=True fails only at the first step
        return torch.optim.AdamW(model.parameters(), **options)
    try:
        return torch.optim.AdamW(model.parameters(), fused=True, **options)
    except (RuntimeError, TypeError):  # older torch, or a device without the fused kernel
        return torch.optim.AdamW(model.parameters(), **options)


def eval_batches(ids, batch_size: int, seq_len: int, device: torch.device) -> DeviceBatches | None:
    """Validation streams on device: as many as the split allows up to batch_size; None when it is too short for one."""
    streams = min(batch_size, (len(ids) - 1) // seq_len)
    return DeviceBatches(StreamBatches(ids, streams, seq_len, split_name="val"), device) if streams >= 1 else None


def load_training_corpus(config: TrainConfig, progress: bool) -> Corpus:
    """The corpus a config names, encoded and cached."""
    return load_corpus(CorpusSpec.of(config.corpus, config), cache_dir=config.cache_dir, progress=progress)


class Trainer:
    """One training run: set up from a config (fresh or resumed), then `run()`."""

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
        self.run_dir = Path(config.out)
        self.directory = RunDirectory(self.run_dir)
        self.settings = ExitStack()  # process-wide torch settings this run changes, restored by close()
        try:
            self.set_up(resume, overwrite)
        except BaseException:
            self.close()
            raise

    def set_up(self, resume: bool, overwrite: bool) -> None:
        """Device, process group, run directory, corpus, batches, model, optimizer; then the resumed state."""
        config = self.config
        # before the run's first CUDA work: cuBLAS reads its deterministic setting once
        self.settings.enter_context(
            deterministic_kernels(config.deterministic, cuda=config.device not in ("cpu", "mps"))
        )
        self.device = pick_device(config.device)
        self.dist = Distributed.from_environment(self.device, config.dist_timeout)
        # before any work; saved resolved, so that a resume computes the same way
        self.precision = resolve_precision(config.precision, self.device, config.cell, config.out if resume else None)
        config.precision = self.precision.name
        self.dist.on_main(lambda: self.directory.claim(resume, overwrite, self.console))
        torch.manual_seed(config.seed + self.dist.rank)  # every device's generator
        # rank 0 encodes (and caches) first, the others then read its cache: not every rank encoding at once
        self.corpus = self.dist.on_main(lambda: load_training_corpus(config, self.progress))
        if not self.dist.is_main:
            self.corpus = load_training_corpus(config, False)
        self.vocab = self.corpus.vocab
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
        if config.max_steps is None and config.max_minutes is None:  # a time budget is planned in run()
            config.max_steps, config.step_plan = (
                (self.epoch_steps(), "epochs") if config.epochs is not None else (DEFAULT_MAX_STEPS, None)
            )
        self.model_config = ModelConfig(
            self.vocab.size, config.cell, config.layers, config.hidden, config.embed, config.dropout
        )
        with memory_guard(
            self.device, f"building a {config.layers} × {config.hidden} {config.cell.upper()}", "--hidden or --layers"
        ):
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
            self.load_resume_state()
        elif resume:  # stopped before its first checkpoint: nothing to restore, so the run starts again
            self.best_val_bpc = self.directory.best_score()
            self.dist.on_main(lambda: self.directory.rewrite_metrics(self.history))
        self.ddp_model = self.wrap_distributed()
        self.autocast = autocast_for(self.precision, self.device)

    # ----- set-up -------------------------------------------------------------------------
    def load_resume_state(self) -> None:
        """Restore weights, optimizer, step, carried state, RNG and metrics from last.pt."""
        checkpoint = load_checkpoint(checkpoint_path(self.run_dir, "last"))
        if checkpoint.vocab != self.vocab:
            raise CharnnError(
                f"--resume: the corpus '{self.config.corpus}' gives a different vocabulary from the one "
                f"'{self.run_dir}' was trained on"
            )
        if checkpoint.model_config != self.model_config:
            saved = checkpoint.model_config
            diff = [
                f"--{flag(n)} {getattr(saved, n)} (saved) vs {getattr(self.model_config, n)}"
                for n in MODEL_FLAGS
                if getattr(saved, n) != getattr(self.model_config, n)
            ]
            raise CharnnError(f"--resume: flags contradict the saved model: {'; '.join(diff)}")
        extra = checkpoint.extra
        meta = checkpoint.meta
        try:  # shapes of the weights were checked on loading; the rest of a damaged file must not crash later
            self.model.load_state_dict(checkpoint.model_state)
            self.optimizer.load_state_dict(extra["optimizer"])
            if self.scaler is not None and "grad_scaler" in extra:
                self.scaler.load_state_dict(extra["grad_scaler"])
            for param in self.model.parameters():
                for moment in self.optimizer.state.get(param, {}).values():
                    if isinstance(moment, torch.Tensor) and moment.dim() and moment.shape != param.shape:
                        raise ValueError("optimizer state does not fit the weights")
            self.step = int(meta["step"])
            if self.step < 0:
                raise ValueError(f"step {self.step}")
            self.train_seconds = float(meta.get("train_seconds", 0.0))
            self.history = [dict(record) for record in meta.get("history", [])]
            rngs = extra.get("rng_per_rank", [])
            if self.dist.rank < len(rngs):
                saved = rngs[
                    self.dist.rank
                ]  # {"cpu": ..., "cuda": ...}; runs before the GPU work saved the CPU's alone
                restore_rng(saved if isinstance(saved, dict) else {"cpu": saved}, self.device)
            states = extra.get("state_per_rank", [])
            saved_world = int(meta.get("data_position", {}).get("world", len(states) or 1))
            if saved_world != self.dist.world:  # rank r's streams are not the streams rank r carried then
                if self.dist.is_main:
                    self.console.print(
                        f"[yellow]note:[/] '{self.run_dir}' was trained by {saved_world} process(es), this run has "
                        f"{self.dist.world}: the streams are cut differently, so they start from a zero state"
                    )
            elif self.dist.rank < len(states) and states[self.dist.rank]:
                state = tuple(s.to(self.device) for s in states[self.dist.rank])
                expected = (self.config.layers, self.config.batch_size, self.config.hidden)
                if len(state) == len(self.model.init_state(1)) and all(tuple(s.shape) == expected for s in state):
                    self.state = state
                elif self.dist.is_main:  # e.g. --batch-size changed: the streams are cut differently now
                    self.console.print(
                        "[yellow]note:[/] the saved carried state does not fit this --batch-size; the streams start "
                        "from a zero state"
                    )
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise CharnnError(f"--resume: '{checkpoint.path}' is damaged and cannot be resumed ({first})") from None
        self.saved_step = self.step
        self.best_val_bpc = self.directory.best_score()
        self.dist.on_main(lambda: self.directory.rewrite_metrics(self.history))

    def wrap_distributed(self) -> torch.nn.Module:
        """The model DDP-wrapped when running under torchrun, else the model itself."""
        if not self.dist.active:
            return self.model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(self.model, device_ids=ids)

    # ----- output -------------------------------------------------------------------------
    def start_table(self) -> Table:
        """The rich table shown before training."""
        cfg = self.config
        table = Table(title="charnn train", show_header=False)
        table.add_column("what", style="bold")
        table.add_column("value")
        fractions = parse_fractions(cfg.split)
        splits = self.corpus.split_bounds(fractions)
        table.add_row(
            "corpus",
            f"{self.corpus.name} ({self.corpus.kind}, {len(self.corpus):,} chars, {self.corpus.documents:,} documents)",
        )
        table.add_row(
            "splits",
            " / ".join(f"{n} {b - a:,}" for n, (a, b) in zip(("train", "val", "test"), splits))
            + f" (cut {self.corpus.split_method(fractions)})",
        )
        table.add_row("vocabulary", f"{len(self.vocab.chars)} characters")
        table.add_row(
            "model",
            f"{cfg.layers} × {cfg.hidden} {cfg.cell.upper()}, embed {cfg.embed}, dropout {cfg.dropout}: "
            f"{self.model.num_parameters():,} parameters"
            + (
                f" (recipe: {cfg.recipe}" + (")" if self.resume else "; shape flags choose your own)")
                if cfg.recipe
                else ""
            ),
        )
        table.add_row(
            "batches",
            f"{cfg.batch_size * self.dist.world} streams × {cfg.seq_len} chars; "
            f"{self.train_batches.steps_per_epoch:,} steps per epoch",
        )
        steps = (
            (
                f"{cfg.max_steps:,} steps"
                + (f" (from --{cfg.step_plan})" if cfg.step_plan else "")
                + (f" or {cfg.max_minutes:g} min" if cfg.max_minutes else "")
            )
            if cfg.max_steps
            else f"{cfg.max_minutes:g} min (steps planned from the first steps' speed)"
        )
        table.add_row(
            "schedule", steps + f", AdamW lr {cfg.lr:g}, warm-up {cfg.warmup_steps}, cosine to ×{cfg.min_lr_ratio:g}"
        )
        table.add_row(
            "device",
            f"{self.device}"
            + (f" × {self.dist.world} processes (DDP)" if self.dist.active else "")
            + f", {torch.get_num_threads()} threads",
        )
        table.add_row("precision", f"{self.precision.name}: {self.precision.describe(cfg.cell)}")
        table.add_row("run", f"{self.run_dir}" + (f" (resuming at step {self.step:,})" if self.resume else ""))
        return table

    def warn_about_setup(self) -> None:
        """char-rnn's friendly warnings: too few batches, a model much larger than its data."""
        steps = self.train_batches.steps_per_epoch
        if steps < 10:
            self.console.print(
                f"[yellow]warning:[/] the train split gives only {steps} steps per epoch; each epoch repeats the same "
                "few batches (lower --batch-size or --seq-len)"
            )
        train_chars = len(self.train_batches.ids)
        params = self.model.num_parameters()
        if params > 10 * train_chars:
            self.console.print(
                f"[yellow]warning:[/] the model has {params:,} parameters for {train_chars:,} training characters: it "
                "will memorise; use a smaller --hidden or more data"
            )
        if self.val_batches is None:
            self.console.print(
                "[yellow]warning:[/] no validation split large enough for one batch: best.pt tracks training loss only"
            )

    # ----- the loop -----------------------------------------------------------------------
    def epoch_steps(self) -> int | None:
        """The steps --epochs makes (None without it)."""
        if self.config.epochs is None:
            return None
        return max(1, math.ceil(self.config.epochs * self.train_batches.steps_per_epoch))

    def plan_steps(self) -> int | None:
        """The step to stop at: --max-steps, or fewer when --epochs is given; None while a time budget's plan is to
        come."""
        limits = [limit for limit in (self.config.max_steps, self.epoch_steps()) if limit is not None]
        return min(limits) if limits else None

    def main_clock(self) -> float:
        """Rank 0's clock, on every rank (a time budget's decisions must be the same everywhere)."""
        return self.dist.from_main(time.monotonic)

    def estimate_evaluation_seconds(self) -> float:
        """What one evaluation will cost (validation, sample, two checkpoints), before any has run: one
        validation batch timed and scaled, a short sample timed and scaled, the checkpoints guessed from their size."""

        def work() -> float:
            seconds = 0.0
            val = self.val_batches
            if val is not None:
                one = [timed(lambda: evaluate(self.model, val, self.device, val.chars_per_step)) for _ in range(2)][-1]
                steps = (
                    val.steps_per_epoch
                    if not self.config.eval_chars
                    else max(1, min(val.steps_per_epoch, self.config.eval_chars // val.chars_per_step))
                )
                seconds += one * steps
            if self.config.sample_chars:
                length = min(self.config.sample_chars, 32)
                seconds += (
                    timed(lambda: preview_sample(self.model, self.vocab, length, seed=0))
                    * self.config.sample_chars
                    / length
                )
            return (
                seconds + 2 * 3 * 4 * self.model.num_parameters() / 200e6
            )  # weights and AdamW's two moments, at ~200 MB/s

        return self.dist.from_main(work)

    def adopt_plan(self, plan: Plan, bar: tqdm, writer: Any) -> int:
        """Make a time budget's plan the run's schedule: max-steps, config.json, the progress bar, one line."""
        self.config.max_steps, self.config.step_plan = plan.target, "max-minutes"
        self.dist.on_main(lambda: self.directory.write_config(self.config_record()))
        bar.total = plan.target
        bar.refresh()
        if self.dist.is_main:
            bar.write(plan.describe(self.train_batches.chars_per_step * self.dist.world, self.config.max_minutes))
        if writer:
            writer.add_scalar("train/planned_steps", plan.target, self.step)
        return plan.target

    def config_record(self) -> dict:
        """What config.json holds."""
        return {"train": self.config.to_json(), "model": self.model_config.to_json(), "vocab_size": self.vocab.size}

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
        lr = learning_rate(self.config, self.step)
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

    def run(self) -> TrainResult:
        """Train until max-steps, epochs, max-minutes or a signal; returns the result."""
        cfg = self.config
        main = self.dist.is_main
        if main:
            self.console.print(self.start_table())
            self.warn_about_setup()
        self.dist.on_main(lambda: self.directory.write_config(self.config_record()))
        writer = self.dist.on_main(self.open_writer)
        target = self.plan_steps()
        chars_per_step = self.train_batches.chars_per_step * self.dist.world
        started = time.monotonic()
        deadline = started + cfg.max_minutes * 60 if cfg.max_minutes else None
        budget = None
        if cfg.max_steps is None:  # --max-minutes without --max-steps: time the first steps, then plan
            began = self.main_clock()
            budget = TimeBudget(self.step, began, began + cfg.max_minutes * 60, cfg.eval_every, cap=self.epoch_steps())
        out_of_time = False
        last_val = None
        recent_start = time.monotonic()
        chars_per_second = 0.0
        bar = tqdm(
            total=target,
            initial=min(self.step, target or self.step),
            desc="training",
            unit="step",
            disable=not (self.progress and main),
            dynamic_ncols=True,
        )
        try:
            with (
                StopRequested() as stop,
                memory_guard(
                    self.device, "training", f"--batch-size (now {cfg.batch_size}) or --seq-len (now {cfg.seq_len})"
                ),
            ):
                while target is None or self.step < target:
                    self.train_step()
                    bar.update(1)
                    wants_to_stop = stop.signal is not None or (deadline is not None and time.monotonic() > deadline)
                    due = (
                        self.step % cfg.log_every == 0
                        or self.step % cfg.eval_every == 0
                        or self.step == target
                        or (budget is not None and budget.wants_reading(self.step))
                    )
                    if not (due or (wants_to_stop and not self.dist.active)):
                        continue  # under DDP a stop is decided together, at the next block's end
                    # the one wait for the device per block of steps, and the one collective that decides for all ranks
                    reading = self.tally.read()
                    signalled, out_of_time, failed = self.dist.any(
                        stop.signal is not None, deadline is not None and time.monotonic() > deadline, reading.failed
                    )
                    if failed:
                        raise self.dist.everyone(
                            self.numeric_failure(
                                reading.failure_text()
                                if reading.failed
                                else "the loss or the gradient became NaN or infinite in another process"
                            )
                        )
                    now = time.monotonic()
                    chars_per_second = reading.steps * chars_per_step / max(now - recent_start, 1e-9)
                    recent_start = now
                    bar.set_postfix(
                        loss=f"{reading.mean_loss:.3f}",
                        val_bpc=f"{last_val:.3f}" if last_val else "-",
                        chars_s=f"{chars_per_second:,.0f}",
                        refresh=False,
                    )
                    if writer:
                        writer.add_scalar("train/loss_nats", reading.mean_loss, self.step)
                        writer.add_scalar("train/bits_per_char", reading.mean_loss / LN2, self.step)
                        writer.add_scalar("train/learning_rate", learning_rate(cfg, self.step - 1), self.step)
                        writer.add_scalar("train/grad_norm", reading.grad_norm, self.step)
                        if self.scaler is not None:
                            writer.add_scalar("train/overflow_skipped_steps", reading.skipped, self.step)
                        writer.add_scalar("train/chars_per_second", chars_per_second, self.step)
                    self.last_train_loss = reading.mean_loss
                    if budget is not None and budget.wants_reading(self.step):
                        plan = budget.reading(self.step, self.main_clock(), self.estimate_evaluation_seconds)
                        if plan is not None:
                            target = self.adopt_plan(plan, bar, writer)
                            recent_start = time.monotonic()  # chars/s counts training, not the estimate's evaluation
                    if self.step % cfg.eval_every == 0 or self.step == target or signalled or out_of_time:
                        self.train_seconds += time.monotonic() - started
                        started = time.monotonic()
                        last_val = self.evaluate_and_save(writer, bar)
                        if budget is not None:
                            now, seconds = self.dist.from_main(lambda: (time.monotonic(), time.monotonic() - started))
                            plan = budget.evaluated(self.step, now, seconds)
                            if plan is not None and not (signalled or out_of_time):
                                target = self.adopt_plan(plan, bar, writer)
                        recent_start = time.monotonic()  # chars/s counts training, not evaluation
                    if signalled:
                        name = signal.Signals(stop.signal).name if stop.signal else "a signal to another process"
                        raise self.dist.everyone(
                            TrainingStopped(
                                f"stopped by {name} at step {self.step:,}; '{checkpoint_path(self.run_dir, 'last')}' "
                                "is saved; "
                                f"continue with: python train.py --out {self.run_dir} --resume",
                                stop.signal or signal.SIGTERM,
                            )
                        )
                    if out_of_time:
                        break
        finally:
            bar.close()
            if writer:
                writer.close()
        if out_of_time:
            stopped_by = "max-minutes"
        else:
            stopped_by = cfg.step_plan or ("max-steps" if target == cfg.max_steps else "epochs")
        plans = [] if budget is None else budget.plans
        result = TrainResult(
            self.run_dir,
            self.step,
            self.best_val_bpc,
            last_val,
            self.train_seconds,
            chars_per_second,
            stopped_by,
            self.history,
            plans,
            learning_rate(cfg, max(self.step - 1, 0)),
        )
        if main:
            if out_of_time and cfg.step_plan == "max-minutes" and self.step < (target or 0):
                self.console.print(
                    f"[yellow]note:[/] the budget ran out at step {self.step:,} of the {target:,} planned: the machine "
                    f"was slower than measured, and the learning rate had not reached its floor"
                )
            self.console.print(self.summary_table(result))
        self.dist.close()
        return result

    def close(self) -> None:
        """Release the run directory and restore the torch settings the run changed."""
        self.directory.release()
        self.settings.close()

    def numeric_failure(self, what: str) -> CharnnError:
        """The error that stops a run whose numbers blew up; it says which checkpoint is left and what to do."""
        last = checkpoint_path(self.run_dir, "last")
        if self.saved_step is not None:
            kept = (
                f"'{last}' keeps the last good state (step {self.saved_step:,}); lower --lr (now {self.config.lr:g}) "
                "or --grad-clip and continue with --resume, or start again with --overwrite"
            )
        else:
            kept = (
                f"no checkpoint had been saved yet; lower --lr (now {self.config.lr:g}) or --grad-clip and start "
                "again with --resume or --overwrite"
            )
        return CharnnError(f"{what}; the run stopped without saving it: {kept}")

    def evaluate_and_save(self, writer: Any, bar: tqdm) -> float | None:
        """Validate, write metrics and samples, save best (if better) then last; returns val bpc (None but on rank 0).
        Every rank joins; a failure on rank 0 (NaN weights, a full disk) stops every rank with its sentence."""
        # every rank must join the gather; only rank 0 evaluates and writes
        rng = rng_snapshot(self.device)
        # Put the generators back as saved: on CUDA that also makes cuDNN rebuild its dropout state from them, as a
        # resumed run does after restoring them, so a run and its resume draw the same dropout masks from here on.
        restore_rng(rng, self.device)
        ranks = self.dist.gather((rng, [s.detach().cpu() for s in self.state] if self.state is not None else []))
        val_bpc = self.dist.on_main(
            lambda: self.save_evaluated(writer, bar, [r for r, _ in ranks], [s for _, s in ranks])
        )
        self.saved_step = self.step  # on every rank: each names it if the run fails later
        return val_bpc

    def save_evaluated(
        self, writer: Any, bar: tqdm, rngs: list[dict], states: list[list[torch.Tensor]]
    ) -> float | None:
        """evaluate_and_save's work on rank 0."""
        cfg = self.config
        # the validation streams are --batch-size wide: evaluation's memory grows with it, not with --eval-chars
        with memory_guard(self.device, "validating", f"--batch-size (now {cfg.batch_size})"):
            val = evaluate(self.model, self.val_batches, self.device, cfg.eval_chars) if self.val_batches else None
        val_bpc = val["bits_per_char"] if val else (self.last_train_loss or float("nan")) / LN2
        broken = [name for name, param in self.model.named_parameters() if not torch.isfinite(param).all()]
        if broken:  # never save weights that cannot be used; last.pt stays the last good state
            raise self.numeric_failure(f"the weights became NaN or infinite by step {self.step:,} ({broken[0]})")
        if val and not math.isfinite(val_bpc):
            raise self.numeric_failure(f"the validation loss became {val_bpc} at step {self.step:,}")
        sample = preview_sample(self.model, self.vocab, cfg.sample_chars, seed=cfg.seed + self.step)
        record = {
            "step": self.step,
            "time": round(self.train_seconds, 2),
            "train_loss_nats": self.last_train_loss,
            "val_bits_per_char": val["bits_per_char"] if val else None,
            "val_nats_per_char": val["nats_per_char"] if val else None,
            "lr": learning_rate(cfg, max(self.step - 1, 0)),
        }
        self.history.append(record)
        improved = (
            self.best_val_bpc is None
            or not math.isfinite(self.best_val_bpc)
            or (math.isfinite(val_bpc) and val_bpc < self.best_val_bpc)
        )
        if improved:
            self.best_val_bpc = val_bpc
        meta = self.checkpoint_meta()
        extra = {"optimizer": self.optimizer.state_dict(), "rng_per_rank": rngs, "state_per_rank": states}
        if self.scaler is not None:
            extra["grad_scaler"] = self.scaler.state_dict()
        # best before last: a crash between the two leaves a best.pt newer than last.pt, which resume
        # accounts for (RunDirectory.best_score), rather than losing the best model
        if improved:
            save_checkpoint(checkpoint_path(self.run_dir, "best"), meta, self.model.state_dict(), extra)
        save_checkpoint(checkpoint_path(self.run_dir, "last"), meta, self.model.state_dict(), extra)
        self.directory.append_evaluation(record, sample, val_bpc)
        if writer:
            if val:
                writer.add_scalar("val/bits_per_char", val["bits_per_char"], self.step)
                writer.add_scalar("val/nats_per_char", val["nats_per_char"], self.step)
            writer.add_text("sample", "```\n" + sample + "\n```", self.step)
            writer.flush()
        bar.write(f"step {self.step:,}: val {val_bpc:.4f} bits/char{' (best)' if improved else ''}")
        return val_bpc

    def checkpoint_meta(self) -> dict:
        """The JSON part of a checkpoint."""
        return {
            "model": self.model_config.to_json(),
            "vocab": self.vocab.to_json(),
            "train": self.config.to_json(),
            "step": self.step,
            "best_val_bpc": self.best_val_bpc,
            "train_seconds": self.train_seconds,
            "history": self.history,
            "data_position": {
                "step_in_epoch": self.step % self.train_batches.steps_per_epoch,
                "epoch": self.step // self.train_batches.steps_per_epoch,
                "world": self.dist.world,
            },
            "corpus": {"name": self.corpus.name, "kind": self.corpus.kind, "chars": len(self.corpus)},
            "precision": self.precision.to_json(self.config.cell),  # what ran in which dtype
            "torch": torch.__version__,
        }

    def open_writer(self) -> Any:
        """A TensorBoard writer on the run directory."""
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.run_dir))

    def summary_table(self, result: TrainResult) -> Table:
        """The rich table shown at the end."""
        table = Table(title="charnn: training finished", show_header=False)  # a signal raises TrainingStopped instead
        table.add_column("what", style="bold")
        table.add_column("value")
        table.add_row("steps", f"{result.step:,} (stopped by {result.stopped_by})")
        table.add_row("best val", f"{result.best_val_bpc:.4f} bits/char" if result.best_val_bpc is not None else "-")
        table.add_row("time", f"{result.seconds / 60:.1f} min, {result.chars_per_second:,.0f} chars/s at the end")
        table.add_row(
            "checkpoints", f"{checkpoint_path(self.run_dir, 'best')}, {checkpoint_path(self.run_dir, 'last')}"
        )
        table.add_row("sample", f"python generate.py --run {self.run_dir} --length 500")
        table.add_row("tensorboard", f"tensorboard --logdir {self.run_dir}")
        return table


def train(config: TrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True) -> TrainResult:
    """Train a model as the config says; with resume, continue the run in config.out exactly."""
    trainer = Trainer(config, resume=resume, overwrite=overwrite, progress=progress)
    try:
        return trainer.run()
    finally:
        trainer.close()
