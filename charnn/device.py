"""Where and how a model computes: the device (CUDA, MPS or the CPU), the facts that choose its precision
policy (charnn.precision), and the process group when torchrun launched several processes.

Every stage that runs a model (train, sample, eval, probe, bench) asks this module, so none of them has to
import the trainer to find its device.
"""

from __future__ import annotations

import functools
import inspect
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import torch

from charnn.errors import CharnnError, UsageError, is_out_of_memory
from charnn.precision import Hardware, Precision, choose_precision

T = TypeVar("T")
DETERMINISTIC_WORKSPACES = (":4096:8", ":16:8")  # the CUBLAS_WORKSPACE_CONFIG values cuBLAS is deterministic with


def torchrun_ranks() -> tuple[int, int, int]:
    """(world size, local rank, processes on this machine) as torchrun set them; (1, 0, 1) when not launched by it."""

    def number(name: str, default: int) -> int:
        try:
            return int(os.environ.get(name, default))
        except ValueError:
            return default

    world = number("WORLD_SIZE", 1)
    return world, number("LOCAL_RANK", 0), number("LOCAL_WORLD_SIZE", world)


def pick_device(requested: str) -> torch.device:
    """auto → cuda, then mps, then cpu; an explicit device that is not there is a clear error.

    Under torchrun (WORLD_SIZE > 1) a CUDA process takes the GPU of its LOCAL_RANK, whatever it asked for:
    `--device cuda:0` would put every rank on one GPU, so an explicit index is refused there."""
    if requested == "auto":
        if torch.cuda.is_available():
            return cuda_device(None, requested)
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(requested)
    except RuntimeError:
        raise UsageError(f"--device must be auto, cpu, cuda, cuda:N or mps, not '{requested}'") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {requested}: no CUDA GPU is available here; use --device cpu or auto")
        return cuda_device(device.index, requested)
    if device.type == "mps" and not mps_available():
        raise UsageError(f"--device {requested}: MPS is not available here; use --device cpu or auto")
    if device.type not in ("cpu", "mps"):
        raise UsageError(f"--device must be auto, cpu, cuda, cuda:N or mps, not '{requested}'")
    return device


def mps_available() -> bool:
    """Whether Apple's Metal backend is there."""
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def cuda_device(index: int | None, requested: str) -> torch.device:
    """The CUDA device for `--device requested` (index None: not given), checked against the GPUs there are."""
    count = torch.cuda.device_count()
    world, local_rank, local_world = torchrun_ranks()
    if world > 1:
        if index is not None:
            raise UsageError(
                f"--device {requested}: under torchrun every process takes the GPU of its LOCAL_RANK; "
                f"give --device cuda or auto"
            )
        if local_rank >= count:
            raise CharnnError(
                f"torchrun started {local_world} processes on this machine, but it has {count} CUDA GPU(s); "
                f"use --nproc_per_node {count} or fewer"
            )
        return torch.device("cuda", local_rank)
    if index is None:
        return torch.device("cuda", torch.cuda.current_device())
    if index >= count:
        raise UsageError(f"--device {requested}: only {count} CUDA device(s) are available")
    return torch.device("cuda", index)


