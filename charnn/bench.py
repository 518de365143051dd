"""charnn bench: throughput and quality, each beside a baseline measured in the same run.

The machine is shared and noisy, so every figure is the median of several repeats with its min and
max, and every comparison is the ratio within pairs of runs taken back to back (charnn then the
baseline, then the other way round, ...), so both halves of a pair share the same disturbance.

Sections:
- matmul: this machine's fp32 matrix-multiply ceiling (GFLOP/s), a large GEMM through both of torch's
  CPU libraries: ``torch.mm`` (MKL) and a oneDNN linear layer (what nn.LSTM runs on); bf16 for reference.
- train: charnn's real ``Trainer.train_step`` (data pipeline, learning-rate schedule, clipping, NaN
  check, carried state) on the stdlib corpus vs a bare loop over the same model, precision policy and fused
  AdamW on random token batches of the same shape; FLOPs per character and the fraction of the ceiling.
- sample: ``charnn.sample.generate`` (FastStepper) vs nn.LSTM called once per character.
- encode: ``load_corpus`` on a large file, in a subprocess so its peak RSS is its own, at two sizes
  (RSS must not grow with the size), vs a whole-file numpy encoder.
- quality (``--quality``): best val loss on tinyshakespeare after a fixed wall-clock budget.
- cuda (where a CUDA GPU is present, on by default there): the train and sample measurements again on the
  GPU, with the shapes recommended for a GPU, so one command tells a GPU user where they stand.

What to measure is charnn.bench_settings, the flags and the command are charnn.bench_command; this module
measures and tabulates, one section after another (it is long because there are six of them).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from charnn.bench_settings import (
    DISTURBED_SHARE,
    LINUX_FULL_MIN_BYTES,
    MB,
    NANOGPT_CPU_NATS,
    REPO_ROOT,
    SAMPLE_VOCAB,
    SECTIONS,
    SHARED_CORPORA,
    BenchSettings,
    TrainShape,
    recommended_cpu_config,
)
from charnn.config import recipe_label, recipe_named
from charnn.device import timed
from charnn.errors import CharnnError, UsageError
from charnn.precision import Precision


# ----- statistics --------------------------------------------------------------------------------
def spread(values: Sequence[float]) -> dict:
    """Median, min and max of repeated measurements (and the values themselves)."""
    if not values:
        raise ValueError("no measurements")
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": list(values)}


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> dict:
    """Spread of the paired ratios of interleaved repeats."""
    return spread([a / b for a, b in zip(numerators, denominators)])


def goal(what: str, value: float | None, threshold: float, higher_is_better: bool = True, text: str = "") -> dict:
    """A goal, its threshold and whether the measured value meets it."""
    met = None if value is None else (value >= threshold if higher_is_better else value <= threshold)
    return {
        "what": what,
        "value": value,
        "threshold": threshold,
        "higher_is_better": higher_is_better,
        "text": text or (f"≥ {threshold:g}" if higher_is_better else f"≤ {threshold:g}"),
        "met": met,
    }


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


# ----- sampling ----------------------------------------------------------------------------------
def sample_model(
    layers: int, hidden: int, vocab_size: int, seed: int = 0, device: torch.device = torch.device("cpu")
) -> Any:
    """A randomly initialised CharRNN in eval mode (speed does not depend on the weights)."""
    from charnn.model import ModelConfig, new_model

    torch.manual_seed(seed)
    return new_model(
        ModelConfig(vocab_size=vocab_size, layers=layers, hidden=hidden, embed=64, dropout=0.0), device
    ).eval()


@torch.no_grad()
def naive_sample(model: Any, streams: int, length: int, seed: int = 0, temperature: float = 1.0) -> list[list[int]]:
    """The baseline sampler: nn.LSTM called once per character, then decoder, softmax and multinomial."""
    device = model.decoder.weight.device
    generator = torch.Generator(device=device).manual_seed(seed)
    ids = torch.zeros(streams, dtype=torch.long, device=device)
    state = None
    out: list[list[int]] = []
    for _ in range(length):
        hidden, state = model.rnn(model.embedding(ids[:, None]), state)  # (B, 1, H)
        logits = model.decoder(hidden[:, -1])  # (B, V)
        ids = torch.multinomial(torch.softmax(logits / temperature, dim=1), 1, generator=generator).squeeze(1)
        out.append(ids.tolist())
    return out


def charnn_sample(
    model: Any, vocab: Any, streams: int, length: int, seed: int = 0, precision: str = "fp32"
) -> list[str]:
    """charnn's sampler, as `charnn generate` runs it."""
    from charnn.sample import SampleOptions, generate

    return generate(
        model,
        vocab,
        SampleOptions(length=length, temperature=1.0, seed=seed, num_samples=streams, echo=False, precision=precision),
    )


