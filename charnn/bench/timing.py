"""The bench's measuring: statistics of interleaved repeats, the machine and the other processes on it, FLOPs
and the matrix-multiply ceiling."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from charnn.bench.settings import DISTURBED_SHARE, BenchSettings
from charnn.device import timed


# ----- statistics --------------------------------------------------------------------------------
def spread(values: Sequence[float]) -> dict:
    """Median, min and max of repeated measurements (and the values themselves)."""
    if not values:
        raise ValueError("no measurements")
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": list(values)}


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> dict:
    """Spread of the paired ratios of interleaved repeats."""
    return spread([a / b for a, b in zip(numerators, denominators)])


# ----- machine -----------------------------------------------------------------------------------
def machine_info() -> dict:
    """CPU model and flags, cores, threads, torch/oneDNN versions, load average."""
    model, flags, ids = None, set(), {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model is None:
                model = value.strip()
            elif key in ("cpu family", "model") and key not in ids:
                ids[key] = value.strip()  # e.g. AMD family 26 is Zen 5
            elif key == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    model = model or platform.processor() or "unknown"
    onednn = next(
        (line.split("v", 1)[1].split()[0] for line in torch.__config__.show().splitlines() if "MKL-DNN v" in line), None
    )
    return {
        "cpu": model,
        "cpu_family": ids.get("cpu family"),
        "cpu_model": ids.get("model"),
        "cores": os.cpu_count(),
        "avx512": "avx512f" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "amx": any(f.startswith("amx") for f in flags),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onednn": onednn,
        "cuda": torch.cuda.is_available(),
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
    }


class CpuWatch:
    """How much of the machine's CPU time other processes took while a part of the benchmark ran.

    Busy time of all CPUs (/proc/stat) minus this process's own and its children's, over wall time × cores:
    0 is a quiet machine; 0.5 on 2 cores means another process held a whole core.
    """

    def __init__(self) -> None:
        self.start = self.snapshot()

    @staticmethod
    def snapshot() -> tuple[float, float, float] | None:
        try:
            with open("/proc/stat") as handle:
                values = [int(v) for v in handle.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        busy = (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
        own = os.times()
        return time.monotonic(), busy, own.user + own.system + own.children_user + own.children_system

    def others_share(self) -> float | None:
        """Fraction of all cores other processes kept busy since this watch started (None where /proc is missing)."""
        end = self.snapshot()
        if end is None or self.start is None:
            return None
        wall = end[0] - self.start[0]
        others = (end[1] - self.start[1]) - (end[2] - self.start[2])
        return min(max(others / max(wall * (os.cpu_count() or 1), 1e-9), 0.0), 1.0)


def wait_for_quiet(max_seconds: float, threshold: float = 0.10, window: float = 2.0) -> float | None:
    """Wait (at most max_seconds) until other processes use under `threshold` of the CPUs for a `window`; their last
    share."""
    deadline = time.monotonic() + max_seconds
    while True:
        watch = CpuWatch()
        time.sleep(window)
        share = watch.others_share()
        if share is None or share < threshold or time.monotonic() >= deadline:
            return share


def interleaved(
    charnn: Callable[[], float],
    baseline: Callable[[], float],
    settings: BenchSettings,
    status: Callable[[str], None],
    label: str,
) -> dict:
    """charnn's and the baseline's rates measured back to back, in alternating order, settings.repeats times.

    Each pair shares the machine's noise, so their ratio is steadier than either rate. With
    settings.wait_quiet each pair first waits for the other processes to calm down, and a pair they
    disturbed anyway (over DISTURBED_SHARE of the CPUs) is measured again, up to 3 × repeats pairs in
    all; the set-aside pairs stay in the result under "disturbed_pairs".
    """
    kept: list[tuple[float, float, float | None]] = []
    set_aside: list[tuple[float, float, float | None]] = []
    attempts_left = settings.repeats * (3 if settings.wait_quiet else 1)
    while len(kept) < settings.repeats:
        attempts_left -= 1
        if settings.wait_quiet:
            status(f"{label}: waiting for a quiet machine")
            wait_for_quiet(settings.wait_quiet)
        watch = CpuWatch()
        rates = {}
        first_charnn = (len(kept) + len(set_aside)) % 2 == 0
        for who in ("charnn", "baseline") if first_charnn else ("baseline", "charnn"):
            status(f"{label}: repeat {len(kept) + 1}/{settings.repeats}, {who}")
            rates[who] = (charnn if who == "charnn" else baseline)()
        share = watch.others_share()
        pair = (rates["charnn"], rates["baseline"], share)
        disturbed = bool(settings.wait_quiet) and share is not None and share >= DISTURBED_SHARE
        # set a disturbed pair aside only while enough attempts remain to replace it
        (set_aside if disturbed and attempts_left >= settings.repeats - len(kept) else kept).append(pair)
    charnn_rates, baseline_rates, shares = (list(column) for column in zip(*kept))
    return {
        "charnn": spread(charnn_rates),
        "baseline": spread(baseline_rates),
        "ratio": ratios(charnn_rates, baseline_rates),
        "others_cpu_share_per_repeat": shares,
        "disturbed_pairs": [{"charnn": a, "baseline": b, "others_cpu_share": c} for a, b, c in set_aside],
    }


# ----- FLOPs and the matmul ceiling --------------------------------------------------------------
def flops_per_char(layers: int, hidden: int, embed: int, vocab: int, gates: int = 4, training: bool = True) -> float:
    """Matrix-multiply FLOPs per character of a recurrent stack and its decoder.

    A layer with input width I computes its G·H gate pre-activations (G = 4 for an LSTM) from
    [x, h]: G·H·(I + H) multiply-adds = 2·G·H·(I + H) FLOPs. Layer 0 has I = embed, the others I = H.
    The decoder adds 2·H·V; the embedding is a lookup (0). Elementwise gate work is O(H) and left out.
    Training ≈ 3 × forward: backward computes gradients for both the inputs and the weights.
    """
    forward = sum(2 * gates * hidden * ((embed if layer == 0 else hidden) + hidden) for layer in range(layers))
    forward += 2 * hidden * vocab
    return forward * (3 if training else 1)


MATMUL_KINDS = ("mkl", "onednn", "bf16")  # torch.mm fp32, a oneDNN linear fp32, torch.mm bf16


def matmul_runners(shape: tuple[int, int, int]) -> dict[str, Callable[[], Any]]:
    """One (M, K) @ (K, N) product per kind; a kind this torch build cannot run is left out.

    torch.mm goes to MKL, which on AMD CPUs does not reach what the hardware can do; nn.LSTM runs on
    oneDNN, so the fp32 ceiling is the better of the two.
    """
    m, k, n = shape
    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    runners: dict[str, Callable[[], Any]] = {"mkl": lambda: torch.mm(a, b, out=out)}
    if torch.backends.mkldnn.is_available():
        a_onednn, weight_onednn, bias_onednn = a.to_mkldnn(), b.T.contiguous().to_mkldnn(), torch.zeros(n).to_mkldnn()
        runners["onednn"] = lambda: torch._C._nn.mkldnn_linear(a_onednn, weight_onednn, bias_onednn)
    a_bf16, b_bf16 = a.bfloat16(), b.bfloat16()
    runners["bf16"] = lambda: torch.mm(a_bf16, b_bf16)
    return runners


@torch.no_grad()
def measure_matmul(shape: tuple[int, int, int], calls: int, repeats: int, wait_quiet: float = 0.0) -> dict:
    """GFLOP/s of (M, K) @ (K, N) with this process's threads, per kind (see matmul_runners)."""
    m, k, n = shape
    runners = matmul_runners(shape)
    for run in runners.values():
        for _ in range(3):
            run()
    rates: dict[str, list[float]] = {kind: [] for kind in runners}
    for _ in range(repeats):
        if wait_quiet:
            wait_for_quiet(wait_quiet)
        for kind, run in runners.items():
            rates[kind].append(2 * m * k * n * calls / timed(lambda: [run() for _ in range(calls)]) / 1e9)
    return {"shape": f"{m}×{k} @ {k}×{n}", "gflops": {kind: spread(values) for kind, values in rates.items()}}