def cpu_has_fast_bf16() -> bool:
    """True when this CPU computes bf16 matrix products in hardware (AVX-512 BF16 or AMX)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


@functools.cache
def runs_bf16(cell: str, device: torch.device = torch.device("cpu")) -> bool:
    """Whether PyTorch's kernel for `cell` computes in bf16 on device, forward and backward: a one-unit layer is
    tried, since what fails is the kernel, not the shape. The oneDNN LSTM kernel has no bf16 path on a CPU
    without AVX-512 (an AVX2-only EPYC raises "could not create a primitive descriptor"); cuDNN has one from
    9.13, where torch uses it, and older ones refuse bf16 or fall back to kernels without it."""
    try:
        with torch.device("cpu"):  # made on the CPU whatever torch's default device is, then moved
            module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](1, 1)
        module = module.to(device, torch.bfloat16)
        out, _ = module(torch.zeros(1, 1, 1, device=device, dtype=torch.bfloat16))
        out.float().sum().backward()
        synchronize(device)
    except RuntimeError:
        return False
    return out.dtype == torch.bfloat16


@functools.cache
def cpu_autocast_runs_bf16(cell: str) -> bool:
    """Whether a CPU's bf16 autocast computes `cell` in bf16 (it does the LSTM and the RNN, and leaves the GRU in
    fp32)."""
    try:
        with torch.device("cpu"), torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn": torch.nn.RNN}[cell](1, 1)
            out, _ = module(torch.zeros(1, 1, 1))
        out.float().sum().backward()
    except RuntimeError:
        return False
    return out.dtype == torch.bfloat16


def hardware(device: torch.device, cell: str = "lstm") -> Hardware:
    """The facts about device that decide its training precision (charnn.precision.choose_precision)."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        native = cuda_has_native_bf16(device)
        return Hardware(
            "cuda",
            f"{torch.cuda.get_device_name(device)} (compute capability {major}.{minor})",
            native,
            native and runs_bf16(cell, device),
        )
    if device.type == "cpu":
        return Hardware("cpu", "this CPU", cpu_has_fast_bf16(), runs_bf16(cell, device), cpu_autocast_runs_bf16(cell))
    return Hardware(device.type, device.type)


def resolve_precision(
    requested: str, device: torch.device, cell: str = "lstm", resuming: str | None = None
) -> Precision:
    """The precision policy of `--precision requested` on device (charnn.precision): auto takes bf16 on a CPU with
    AVX-512 BF16 or AMX (faster training there, docs/results/benchmarks.md), the safe CUDA candidate on a GPU of
    compute capability 8.0+, else fp32. A request the device cannot honour is refused here, before any work;
    `resuming` (the run directory of a --resume) makes the advice name the way to continue that run."""
    advice = (
        f"'{resuming}' trained in {requested}: continue it in fp32 with --resume --precision fp32"
        if resuming
        else "use --precision fp32 or auto"
    )
    return choose_precision(requested, hardware(device, cell), cell, advice)


