"""The corpus stage's data: the vocabulary, an encoded corpus (a memory-mapped array of ids with its document
ends) and its document-aware splits. charnn.corpus_cache encodes a source into one and caches it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.table import Table

from charnn.errors import CharnnError, UsageError

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
