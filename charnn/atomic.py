"""Files that are never half-written: each is written to a temporary name beside it, synced, renamed over the
old one, and the directory synced, so a crash at any moment leaves the old file or the new one, never part
of one. The one writer for the corpus cache, checkpoints, a run's config and metrics, and the probe's
--json and --html.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

TEMP_NAME = re.compile(r"^\..+\.(\d+)\.tmp$")  # what temp_path makes: .NAME.PID.tmp


def temp_path(path: Path) -> Path:
    """Where path is written before it is renamed into place: hidden, beside it, named after this process."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def atomic_file(path: str | Path) -> Iterator[BinaryIO]:
    """A file open for writing that becomes path when the block ends without an error (synced, renamed,
    the directory synced); if the block or the write fails, path is untouched and the temporary file gone."""
    path = Path(path)
    temp = temp_path(path)
    try:
        with open(temp, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        sync_directory(path.parent)
    finally:
        try:
            temp.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only directory: the error that got us here says what happened


def atomic_write_bytes(path: str | Path, data: bytes | memoryview) -> None:
    """Write data to path through atomic_file."""
    with atomic_file(path) as handle:
        handle.write(data)


def sync_directory(directory: Path) -> None:
    """Make a rename inside directory durable (where the system allows opening a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