def cuda_has_native_bf16(device: torch.device) -> bool:
    """Whether a GPU computes bf16 in hardware (compute capability 8.0, Ampere, or newer).
    torch.cuda.is_bf16_supported() is also True on older GPUs, which emulate it more slowly than fp32."""
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def sum_dtype(device: torch.device | str) -> torch.dtype:
    """The dtype to add up many losses in on a device: float64, except on MPS, which has none."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def autocast_for(precision: Precision, device: torch.device) -> Any:
    """The autocast region of a precision policy around a forward pass (weights, optimizer and checkpoints stay
    fp32)."""
    if precision.head is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if precision.head == "bf16" else torch.float16)


@contextmanager
def exact_fp32() -> Iterator[None]:
    """Compute fp32 in full fp32 inside the block, also on CUDA, then restore the settings.

    cuDNN runs nn.LSTM/GRU/RNN in TF32 by default on Ampere and newer, the hand-written steps (sampling's
    FastStepper, the probe's Recurrence) use plain matmuls, which PyTorch keeps in fp32: without this,
    sampled text would change where generation switches from one to the other, and the probe's recorded
    states would differ from the predictions computed beside them. Sampling, evaluation and probing all
    run inside it; training may use TF32, which is no less precise than its bf16 autocast.
    No effect on a CPU, which never computes fp32 in TF32. Usable as a decorator."""
    switches = tf32_switches()
    saved = [getattr(owner, name) for owner, name, _ in switches]
    for owner, name, exact in switches:
        setattr(owner, name, exact)
    try:
        yield
    finally:
        for (owner, name, _), value in zip(switches, saved):
            setattr(owner, name, value)


def tf32_switches() -> list[tuple[Any, str, Any]]:
    """(owner, attribute, value for full fp32) of each switch that lets CUDA compute fp32 in TF32: the
    per-backend fp32_precision of newer torch (mixing it with the older allow_tf32 flags is an error there)."""
    cudnn_rnn = getattr(torch.backends.cudnn, "rnn", None)
    if cudnn_rnn is not None and hasattr(cudnn_rnn, "fp32_precision"):
        return [(cudnn_rnn, "fp32_precision", "ieee"), (torch.backends.cuda.matmul, "fp32_precision", "ieee")]
    return [(torch.backends.cudnn, "allow_tf32", False), (torch.backends.cuda.matmul, "allow_tf32", False)]


@contextmanager
def deterministic_kernels(enabled: bool, cuda: bool = False) -> Iterator[None]:
    """With enabled, the block runs deterministic kernels only (cuDNN without benchmark-chosen algorithms,
    cuBLAS with a fixed workspace, PyTorch's deterministic ops; ops that have none warn), so that a run on
    one GPU repeats itself bit for bit; then the settings are restored. Without it, cuDNN picks the
    fastest algorithm per shape (cudnn.benchmark), which can differ between runs.

    cuBLAS reads CUBLAS_WORKSPACE_CONFIG once, when it makes its handle, so the block must be entered before
    the run's first CUDA work; `cuda`: the run may use a GPU. A process that used CUDA before the variable was
    set would not be deterministic there, so that is refused; once set in a process that uses CUDA, it stays
    set (the handle keeps it anyway)."""
    saved = (
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if enabled:
        if cuda and workspace not in DETERMINISTIC_WORKSPACES and torch.cuda.is_initialized():
            raise CharnnError(
                "--deterministic: this process used CUDA before charnn could set CUBLAS_WORKSPACE_CONFIG, which "
                "cuBLAS reads once, so its products would not repeat; start Python with "
                "CUBLAS_WORKSPACE_CONFIG=:4096:8 in the environment, or train in a fresh process"
            )
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", DETERMINISTIC_WORKSPACES[0])
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True  # only CUDA reads it
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[0], saved[1]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])
        if workspace is None and not torch.cuda.is_initialized():
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


@contextmanager
def memory_guard(device: torch.device, stage: str, lower: str) -> Iterator[None]:
    """Running out of memory inside the block becomes one sentence: the stage (e.g. "training"), the device, and
    what to lower (e.g. "--batch-size (now 64)"). Nothing is saved from a stage that ran out."""
    try:
        yield
    except (RuntimeError, MemoryError) as err:
        if not is_out_of_memory(err):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()  # what the failed stage held, so that the caller can go on
        where = "the CPU" if device.type == "cpu" else str(device)
        raise CharnnError(f"{where} ran out of memory while {stage}; lower {lower}") from None


def rng_snapshot(device: torch.device) -> dict[str, torch.Tensor]:
    """The random-number states a training step draws from: the CPU's, and the GPU's on CUDA (dropout there)."""
    states = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_rng(states: dict[str, torch.Tensor], device: torch.device) -> None:
    """Put back what rng_snapshot saved (a GPU state only on CUDA; a run saved on one continues on the other)."""
    torch.set_rng_state(states["cpu"])
    if device.type == "cuda" and states.get("cuda") is not None:
        torch.cuda.set_rng_state(states["cuda"], device)


@dataclass
class Distributed:
    """Who this process is when launched by torchrun (rank 0 of 1 otherwise).

    Every collective here is entered by every rank at the same point of the loop, and everything only
    rank 0 does (the run directory, evaluation, checkpoints) goes through `on_main`, which tells every
    rank whether it failed: a rank never waits for a collective that another rank will not reach.
    """

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))  # where collectives' tensors live
    active: bool = False  # in a process group: every collective below runs (else each is a no-op)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: torch.device, timeout_minutes: float) -> Distributed:
        """Join the process group when torchrun started this process (NCCL for CUDA, which reduces only CUDA
        tensors, gloo otherwise); one process alone joins it too, so that a one-GPU machine runs the collectives.
        timeout_minutes (--dist-timeout): how long a rank waits in a collective for the others (rank 0 alone encoding
        a corpus or evaluating a large split) before the group gives up on them; NCCL's own default is 10."""
        world, _, _ = torchrun_ranks()
        if world <= 1 and "TORCHELASTIC_RUN_ID" not in os.environ:
            return cls()
        import torch.distributed as dist

        nccl = device.type == "cuda"
        options: dict[str, Any] = {"backend": "nccl" if nccl else "gloo", "timeout": timedelta(minutes=timeout_minutes)}
        if nccl:
            torch.cuda.set_device(device)  # before the group: NCCL binds each rank to its current device
            if "device_id" in inspect.signature(dist.init_process_group).parameters:  # torch 2.3+
                options["device_id"] = device  # the group knows its GPU at once: no guessing in barrier()
        if not dist.is_initialized():
            dist.init_process_group(**options)
        return cls(
            rank=dist.get_rank(),
            world=dist.get_world_size(),
            device=device if nccl else torch.device("cpu"),
            active=True,
        )

    def gather(self, value: Any) -> list[Any]:
        """Every rank's value, in rank order (a one-element list without DDP)."""
        if not self.active:
            return [value]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, value)
        return out

    def any(self, *flags: bool) -> tuple[bool, ...]:
        """Each flag, true on every rank when it is true on any rank: one all-reduce for all of them
        (so that every rank stops, evaluates or fails at the same step)."""
        if not self.active:
            return tuple(bool(f) for f in flags)
        import torch.distributed as dist

        tensor = torch.tensor([1.0 if f else 0.0 for f in flags], device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tuple(value > 0 for value in tensor.tolist())

    def on_main(self, work: Callable[[], T]) -> T | None:
        """Run work on rank 0 only (None elsewhere); if it fails there, every rank raises the same error,
        instead of the others waiting at the next collective until the process group times out."""
        if not self.active:
            return work()
        import torch.distributed as dist

        result, failure, outcome = None, None, [None]
        if self.is_main:
            try:
                result = work()
            except Exception as err:  # noqa: BLE001 - every rank must hear of it; rank 0 re-raises it below
                failure = err
                outcome = [(str(err), getattr(err, "exit_code", 1), isinstance(err, CharnnError))]
        dist.broadcast_object_list(outcome, src=0)
        if failure is not None:
            if isinstance(failure, CharnnError):
                failure.every_rank = True
            raise failure
        if outcome[0] is not None:
            message, exit_code, is_charnn = outcome[0]
            error = CharnnError(message if is_charnn else f"rank 0 failed: {message}")
            error.exit_code, error.every_rank = exit_code, True
            raise error
        return result

    def from_main(self, work: Callable[[], T]) -> T:
        """Run work on rank 0 and hand its result to every rank (work's result must pickle), so that a decision
        made from rank 0's measurements is the same decision everywhere."""
        result = self.on_main(work)
        if not self.active:
            return result
        import torch.distributed as dist

        shared = [result]
        dist.broadcast_object_list(shared, src=0)
        return shared[0]

    def everyone(self, error: CharnnError) -> CharnnError:
        """error, marked as one that every rank raises at this point (decided by a collective), so that the
        command line may wait for all of them to say it before exiting."""
        error.every_rank = self.active
        return error

    def barrier(self) -> None:
        """Wait for every rank (on NCCL, on this rank's GPU)."""
        if self.active:
            barrier()

    def close(self) -> None:
        if self.active:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def barrier() -> None:
    """dist.barrier() on the group this process joined; on NCCL with this rank's GPU named, as it asks to be."""
    import torch.distributed as dist

    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def timed(fn: Callable[[], Any], device: torch.device = torch.device("cpu")) -> float:
    """Seconds one call of fn takes, including the work it left queued on a GPU."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def synchronize(device: torch.device) -> None:
    """Wait for what was queued on device (a GPU runs asynchronously; a CPU has nothing to wait for)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