def has_fast_bf16(device: torch.device) -> bool:
    """Whether `generate --precision bf16` runs on this device (hardware bf16)."""
    from charnn.device import cpu_has_fast_bf16, cuda_has_native_bf16

    return cpu_has_fast_bf16() if device.type == "cpu" else device.type == "cuda" and cuda_has_native_bf16(device)


@torch.no_grad()
def bf16_divergence(model: Any, streams: int = 64, steps: int = 200, seed: int = 0) -> dict:
    """How far bf16 sampling's next-character distributions are from fp32's: both steps from the same fp32 state
    along a trajectory sampled in fp32 (temperature 1); KL(fp32 || bf16) in nats per step, and how often the most
    likely character is the same."""
    from charnn.model import FastStepper

    exact, approximate = FastStepper(model), FastStepper(model, torch.bfloat16)
    device = model.decoder.weight.device
    generator = torch.Generator(device=device).manual_seed(seed)
    state = model.init_state(streams, device)
    ids = torch.zeros(streams, dtype=torch.long, device=device)
    kls, same = [], []
    for _ in range(steps):
        logits, next_state = exact.step(ids, state)
        other, _ = approximate.step(ids, state)
        log_p, log_q = torch.log_softmax(logits, 1), torch.log_softmax(other, 1)
        kls.append((log_p.exp() * (log_p - log_q)).sum(1))
        same.append(logits.argmax(1) == other.argmax(1))
        state = next_state
        ids = torch.multinomial(log_p.exp(), 1, generator=generator).squeeze(1)
    kl = torch.cat(kls)
    return {
        "streams": streams,
        "steps": steps,
        "mean_kl_nats": float(kl.mean()),
        "max_kl_nats": float(kl.max()),
        "same_argmax_share": float(torch.cat(same).float().mean()),
    }


def measure_sampling(
    settings: BenchSettings, status: Callable[[str], None], device: torch.device = torch.device("cpu")
) -> dict:
    """generate() vs the one-step nn.LSTM loop, with 1 stream and with many, interleaved."""
    from charnn.corpus import Vocab

    vocab = Vocab(SAMPLE_VOCAB)
    model = sample_model(settings.sample_layers, settings.sample_hidden, vocab.size, device=device)
    result: dict[str, Any] = {"model": f"{settings.sample_layers}×{settings.sample_hidden}", "vocab": vocab.size}
    for label, streams, length in (
        ("single", 1, settings.sample_chars),
        ("batched", settings.sample_streams, settings.sample_steps_batched),
    ):
        charnn_sample(model, vocab, streams, 5)  # warm-up
        naive_sample(model, streams, 5)
        pairs = interleaved(
            lambda: streams * length / timed(lambda: charnn_sample(model, vocab, streams, length), device),
            lambda: streams * length / timed(lambda: naive_sample(model, streams, length), device),
            settings,
            status,
            f"sampling {streams} stream(s) on {device.type}",
        )
        result[label] = {
            "streams": streams,
            "chars_per_stream": length,
            "charnn_chars_per_s": pairs["charnn"],
            "naive_chars_per_s": pairs["baseline"],
            "ratio": pairs["ratio"],
            "others_cpu_share_per_repeat": pairs["others_cpu_share_per_repeat"],
            "disturbed_pairs": pairs["disturbed_pairs"],
        }
        if has_fast_bf16(device):  # generate --precision bf16 beside fp32, interleaved the same way
            charnn_sample(model, vocab, streams, 5, precision="bf16")
            pairs = interleaved(
                lambda: (
                    streams
                    * length
                    / timed(lambda: charnn_sample(model, vocab, streams, length, precision="bf16"), device)
                ),
                lambda: streams * length / timed(lambda: charnn_sample(model, vocab, streams, length), device),
                settings,
                status,
                f"sampling {streams} stream(s) in bf16 on {device.type}",
            )
            result[label]["bf16"] = {
                "charnn_chars_per_s": pairs["charnn"],
                "fp32_chars_per_s": pairs["baseline"],
                "ratio": pairs["ratio"],
                "others_cpu_share_per_repeat": pairs["others_cpu_share_per_repeat"],
                "disturbed_pairs": pairs["disturbed_pairs"],
            }
    if device.type == "cuda":  # each wait for the GPU stalls the queue of kernels: the sampler reads ids in blocks
        for label, streams in (("single", 1), ("batched", settings.sample_streams)):
            syncs = host_syncs(lambda: charnn_sample(model, vocab, streams, settings.sample_steps_batched))
            result[label]["host_syncs_per_char"] = syncs / settings.sample_steps_batched
    if has_fast_bf16(device):
        trained, source = divergence_model(settings, device)
        result["bf16_divergence"] = {
            **bf16_divergence(model if trained is None else trained, settings.sample_streams),
            "model": source,
        }
    return result


