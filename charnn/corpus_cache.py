"""Encoding a source into a corpus, streamed and cached: two passes over the source's chunks count the
characters (giving the sorted vocabulary and the corpus length) and then write the ids straight into a
memory-mapped ``.npy`` in the cache, keyed by the source's fingerprint. Peak memory is a few chunks, whatever
the corpus size; a damaged or half-written cache entry is rebuilt, never trusted.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from tqdm.auto import tqdm

from charnn.atomic import TEMP_NAME, atomic_file, atomic_write_bytes
from charnn.corpus import UNICODE_SIZE, Corpus, Vocab, codepoints, pieces
from charnn.errors import CharnnError
from charnn.sources import CorpusSpec, Source

CACHE_FORMAT = 1


def cache_key(source: Source, errors: str) -> str:
    """The cache file stem for a source: its fingerprint, the options and the cache format."""
    material = json.dumps([CACHE_FORMAT, source.fingerprint(), errors])
    return hashlib.sha256(material.encode()).hexdigest()[:24]


TRIM_EVERY_CHUNKS = 32


def heap_trimmer() -> Callable[[], None]:
    """A function that hands glibc's freed heap back to the system (malloc_trim), or does nothing elsewhere.

    The two passes allocate and free 1 MiB pieces; glibc keeps the freed blocks, which fragment, and peak
    memory then grew with the corpus; trimming every TRIM_EVERY_CHUNKS chunks keeps it flat at the same
    speed (docs/results/benchmarks.md).
    """
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)


def chunks_trimmed(source: Source) -> Iterable[tuple[str, bool]]:
    """source.chunks(), trimming the heap every TRIM_EVERY_CHUNKS chunks."""
    trim = heap_trimmer()
    for index, item in enumerate(source.chunks(), 1):
        yield item
        if index % TRIM_EVERY_CHUNKS == 0:
            trim()


def count_characters(source: Source, progress: bool) -> tuple[np.ndarray, list[int]]:
    """First pass: per-code-point counts and the document end offsets."""
    counts = np.zeros(UNICODE_SIZE, dtype=np.int64)
    document_ends: list[int] = []
    offset = 0
    with tqdm(desc=f"reading {source.name}", unit="char", unit_scale=True, disable=not progress, leave=False) as bar:
        for chunk, ends_document in chunks_trimmed(source):
            for piece in pieces(chunk):
                points = codepoints(piece)
                found = np.bincount(points)
                counts[: len(found)] += found
            offset += len(chunk)
            if ends_document and (not document_ends or document_ends[-1] != offset):
                document_ends.append(offset)
            bar.update(len(chunk))
    if not document_ends or document_ends[-1] != offset:
        document_ends.append(offset)
    return counts, document_ends


def write_ids(source: Source, vocab: Vocab, length: int, path: Path, progress: bool) -> None:
    """Second pass: encode every chunk and append it to a .npy file at path (written atomically).

    Plain writes rather than a writable memory map: the written pages are then page cache, not this
    process's resident memory, so peak RSS stays at a few chunks whatever the corpus size.
    """
    table = vocab.lookup_table().astype(vocab.dtype)
    offset = 0
    with atomic_file(path) as handle:
        header = {"descr": np.lib.format.dtype_to_descr(vocab.dtype), "fortran_order": False, "shape": (length,)}
        np.lib.format.write_array_header_1_0(handle, header)
        handle.flush()
        reserve_space(handle, handle.tell() + length * vocab.dtype.itemsize)
        with tqdm(
            desc=f"encoding {source.name}",
            total=length,
            unit="char",
            unit_scale=True,
            disable=not progress,
            leave=False,
        ) as bar:
            for chunk, _ in chunks_trimmed(source):
                if offset + len(chunk) > length:
                    raise CharnnError(f"corpus '{source.name}' changed while it was being read; run again")
                for piece in pieces(chunk):
                    handle.write(np.take(table, codepoints(piece)).data)
                offset += len(chunk)
                bar.update(len(chunk))
        if offset != length:
            raise CharnnError(f"corpus '{source.name}' changed while it was being read; run again")


def reserve_space(handle: BinaryIO, size: int) -> None:
    """Allocate an open file's blocks up front, so a full disk stops the encoding at once with an OSError."""
    if not hasattr(os, "posix_fallocate"):  # macOS
        return
    try:
        os.posix_fallocate(handle.fileno(), 0, size)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):  # a file system without it: write and see
            raise


