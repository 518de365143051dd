"""What charnn bench measures and how much of it: the sections, the shapes, the repeats (no torch here, so the
command line can offer the flags without loading it). charnn.bench measures; charnn.bench.command is the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SECTIONS = ("train", "sample", "encode", "quality", "cuda")
SAMPLE_VOCAB = tuple(sorted("\n\t" + "".join(chr(c) for c in range(32, 127))))  # 97 characters, like code
MB = 1e6
DISTURBED_SHARE = 0.10  # other processes above this share of the CPUs mark a figure as disturbed


# ----- settings ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainShape:
    """One training configuration to measure."""

    layers: int
    hidden: int
    batch_size: int
    seq_len: int
    embed: int = 64
    dropout: float = 0.1

    @property
    def name(self) -> str:
        return f"{self.layers}×{self.hidden}"


@dataclass
class BenchSettings:
    """How much of everything to measure; --quick and the tests shrink it."""

    repeats: int = 5
    train_shapes: tuple[TrainShape, ...] = (TrainShape(2, 128, 50, 50), TrainShape(3, 512, 50, 100))
    train_steps: tuple[int, ...] = (40, 8)  # timed steps per repeat, one per shape
    train_warmup_steps: int = 3
    matmul_shape: tuple[int, int, int] = (5000, 512, 2048)  # (M, K, N): the input projection of a whole sequence
    matmul_calls: int = 20
    sample_layers: int = 3
    sample_hidden: int = 512
    sample_chars: int = 2000  # single stream
    sample_streams: int = 64
    sample_steps_batched: int = 300  # characters per stream with sample_streams streams
    divergence_run: str | None = None  # the trained run bf16 sampling is compared on; None: the newest under runs/
    runs_dir: str = "runs"
    encode_sizes_mb: tuple[float, float] = (50, 200)
    encode_repeats: int = 2
    encode_file: str | None = None  # a large text file to encode instead of the repeated stdlib
    corpus: str = "stdlib"
    cache_dir: str = "runs/.cache"
    budget_minutes: float = 10.0
    quality_corpus: str = "stdlib"  # a text file, or a corpus charnn builds itself (stdlib, task:NAME)
    quality_out: str = "runs/bench-quality"
    quality_overrides: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None
    cuda_train_shapes: tuple[TrainShape, ...] = (TrainShape(2, 256, 64, 128), TrainShape(3, 512, 64, 100))
    cuda_train_steps: tuple[int, ...] = (40, 20)
    wait_quiet: float = 0.0  # seconds each repeat may wait for other processes to leave the CPUs alone
    precision: str = "auto"  # the trainer's --precision; the bare loop computes in whatever it resolves to

    @classmethod
    def quick(cls, **changes: Any) -> BenchSettings:
        """About a minute: fewer repeats, fewer steps and characters, smaller files."""
        values = dict(
            repeats=3,
            train_steps=(15, 2),
            train_warmup_steps=2,
            matmul_calls=8,
            sample_chars=300,
            sample_steps_batched=60,
            encode_sizes_mb=(20, 50),
            encode_repeats=1,
        )
        values.update(changes)
        return cls(**values)


def recommended_cpu_config(corpus: str, out: str, cache_dir: str, minutes: float = 10.0) -> Any:
    """The quality run's settings: the recipe charnn train picks for a budget of `minutes` on a CPU."""
    from charnn.config import merge_train_config

    # a time budget alone: charnn train takes that budget's recipe (docs/results/benchmarks.md, "Recipes")
    given = dict(corpus=corpus, out=out, cache_dir=cache_dir, split="0.9,0.1", eval_chars=0, sample_chars=200)
    return merge_train_config({**given, "device": "cpu", "max_minutes": minutes})