def host_syncs(work: Callable[[], Any]) -> int:
    """How many times work made the host wait for the GPU (CUDA's sync debug mode warns once per wait)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            work()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchronizing" in str(warning.message) for warning in caught)


def divergence_model(settings: BenchSettings, device: torch.device) -> tuple[Any, str]:
    """The trained model bf16 sampling is compared on (--divergence-run, else the newest run), and what it is;
    (None, why) when there is none: an untrained model's near-uniform distributions would understate the divergence."""
    from charnn.sample import resolve_checkpoint

    try:
        checkpoint = resolve_checkpoint(settings.divergence_run, runs_dir=settings.runs_dir)
    except CharnnError:
        if settings.divergence_run:
            raise
        return None, (
            f"random {settings.sample_layers}×{settings.sample_hidden} weights (no trained run under "
            f"{settings.runs_dir}/; --divergence-run RUN gives the real figure)"
        )
    model = checkpoint.build_model(device).eval()
    config = model.config
    return model, f"{checkpoint.path} ({config.layers}×{config.hidden} {config.cell.upper()}, trained)"


# ----- encoding ----------------------------------------------------------------------------------
# Run in a fresh interpreter that never imports torch, so its peak RSS is the encoder's own.
# Peak RSS is VmHWM, the high-water mark of this process's own memory: ru_maxrss would also count the
# parent's memory, which the child shares between fork and exec.
ENCODE_CHILD = r"""
import json, resource, sys, time
mode, path, cache = sys.argv[1:4]

def peak_rss_kb():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

import numpy as np
if mode == "charnn":
    from charnn.corpus import load_corpus
before = peak_rss_kb()
start = time.perf_counter()
if mode == "charnn":
    chars = len(load_corpus(path, cache_dir=cache, progress=False))
else:
    # the naive whole-file encoder: read everything, byte-level vocabulary, one lookup, np.save
    data = np.frombuffer(open(path, "rb").read(), dtype=np.uint8)
    present = np.flatnonzero(np.bincount(data, minlength=256))
    table = np.zeros(256, dtype=np.uint8)
    table[present] = np.arange(len(present), dtype=np.uint8)
    np.save(cache + "/naive.npy", table[data])
    chars = len(data)
seconds = time.perf_counter() - start
peak = peak_rss_kb()
print(json.dumps({"seconds": seconds, "chars": chars, "rss_after_imports_kb": before, "peak_rss_kb": peak}))
"""


