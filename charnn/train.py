"""The training loop: truncated BPTT with a carried state, AdamW, warm-up + cosine decay, clipping,
periodic validation in bits per character, atomic best/last checkpoints, exact resume, TensorBoard,
tqdm, rich summaries, a NaN guard, SIGINT/SIGTERM handling and DDP when launched by torchrun.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import signal
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from charnn.atomic import atomic_write_bytes
from charnn.batches import DeviceBatches, StreamBatches
from charnn.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from charnn.corpus import Corpus, Vocab, load_corpus, parse_fractions
from charnn.device import (PRECISIONS, Distributed, autocast_for, deterministic_kernels, exact_fp32, pick_device, resolve_precision,
                           restore_rng, rng_snapshot, sum_dtype)
from charnn.errors import CharnnError, UsageError
from charnn.model import CharRNN, FastStepper, ModelConfig, State, detach_state, new_model, next_ids

LN2 = math.log(2)
MODEL_FLAGS = ("cell", "layers", "hidden", "embed", "dropout")
MAX_SEED = 2**32 - 1
MAX_SAMPLE_CHARS = 100_000  # preview text per evaluation
MAX_PARAMETERS = 1_000_000_000  # ~16 GB with AdamW's state: far beyond any char-RNN, and a typo guard
GATES = {"lstm": 4, "gru": 3, "rnn": 1}


@dataclass
class TrainConfig:
    """Everything a run is made of; saved as config.json and inside every checkpoint."""

    corpus: str = "stdlib"
    out: str = "runs/stdlib"
    ext: list[str] | None = None
    text_field: str | None = None
    errors: str = "strict"
    tweet_format: str = "auto"
    task_sequences: int = 20000
    task_seed: int = 0
    shuffle_files: int | None = None
    split: str = "0.9,0.05,0.05"
    cell: str = "lstm"
    layers: int = 2
    hidden: int = 256
    embed: int = 64
    dropout: float = 0.1
    seq_len: int = 128
    batch_size: int = 64
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 50
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    max_steps: int = 1000
    decay_steps: int | None = None  # the cosine horizon; None means max_steps
    max_minutes: float | None = None
    epochs: float | None = None
    eval_every: int = 200
    eval_chars: int = 250_000
    sample_chars: int = 300
    log_every: int = 10
    seed: int = 1337
    carry_state: bool = True  # False resets the state every step (for experiments: shows what the carry buys)
    deterministic: bool = False  # deterministic GPU kernels: a run on one GPU repeats itself bit for bit, slower
    device: str = "auto"
    precision: str = "auto"  # auto, fp32 or bf16 (autocast); a run records the precision it resolved to
    cache_dir: str = "runs/.cache"

    def validate(self) -> None:
        """Reject values outside what is allowed, naming the flag."""
        positive_ints = ("layers", "hidden", "embed", "seq_len", "batch_size", "max_steps", "eval_every", "log_every", "task_sequences")
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise UsageError(f"--{flag(name)} must be a whole number >= 1, not {value!r}")
        for name in ("warmup_steps", "eval_chars", "sample_chars"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{flag(name)} must be >= 0, not {getattr(self, name)!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UsageError(f"--lr must be a positive number, not {self.lr!r}")
        if not 0 <= self.dropout < 1:
            raise UsageError(f"--dropout must be in [0, 1), not {self.dropout!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise UsageError(f"--min-lr-ratio must be in [0, 1], not {self.min_lr_ratio!r}")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise UsageError(f"--weight-decay must be a finite number >= 0, not {self.weight_decay!r}")
        if not self.grad_clip > 0:
            raise UsageError(f"--grad-clip must be > 0, not {self.grad_clip!r}")
        if self.decay_steps is not None and (not isinstance(self.decay_steps, int) or self.decay_steps < 1):
            raise UsageError(f"--decay-steps must be a whole number >= 1, not {self.decay_steps!r}")
        if self.max_minutes is not None and not (math.isfinite(self.max_minutes) and self.max_minutes > 0):
            raise UsageError(f"--max-minutes must be a finite number > 0, not {self.max_minutes!r}")
        if self.epochs is not None and not (math.isfinite(self.epochs) and self.epochs > 0):
            raise UsageError(f"--epochs must be a finite number > 0, not {self.epochs!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"--seed must be a whole number from 0 to {MAX_SEED}, not {self.seed!r}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.sample_chars > MAX_SAMPLE_CHARS:
            raise UsageError(f"--sample-chars must be at most {MAX_SAMPLE_CHARS:,}, not {self.sample_chars!r}")
        parse_fractions(self.split)
        ModelConfig(vocab_size=2, cell=self.cell, layers=self.layers, hidden=self.hidden, embed=self.embed, dropout=self.dropout)
        gates = GATES[self.cell] * self.hidden
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


def flag(name: str) -> str:
    """The command-line spelling of a config field."""
    return name.replace("_", "-")


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up to --lr, then cosine decay to lr × min-lr-ratio at max-steps."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    span = max((config.decay_steps or config.max_steps) - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    floor = config.lr * config.min_lr_ratio
    return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * progress))


class RunLock:
    """An exclusive lock on a run directory, so two trainings never write into one run."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"
        self.handle = None

    def __enter__(self) -> RunLock:
        try:
            self.handle = open(self.path, "a+")  # not "w": that would erase the holder's pid before we know we hold it
        except OSError as err:
            raise CharnnError(f"cannot lock run directory '{self.path.parent}' ({err.strerror or err})") from None
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            self.handle = None
            raise CharnnError(f"another charnn process is training into '{self.path.parent}'; wait for it or choose another --out") from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


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


