"""DDP as torchrun runs it, with two CPU processes over gloo: every rank stops, evaluates and fails together.

A rank that waits in a collective another rank never reaches hangs until the process group's timeout
(30 minutes for gloo, 10 for NCCL): each test here has a timeout far below that, so a hang fails it.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from charnn.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = shutil.which("torchrun") or str(Path(sys.executable).parent / "torchrun")
TINY = ["--layers", "1", "--hidden", "16", "--embed", "8", "--batch-size", "4", "--seq-len", "16", "--quiet"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(TORCHRUN).exists(), reason="torchrun not installed"),
]


def torchrun(tmp_path: Path, code_file: Path, *flags: str) -> list[str]:
    return [
        TORCHRUN,
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "charnn.cli",
        "train",
        "--corpus",
        str(code_file),
        "--out",
        "run",
        "--cache-dir",
        "cache",
        *TINY,
        *flags,
    ]


def environment() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def charnn_lines(stderr: str) -> list[str]:
    """What the ranks themselves said (torchrun adds its own report of a failed child)."""
    return [line for line in stderr.splitlines() if line.startswith("charnn train: ")]


def test_a_failure_on_rank_0_stops_every_rank_with_its_sentence(tmp_path, code_file):
    # only rank 0 writes the run directory: a metrics file it cannot write fails there alone, after the
    # checkpoints of the first evaluation; the other rank used to wait in a barrier for half an hour
    (tmp_path / "run" / "metrics.jsonl").mkdir(parents=True)
    started = time.monotonic()
    result = subprocess.run(
        torchrun(tmp_path, code_file, "--max-steps", "20", "--eval-every", "5"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=240,
    )
    assert result.returncode != 0
    said = charnn_lines(result.stderr)
    assert len(said) == 2 and said[0] == said[1], result.stderr[-3000:]
    assert "could not write to" in said[0] and "checkpoints of step 5 are saved" in said[0]
    assert time.monotonic() - started < 200
    assert load_checkpoint(tmp_path / "run" / "last.pt").meta["step"] == 5


def test_a_time_budget_is_decided_by_all_ranks_together(tmp_path, code_file):
    # each rank's own clock would let one rank start evaluating while the other trains on (a hang)
    result = subprocess.run(
        torchrun(
            tmp_path,
            code_file,
            "--max-minutes",
            "0.1",
            "--max-steps",
            "1000000",
            "--eval-every",
            "1000000",
            "--log-every",
            "3",
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    assert 0 < checkpoint.meta["step"] < 1000000
    assert len(checkpoint.extra["state_per_rank"]) == 2 and all(checkpoint.extra["state_per_rank"])
    assert "max-minutes" in result.stderr


def test_a_time_budget_alone_is_planned_once_for_all_ranks(tmp_path, code_file):
    # rank 0 measures and decides; every rank must stop at the same planned step (else one waits in a collective)
    result = subprocess.run(
        torchrun(tmp_path, code_file, "--max-minutes", "0.15", "--eval-every", "100000", "--log-every", "5"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=environment(),
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    plans = [line for line in result.stdout.splitlines() if line.startswith("plan")]
    assert plans and plans[0].startswith("plan at step 13: "), result.stdout[-2000:]  # printed by rank 0 alone

    planned = json.loads((tmp_path / "run" / "config.json").read_text())["resolved"]["steps"]
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    assert planned["from"] == "max-minutes" and 13 < checkpoint.meta["step"] <= planned["target"]
    assert len(checkpoint.extra["state_per_rank"]) == 2 and all(checkpoint.extra["state_per_rank"])


def rank_processes(parent: int) -> dict[int, int]:
    """RANK -> pid of the processes torchrun started (read from /proc)."""
    ranks = {}
    for task in Path(f"/proc/{parent}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            for entry in environ:
                if entry.startswith(b"RANK="):
                    ranks[int(entry[5:])] = int(child)
    return ranks


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc to find the ranks")
def test_a_signal_to_one_rank_stops_both_at_the_same_step_with_a_checkpoint(tmp_path, code_file):
    process = subprocess.Popen(
        torchrun(tmp_path, code_file, "--max-steps", "1000000", "--eval-every", "1000000", "--log-every", "3"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    try:
        deadline = time.time() + 120
        while not (tmp_path / "run" / "config.json").exists() and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(2.0)  # some steps
        ranks = rank_processes(process.pid)
        assert set(ranks) == {0, 1}, ranks
        os.kill(ranks[1], signal.SIGTERM)  # rank 1 only: rank 0 hears of it at the next block of steps
        _, stderr = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
    said = charnn_lines(stderr)
    assert len(said) == 2, stderr[-3000:]
    assert any("stopped by SIGTERM" in line for line in said)
    assert any("stopped by a signal to another process" in line for line in said)
    steps = {line.split(" at step ")[1].split(";")[0] for line in said}
    assert len(steps) == 1  # the same step on both ranks
    checkpoint = load_checkpoint(tmp_path / "run" / "last.pt")
    assert str(checkpoint.meta["step"]) == steps.pop().replace(",", "")


LOGGED_LOADS = """
import os, sys, time
import charnn.trainer
from charnn.cli import main

