"""The corpus stage: vocabulary, streamed encoding to a cached memory-mapped array, document-aware splits.

A source (``charnn.sources``) yields text in chunks; two passes over it count the characters
(giving the sorted vocabulary and the corpus length) and then write the ids straight into a
memory-mapped ``.npy`` in the cache. Peak memory is a few chunks, whatever the corpus size.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from rich.table import Table
from tqdm.auto import tqdm

from charnn.atomic import TEMP_NAME, atomic_file, atomic_write_bytes
from charnn.errors import CharnnError, UsageError
from charnn.sources import CorpusSpec, Source

CACHE_FORMAT = 1
UNICODE_SIZE = 0x110000
UNKNOWN_POLICIES = ("error", "replace")
UNKNOWN_DISPLAY = "\ufffd"  # what the reserved unknown id decodes to
DEFAULT_SPLIT = (0.9, 0.05, 0.05)
SPLIT_NAMES = ("train", "val", "test")


def smallest_dtype(size: int) -> np.dtype:
    """The narrowest unsigned integer type that holds ids 0..size-1."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise CharnnError(f"a vocabulary of {size} characters is too large")


PIECE_CHARS = 1 << 20  # chunks are encoded a piece at a time: small temporaries, and most pieces take the ASCII path


def pieces(text: str, size: int = PIECE_CHARS) -> Iterable[str]:
    """text in consecutive slices of at most size characters."""
    if len(text) <= size:
        yield text
        return
    for start in range(0, len(text), size):
        yield text[start : start + size]


def codepoints(text: str) -> np.ndarray:
    """The Unicode code points of text as an array (uint8 for ASCII text, else uint32)."""
    if text.isascii():
        return np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    # surrogatepass: a lone surrogate is a code point too; it must not crash the encoder
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def describe_char(char: str) -> str:
    """A printable name for a character in messages and tables ('\\n', 'U+200D', 'a')."""
    if char.isprintable() and not char.isspace():
        return char
    if char == " ":
        return "space"
    return repr(char)[1:-1] if len(repr(char)) <= 6 else f"U+{ord(char):04X}"


