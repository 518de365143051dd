"""A run killed at any moment, inside a checkpoint's save too, leaves a last.pt and best.pt that load and
resume: files are written to a temporary name, synced, then renamed."""

import json
import random
import time
from pathlib import Path

import pytest
from helpers import TINY, assert_usable, cli, small_code_file, start_pausing_in_saves, tiny_config, wait_for

from charnn.checkpoint import load_checkpoint
from charnn.trainer import run_training


@pytest.fixture
def code_file(tmp_path: Path) -> Path:
    return small_code_file(tmp_path)


@pytest.mark.slow
def test_sigkill_at_random_moments_never_costs_a_checkpoint(tmp_path, code_file):
    """14 kills: half while a checkpoint is half-written (PAUSED_SAVES pauses there), half at random times."""
    run = tmp_path / "run"
    args = [
        "train",
        "--corpus",
        str(code_file),
        "--out",
        "run",
        "--max-steps",
        "100000",
        "--decay-steps",
        "100000",
        "--eval-every",
        "3",
        "--lr",
        "1e-2",
        "--cache-dir",
        "cache",
        *TINY,
    ]
    rng = random.Random(20240607)
    inside_a_save = 0
    for kill in range(14):
        resume = ["--resume"] if (run / "config.json").exists() else []
        process = start_pausing_in_saves(0.2, *args, *resume, cwd=tmp_path)
        if kill % 2 == 0:
            temps = [run / f".{name}.pt.{process.pid}.tmp" for name in ("best", "last")]
            wait_for(lambda: any(t.exists() for t in temps), process)
            time.sleep(rng.uniform(0, 0.1))
            inside_a_save += any(t.exists() for t in temps)
        else:
            time.sleep(rng.uniform(0.3, 4.0))  # start-up, corpus, training or saving
        process.kill()
        process.wait()
        for name in ("last", "best"):
            if (run / f"{name}.pt").exists():
                assert_usable(run / f"{name}.pt")
    assert inside_a_save >= 5

    # On a slow machine every kill can land before the first last.pt (the even ones inside the first
    # best.pt write, the odd ones during start-up); --resume then starts the run again from step 0.
    step = load_checkpoint(run / "last.pt").meta["step"] if (run / "last.pt").exists() else 0
    finished = cli(*args, "--resume", "--max-steps", str(step + 6), cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    last = assert_usable(run / "last.pt")
    best = assert_usable(run / "best.pt")
    assert last["step"] == step + 6
    # best.pt holds the best score of the whole history, and metrics.jsonl is exactly that history
    scores = [record["val_bits_per_char"] for record in last["history"]]
    assert best["best_val_bpc"] == pytest.approx(min(scores), abs=1e-9)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [r["step"] for r in last["history"]]
    assert not list(run.glob(".*.tmp")), "a killed save's temp file was left behind"


@pytest.mark.slow
def test_a_kill_between_the_best_and_last_writes_loses_no_best_model(tmp_path, code_file):
    run = tmp_path / "run"
    args = [
        "train",
        "--corpus",
        str(code_file),
        "--out",
        "run",
        "--decay-steps",
        "1000",
        "--eval-every",
        "3",
        "--lr",
        "2e-2",
        "--warmup-steps",
        "0",
        "--cache-dir",
        "cache",
        *TINY,
    ]
    assert cli(*args, "--max-steps", "3", cwd=tmp_path).returncode == 0
    process = start_pausing_in_saves(3, *args, "--resume", "--max-steps", "1000", cwd=tmp_path)
    wait_for(lambda: (run / f".last.pt.{process.pid}.tmp").exists(), process)  # best.pt is already renamed
    process.kill()
    process.wait()
    best, last = assert_usable(run / "best.pt"), assert_usable(run / "last.pt")
    assert (best["step"], last["step"]) == (6, 3)  # best is written first: the step-6 model survives

    assert cli(*args, "--resume", "--max-steps", "9", cwd=tmp_path).returncode == 0
    last = assert_usable(run / "last.pt")
    best = assert_usable(run / "best.pt")
    assert [r["step"] for r in last["history"]] == [3, 6, 9]
    assert best["best_val_bpc"] == pytest.approx(min(r["val_bits_per_char"] for r in last["history"]), abs=1e-9)


def test_resume_with_another_batch_size_restarts_the_streams_instead_of_crashing(tmp_path, code_file, capsys):
    run_training(tiny_config(tmp_path, code_file, max_steps=3, eval_every=3), progress=False)
    result = run_training(
        tiny_config(tmp_path, code_file, max_steps=6, eval_every=3, batch_size=8), resume=True, progress=False
    )
    assert result.steps == 6 and "zero state" in capsys.readouterr().err
    assert_usable(tmp_path / "run" / "last.pt")