def remove_stale_temps(directory: Path) -> None:
    """Delete temporary files of charnn processes that no longer run (a kill mid-write leaves them behind)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        match = TEMP_NAME.match(name)
        if not match or int(match.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(match.group(1)), 0)
            continue  # its writer is alive
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue
        try:
            (directory / name).unlink()
        except OSError:
            pass


def encode_source(source: Source, cache_dir: Path | None, errors: str, progress: bool = True) -> Corpus:
    """Encode a source into the cache (or reuse the cached encoding) and return the Corpus."""
    key = cache_key(source, errors)
    if cache_dir is not None:
        cached = load_cached(source, cache_dir, key)
        if cached is not None:
            return cached
    counts, document_ends = count_characters(source, progress)
    length = int(document_ends[-1])
    if length == 0:
        raise CharnnError(f"corpus '{source.name}' is empty")
    present = np.flatnonzero(counts)
    vocab = Vocab(tuple(chr(int(p)) for p in present))
    char_counts = {chr(int(p)): int(counts[p]) for p in present}
    if cache_dir is None:
        scratch = Path(os.environ.get("TMPDIR", "/tmp"))
        ids_path = scratch / f"charnn-{key}-{os.getpid()}.npy"
        where, remedy = f"the scratch directory '{scratch}'", "free some space or point TMPDIR elsewhere"
    else:
        if cache_dir.exists() and not cache_dir.is_dir():
            raise CharnnError(f"--cache-dir '{cache_dir}' is a file, not a directory")
        ids_path = cache_dir / f"{key}.npy"
        where, remedy = f"the corpus cache '{cache_dir}'", "free some space or choose another --cache-dir"
    ends = np.asarray(document_ends, dtype=np.int64)
    try:
        if cache_dir is not None:
            cache_dir.mkdir(parents=True, exist_ok=True)
            remove_stale_temps(cache_dir)
        write_ids(source, vocab, length, ids_path, progress)
        if cache_dir is not None:
            write_cache_meta(source, cache_dir, key, vocab, length, char_counts, ends)
    except OSError as err:
        raise CharnnError(f"cannot write {where} ({err.strerror or err}); {remedy}") from None
    ids = np.load(ids_path, mmap_mode="r")
    if cache_dir is None:
        ids_path.unlink()  # the open map keeps the data alive; nothing is left behind
    return Corpus(
        source.name,
        source.kind,
        vocab,
        ids,
        ends,
        char_counts,
        ids_path if cache_dir is not None else None,
        list(source.skipped),
        from_cache=False,
    )


def write_cache_meta(
    source: Source, cache_dir: Path, key: str, vocab: Vocab, length: int, char_counts: dict[str, int], ends: np.ndarray
) -> None:
    """The document ends, then the JSON that makes the cache entry valid (written last, so a crash before it leaves
    none)."""
    meta = {
        "format": CACHE_FORMAT,
        "name": source.name,
        "kind": source.kind,
        "vocab": vocab.to_json(),
        "length": length,
        "char_counts": list(char_counts.values()),
        "skipped": source.skipped,
        "created": time.time(),
    }
    atomic_write_bytes(cache_dir / f"{key}.ends.npy", npy_bytes(ends))
    atomic_write_bytes(cache_dir / f"{key}.json", json.dumps(meta).encode())


def npy_bytes(array: np.ndarray) -> bytes:
    """An array serialised in .npy format."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def load_cached(source: Source, cache_dir: Path, key: str) -> Corpus | None:
    """The cached encoding for key, or None when there is none or it does not check out."""
    meta_path = cache_dir / f"{key}.json"
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != CACHE_FORMAT:
            return None
        vocab = Vocab.from_json(meta["vocab"])
        ids = np.load(cache_dir / f"{key}.npy", mmap_mode="r")
        ends = np.load(cache_dir / f"{key}.ends.npy")
        if ids.shape != (meta["length"],) or ids.dtype != vocab.dtype or ends[-1] != meta["length"]:
            return None
        char_counts = dict(zip(vocab.chars, meta["char_counts"]))
        skipped = [tuple(s) for s in meta.get("skipped", [])]
    except (OSError, ValueError, KeyError, IndexError, TypeError, CharnnError):
        return None
    return Corpus(
        meta["name"], meta["kind"], vocab, ids, ends, char_counts, cache_dir / f"{key}.npy", skipped, from_cache=True
    )


def load_corpus(
    spec: str | CorpusSpec,
    *,
    cache_dir: str | Path | None = "runs/.cache",
    progress: bool = True,
    **options: Any,
) -> Corpus:
    """Open what the user named (path, 'stdlib', 'task:NAME', with options as CorpusSpec's fields, or a whole
    CorpusSpec) and return it encoded, cached by content."""
    if not isinstance(spec, CorpusSpec):
        spec = CorpusSpec(source=spec, **options)
    elif options:
        raise TypeError("give corpus options in the CorpusSpec or as keywords, not both")
    return encode_source(spec.open(), Path(cache_dir) if cache_dir is not None else None, spec.errors, progress)