real = charnn.trainer.load_training_corpus

def logged(config, progress):
    start = time.time()
    corpus = real(config, progress)
    with open(os.environ["LOADS_LOG"], "a") as log:
        log.write(f"{os.environ['RANK']} {start} {time.time()} {corpus.from_cache}\\n")
    return corpus

charnn.trainer.load_training_corpus = logged
sys.exit(main(sys.argv[1:]))
"""


def test_rank_0_encodes_an_uncached_corpus_before_the_others_read_its_cache(tmp_path, code_file):
    script = tmp_path / "logged.py"
    script.write_text(LOGGED_LOADS)
    command = [
        TORCHRUN,
        "--standalone",
        "--nproc_per_node=2",
        str(script),
        "train",
        "--corpus",
        str(code_file),
        "--out",
        "run",
        "--cache-dir",
        "cache",
        *TINY,
        "--max-steps",
        "2",
        "--eval-every",
        "2",
        "--dist-timeout",
        "2",
    ]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        env={**environment(), "LOADS_LOG": str(tmp_path / "loads.log")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loads = {
        int(rank): (float(start), float(end), cached == "True")
        for rank, start, end, cached in (line.split() for line in (tmp_path / "loads.log").read_text().splitlines())
    }
    assert loads[0][2] is False and loads[1][2] is True  # encoded once, by rank 0; rank 1 read the cache
    assert loads[1][0] >= loads[0][1]  # and only after rank 0 had written it


def test_one_process_under_torchrun_runs_the_collectives_and_fails_in_one_sentence(tmp_path, code_file):
    # a one-GPU machine can check the trainer's collectives only this way (the GPU check runs it with NCCL)
    one = [
        TORCHRUN,
        "--standalone",
        "--nproc_per_node=1",
        "-m",
        "charnn.cli",
        "train",
        "--corpus",
        str(code_file),
        "--cache-dir",
        "cache",
        *TINY,
        "--max-steps",
        "6",
        "--eval-every",
        "3",
    ]
    result = subprocess.run(
        [*one, "--out", "run"], cwd=tmp_path, capture_output=True, text=True, env=environment(), timeout=240
    )
    assert result.returncode == 0 and "× 1 processes (DDP)" in result.stderr, result.stderr[-3000:]
    (tmp_path / "broken" / "metrics.jsonl").mkdir(parents=True)  # rank 0 cannot write its metrics
    result = subprocess.run(
        [*one, "--out", "broken"], cwd=tmp_path, capture_output=True, text=True, env=environment(), timeout=240
    )
    assert result.returncode != 0 and len(charnn_lines(result.stderr)) == 1, result.stderr[-3000:]
    assert "could not write to" in charnn_lines(result.stderr)[0]
