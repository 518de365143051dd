"""scripts/gpu_check.py, the check a user with a GPU runs offline, run here on the CPU so that it cannot rot:
a renamed module or flag fails here, not on the first GPU machine."""

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"
STEPS = ("environment", "precision", "pytest-gpu", "cli", "ddp", "bench")


def check(*args: str, timeout: float) -> subprocess.CompletedProcess:
    # as a user runs it: from the checkout, without installing charnn (PYTHONPATH is not set for it)
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT
    )


@pytest.mark.slow
def test_every_step_runs_green_on_the_cpu_and_leaves_two_files(tmp_path):
    result = check("--device", "cpu", "--out", str(tmp_path / "out"), timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["logs.tgz", "summary.txt"]
    lines = (tmp_path / "out" / "summary.txt").read_text().splitlines()
    steps = {line.split()[1]: line for line in lines[1:-1]}
    assert tuple(steps) == STEPS and all(line.startswith("ok ") for line in steps.values()), lines
    assert "fastest within 1% of fp32" in steps["precision"] and "fp16 refused" in steps["precision"]
    assert "resumed to" in steps["cli"] and "probe flagged" in steps["cli"]
    assert "a failure on rank 0 stopped" in steps["ddp"]
    with tarfile.open(tmp_path / "out" / "logs.tgz") as archive:
        names = set(archive.getnames())
    assert {f"logs/{step}.log" for step in STEPS} <= names and "logs/precision.json" in names


def test_a_failing_step_is_recorded_and_the_check_goes_on(tmp_path):
    # no GPU here: asked for one, the steps fail one by one, each with its reason, and the summary is still written
    result = check("--device", "cuda", "--only", "environment,precision", "--out", str(tmp_path), timeout=300)
    assert result.returncode == 1
    lines = (tmp_path / "summary.txt").read_text().splitlines()
    assert lines[1].startswith("FAIL environment") and "no CUDA GPU" in lines[1]
    assert lines[2].startswith("FAIL precision") and "fp32, the reference, did not run" in lines[2]
    assert (tmp_path / "logs.tgz").is_file()


def test_a_mistyped_step_is_refused():
    result = check("--only", "precison", "--out", "unused", timeout=60)
    assert result.returncode == 2 and "no step precison" in result.stderr
