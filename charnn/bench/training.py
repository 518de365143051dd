"""Training throughput: charnn's Trainer against a bare loop over the same model, policy and optimizer."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console

from charnn.bench.settings import BenchSettings, TrainShape
from charnn.bench.timing import flops_per_char, interleaved
from charnn.device import timed
from charnn.precision import Precision


# ----- training ----------------------------------------------------------------------------------
class BareLoop:
    """The baseline training loop: the trainer's model, precision policy and AdamW (like for like, so that the ratio
    is the trainer's own overhead) on random token batches; no data pipeline, carried state, clipping or tally."""

    def __init__(
        self,
        vocab: int,
        shape: TrainShape,
        precision: Precision,
        lr: float = 2e-3,
        seed: int = 0,
        device: torch.device = torch.device("cpu"),
    ):
        from charnn.device import autocast_for
        from charnn.model import ModelConfig, new_model
        from charnn.precision import grad_scaler
        from charnn.trainer import make_optimizer

        generator = torch.Generator().manual_seed(seed)
        self.precision = precision
        self.autocast = autocast_for(precision, device)
        self.model = new_model(
            ModelConfig(vocab, "lstm", shape.layers, shape.hidden, shape.embed, shape.dropout), device
        )
        self.optimizer = make_optimizer(self.model, lr, weight_decay=0.01)
        self.scaler = grad_scaler(precision, device.type)
        # a few pre-drawn batches, already on the device: drawing and copying them is not part of what is timed
        self.batches = [
            torch.randint(vocab, (shape.batch_size, shape.seq_len + 1), generator=generator, device="cpu").to(device)
            for _ in range(4)
        ]
        self.step_count = 0

    def step(self) -> None:
        chunk = self.batches[self.step_count % len(self.batches)]
        x, y = chunk[:, :-1], chunk[:, 1:]
        with self.autocast:
            logits, _ = self.model(x, None, self.precision.recurrent_dtype)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.step_count += 1


def make_trainer(
    shape: TrainShape, corpus: str, cache_dir: str, out: Path, precision: str = "auto", device: str = "cpu"
) -> Any:
    """charnn's real Trainer on a real corpus, with the shape's model and batches."""
    from charnn.trainer import TrainConfig, Trainer

    config = TrainConfig.of(
        corpus=corpus,
        out=str(out),
        cache_dir=cache_dir,
        layers=shape.layers,
        hidden=shape.hidden,
        embed=shape.embed,
        dropout=shape.dropout,
        batch_size=shape.batch_size,
        seq_len=shape.seq_len,
        max_steps=10**9,
        device=device,
        precision=precision,
    )
    return Trainer(config, progress=False, console=Console(stderr=True, quiet=True))


def measure_training(
    shape: TrainShape,
    steps: int,
    settings: BenchSettings,
    status: Callable[[str], None],
    device: torch.device = torch.device("cpu"),
) -> dict:
    """Trainer vs bare loop for one shape, interleaved: chars/s, their ratio and GFLOP/s (run_bench adds the share of
    the ceiling)."""
    chars_per_step = shape.batch_size * shape.seq_len
    with tempfile.TemporaryDirectory(prefix="charnn-bench-") as tmp:
        status(f"training {shape.name}: loading the {settings.corpus} corpus")
        trainer = make_trainer(
            shape, settings.corpus, settings.cache_dir, Path(tmp) / "run", settings.precision, str(device)
        )
        device = trainer.device
        try:
            vocab = trainer.vocab.size
            precision = trainer.precision
            torch.manual_seed(0)
            bare = BareLoop(vocab, shape, precision, device=device)
            for _ in range(settings.train_warmup_steps):
                trainer.train_step()
                bare.step()
            pairs = interleaved(
                lambda: steps * chars_per_step / timed(lambda: [trainer.train_step() for _ in range(steps)], device),
                lambda: steps * chars_per_step / timed(lambda: [bare.step() for _ in range(steps)], device),
                settings,
                status,
                f"training {shape.name} on {device.type}",
            )
        finally:
            trainer.close()
    flops = flops_per_char(shape.layers, shape.hidden, shape.embed, vocab)
    charnn_gflops = pairs["charnn"]["median"] * flops / 1e9
    bare_gflops = pairs["baseline"]["median"] * flops / 1e9
    return {
        "shape": asdict(shape),
        "name": shape.name,
        "vocab": vocab,
        "steps_per_repeat": steps,
        "chars_per_step": chars_per_step,
        "charnn_precision": precision.name,
        "charnn_precision_describe": precision.describe(),
        "charnn_chars_per_s": pairs["charnn"],
        "bare_chars_per_s": pairs["baseline"],
        "ratio": pairs["ratio"],
        "others_cpu_share_per_repeat": pairs["others_cpu_share_per_repeat"],
        "disturbed_pairs": pairs["disturbed_pairs"],
        "mflop_per_char": flops / 1e6,
        "charnn_gflops": charnn_gflops,
        "bare_gflops": bare_gflops,
    }