@dataclass(frozen=True)
class Vocab:
    """The sorted characters of a corpus; id len(chars) is reserved for characters outside it."""

    chars: tuple[str, ...]

    @property
    def size(self) -> int:
        """Number of ids, including the reserved unknown id (the model's output width)."""
        return len(self.chars) + 1

    @property
    def unknown_id(self) -> int:
        """The id characters outside the vocabulary map to under the 'replace' policy."""
        return len(self.chars)

    @property
    def dtype(self) -> np.dtype:
        """The array type ids of this vocabulary are stored in."""
        return smallest_dtype(self.size)

    def lookup_table(self) -> np.ndarray:
        """Code point -> id, with unknown_id for every code point not in the vocabulary."""
        top = max((ord(c) for c in self.chars), default=0) + 1
        table = np.full(max(top, 256), self.unknown_id, dtype=np.uint32)
        for index, char in enumerate(self.chars):
            table[ord(char)] = index
        return table

    def encode(self, text: str, unknown: str = "error", source: str = "text") -> np.ndarray:
        """Ids of text; characters outside the vocabulary raise (policy 'error') or map to unknown_id ('replace')."""
        if unknown not in UNKNOWN_POLICIES:
            raise UsageError(f"--unknown must be one of {', '.join(UNKNOWN_POLICIES)}, not '{unknown}'")
        table = self.lookup_table()
        points = codepoints(text)
        ids = np.full(len(points), self.unknown_id, dtype=np.uint32)
        in_range = points < len(table)
        ids[in_range] = table[points[in_range]]
        if unknown == "error":
            missing = ids == self.unknown_id
            if missing.any():
                raise CharnnError(self.unknown_message(text, missing, source))
        return ids.astype(self.dtype)

    def unknown_message(self, text: str, missing: np.ndarray, source: str) -> str:
        """One sentence listing the characters of text outside the vocabulary."""
        positions = np.flatnonzero(missing)
        unseen: dict[str, int] = {}
        for pos in positions:
            unseen[text[pos]] = unseen.get(text[pos], 0) + 1
        listed = ", ".join(f"'{describe_char(c)}' ×{n}" for c, n in list(unseen.items())[:12])
        more = f" and {len(unseen) - 12} more" if len(unseen) > 12 else ""
        return (
            f"{source} has {len(positions)} character(s) outside the model's vocabulary "
            f"({listed}{more}); pass --unknown replace to map them to the unknown id"
        )

    def count_unknown(self, text: str) -> int:
        """How many characters of text fall outside the vocabulary."""
        return int((self.encode(text, unknown="replace") == self.unknown_id).sum())

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ids; the unknown id decodes to U+FFFD."""
        chars = self.chars
        return "".join(chars[i] if i < len(chars) else UNKNOWN_DISPLAY for i in ids)

    def to_json(self) -> list[str]:
        """The vocabulary as a JSON-able list."""
        return list(self.chars)

    @classmethod
    def from_json(cls, chars: Sequence[str]) -> Vocab:
        """Rebuild a vocabulary saved with to_json, checking it is a sorted list of single characters."""
        if not isinstance(chars, (list, tuple)) or not all(isinstance(c, str) and len(c) == 1 for c in chars):
            raise CharnnError("the saved vocabulary is not a list of single characters")
        if list(chars) != sorted(set(chars)):
            raise CharnnError("the saved vocabulary is not sorted and unique")
        return cls(tuple(chars))


@dataclass
class Corpus:
    """An encoded corpus: ids memory-mapped from the cache, where documents end, and its vocabulary."""

    name: str
    kind: str
    vocab: Vocab
    ids: np.ndarray  # (chars,) memory-mapped, vocab.dtype
    document_ends: np.ndarray  # (documents,) int64, exclusive end offset of each document
    char_counts: dict[str, int]
    cache_path: Path | None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    from_cache: bool = False

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def documents(self) -> int:
        """Number of documents (files, tweets, task sequences; 1 for a plain text file)."""
        return len(self.document_ends)

    def text(self, start: int = 0, stop: int | None = None) -> str:
        """Decode a slice of the corpus back to text."""
        return self.vocab.decode(self.ids[start:stop].tolist())

    def split_bounds(self, fractions: Sequence[float] = DEFAULT_SPLIT) -> list[tuple[int, int]]:
        """(start, stop) of each split: contiguous, in order, cut at document ends when there are several documents."""
        return split_bounds(len(self.ids), self.document_ends, fractions, self.name)

    def split_method(self, fractions: Sequence[float] = DEFAULT_SPLIT) -> str:
        """How the splits are cut: at document boundaries, or inside documents when those are too few."""
        return plan_splits(len(self.ids), self.document_ends, fractions, self.name)[1]

    def splits(self, fractions: Sequence[float] = DEFAULT_SPLIT) -> dict[str, np.ndarray]:
        """The train/val/test id arrays (views into the memory map)."""
        bounds = self.split_bounds(fractions)
        return {name: self.ids[a:b] for name, (a, b) in zip(SPLIT_NAMES, bounds)}

    def summary_table(self, fractions: Sequence[float] = DEFAULT_SPLIT) -> Table:
        """A rich table: documents, characters, vocabulary, splits, frequent characters, cache."""
        table = Table(title=f"corpus {self.name}", show_header=False)
        table.add_column("what", style="bold")
        table.add_column("value")
        table.add_row("kind", self.kind)
        table.add_row("documents", f"{self.documents:,}")
        table.add_row("characters", f"{len(self.ids):,}")
        table.add_row(
            "vocabulary", f"{len(self.vocab.chars):,} characters (+1 unknown id), stored as {self.vocab.dtype.name}"
        )
        for name, (a, b) in zip(SPLIT_NAMES, self.split_bounds(fractions)):
            table.add_row(f"{name} split", f"{b - a:,} chars ({(b - a) / max(len(self.ids), 1):.1%})")
        table.add_row("splits cut", self.split_method(fractions))
        common = sorted(self.char_counts.items(), key=lambda kv: -kv[1])[:12]
        total = max(sum(self.char_counts.values()), 1)
        table.add_row("most frequent", "  ".join(f"'{describe_char(c)}' {n / total:.1%}" for c, n in common))
        table.add_row(
            "cache", f"{self.cache_path} ({'reused' if self.from_cache else 'written'})" if self.cache_path else "none"
        )
        if self.skipped:
            shown = "; ".join(f"{p}: {why}" for p, why in self.skipped[:5])
            more = f"; and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
            table.add_row("skipped files", f"{len(self.skipped)}: {shown}{more}")
        return table


def parse_fractions(text: str) -> tuple[float, float, float]:
    """Parse --split '0.9,0.05,0.05' (two values mean no test split)."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(
            f"--split takes two or three comma-separated fractions like 0.9,0.05,0.05, not '{text}'"
        ) from None
    if len(values) == 2:
        values.append(0.0)
    if len(values) != 3 or any(not 0 <= v <= 1 for v in values) or abs(sum(values) - 1) > 1e-6 or values[0] <= 0:
        raise UsageError(
            f"--split needs train,val[,test] fractions in [0, 1] summing to 1 with train > 0, not '{text}'"
        )
    return values[0], values[1], values[2]


