"""A run's directory: the lock that keeps one training in it, and the files a run keeps beside its checkpoints
(config.json, metrics.jsonl, samples.txt), each written so that a crash loses nothing already there.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
from pathlib import Path

from rich.console import Console

from charnn.atomic import atomic_write_bytes
from charnn.checkpoint import checkpoint_path, load_checkpoint
from charnn.errors import CharnnError

RUN_FILES = ("best.pt", "last.pt", "metrics.jsonl", "samples.txt", "config.json")


class RunLock:
    """An exclusive lock on a run directory, so two trainings never write into one run."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"
        self.handle = None

    def __enter__(self) -> RunLock:
        try:
            self.handle = open(self.path, "a+")  # not "w": that would erase the holder's pid before we know we hold it
        except OSError as err:
            raise CharnnError(f"cannot lock run directory '{self.path.parent}' ({err.strerror or err})") from None
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            self.handle = None
            raise CharnnError(
                f"another charnn process is training into '{self.path.parent}'; wait for it or choose another --out"
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(str(os.getpid()))
        self.handle.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.handle:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()


class RunDirectory:
    """The directory of one training run (only rank 0 of a DDP run touches it)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock: RunLock | None = None

    def claim(self, resume: bool, overwrite: bool, console: Console) -> None:
        """Lock the directory; refuse one that holds another run, unless resuming or overwriting."""
        if self.path.is_dir():
            self.lock = RunLock(self.path).__enter__()
        has_run = any((self.path / name).exists() for name in ("config.json", "last.pt", "best.pt"))
        if resume:
            if not has_run:
                raise CharnnError(f"--resume: '{self.path}' holds no run to resume (no last.pt or config.json)")
            if not checkpoint_path(self.path, "last").is_file():
                console.print(
                    f"[yellow]note:[/] '{self.path}' stopped before its first checkpoint (no last.pt); starting it "
                    "again from step 0"
                )
        elif has_run and not overwrite:
            raise CharnnError(
                f"'{self.path}' already holds a run; pass --resume to continue it, --overwrite to replace it, or "
                "choose another --out"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise CharnnError(f"cannot create run directory '{self.path}': {err.strerror}") from None
        if self.lock is None:
            self.lock = RunLock(self.path).__enter__()
        for temp in self.path.glob(".*.tmp"):  # left by a killed run; we hold the lock, so no writer is alive
            temp.unlink(missing_ok=True)
        if overwrite and not resume:
            for name in RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            for events in self.path.glob("events.out.tfevents.*"):
                events.unlink()

    def release(self) -> None:
        """Let another training in."""
        if self.lock is not None:
            self.lock.__exit__(None, None, None)
            self.lock = None

    def write_config(self, data: dict) -> None:
        """config.json, written atomically."""
        self._write(self.path / "config.json", json.dumps(data, indent=2).encode())

    def rewrite_metrics(self, history: list[dict]) -> None:
        """metrics.jsonl as a resumed history says: drops records after last.pt and a line cut by a crash."""
        self._write(self.path / "metrics.jsonl", "".join(json.dumps(record) + "\n" for record in history).encode())

    def append_evaluation(self, record: dict, sample: str, val_bpc: float) -> None:
        """One evaluation's line of metrics.jsonl and its sample in samples.txt (after its checkpoints are saved)."""
        step = record["step"]
        try:
            with open(self.path / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            with open(self.path / "samples.txt", "a", encoding="utf-8") as handle:
                handle.write(f"=== step {step} (val bpc {val_bpc:.4f}) ===\n{sample}\n\n")
        except OSError as err:
            raise CharnnError(
                f"could not write to '{self.path}' ({err.strerror or err}); the checkpoints of step {step:,} are "
                "saved; "
                f"make room and continue with: python train.py --out {self.path} --resume"
            ) from None

    def best_score(self) -> float | None:
        """The score best.pt was saved with; None when there is no readable best.pt (the next evaluation writes one).

        best.pt is written before last.pt, so after a crash between the two it can be newer than last.pt;
        its own score, not the one last.pt remembers, is what a new best has to beat.
        """
        path = checkpoint_path(self.path, "best")
        if not path.is_file():
            return None
        try:
            value = load_checkpoint(path).meta.get("best_val_bpc")
        except CharnnError:
            return None
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    def _write(self, path: Path, data: bytes) -> None:
        try:
            atomic_write_bytes(path, data)
        except OSError as err:
            raise CharnnError(f"cannot write '{path}' ({err.strerror or err})") from None
