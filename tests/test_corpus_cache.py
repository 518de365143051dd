"""A corpus cache entry cut by a kill or damaged afterwards is rebuilt, never trusted; a disk too small for it is
one sentence."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ENV, cli, one_clear_line, small_code_file, tiny_tmpfs

from charnn.corpus_cache import load_corpus


@pytest.fixture
def code_file(tmp_path: Path) -> Path:
    return small_code_file(tmp_path)


KILL_CORPUS_WRITE = """
import os, signal, sys
import charnn.corpus_cache as corpus

point = sys.argv[2]
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if point == "ids":  # the ids temp file is allocated but not yet written
    corpus.reserve_space = die
elif point == "meta":  # the ids are renamed into place, nothing else is written
    corpus.write_cache_meta = die
else:  # the document ends are written, the JSON that validates the entry is not
    write = corpus.atomic_write_bytes
    corpus.atomic_write_bytes = lambda path, data: die() if str(path).endswith(".json") else write(path, data)
corpus.load_corpus(sys.argv[1], cache_dir="cache", progress=False)
"""


@pytest.mark.parametrize("point", ["ids", "meta", "json"])
def test_a_corpus_cache_cut_by_a_kill_is_never_trusted(tmp_path, code_file, point):
    killed = subprocess.run(
        [sys.executable, "-c", KILL_CORPUS_WRITE, str(code_file), point],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL
    corpus = load_corpus(str(code_file), cache_dir=tmp_path / "cache", progress=False)
    assert not corpus.from_cache and corpus.text() == code_file.read_text()
    assert not [p for p in os.listdir(tmp_path / "cache") if ".tmp" in p], (
        "the killed writer's temp file is still there"
    )
    again = load_corpus(str(code_file), cache_dir=tmp_path / "cache", progress=False)
    assert again.from_cache and again.text() == code_file.read_text()


@pytest.mark.parametrize("damage", ["truncate ids", "truncate json", "truncate ends", "drop ends", "wrong length"])
def test_a_damaged_corpus_cache_is_rebuilt(tmp_path, code_file, damage):
    corpus = load_corpus(str(code_file), cache_dir=tmp_path / "cache", progress=False)
    stem = corpus.cache_path.with_suffix("")
    ids, meta, ends = corpus.cache_path, stem.with_suffix(".json"), Path(f"{stem}.ends.npy")
    del corpus
    if damage.startswith("truncate"):
        target = {"ids": ids, "json": meta, "ends": ends}[damage.split()[1]]
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "drop ends":
        ends.unlink()
    else:
        data = json.loads(meta.read_text())
        meta.write_text(json.dumps({**data, "length": data["length"] + 1}))
    rebuilt = load_corpus(str(code_file), cache_dir=tmp_path / "cache", progress=False)
    assert not rebuilt.from_cache and rebuilt.text() == code_file.read_text()


def test_a_really_full_disk_while_caching_a_corpus_is_a_clear_error(tmp_path):
    # the ids are written through a memory map: without reserving the blocks first this was a SIGBUS, no message
    (tmp_path / "big.txt").write_text("".join(f"line {i} of a corpus larger than the disk\n" for i in range(100_000)))
    with tiny_tmpfs(tmp_path / "disk", "1m") as disk:
        result = cli("corpus", "big.txt", "--quiet", "--cache-dir", str(disk / "cache"), cwd=tmp_path)
        assert result.returncode == 1
        assert "No space left on device" in one_clear_line(result.stderr) and "--cache-dir" in result.stderr
        assert os.listdir(disk / "cache") == []
