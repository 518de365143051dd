"""Encoding a large corpus: speed, and peak memory that must not grow with the corpus."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import charnn
from charnn.bench.settings import MB, BenchSettings
from charnn.bench.timing import ratios, spread
from charnn.errors import CharnnError

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
    from charnn.corpus_cache import load_corpus
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

PACKAGE_HOME = Path(charnn.__file__).resolve().parents[1]  # where the child process imports charnn from


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
                "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_HOME), os.environ.get("PYTHONPATH")])),
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


def measure_encoding(settings: BenchSettings, status: Callable[[str], None]) -> dict:
    """charnn's encoder vs the whole-file numpy encoder at two file sizes: MB/s and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="charnn-bench-encode-") as tmp:
        scratch = Path(tmp)
        big = Path(settings.encode_file) if settings.encode_file else None
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
