"""What the failure tests share: charnn's command line in a fresh process (also one that pauses inside every
checkpoint save), waiting for a condition, the one-line error a failure must be, a usable checkpoint, a tiny run,
a small file system that really fills up, and a time limit that turns a hang into a failure."""

import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

from charnn.checkpoint import load_checkpoint
from charnn.trainer import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # one thread: tiny models, a shared 2-core box
TINY = [
    "--layers",
    "1",
    "--hidden",
    "16",
    "--embed",
    "8",
    "--batch-size",
    "4",
    "--seq-len",
    "16",
    "--eval-chars",
    "512",
    "--sample-chars",
    "10",
    "--quiet",
]


def cli(*args: str, cwd: Path, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "charnn.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**ENV, **(env or {})},
    )


def start(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "charnn.cli", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**ENV, **(env or {})},
    )


# charnn.cli with every checkpoint save paused after its temporary file is written, before it is synced and
# renamed: a kill in the pause is a kill mid-save
PAUSED_SAVES = r"""
import sys, time
import charnn.checkpoint
from charnn.atomic import atomic_file

def paused_write(path, data):
    with atomic_file(path) as handle:
        handle.write(data)
        handle.flush()
        time.sleep(float(sys.argv[1]))

charnn.checkpoint.atomic_write_bytes = paused_write
from charnn.cli import main
sys.exit(main(sys.argv[2:]))
"""


def start_pausing_in_saves(seconds: float, *args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", PAUSED_SAVES, str(seconds), *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def wait_for(condition, process: subprocess.Popen | None = None, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended ({process.returncode}) first: {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def one_clear_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def final_error_line(stderr: str) -> str:
    """A run that got going prints its start table to stderr first; the error is then the one line at the end."""
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("charnn train: "), stderr
    return last


def assert_usable(path: Path) -> dict:
    """The checkpoint loads, its weights are finite and a model builds from it; returns its meta."""
    checkpoint = load_checkpoint(path)
    assert all(torch.isfinite(t).all() for t in checkpoint.model_state.values())
    checkpoint.build_model()
    return checkpoint.meta


def tiny_config(tmp_path: Path, corpus: Path, **overrides) -> TrainConfig:
    values = dict(
        corpus=str(corpus),
        out=str(tmp_path / "run"),
        layers=1,
        hidden=16,
        embed=8,
        batch_size=4,
        seq_len=16,
        max_steps=10,
        eval_every=5,
        eval_chars=512,
        sample_chars=10,
        cache_dir=str(tmp_path / "cache"),
        seed=3,
    )
    values.update(overrides)
    return TrainConfig.of(**values)


def small_code_file(tmp_path: Path) -> Path:
    """About 12,000 characters of real Python (one stdlib module): the failure tests' tiny corpus."""
    import json.decoder

    path = tmp_path / "code.py"
    path.write_text(Path(json.decoder.__file__).read_text(), encoding="utf-8")
    return path


@contextmanager
def tiny_tmpfs(where: Path, size: str):
    """A real small file system, when this process may mount one (root in a container that allows it)."""
    where.mkdir()
    if (
        shutil.which("mount") is None
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here; the injected-error tests cover the same code")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@contextmanager
def at_most(seconds: int):
    """A hang becomes a failure: SIGALRM interrupts anything that runs longer."""

    def hung(signum, frame):
        raise AssertionError(f"still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# property tests: many examples, no deadline (a shared machine), the same examples every run
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
