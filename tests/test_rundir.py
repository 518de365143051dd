"""The run directory on a failing, full or read-only disk, and two runs into one directory: a clear error and the
previous checkpoint intact."""

import errno
import io
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import (
    TINY,
    assert_usable,
    cli,
    final_error_line,
    one_clear_line,
    small_code_file,
    start,
    tiny_config,
    tiny_tmpfs,
    wait_for,
)

import charnn.atomic
import charnn.checkpoint
from charnn.checkpoint import load_checkpoint, save_checkpoint
from charnn.errors import CharnnError
from charnn.trainer import run_training


@pytest.fixture
def code_file(tmp_path: Path) -> Path:
    return small_code_file(tmp_path)


# ================================================================ 4. disk trouble


class FailingDisk:
    """Makes writes to checkpoints' temp files fail with an errno after `allow` successful saves, part-way through."""

    def __init__(self, error: int, allow: int):
        self.error, self.allow, self.opened = error, allow, 0

    def open(self, path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)
        if "w" not in mode or not (str(path).endswith(".tmp") and ".pt." in Path(path).name):
            return handle
        self.opened += 1
        if self.opened <= self.allow:
            return handle
        error = self.error

        class Failing(io.BufferedWriter):
            def write(self, data):
                super().write(bytes(data)[: len(data) // 2])  # half of it reaches the disk
                raise OSError(error, os.strerror(error))

        handle.close()
        return Failing(io.FileIO(path, "w"))


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS, errno.EIO])
def test_a_failing_disk_mid_run_keeps_the_previous_checkpoint(tmp_path, code_file, monkeypatch, error):
    disk = FailingDisk(error, allow=2)  # step 5 saves best and last, then the disk fails
    monkeypatch.setattr(charnn.atomic, "open", disk.open, raising=False)  # the one writer of every file
    run = tmp_path / "run"
    with pytest.raises(CharnnError) as stopped:
        run_training(tiny_config(tmp_path, code_file, max_steps=20), progress=False)
    assert os.strerror(error) in str(stopped.value) and "intact" in str(stopped.value)
    assert assert_usable(run / "last.pt")["step"] == 5
    assert assert_usable(run / "best.pt")["step"] == 5
    assert not list(run.glob(".*.tmp"))

    monkeypatch.undo()  # space freed: the run continues where it was
    result = run_training(tiny_config(tmp_path, code_file, max_steps=20), resume=True, progress=False)
    assert result.steps == 20 and assert_usable(run / "last.pt")["step"] == 20


def test_a_full_disk_for_the_metrics_says_the_checkpoint_is_saved(tmp_path, code_file, monkeypatch):
    real_open = open

    def full_for_metrics(path, mode="r", *args, **kwargs):
        if str(path).endswith("metrics.jsonl") and "a" in mode:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full_for_metrics)
    with pytest.raises(CharnnError, match="No space left on device.*checkpoints of step 5 are saved.*--resume"):
        run_training(tiny_config(tmp_path, code_file), progress=False)
    monkeypatch.undo()
    assert_usable(tmp_path / "run" / "last.pt")


def test_a_really_full_disk_stops_training_with_the_last_checkpoint_intact(tmp_path, code_file):
    # a checkpoint of this model is ~60 KB: the disk holds best + last and the logs, not a third copy
    with tiny_tmpfs(tmp_path / "disk", "160k") as disk:
        result = cli(
            "train",
            "--corpus",
            str(code_file),
            "--out",
            str(disk / "run"),
            "--max-steps",
            "40",
            "--eval-every",
            "5",
            "--cache-dir",
            "cache",
            *TINY,
            cwd=tmp_path,
        )
        assert result.returncode == 1
        assert "No space left on device" in final_error_line(result.stderr)
        assert assert_usable(disk / "run" / "last.pt")["step"] >= 5
        assert not list((disk / "run").glob(".*.tmp"))


def test_a_checkpoint_larger_than_the_free_space_is_a_clear_error(tmp_path):
    # torch's zip writer used to report this as "RuntimeError: unexpected pos 832 vs 726", a traceback
    with tiny_tmpfs(tmp_path / "disk", "64k") as disk:
        save_checkpoint(disk / "last.pt", {"step": 1}, {"w": torch.zeros(10)})
        with pytest.raises(CharnnError, match=r"No space left on device.*previous checkpoint there is intact"):
            save_checkpoint(disk / "last.pt", {"step": 2}, {"w": torch.zeros(100_000)})
        assert torch.load(disk / "last.pt", weights_only=True)["model"]["w"].shape == (10,)
        assert os.listdir(disk) == ["last.pt"]


def test_a_read_only_run_directory_refuses_to_train_and_still_samples(tmp_path, code_file):
    with tiny_tmpfs(tmp_path / "disk", "4m") as disk:
        args = [
            "train",
            "--corpus",
            str(code_file),
            "--out",
            str(disk / "run"),
            "--eval-every",
            "5",
            "--cache-dir",
            "cache",
            *TINY,
        ]
        assert cli(*args, "--max-steps", "5", cwd=tmp_path).returncode == 0
        before = (disk / "run" / "last.pt").read_bytes()
        assert subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True).returncode == 0
        refused = cli(*args, "--max-steps", "10", "--resume", cwd=tmp_path)
        assert refused.returncode == 1 and "Read-only file system" in one_clear_line(refused.stderr)
        assert (disk / "run" / "last.pt").read_bytes() == before
        sampled = cli("generate", "--run", str(disk / "run"), "--length", "20", "--seed", "1", cwd=tmp_path)
        assert sampled.returncode == 0, sampled.stderr


# ================================================================ 5. two runs into one directory


@pytest.mark.slow
def test_a_second_run_into_a_busy_directory_is_refused_and_the_first_is_unharmed(tmp_path, code_file):
    run = tmp_path / "run"
    args = ["train", "--corpus", str(code_file), "--out", "run", "--eval-every", "3", "--cache-dir", "cache", *TINY]
    first = start(*args, "--max-steps", "100000", cwd=tmp_path)
    wait_for(lambda: (run / "last.pt").exists(), first)
    for extra in ([], ["--overwrite"], ["--resume"]):
        second = cli(*args, "--max-steps", "100000", *extra, cwd=tmp_path)
        assert second.returncode == 1
        assert "another charnn process is training into" in one_clear_line(second.stderr)
    assert (run / ".lock").read_text() == str(first.pid)  # the refused runs did not even rewrite the lock file
    assert first.poll() is None
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 128 + signal.SIGTERM, stderr
    step = assert_usable(run / "last.pt")["step"]
    assert_usable(run / "best.pt")
    resumed = cli(*args, "--resume", "--max-steps", str(step + 3), cwd=tmp_path)  # the lock went with the first run
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(run / "last.pt").meta["step"] == step + 3