def run_encoder(mode: str, path: Path, scratch: Path) -> dict:
    """Encode path in a subprocess (mode 'charnn' or 'naive'); its seconds, MB/s and peak RSS in MB."""
    cache = scratch / f"cache-{mode}"
    cache.mkdir(exist_ok=True)
    try:
        done = subprocess.run(
            [sys.executable, "-c", ENCODE_CHILD, mode, str(path), str(cache)],
            capture_output=True,
            text=True,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
            },
        )
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise CharnnError(f"the {mode} encoder failed on '{path}': {last}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    size = path.stat().st_size
    return {
        "seconds": report["seconds"],
        "mb_per_s": size / MB / report["seconds"],
        "chars": report["chars"],
        "peak_rss_mb": report["peak_rss_kb"] / 1024,
        "rss_after_imports_mb": report["rss_after_imports_kb"] / 1024,
    }


def stdlib_text() -> str:
    """The running Python's standard library as one text (the repeated corpus)."""
    from charnn.sources import open_source

    return "".join(text for text, _ in open_source("stdlib").chunks())


def write_repeated(text: bytes, path: Path, size_bytes: int) -> Path:
    """A file of about size_bytes made of copies of text, cut at a line end so it stays valid UTF-8."""
    with open(path, "wb") as handle:
        written = 0
        while written + len(text) <= size_bytes:
            handle.write(text)
            written += len(text)
        rest = text[: size_bytes - written]
        rest = rest[: rest.rfind(b"\n") + 1]
        handle.write(rest)
    return path


def find_linux_concatenation() -> Path | None:
    """The full Linux concatenation (≥ 1 GB) in the shared corpora, when someone has built it."""
    if not SHARED_CORPORA.is_dir():
        return None
    large = [p for p in SHARED_CORPORA.glob("linux*") if p.is_file() and p.stat().st_size >= LINUX_FULL_MIN_BYTES]
    return max(large, key=lambda p: p.stat().st_size) if large else None


def measure_encoding(settings: BenchSettings, status: Callable[[str], None]) -> dict:
    """charnn's encoder vs the whole-file numpy encoder at two file sizes: MB/s and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="charnn-bench-encode-") as tmp:
        scratch = Path(tmp)
        big = Path(settings.encode_file) if settings.encode_file else find_linux_concatenation()
        if big is not None:
            if not big.is_file():
                raise CharnnError(f"--encode-file '{big}' does not exist")
            # the small size is the first part of the same file, so both runs read the same text
            status(f"encoding: preparing the first {settings.encode_sizes_mb[0]:g} MB of {big}")
            with open(big, "rb") as handle:
                head = handle.read(int(settings.encode_sizes_mb[0] * MB))
            files = [write_repeated(head, scratch / "small.txt", len(head)), big]
            origin = str(big)
        else:
            status("encoding: writing the repeated stdlib files")
            text = stdlib_text().encode("utf-8")
            files = [
                write_repeated(text, scratch / f"stdlib-{size:g}MB.txt", int(size * MB))
                for size in settings.encode_sizes_mb
            ]
            origin = f"the stdlib ({len(text) / MB:.1f} MB) repeated"
        sizes = []
        for path in files:
            charnn_runs, naive_runs = [], []
            for repeat in range(settings.encode_repeats):
                status(f"encoding {path.stat().st_size / MB:,.0f} MB: repeat {repeat + 1}/{settings.encode_repeats}")
                charnn_runs.append(run_encoder("charnn", path, scratch))
                naive_runs.append(run_encoder("naive", path, scratch))
            sizes.append(
                {
                    "mb": path.stat().st_size / MB,
                    "charnn_mb_per_s": spread([r["mb_per_s"] for r in charnn_runs]),
                    "naive_mb_per_s": spread([r["mb_per_s"] for r in naive_runs]),
                    "ratio": ratios([r["mb_per_s"] for r in charnn_runs], [r["mb_per_s"] for r in naive_runs]),
                    "charnn_peak_rss_mb": max(r["peak_rss_mb"] for r in charnn_runs),
                    "naive_peak_rss_mb": max(r["peak_rss_mb"] for r in naive_runs),
                    "rss_after_imports_mb": min(r["rss_after_imports_mb"] for r in charnn_runs),
                }
            )
    small, large = sizes[0], sizes[-1]
    added = max(large["mb"] - small["mb"], 1e-9)
    return {
        "file": origin,
        "sizes": sizes,
        # MB of peak RSS per MB of extra corpus: 0 is flat, 1 is holding the whole corpus
        "charnn_rss_growth_per_mb": (large["charnn_peak_rss_mb"] - small["charnn_peak_rss_mb"]) / added,
        "naive_rss_growth_per_mb": (large["naive_peak_rss_mb"] - small["naive_peak_rss_mb"]) / added,
    }


# ----- quality -----------------------------------------------------------------------------------
def resolve_quality_corpus(path: str) -> str:
    """The quality corpus path, also looked for relative to the repository root."""
    for candidate in (Path(path), REPO_ROOT / path):
        if candidate.is_file():
            return str(candidate)
    raise CharnnError(
        f"the quality corpus '{path}' does not exist (expected tinyshakespeare.txt in ../shared/corpora/; pass "
        "--quality-corpus)"
    )


def apply_overrides(config: Any, overrides: dict[str, Any]) -> Any:
    """The config with --quality-set KEY=VALUE changes, each converted to the field's type."""
    known = config.flat()
    changes = {}
    for key, text in overrides.items():
        name = key.replace("-", "_")
        if name not in known or name in ("corpus", "out", "max_steps", "max_minutes", "decay_steps", "recipe"):
            raise UsageError(f"--quality-set: '{key}' is not a training setting the quality run lets you change")
        current = known[name]
        try:
            if isinstance(current, bool):
                value = {"true": True, "false": False}[str(text).lower()]
            elif isinstance(current, int):
                value = int(text)
            elif isinstance(current, float):
                value = float(text)
            else:
                value = text
        except (KeyError, ValueError):
            raise UsageError(f"--quality-set {key}={text}: '{text}' is not a valid {type(current).__name__}") from None
        changes[name] = value
    recipe = recipe_named(config.recipe)
    label = recipe_label(recipe, changes) if recipe else config.recipe  # "10min, --lr 0.004": what was changed
    changed = replace(config.with_settings(changes), recipe=label)
    changed.validate()
    return changed


def measure_quality(settings: BenchSettings, status: Callable[[str], None], progress: bool) -> dict:
    """Best val loss on tinyshakespeare (90/10 split) after a fixed wall-clock budget, with the recommended settings."""
    from charnn.trainer import Trainer

    corpus = resolve_quality_corpus(settings.quality_corpus)
    recommended = recommended_cpu_config(corpus, settings.quality_out, settings.cache_dir, settings.budget_minutes)
    base = apply_overrides(recommended, settings.quality_overrides)
    # --max-minutes without --max-steps: the trainer times its first steps and plans its schedule to end with the budget
    config = replace(base, max_steps=None, max_minutes=settings.budget_minutes)
    status("quality: training (the step count is planned from the first steps' speed)")
    trainer = Trainer(config, overwrite=True, progress=progress, console=Console(stderr=True, quiet=not progress))
    try:
        with contextlib.redirect_stdout(sys.stderr):  # the trainer's per-evaluation lines must not mix into --json
            began = time.perf_counter()
            result = trainer.run()
            wall = time.perf_counter() - began
    finally:
        trainer.close()
    planned = result.plans[-1].target if result.plans else None
    best_nats = result.best_val_bpc * math.log(2) if result.best_val_bpc is not None else None
    return {
        "corpus": corpus,
        "split": config.split,
        "budget_minutes": settings.budget_minutes,
        "settings": config.to_json(),
        "planned_steps": planned,
        "plans": [asdict(plan) for plan in result.plans],
        "steps": result.steps,
        "stopped_by": result.stopped_by,
        "seconds": result.seconds,
        "wall_seconds": wall,
        "wall_over_budget": wall / (settings.budget_minutes * 60),
        "final_lr_over_floor": result.final_lr / (config.lr * config.min_lr_ratio) if config.min_lr_ratio else None,
        "chars_seen": result.steps * config.batch_size * config.seq_len,
        "best_val_bits_per_char": result.best_val_bpc,
        "best_val_nats_per_char": best_nats,
        "last_val_bits_per_char": result.last_val_bpc,
        "run": str(result.directory),
        "reference_nats": {"nanogpt_cpu_recipe": NANOGPT_CPU_NATS},
    }


# ----- the whole benchmark -----------------------------------------------------------------------
def run_bench(
    settings: BenchSettings,
    sections: Sequence[str] = ("train", "sample", "encode"),
    progress: bool = False,
    console: Console | None = None,
) -> dict:
    """Run the chosen sections; one JSON-able dict with machine info, every measurement, and the goals."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise UsageError(f"--only takes {', '.join(SECTIONS)}, not {', '.join(sorted(unknown))}")
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    console = console or Console(stderr=True)
    started = time.monotonic()
    report: dict[str, Any] = {"machine": machine_info(), "settings": settings_json(settings), "sections": {}}
    status_display = console.status("charnn bench") if progress else None

    def status(text: str) -> None:
        if status_display is not None:
            status_display.update(f"charnn bench: {text}")

    def watched(measure: Callable[[], dict]) -> dict:
        watch = CpuWatch()
        result = measure()
        result["others_cpu_share"] = watch.others_share()
        return result

    if status_display is not None:
        status_display.start()
    whole_run = CpuWatch()
    try:
        if "train" in sections:
            # a ceiling is what the machine can do: noise only lowers it, so take the best of the repeats
            # before and after the training runs (the fractions are then conservative)
            status("matmul ceiling")
            before = watched(
                lambda: measure_matmul(
                    settings.matmul_shape, settings.matmul_calls, settings.repeats, settings.wait_quiet
                )
            )
            trained = [
                watched(lambda: measure_training(shape, steps, settings, status))
                for shape, steps in zip(settings.train_shapes, settings.train_steps)
            ]
            status("matmul ceiling, again")
            after = watched(
                lambda: measure_matmul(
                    settings.matmul_shape, settings.matmul_calls, settings.repeats, settings.wait_quiet
                )
            )
            matmul = {
                "shape": before["shape"],
                "others_cpu_share_per_repeat": [before["others_cpu_share"], after["others_cpu_share"]],
                "gflops": {
                    kind: spread(before["gflops"][kind]["values"] + after["gflops"][kind]["values"])
                    for kind in before["gflops"]
                },
            }
            matmul["ceiling_gflops"] = max(
                matmul["gflops"][kind]["max"] for kind in ("mkl", "onednn") if kind in matmul["gflops"]
            )
            matmul["bf16_ceiling_gflops"] = matmul["gflops"]["bf16"]["max"] if "bf16" in matmul["gflops"] else None
            for result in trained:
                # both against the ceiling of the precision they compute in
                ceiling = (
                    matmul["bf16_ceiling_gflops"] if result["charnn_precision"] == "bf16" else matmul["ceiling_gflops"]
                )
                result["charnn_fraction_of_ceiling"] = result["charnn_gflops"] / ceiling if ceiling else None
                result["bare_fraction_of_ceiling"] = result["bare_gflops"] / ceiling if ceiling else None
            report["sections"]["matmul"] = matmul
            report["sections"]["train"] = trained
        if "sample" in sections:
            report["sections"]["sample"] = watched(lambda: measure_sampling(settings, status))
        if "encode" in sections:
            report["sections"]["encode"] = watched(lambda: measure_encoding(settings, status))
        if "cuda" in sections:
            report["sections"]["cuda"] = watched(lambda: measure_cuda(settings, status))
        if "quality" in sections:
            if status_display is not None:
                status_display.stop()  # the trainer shows its own progress bar
            report["sections"]["quality"] = watched(lambda: measure_quality(settings, status, progress))
    finally:
        if status_display is not None:
            status_display.stop()
    report["machine"]["load_average_end"] = list(os.getloadavg())
    report["machine"]["others_cpu_share"] = whole_run.others_share()
    report["seconds"] = time.monotonic() - started
    report["goals"] = goals(report["sections"])
    report["rows"] = table_rows(report["sections"])
    return report


def measure_cuda(settings: BenchSettings, status: Callable[[str], None], device: torch.device | None = None) -> dict:
    """The train and sample measurements on a GPU (the first, unless device names one), with GPU shapes."""
    if device is None:
        if not torch.cuda.is_available():
            raise CharnnError("--only cuda: no CUDA GPU is available here")
        device = torch.device("cuda", torch.cuda.current_device())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    trained = [
        measure_training(shape, steps, settings, status, device)
        for shape, steps in zip(settings.cuda_train_shapes, settings.cuda_train_steps)
    ]
    return {"device": name, "train": trained, "sample": measure_sampling(settings, status, device)}


def settings_json(settings: BenchSettings) -> dict:
    """The settings as plain JSON."""
    data = asdict(settings)
    data["train_shapes"] = [asdict(s) for s in settings.train_shapes]
    data["cuda_train_shapes"] = [asdict(s) for s in settings.cuda_train_shapes]
    return data


def goals(sections: dict) -> list[dict]:
    """The issue's goals for this 2-core AVX-512 CPU, each with the measured value and whether it is met."""
    out = []
    for result in sections.get("train", []):
        shape = result["shape"]
        if (shape["layers"], shape["hidden"]) == (3, 512):
            out.append(goal("train 3×512: trainer / bare loop", result["ratio"]["median"], 1.0))
            out.append(goal("train 3×512: fraction of the matmul ceiling", result["charnn_fraction_of_ceiling"], 0.70))
        elif (shape["layers"], shape["hidden"]) == (2, 128):
            out.append(goal("train 2×128: trainer / bare loop", result["ratio"]["median"], 1.0))
    sample = sections.get("sample")
    if sample:
        out.append(goal("sample 1 stream: charnn / naive", sample["single"]["ratio"]["median"], 3.0))
        out.append(
            goal(
                f"sample {sample['batched']['streams']} streams: chars/s",
                sample["batched"]["charnn_chars_per_s"]["median"],
                12000,
            )
        )
    encode = sections.get("encode")
    if encode:
        out.append(goal("encode: MB/s", encode["sizes"][-1]["charnn_mb_per_s"]["median"], 100))
        out.append(
            goal(
                "encode: peak RSS growth, MB per MB of corpus",
                encode["charnn_rss_growth_per_mb"],
                0.05,
                higher_is_better=False,
                text="≤ 0.05 (flat)",
            )
        )
    quality = sections.get("quality")
    if quality:
        out.append(
            goal(
                "quality: best val nats/char",
                quality["best_val_nats_per_char"],
                NANOGPT_CPU_NATS,
                higher_is_better=False,
                text=f"< {NANOGPT_CPU_NATS} (nanoGPT CPU recipe)",
            )
        )
        if quality.get("wall_over_budget") is not None and quality.get("final_lr_over_floor") is not None:
            miss = max(abs(quality["wall_over_budget"] - 1), quality["final_lr_over_floor"] - 1)
            out.append(
                goal(
                    "quality: the schedule ends with the budget",
                    miss,
                    0.05,
                    higher_is_better=False,
                    text="wall within 5% of the budget, last lr within 5% of the floor",
                )
            )
    return out


def fmt(value: dict | float | None, digits: int = 0, unit: str = "") -> str:
    """A spread as 'median [min–max]', or a single number."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return f"{value['median']:,.{digits}f} [{value['min']:,.{digits}f}–{value['max']:,.{digits}f}]{unit}"
    return f"{value:,.{digits}f}{unit}"


def disturbance_note(result: dict) -> str:
    """' (others: 40% of the CPUs)' when other processes took a noticeable share while result was measured."""
    shares = [x for x in result.get("others_cpu_share_per_repeat", []) if x is not None]
    share = statistics.median(shares) if shares else result.get("others_cpu_share")
    return f" (others: {share:.0%} of the CPUs)" if share is not None and share >= DISTURBED_SHARE else ""


def table_rows(sections: dict) -> list[dict]:
    """One row per figure: what, charnn, baseline, ratio, goal, met (strings, for the table)."""
    rows = []
    goal_by_what = {g["what"]: g for g in goals(sections)}

    def add(
        what: str,
        charnn: str,
        baseline: str,
        ratio: str = "-",
        goal_key: str | None = None,
        measured: dict | None = None,
    ) -> None:
        g = goal_by_what.get(goal_key) if goal_key else None
        rows.append(
            {
                "what": what + (disturbance_note(measured) if measured else ""),
                "charnn": charnn,
                "baseline": baseline,
                "ratio": ratio,
                "goal": g["text"] if g else "",
                "met": None if g is None else g["met"],
            }
        )

    matmul = sections.get("matmul")
    if matmul:
        names = {"mkl": "fp32 torch.mm (MKL)", "onednn": "fp32 oneDNN linear", "bf16": "bf16 torch.mm, for reference"}
        for kind, rates in matmul["gflops"].items():
            add(f"matmul GFLOP/s, {names[kind]} ({matmul['shape']})", fmt(rates), "", measured=matmul)
        add("matmul fp32 ceiling, GFLOP/s: the best fp32 repeat", fmt(matmul["ceiling_gflops"]), "")

    def add_runs(trained: list[dict], sample: dict | None, where: str = "") -> None:
        for r in trained:
            s = r["shape"]
            name = f"{s['layers']}×{s['hidden']}"
            add(
                f"{where}train {name} chars/s (batch {s['batch_size']}, seq {s['seq_len']})",
                fmt(r["charnn_chars_per_s"]),
                fmt(r["bare_chars_per_s"]),
                fmt(r["ratio"], 2) + "×",
                None if where else f"train {name}: trainer / bare loop",
                measured=r,
            )
            if where:
                continue  # no ceiling is measured on a GPU
            fraction, bare_fraction = r.get("charnn_fraction_of_ceiling"), r.get("bare_fraction_of_ceiling")
            add(
                f"train {name} GFLOP/s, share of the {r['charnn_precision']} ceiling ({r['mflop_per_char']:.2f} "
                "MFLOP/char)",
                f"{r['charnn_gflops']:.0f}" + (f" ({fraction:.0%})" if fraction is not None else ""),
                f"{r['bare_gflops']:.0f}" + (f" ({bare_fraction:.0%})" if bare_fraction is not None else ""),
                "-",
                f"train {name}: fraction of the matmul ceiling",
            )
        if sample:
            single, batched = sample["single"], sample["batched"]
            add(
                f"{where}sample {sample['model']} chars/s, 1 stream",
                fmt(single["charnn_chars_per_s"]),
                fmt(single["naive_chars_per_s"]),
                fmt(single["ratio"], 2) + "×",
                None if where else "sample 1 stream: charnn / naive",
                measured=single,
            )
            add(
                f"{where}sample {sample['model']} chars/s, {batched['streams']} streams",
                fmt(batched["charnn_chars_per_s"]),
                fmt(batched["naive_chars_per_s"]),
                fmt(batched["ratio"], 2) + "×",
                None if where else f"sample {batched['streams']} streams: chars/s",
                measured=batched,
            )
            for run in (single, batched):
                if "host_syncs_per_char" in run:
                    add(
                        f"{where}sample {run['streams']} stream(s): the host waits for the GPU, per character",
                        f"{run['host_syncs_per_char']:.3f}",
                        "",
                    )
                if "bf16" in run:
                    add(
                        f"{where}sample {sample['model']} chars/s, {run['streams']} stream(s): --precision bf16 vs "
                        "fp32",
                        fmt(run["bf16"]["charnn_chars_per_s"]),
                        fmt(run["bf16"]["fp32_chars_per_s"]),
                        fmt(run["bf16"]["ratio"], 2) + "×",
                        measured=run["bf16"],
                    )
            divergence = sample.get("bf16_divergence")
            if divergence:
                add(
                    f"{where}sample bf16 vs fp32: mean (max) KL nats/char, same most likely char, on "
                    f"{divergence.get('model', 'random weights')} ({divergence['streams']} streams "
                    f"× {divergence['steps']} steps)",
                    f"{divergence['mean_kl_nats']:.1e} ({divergence['max_kl_nats']:.1e}), "
                    f"{divergence['same_argmax_share']:.2%}",
                    "",
                )

    add_runs(sections.get("train", []), sections.get("sample"))
    cuda = sections.get("cuda")
    if cuda:
        add_runs(cuda["train"], cuda["sample"], where=f"{cuda['device']}: ")
        for r in cuda["train"]:
            add(
                f"{cuda['device']}: train {r['name']} precision",
                r.get("charnn_precision_describe", r["charnn_precision"]),
                "the same",
            )
    encode = sections.get("encode")
    if encode:
        for i, size in enumerate(encode["sizes"]):
            last = i == len(encode["sizes"]) - 1
            add(
                f"encode MB/s, {size['mb']:,.0f} MB file",
                fmt(size["charnn_mb_per_s"]),
                fmt(size["naive_mb_per_s"]),
                fmt(size["ratio"], 2) + "×",
                "encode: MB/s" if last else None,
                measured=encode,
            )
        add(
            "encode peak RSS MB, " + " / ".join(f"{s['mb']:,.0f}" for s in encode["sizes"]) + " MB file",
            " / ".join(f"{s['charnn_peak_rss_mb']:,.0f}" for s in encode["sizes"]),
            " / ".join(f"{s['naive_peak_rss_mb']:,.0f}" for s in encode["sizes"]),
            "-",
        )
        add(
            "encode RSS growth, MB per MB of corpus",
            f"{encode['charnn_rss_growth_per_mb']:.3f}",
            f"{encode['naive_rss_growth_per_mb']:.3f}",
            "-",
            "encode: peak RSS growth, MB per MB of corpus",
        )
    quality = sections.get("quality")
    if quality:
        nats = quality["best_val_nats_per_char"]
        add(
            f"quality val nats (bits)/char, {quality['budget_minutes']:g} min, {quality['steps']:,} steps",
            f"{nats:.3f} ({quality['best_val_bits_per_char']:.3f})" if nats is not None else "-",
            f"{NANOGPT_CPU_NATS} (nanoGPT CPU recipe)",
            "-",
            "quality: best val nats/char",
        )
        if quality.get("wall_over_budget") is not None:
            floor = quality.get("final_lr_over_floor")
            add(
                f"quality time budget: wall / budget, last lr / floor ({len(quality.get('plans', []))} plans)",
                f"{quality['wall_over_budget']:.3f}, " + (f"{floor:.3f}" if floor is not None else "-"),
                "1, 1",
                "-",
                "quality: the schedule ends with the budget",
            )
    return rows


def render_table(report: dict) -> Table:
    """The rich table for people."""
    machine = report["machine"]
    others = machine.get("others_cpu_share")
    busy = f"; other processes kept {others:.0%} of the CPUs busy meanwhile" if others is not None else ""
    table = Table(
        title=(
            f"charnn bench: {machine['cpu']}, {machine['cores']} cores, {machine['threads']} threads, torch "
            f"{machine['torch']}{busy}"
        ),
        caption="median \\[min–max] of interleaved repeats; ratio = charnn / baseline, paired per repeat. "
        "Baselines: a bare nn.LSTM training loop, nn.LSTM called once per sampled character, "
        "a whole-file numpy encoder.",
    )
    for column in ("what", "charnn", "baseline", "ratio", "goal", "met?"):
        table.add_column(column, overflow="fold")
    for row in report["rows"]:
        met = {True: "[green]yes[/]", False: "[red]no[/]", None: ""}[row["met"]]
        table.add_row(*(escape(row[key]) for key in ("what", "charnn", "baseline", "ratio", "goal")), met)
    return table