FUSED_ADAMW_DEVICES = ("cpu", "cuda", "mps")


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, fused into one kernel per step where this torch has it for the device (CPU from torch 2.4):
    the same update to float tolerance, with less per-step overhead (docs/benchmarks.md)."""
    options = dict(lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.99))
    if next(model.parameters()).device.type not in FUSED_ADAMW_DEVICES:  # elsewhere fused=True fails only at the first step
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
    return load_corpus(
        config.corpus, ext=config.ext, text_field=config.text_field, errors=config.errors,
        tweet_format=config.tweet_format, task_sequences=config.task_sequences, task_seed=config.task_seed,
        shuffle_files=config.shuffle_files, cache_dir=config.cache_dir, progress=progress,
    )


@torch.no_grad()
@exact_fp32()
def evaluate(model: CharRNN, batches: StreamBatches, device: torch.device, max_chars: int | None = None) -> dict:
    """Nats and bits per character over (a prefix of) a split, on its own streams and its own state."""
    was_training = model.training
    model.eval()
    state = None
    total_nats = torch.zeros((), dtype=sum_dtype(device), device=device)
    total_chars = 0
    steps = batches.steps_per_epoch
    if max_chars:
        steps = max(1, min(steps, max_chars // batches.chars_per_step))
    for step in range(steps):
        x, y = batches.batch(step)
        x, y = x.to(device), y.to(device)
        logits, state = model(x, state)
        total_nats += F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum")
        total_chars += y.numel()
    model.train(was_training)
    nats = total_nats.item() / total_chars  # the one wait for the device
    return {"nats_per_char": nats, "bits_per_char": nats / LN2, "chars": total_chars}


@torch.no_grad()
@exact_fp32()
def evaluate_ids(model: CharRNN, ids: torch.Tensor, device: torch.device, chunk: int = 4096, progress: bool = False) -> dict:
    """Nats and bits per character of a whole text (ids (N,)) read as one stream, state carried across chunks."""
    model.eval()
    state = None
    total_nats = torch.zeros((), dtype=sum_dtype(device), device=device)
    targets = len(ids) - 1
    with tqdm(total=targets, desc="evaluating", unit="char", unit_scale=True, disable=not progress, leave=False) as bar:
        for start in range(0, targets, chunk):
            stop = min(start + chunk, targets)
            x = ids[start:stop].unsqueeze(0).to(device)
            y = ids[start + 1 : stop + 1].unsqueeze(0).to(device)
            logits, state = model(x, state)
            total_nats += F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum")
            bar.update(stop - start)
    nats = total_nats.item() / max(targets, 1)
    return {"nats_per_char": nats, "bits_per_char": nats / LN2, "chars": targets}


@torch.no_grad()
@exact_fp32()
def preview_sample(model: CharRNN, vocab: Vocab, length: int, seed: int, temperature: float = 0.8) -> str:
    """A short sample from the model, on the model's device (its own generator: the training RNG is not touched)."""
    if length <= 0:
        return ""
    was_training = model.training
    model.eval()
    device = model.decoder.weight.device
    stepper = FastStepper(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    state = model.init_state(1)
    newline = vocab.chars.index("\n") if "\n" in vocab.chars else 0
    ids = torch.full((1,), newline, dtype=torch.long, device=device)
    out = torch.empty(length, dtype=torch.long, device=device)  # read once at the end, not once per character
    for position in range(length):
        logits, state = stepper.step(ids, state)
        ids = next_ids(logits, temperature, None, None, generator, banned=vocab.unknown_id)
        out[position] = ids[0]
    model.train(was_training)
    return vocab.decode(out.tolist())


@dataclass
class TallyReading:
    """What a block of training steps left in the tally, read on the host."""

    steps: int
    mean_loss: float
    grad_norm: float  # the last step's
    failed_step: int | None  # the first step (from 1) whose loss or gradient norm was not finite
    failed_loss: float
    failed_norm: float

    @property
    def failed(self) -> bool:
        return self.failed_step is not None

    def failure_text(self) -> str:
        loss, norm = self.failed_loss, self.failed_norm
        if math.isfinite(loss):
            return f"the gradient norm became {'NaN' if math.isnan(norm) else 'infinite'} at step {self.failed_step:,} (loss {loss:.4g})"
        return f"the loss became {'NaN' if math.isnan(loss) else 'infinite'} at step {self.failed_step:,} (gradient norm {norm})"


class StepTally:
    """Running sums of the training loss kept on the device, so that a step never waits for it; `read`
    (one copy to the host) gives the block's mean and the first step that was not finite."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        zero = lambda: torch.zeros((), device=self.device)  # noqa: E731
        self.loss_sum, self.last_norm = zero(), zero()
        self.failed_step = torch.zeros((), dtype=torch.int64, device=self.device)  # 0: none yet
        self.failed_values = torch.zeros(2, device=self.device)
        self.steps = 0

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor, step: int) -> None:
        """Count one step (numbered from 1): its loss and gradient norm, 0-dim tensors on the device."""
        grad_norm = grad_norm.float()
        self.loss_sum += loss
        self.last_norm = grad_norm
        first_failure = ~(torch.isfinite(loss) & torch.isfinite(grad_norm)) & (self.failed_step == 0)
        self.failed_step = torch.where(first_failure, step, self.failed_step)
        self.failed_values = torch.where(first_failure, torch.stack([loss, grad_norm]), self.failed_values)
        self.steps += 1

    def read(self) -> TallyReading:
        """The block so far (one copy from the device), then a fresh block."""
        exact = sum_dtype(self.device)  # float64 holds any step number exactly
        values = torch.cat([torch.stack([self.loss_sum, self.last_norm]), self.failed_values]).to(exact)
        loss_sum, norm, failed_loss, failed_norm, failed_step = torch.cat([values, self.failed_step.to(exact).reshape(1)]).tolist()
        reading = TallyReading(self.steps, loss_sum / max(self.steps, 1), norm, int(failed_step) or None, failed_loss, failed_norm)
        self.reset()
        return reading


class Trainer:
    """One training run: set up from a config (fresh or resumed), then `run()`."""

    def __init__(self, config: TrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True,
                 console: Console | None = None):
        config.validate()
        self.config = config
        self.resume = resume
        self.progress = progress
        self.console = console or Console(stderr=True)
        self.run_dir = Path(config.out)
        self.lock: RunLock | None = None
        self.settings = ExitStack()  # process-wide torch settings this run changes, restored by close()
        try:
            self.set_up(resume, overwrite)
        except BaseException:
            self.close()
            raise

    def set_up(self, resume: bool, overwrite: bool) -> None:
        """Device, process group, run directory, corpus, batches, model, optimizer; then the resumed state."""
        config = self.config
        self.device = pick_device(config.device)
        self.dist = Distributed.from_environment(self.device)
        # before any work; saved resolved, so that a resume computes the same way
        config.precision = resolve_precision(config.precision, self.device, config.cell, config.out if resume else None)
        self.settings.enter_context(deterministic_kernels(config.deterministic))
        self.dist.on_main(lambda: self.check_run_dir(resume, overwrite))
        torch.manual_seed(config.seed + self.dist.rank)  # every device's generator
        self.corpus = load_training_corpus(config, self.progress and self.dist.is_main)
        self.vocab = self.corpus.vocab
        splits = self.corpus.splits(parse_fractions(config.split))
        self.train_batches = StreamBatches(
            splits["train"], config.batch_size, config.seq_len, first_stream=self.dist.rank * config.batch_size,
            total_streams=config.batch_size * self.dist.world, split_name="train",
        )
        self.train_feed = DeviceBatches(self.train_batches, self.device)  # the same batches, made on the device
        self.val_batches = eval_batches(splits["val"], config.batch_size, config.seq_len, self.device)
        self.model_config = ModelConfig(self.vocab.size, config.cell, config.layers, config.hidden, config.embed, config.dropout)
        try:
            self.model = new_model(self.model_config, self.device)
        except (RuntimeError, MemoryError) as err:
            if "memory" not in str(err).lower() and not isinstance(err, MemoryError):
                raise
            raise CharnnError(f"not enough memory on {self.device} for a {config.layers} × {config.hidden} {config.cell.upper()}; lower --hidden or --layers") from None
        self.optimizer = make_optimizer(self.model, config)
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
            self.best_val_bpc = self.best_on_disk()
            self.rewrite_metrics()
        self.ddp_model = self.wrap_distributed()
        self.autocast = autocast_for(config.precision, self.device)

    # ----- set-up -------------------------------------------------------------------------
    def check_run_dir(self, resume: bool, overwrite: bool) -> None:
        """Lock the run directory; refuse one that holds another run, unless resuming or overwriting (rank 0 only)."""
        if self.run_dir.is_dir():
            self.lock = RunLock(self.run_dir).__enter__()
        has_run = any((self.run_dir / name).exists() for name in ("config.json", "last.pt", "best.pt"))
        if resume:
            if not has_run:
                raise CharnnError(f"--resume: '{self.run_dir}' holds no run to resume (no last.pt or config.json)")
            if not checkpoint_path(self.run_dir, "last").is_file():
                self.console.print(f"[yellow]note:[/] '{self.run_dir}' stopped before its first checkpoint (no last.pt); starting it again from step 0")
        elif has_run and not overwrite:
            raise CharnnError(f"'{self.run_dir}' already holds a run; pass --resume to continue it, --overwrite to replace it, or choose another --out")
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CharnnError(f"cannot create run directory '{self.run_dir}': {err.strerror}") from None
        if self.lock is None:
            self.lock = RunLock(self.run_dir).__enter__()
        for temp in self.run_dir.glob(".*.tmp"):  # left by a killed run; we hold the lock, so no writer is alive
            temp.unlink(missing_ok=True)
        if overwrite and not resume:
            for name in ("best.pt", "last.pt", "metrics.jsonl", "samples.txt", "config.json"):
                (self.run_dir / name).unlink(missing_ok=True)
            for events in self.run_dir.glob("events.out.tfevents.*"):
                events.unlink()

    def load_resume_state(self) -> None:
        """Restore weights, optimizer, step, carried state, RNG and metrics from last.pt."""
        checkpoint = load_checkpoint(checkpoint_path(self.run_dir, "last"))
        if checkpoint.vocab != self.vocab:
            raise CharnnError(f"--resume: the corpus '{self.config.corpus}' gives a different vocabulary from the one '{self.run_dir}' was trained on")
        if checkpoint.model_config != self.model_config:
            saved = checkpoint.model_config
            diff = [f"--{flag(n)} {getattr(saved, n)} (saved) vs {getattr(self.model_config, n)}" for n in MODEL_FLAGS if getattr(saved, n) != getattr(self.model_config, n)]
            raise CharnnError(f"--resume: flags contradict the saved model: {'; '.join(diff)}")
        extra = checkpoint.extra
        meta = checkpoint.meta
        try:  # shapes of the weights were checked on loading; the rest of a damaged file must not crash later
            self.model.load_state_dict(checkpoint.model_state)
            self.optimizer.load_state_dict(extra["optimizer"])
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
                saved = rngs[self.dist.rank]  # {"cpu": ..., "cuda": ...}; runs before the GPU work saved the CPU's alone
                restore_rng(saved if isinstance(saved, dict) else {"cpu": saved}, self.device)
            states = extra.get("state_per_rank", [])
            saved_world = int(meta.get("data_position", {}).get("world", len(states) or 1))
            if saved_world != self.dist.world:  # rank r's streams are not the streams rank r carried then
                if self.dist.is_main:
                    self.console.print(f"[yellow]note:[/] '{self.run_dir}' was trained by {saved_world} process(es), this run has "
                                       f"{self.dist.world}: the streams are cut differently, so they start from a zero state")
            elif self.dist.rank < len(states) and states[self.dist.rank]:
                state = tuple(s.to(self.device) for s in states[self.dist.rank])
                expected = (self.config.layers, self.config.batch_size, self.config.hidden)
                if len(state) == len(self.model.init_state(1)) and all(tuple(s.shape) == expected for s in state):
                    self.state = state
                elif self.dist.is_main:  # e.g. --batch-size changed: the streams are cut differently now
                    self.console.print("[yellow]note:[/] the saved carried state does not fit this --batch-size; the streams start from a zero state")
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
            raise CharnnError(f"--resume: '{checkpoint.path}' is damaged and cannot be resumed ({first})") from None
        self.saved_step = self.step
        self.best_val_bpc = self.best_on_disk()
        self.rewrite_metrics()

    def best_on_disk(self) -> float | None:
        """The score best.pt was saved with; None when there is no readable best.pt (the next evaluation writes one).

        best.pt is written before last.pt, so after a crash between the two it can be newer than last.pt;
        its own score, not the one last.pt remembers, is what a new best has to beat.
        """
        path = checkpoint_path(self.run_dir, "best")
        if not path.is_file():
            return None
        try:
            value = load_checkpoint(path).meta.get("best_val_bpc")
        except CharnnError:
            return None
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    def rewrite_metrics(self) -> None:
        """metrics.jsonl as the resumed history says: drops records after last.pt and a line cut by a crash (rank 0)."""
        def write() -> None:
            lines = "".join(json.dumps(record) + "\n" for record in self.history)
            try:
                atomic_write_bytes(self.run_dir / "metrics.jsonl", lines.encode())
            except OSError as err:
                raise CharnnError(f"cannot write '{self.run_dir / 'metrics.jsonl'}' ({err.strerror or err})") from None

        self.dist.on_main(write)

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
        splits = self.corpus.split_bounds(parse_fractions(cfg.split))
        table.add_row("corpus", f"{self.corpus.name} ({self.corpus.kind}, {len(self.corpus):,} chars, {self.corpus.documents:,} documents)")
        table.add_row("splits", " / ".join(f"{n} {b - a:,}" for n, (a, b) in zip(("train", "val", "test"), splits)))
        table.add_row("vocabulary", f"{len(self.vocab.chars)} characters")
        table.add_row("model", f"{cfg.layers} × {cfg.hidden} {cfg.cell.upper()}, embed {cfg.embed}, dropout {cfg.dropout}: {self.model.num_parameters():,} parameters")
        table.add_row("batches", f"{cfg.batch_size * self.dist.world} streams × {cfg.seq_len} chars; {self.train_batches.steps_per_epoch:,} steps per epoch")
        table.add_row("schedule", f"{cfg.max_steps:,} steps" + (f" or {cfg.max_minutes:g} min" if cfg.max_minutes else "") + f", AdamW lr {cfg.lr:g}, warm-up {cfg.warmup_steps}, cosine to ×{cfg.min_lr_ratio:g}")
        table.add_row("device", f"{self.device}" + (f" × {self.dist.world} processes (DDP)" if self.dist.active else "") + f", {torch.get_num_threads()} threads, {cfg.precision}" + (" autocast" if cfg.precision == "bf16" else ""))
        table.add_row("run", f"{self.run_dir}" + (f" (resuming at step {self.step:,})" if self.resume else ""))
        return table

    def warn_about_setup(self) -> None:
        """char-rnn's friendly warnings: too few batches, a model much larger than its data."""
        steps = self.train_batches.steps_per_epoch
        if steps < 10:
            self.console.print(f"[yellow]warning:[/] the train split gives only {steps} steps per epoch; each epoch repeats the same few batches (lower --batch-size or --seq-len)")
        train_chars = len(self.train_batches.ids)
        params = self.model.num_parameters()
        if params > 10 * train_chars:
            self.console.print(f"[yellow]warning:[/] the model has {params:,} parameters for {train_chars:,} training characters: it will memorise; use a smaller --hidden or more data")
        if self.val_batches is None:
            self.console.print("[yellow]warning:[/] no validation split large enough for one batch: best.pt tracks training loss only")

    # ----- the loop -----------------------------------------------------------------------
    def plan_steps(self) -> int:
        """The step to stop at: --max-steps, or fewer when --epochs is given."""
        limit = self.config.max_steps
        if self.config.epochs is not None:
            limit = min(limit, max(1, math.ceil(self.config.epochs * self.train_batches.steps_per_epoch)))
        return limit

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
            logits, state = self.ddp_model(x, self.state)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        # the carried state is kept in fp32 (autocast hands it back in bf16)
        self.state = tuple(s.float() for s in detach_state(state)) if self.config.carry_state else None
        self.step += 1
        loss, grad_norm = loss.detach(), grad_norm.detach()
        self.tally.add(loss, grad_norm, self.step)
        return loss, grad_norm

    def run(self) -> TrainResult:
        """Train until max-steps, epochs, max-minutes or a signal; returns the result."""
        cfg = self.config
        main = self.dist.is_main
        if main:
            self.console.print(self.start_table())
            self.warn_about_setup()
        self.dist.on_main(self.write_config)
        writer = self.dist.on_main(self.open_writer)
        target = self.plan_steps()
        chars_per_step = self.train_batches.chars_per_step * self.dist.world
        started = time.monotonic()
        deadline = started + cfg.max_minutes * 60 if cfg.max_minutes else None
        stopped_by = "max-steps" if target == cfg.max_steps else "epochs"
        last_val = None
        recent_start = time.monotonic()
        chars_per_second = 0.0
        bar = tqdm(total=target, initial=min(self.step, target), desc="training", unit="step", disable=not (self.progress and main), dynamic_ncols=True)
        try:
            with StopRequested() as stop:
                while self.step < target:
                    self.train_step()
                    bar.update(1)
                    wants_to_stop = stop.signal is not None or (deadline is not None and time.monotonic() > deadline)
                    due = self.step % cfg.log_every == 0 or self.step % cfg.eval_every == 0 or self.step == target
                    if not (due or (wants_to_stop and not self.dist.active)):
                        continue  # under DDP a stop is decided together, at the next block's end
                    # the one wait for the device per block of steps, and the one collective that decides for all ranks
                    reading = self.tally.read()
                    signalled, out_of_time, failed = self.dist.any(
                        stop.signal is not None, deadline is not None and time.monotonic() > deadline, reading.failed)
                    if failed:
                        raise self.dist.everyone(self.numeric_failure(
                            reading.failure_text() if reading.failed else "the loss or the gradient became NaN or infinite in another process"))
                    now = time.monotonic()
                    chars_per_second = reading.steps * chars_per_step / max(now - recent_start, 1e-9)
                    recent_start = now
                    bar.set_postfix(loss=f"{reading.mean_loss:.3f}", val_bpc=f"{last_val:.3f}" if last_val else "-", chars_s=f"{chars_per_second:,.0f}", refresh=False)
                    if writer:
                        writer.add_scalar("train/loss_nats", reading.mean_loss, self.step)
                        writer.add_scalar("train/bits_per_char", reading.mean_loss / LN2, self.step)
                        writer.add_scalar("train/learning_rate", learning_rate(cfg, self.step - 1), self.step)
                        writer.add_scalar("train/grad_norm", reading.grad_norm, self.step)
                        writer.add_scalar("train/chars_per_second", chars_per_second, self.step)
                    self.last_train_loss = reading.mean_loss
                    if self.step % cfg.eval_every == 0 or self.step == target or signalled or out_of_time:
                        self.train_seconds += time.monotonic() - started
                        started = time.monotonic()
                        last_val = self.evaluate_and_save(writer, bar)
                        recent_start = time.monotonic()  # chars/s counts training, not evaluation
                    if signalled:
                        name = signal.Signals(stop.signal).name if stop.signal else "a signal to another process"
                        raise self.dist.everyone(TrainingStopped(
                            f"stopped by {name} at step {self.step:,}; '{checkpoint_path(self.run_dir, 'last')}' is saved; "
                            f"continue with: python train.py --out {self.run_dir} --resume", stop.signal or signal.SIGTERM,
                        ))
                    if out_of_time:
                        stopped_by = "max-minutes"
                        break
        finally:
            bar.close()
            if writer:
                writer.close()
        result = TrainResult(self.run_dir, self.step, self.best_val_bpc, last_val, self.train_seconds, chars_per_second, stopped_by, self.history)
        if main:
            self.console.print(self.summary_table(result))
        self.dist.close()
        return result

    def close(self) -> None:
        """Release the run directory and restore the torch settings the run changed."""
        if self.lock is not None:
            self.lock.__exit__(None, None, None)
            self.lock = None
        self.settings.close()

    def numeric_failure(self, what: str) -> CharnnError:
        """The error that stops a run whose numbers blew up; it says which checkpoint is left and what to do."""
        last = checkpoint_path(self.run_dir, "last")
        if self.saved_step is not None:
            kept = f"'{last}' keeps the last good state (step {self.saved_step:,}); lower --lr (now {self.config.lr:g}) or --grad-clip and continue with --resume, or start again with --overwrite"
        else:
            kept = f"no checkpoint had been saved yet; lower --lr (now {self.config.lr:g}) or --grad-clip and start again with --resume or --overwrite"
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
        val_bpc = self.dist.on_main(lambda: self.save_evaluated(writer, bar, [r for r, _ in ranks], [s for _, s in ranks]))
        self.saved_step = self.step  # on every rank: each names it if the run fails later
        return val_bpc

    def save_evaluated(self, writer: Any, bar: tqdm, rngs: list[dict], states: list[list[torch.Tensor]]) -> float | None:
        """evaluate_and_save's work on rank 0."""
        cfg = self.config
        val = evaluate(self.model, self.val_batches, self.device, cfg.eval_chars) if self.val_batches else None
        val_bpc = val["bits_per_char"] if val else (self.last_train_loss or float("nan")) / LN2
        broken = [name for name, param in self.model.named_parameters() if not torch.isfinite(param).all()]
        if broken:  # never save weights that cannot be used; last.pt stays the last good state
            raise self.numeric_failure(f"the weights became NaN or infinite by step {self.step:,} ({broken[0]})")
        if val and not math.isfinite(val_bpc):
            raise self.numeric_failure(f"the validation loss became {val_bpc} at step {self.step:,}")
        sample = preview_sample(self.model, self.vocab, cfg.sample_chars, seed=cfg.seed + self.step)
        record = {"step": self.step, "time": round(self.train_seconds, 2), "train_loss_nats": self.last_train_loss,
                  "val_bits_per_char": val["bits_per_char"] if val else None, "val_nats_per_char": val["nats_per_char"] if val else None,
                  "lr": learning_rate(cfg, max(self.step - 1, 0))}
        self.history.append(record)
        improved = (self.best_val_bpc is None or not math.isfinite(self.best_val_bpc)
                    or (math.isfinite(val_bpc) and val_bpc < self.best_val_bpc))
        if improved:
            self.best_val_bpc = val_bpc
        meta = self.checkpoint_meta()
        extra = {"optimizer": self.optimizer.state_dict(), "rng_per_rank": rngs, "state_per_rank": states}
        # best before last: a crash between the two leaves a best.pt newer than last.pt, which resume
        # accounts for (best_on_disk), rather than losing the best model
        if improved:
            save_checkpoint(checkpoint_path(self.run_dir, "best"), meta, self.model.state_dict(), extra)
        save_checkpoint(checkpoint_path(self.run_dir, "last"), meta, self.model.state_dict(), extra)
        try:
            with open(self.run_dir / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            with open(self.run_dir / "samples.txt", "a", encoding="utf-8") as handle:
                handle.write(f"=== step {self.step} (val bpc {val_bpc:.4f}) ===\n{sample}\n\n")
        except OSError as err:
            raise CharnnError(
                f"could not write to '{self.run_dir}' ({err.strerror or err}); the checkpoints of step {self.step:,} are saved; "
                f"make room and continue with: python train.py --out {self.run_dir} --resume"
            ) from None
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
            "data_position": {"step_in_epoch": self.step % self.train_batches.steps_per_epoch,
                              "epoch": self.step // self.train_batches.steps_per_epoch,
                              "world": self.dist.world},
            "corpus": {"name": self.corpus.name, "kind": self.corpus.kind, "chars": len(self.corpus)},
            "torch": torch.__version__,
        }

    def write_config(self) -> None:
        """config.json in the run directory, written atomically."""
        data = {"train": self.config.to_json(), "model": self.model_config.to_json(), "vocab_size": self.vocab.size}
        try:
            atomic_write_bytes(self.run_dir / "config.json", json.dumps(data, indent=2).encode())
        except OSError as err:
            raise CharnnError(f"cannot write '{self.run_dir / 'config.json'}' ({err.strerror or err})") from None

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
        table.add_row("checkpoints", f"{checkpoint_path(self.run_dir, 'best')}, {checkpoint_path(self.run_dir, 'last')}")
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
