"""The precision policy: what a training step computes in which dtype, chosen from the request and the hardware.

Autocast alone is not a policy for a recurrent model: on CUDA, PyTorch's autocast wrapper for cuDNN's
recurrent layers casts their input, state and weights to float16 whatever dtype the region was given, so a
"bf16" region trained the LSTM in fp16, where small gradients flush to zero without loss scaling; on a CPU,
autocast covers the LSTM and the plain RNN but leaves the GRU in fp32. So autocast covers the embedding and
the decoder (the head), and the recurrent layers run outside it, in a dtype cast explicitly (CharRNN.forward's
recurrent_dtype): what the policy says is what runs, on every device and cell. The one exception is a CPU
whose autocast is seen to compute the cell in bf16 (`Hardware.bf16_autocast`): there the recurrence stays in
the region, as fast as an explicit cast or a little faster (docs/gpu.md), and it is never a CUDA policy.

| name | head (autocast) | recurrent layers | loss scaled |
|---|---|---|---|
| fp32 | fp32 | fp32 (TF32 in cuDNN where torch allows it) | no |
| bf16-head | bf16 | fp32 (TF32 on a GPU) | no |
| bf16 | bf16 | bf16 (oneDNN on a CPU with AVX-512; cuDNN 9.13+ on a GPU) | no |
| fp16 | fp16 | fp16 (CUDA only) | yes |

`choose_precision` is a pure function of the request and the hardware's facts (`Hardware`), so every branch
is tested on a CPU; charnn.device gathers the facts of a real device. docs/gpu.md says how the GPU check
measures the CUDA candidates and which one `auto` takes there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from charnn.errors import UsageError

PRECISIONS = ("auto", "fp32", "bf16", "bf16-head", "fp16")  # what --precision takes
# auto on a GPU with native bf16: the safe candidate, until the GPU check (scripts/gpu_check.py) measures
# the others against fp32's loss on a GPU and one is faster within 1% of it (docs/gpu.md)
CUDA_AUTO = "bf16-head"
DTYPES = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Hardware:
    """The facts about a device that decide its precision."""

    device_type: str  # cpu, cuda or mps
    name: str = ""  # what an error calls it, e.g. "NVIDIA T4 (compute capability 7.5)"
    native_bf16: bool = (
        False  # bf16 products in hardware: a GPU of compute capability 8.0+, a CPU with AVX-512 BF16 or AMX
    )
    bf16_recurrent: bool = False  # the cell's recurrent kernel computes in bf16 here (forward and backward)
    bf16_autocast: bool = (
        False  # a CPU's bf16 autocast runs the cell's kernel in bf16 (the LSTM's and the RNN's, not the GRU's)
    )


@dataclass(frozen=True)
class Precision:
    """What a training step computes in: recorded in the run's table and every checkpoint."""

    name: str  # fp32, bf16, bf16-head or fp16
    device_type: str
    head: str | None  # the autocast dtype of the embedding and the decoder, None for none (fp32)
    recurrent: str  # the dtype the recurrent layers compute in, outside autocast
    scaled: bool  # the loss is scaled (GradScaler): fp16's small gradients would flush to zero without it
    recurrent_in_autocast: bool = (
        False  # the recurrence runs inside the head's region (a CPU whose autocast computes it)
    )

    def __post_init__(self) -> None:
        if self.head not in (None, *DTYPES) or self.recurrent not in DTYPES:
            raise ValueError(f"unknown dtype in {self}")
        if "fp16" in (self.head, self.recurrent) and not self.scaled:
            raise ValueError(f"{self.name}: fp16 needs loss scaling")
        if self.recurrent_in_autocast and (self.device_type != "cpu" or self.head != self.recurrent):
            raise ValueError(f"{self.name}: only a CPU's autocast runs the recurrence in the dtype it was given")

    @property
    def recurrent_dtype(self) -> str | None:
        """What CharRNN.forward is given: the dtype to cast the recurrence to, or None to leave it in the region."""
        return None if self.recurrent_in_autocast else self.recurrent

    def describe(self, cell: str = "lstm") -> str:
        """What runs in which dtype, as a run's table and checkpoint say it: "LSTM fp32/TF32, embedding and decoder
        bf16"."""
        recurrent = "fp32/TF32" if self.device_type == "cuda" and self.recurrent == "fp32" else self.recurrent
        text = f"{cell.upper()} {recurrent}, embedding and decoder {self.head or 'fp32'}"
        return text + (", loss scaled" if self.scaled else "")

    def to_json(self, cell: str = "lstm") -> dict:
        return {**asdict(self), "describe": self.describe(cell)}


def policy(name: str, device_type: str, in_autocast: bool = False) -> Precision:
    """The policy a resolved name stands for on a device type (no hardware check: see choose_precision);
    in_autocast: a CPU's bf16 autocast computes the cell, so bf16's recurrence stays in the region."""
    if name not in PRECISIONS or name == "auto":
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, not {name!r}")
    head = {"fp32": None, "bf16-head": "bf16"}.get(name, name)
    recurrent = {"bf16-head": "fp32"}.get(name, name)
    return Precision(
        name,
        device_type,
        head,
        recurrent,
        scaled=name == "fp16",
        recurrent_in_autocast=in_autocast and name == "bf16" and device_type == "cpu",
    )


def choose_precision(
    requested: str, hardware: Hardware, cell: str = "lstm", advice: str = "use --precision fp32"
) -> Precision:
    """The policy for `--precision requested` on this hardware; a request it cannot honour is refused with one
    sentence ending in `advice` (what to give instead)."""
    kind = hardware.device_type
    if requested not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    if requested == "auto":
        if kind == "cuda":
            return policy(CUDA_AUTO if hardware.native_bf16 else "fp32", kind)
        if kind == "cpu" and hardware.native_bf16 and hardware.bf16_recurrent:
            return policy("bf16", kind, hardware.bf16_autocast)
        return policy("fp32", kind)
    if requested == "fp32":
        return policy("fp32", kind)
    if requested == "fp16":
        if kind != "cuda":
            raise UsageError(
                f"--precision fp16 needs a CUDA GPU (it scales the loss for fp16's range), not {kind}; {advice}"
            )
        return policy("fp16", kind)
    if kind not in ("cpu", "cuda"):
        raise UsageError(f"--precision {requested} is supported on cpu and cuda, not on {kind}; {advice}")
    if kind == "cuda" and not hardware.native_bf16:
        raise UsageError(
            f"--precision {requested}: {hardware.name} only emulates bf16, slower than fp32; native bf16 needs "
            f"compute capability 8.0 (Ampere) or newer; {advice}"
        )
    if requested == "bf16" and not hardware.bf16_recurrent:
        kernel = "cuDNN's" if kind == "cuda" else "PyTorch's"
        needs = "cuDNN 9.13 or newer and a torch that uses it" if kind == "cuda" else "AVX-512"
        raise UsageError(
            f"--precision bf16: {kernel} {cell.upper()} kernel cannot compute in bf16 here (it needs {needs}); "
            f"--precision bf16-head keeps the recurrence in fp32; {advice}"
        )
    return policy(requested, kind, hardware.bf16_autocast)


def grad_scaler(precision: Precision, device_type: str) -> Any:
    """A GradScaler where the policy scales the loss, else None (torch 2.3+ has torch.amp's; older,
    torch.cuda.amp's)."""
    if not precision.scaled:
        return None
    import torch

    if hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler(device_type)
    return torch.cuda.amp.GradScaler()
