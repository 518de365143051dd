"""Where and how a model computes: the device (CUDA, MPS or the CPU), the precision (bf16 autocast where the
hardware computes it natively, else fp32) and the process group when torchrun launched several processes.

Every stage that runs a model (train, sample, eval, probe, bench) asks this module, so none of them has to
import the trainer to find its device.
"""

from __future__ import annotations

import functools
import os
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

from charnn.errors import UsageError

PRECISIONS = ("auto", "fp32", "bf16")


def pick_device(requested: str) -> torch.device:
    """auto → cuda, then mps, then cpu; an explicit device that is not there is a clear error."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise UsageError(f"--device must be auto, cpu, cuda, cuda:N or mps, not '{requested}'") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {requested}: no CUDA GPU is available here; use --device cpu or auto")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"--device {requested}: only {torch.cuda.device_count()} CUDA device(s) are available")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError(f"--device {requested}: MPS is not available here; use --device cpu or auto")
    if device.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device must be auto, cpu, cuda, cuda:N or mps, not '{requested}'")
    return device


def cpu_has_fast_bf16() -> bool:
    """True when this CPU computes bf16 matrix products in hardware (AVX-512 BF16 or AMX)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


@functools.cache
def cpu_runs_bf16(cell: str) -> bool:
    """Whether PyTorch's CPU kernel for `cell` runs under bf16 autocast here. The oneDNN LSTM kernel has
    no bf16 path on a CPU without AVX-512 (an AVX2-only EPYC raises "could not create a primitive
    descriptor"); a one-unit layer is tried, since what fails is the kernel, not the shape."""
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](1, 1)
    try:
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            out, _ = module(torch.zeros(1, 1, 1))
        out.float().sum().backward()
    except RuntimeError:
        return False
    return True


def resolve_precision(requested: str, device: torch.device, cell: str = "lstm", resuming: str | None = None) -> str:
    """auto → bf16 where the hardware computes it natively (a CUDA GPU that supports it, a CPU with
    AVX-512 BF16 or AMX: 1.6–2× faster training on such a CPU, see docs/benchmarks.md), else fp32.
    An explicit bf16 that this CPU's kernels cannot run for `cell` is refused here, before any work;
    `resuming` (the run directory of a --resume) makes the advice name the way to continue that run."""
    if requested == "bf16" and device.type not in ("cpu", "cuda"):
        raise UsageError(f"--precision bf16 is supported on cpu and cuda, not on {device.type}; use --precision fp32")
    if requested == "bf16" and device.type == "cpu" and not cpu_runs_bf16(cell):
        advice = (f"'{resuming}' trained in bf16: continue it in fp32 with --resume --precision fp32" if resuming
                  else "use --precision fp32, which auto picks here")
        raise UsageError(f"--precision bf16: PyTorch's {cell.upper()} kernel cannot compute in bf16 on this CPU; {advice}")
    if requested != "auto":
        return requested
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_has_fast_bf16() and cpu_runs_bf16(cell) else "fp32"
    return "fp32"


def autocast_for(precision: str, device: torch.device) -> Any:
    """The autocast context of a resolved precision (weights, optimizer and checkpoints stay fp32)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


@dataclass
class Distributed:
    """Who this process is when launched by torchrun (rank 0 of 1 otherwise)."""

    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: torch.device) -> Distributed:
        """Join the process group when torchrun set WORLD_SIZE > 1."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return cls(rank=dist.get_rank(), world=dist.get_world_size())

    def gather(self, value: Any) -> list[Any]:
        """Every rank's value, in rank order (a one-element list without DDP)."""
        if not self.active:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def any(self, flag_value: bool) -> bool:
        """True on every rank when it is true on any rank (keeps ranks stopping at the same step)."""
        if not self.active:
            return flag_value
        import torch.distributed as dist

        tensor = torch.tensor([1.0 if flag_value else 0.0])
        dist.all_reduce(tensor)
        return bool(tensor.item() > 0)

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.active:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