def split_bounds(
    length: int, document_ends: np.ndarray, fractions: Sequence[float], name: str = "corpus"
) -> list[tuple[int, int]]:
    """Contiguous split ranges (see plan_splits for where they are cut)."""
    return plan_splits(length, document_ends, fractions, name)[0]


def plan_splits(
    length: int, document_ends: np.ndarray, fractions: Sequence[float], name: str = "corpus"
) -> tuple[list[tuple[int, int]], str]:
    """Contiguous split ranges and one phrase saying how they were cut.

    With several documents every cut falls on the document end nearest its share, as long as each split
    asked for still gets at least one whole document and its share within a factor of two; when the
    documents are too few or too uneven for that (two or three files of a small project), the text is cut
    inside documents like a single file. Refused only when a split would get fewer than 2 characters.
    """
    cuts = [0]
    running = 0.0
    for fraction in fractions[:-1]:
        running += fraction
        cuts.append(round(running * length))
    cuts.append(length)
    inside = list(zip(cuts[:-1], cuts[1:]))
    for split, fraction, (a, b) in zip(SPLIT_NAMES, fractions, inside):
        if fraction > 0 and b - a < 2:
            raise CharnnError(
                f"corpus '{name}' is too short for a {fraction:g} {split} split: it has {length:,} characters, "
                f"and each split needs at least 2; --split 1,0 keeps it whole"
            )
    if len(document_ends) <= 1:
        return inside, "by characters (one document)"
    ends = np.asarray(document_ends)
    snapped = list(cuts)
    for i in range(1, len(cuts) - 1):
        snapped[i] = max(int(ends[np.abs(ends - cuts[i]).argmin()]), snapped[i - 1])
    whole = list(zip(snapped[:-1], snapped[1:]))
    fair = all(
        fraction == 0 or (b > a and 0.5 <= (b - a) / (fraction * length) <= 2)
        for fraction, (a, b) in zip(fractions, whole)
    )
    if fair:
        return whole, "at document boundaries"
    return inside, f"inside documents: {len(ends):,} documents cannot give every split its share whole"


def cache_key(source: Source, errors: str) -> str:
    """The cache file stem for a source: its fingerprint, the options and the cache format."""
    material = json.dumps([CACHE_FORMAT, source.fingerprint(), errors])
    return hashlib.sha256(material.encode()).hexdigest()[:24]


TRIM_EVERY_CHUNKS = 32


def heap_trimmer() -> Callable[[], None]:
    """A function that hands glibc's freed heap back to the system (malloc_trim), or does nothing elsewhere.

    The two passes allocate and free ~1 MiB pieces; glibc keeps the freed blocks, which fragment, and
    peak RSS then grew ~0.13 MB per MB of corpus. Trimming every TRIM_EVERY_CHUNKS chunks kept it
    flat from 50 to 600 MB at the same speed (docs/benchmarks.md).
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
