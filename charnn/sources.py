"""Read the text a user names (a file, a code tree, the stdlib, tweets, a task) as a stream of documents.

A source yields ``(text, ends_document)`` pieces: the corpus is the concatenation of all texts, and a
document ends after each piece flagged True. Big files are streamed in blocks of ``CHUNK_BYTES``, so
memory stays at a few blocks whatever the corpus size. Text is UTF-8 with a leading BOM dropped and
``\\r\\n`` turned into ``\\n``.

Over 500 lines for one job: every kind of source a user can name (a text file, a code tree, the stdlib,
four tweet formats and Twitter's archive, the tasks) with its own one-sentence errors; each kind is one
class, and splitting them further would only spread the shared streaming and error rules.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import html
import importlib
import json
import os
import random
import re
import stat
import sysconfig
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from charnn.argtypes import ruled, whole
from charnn.errors import CharnnError, UsageError

DEFAULT_CODE_EXTENSIONS: tuple[str, ...] = (
    ".py",
    ".pyi",
    ".c",
    ".h",
    ".cc",
    ".cpp",
    ".cxx",
    ".hh",
    ".hpp",
    ".hxx",
    ".java",
    ".js",
    ".mjs",
    ".jsx",
    ".ts",
    ".tsx",
    ".go",
    ".rs",
    ".rb",
    ".sh",
    ".bash",
    ".lua",
    ".cs",
    ".scala",
    ".kt",
    ".swift",
    ".m",
    ".mm",
    ".php",
    ".pl",
    ".pm",
    ".hs",
    ".ml",
    ".ex",
    ".exs",
    ".erl",
    ".clj",
    ".jl",
    ".dart",
    ".zig",
    ".r",
    ".sql",
    ".el",
    ".lisp",
    ".scm",
    ".f90",
    ".vim",
)
CHUNK_BYTES = (
    1024 * 1024
    # bytes read per block (1 MiB keeps peak memory flat: larger blocks fragment the heap); a chunk holds at most this
    # many characters (+1)
)
BINARY_SNIFF_BYTES = 8192  # a NUL byte in this many leading bytes marks a file in a code tree as binary
ERROR_MODES = ("strict", "replace")
TWEET_FORMATS = ("auto", "text", "lines", "jsonl", "json", "csv", "archive")
# First present wins: the untruncated text of API v1.1 streams, then flat fields, then archive objects.
TWEET_TEXT_FIELDS = ("extended_tweet.full_text", "full_text", "text", "tweet.full_text", "tweet.text", "content")
CSV_TEXT_COLUMNS = ("full_text", "text", "tweet", "tweet_text", "content")
JSON_TWEET_LIST_KEYS = ("tweets", "data", "statuses", "results", "items")
CODE_TREE_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "site-packages"})
STDLIB_SKIPPED_DIRS = frozenset({"__pycache__", "site-packages", "dist-packages", "test", "tests", "idle_test"})
FINGERPRINT_VERSION = 2  # bump when the text produced for the same input changes (2: lone surrogates in JSON)
MAX_TASK_SEQUENCES = 10_000_000  # a task corpus is generated in memory: ~150 MB of text at this size
TASK_SEQUENCES = whole(1, MAX_TASK_SEQUENCES)  # --task-sequences

_BOM = "\ufeff"
_ARCHIVE_PREFIX = re.compile(r"\s*window\.YTD\.\w+\.part\d+\s*=\s*")
_LINE_BREAKS_IN_TWEET = re.compile(r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads pairs escaped halves, so any left is alone


class InvalidUtf8Error(CharnnError):
    """A file holds bytes that are not UTF-8; byte_offset is where the first bad sequence starts."""

    def __init__(self, display: str, byte_offset: int) -> None:
        super().__init__(
            f"'{display}' is not valid UTF-8 at byte {byte_offset}; pass --errors replace to substitute U+FFFD"
        )
        self.byte_offset = byte_offset


@dataclass
class Source:
    """Text the user named, read as documents; subclasses say where the pieces come from."""

    name: str  # what the user typed, for messages and the summary
    kind: str  # "text" | "code-tree" | "stdlib" | "tweets" | "task"
    skipped: list[tuple[str, str]] = field(default_factory=list, init=False)  # (path, reason), filled by chunks()
    documents: int = field(default=0, init=False)  # documents yielded so far by chunks()

    def chunks(self) -> Iterator[tuple[str, bool]]:
        """Yield (text, ends_document) pieces in order; the concatenation of all texts is the corpus."""
        self.skipped = []
        self.documents = 0
        for text, ends_document in self._pieces():
            if ends_document:
                self.documents += 1
            yield text, ends_document
        if self.documents == 0:
            raise CharnnError(self._no_documents_message())

    def fingerprint(self) -> str:
        """A hex digest that changes whenever the content could have changed (cheap: paths, sizes, mtime_ns, options),
        for cache keys."""
        identity = {"version": FINGERPRINT_VERSION, "kind": self.kind, **self._identity()}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def _pieces(self) -> Iterator[tuple[str, bool]]:
        raise NotImplementedError

    def _identity(self) -> dict[str, Any]:
        raise NotImplementedError

    def _no_documents_message(self) -> str:
        return f"corpus '{self.name}' is empty"


@dataclass
class TextFileSource(Source):
    """One UTF-8 file, one document, streamed in blocks."""

    path: Path
    errors: str

    def _pieces(self) -> Iterator[tuple[str, bool]]:
        return _as_one_document(decoded_blocks(self.path, self.name, self.errors), ensure_final_newline=False)

    def _identity(self) -> dict[str, Any]:
        return {"file": _file_identity(self.path, self.name), "errors": self.errors}


@dataclass
class CodeTreeSource(Source):
    """Every file below root with a chosen extension, one document per file: in sorted path order, or in a
    random order fixed by shuffle_seed (so that a split or a training window is not one long run of one
    kind of file, such as a directory of generated register headers)."""

    root: Path
    display_root: str  # joined with a relative path to name a file in messages and `skipped`
    extensions: tuple[str, ...]  # lower case, with the dot
    errors: str
    skipped_dirs: frozenset[str]
    shuffle_seed: int | None = None

    def list_files(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """Matching files as (relative path, absolute path) in reading order, and (directory, reason) of unreadable
        ones."""
        found: list[tuple[str, str]] = []
        unreadable: list[tuple[str, str]] = []
        pending = [("", str(self.root))]
        while pending:
            relative_dir, absolute_dir = pending.pop()
            try:
                with os.scandir(absolute_dir) as listing:
                    entries = list(listing)
            except OSError as error:
                if not relative_dir:
                    raise CharnnError(f"cannot read corpus '{self.name}': {error.strerror or error}") from None
                unreadable.append((self._display(relative_dir), f"unreadable directory ({error.strerror or error})"))
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                relative = f"{relative_dir}/{entry.name}" if relative_dir else entry.name
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if entry.name not in self.skipped_dirs:
                            pending.append((relative, entry.path))
                    elif entry.name.lower().endswith(self.extensions) and entry.is_file():
                        found.append((relative, entry.path))
                except OSError:
                    continue  # vanished or unreadable entry: not part of the tree as we see it
        found.sort(key=lambda item: item[0].split("/"))
        if self.shuffle_seed is not None:
            random.Random(self.shuffle_seed).shuffle(found)
        return found, unreadable

    def no_files_message(self) -> str:
        """The error for a tree without a single matching file."""
        where = "the standard library" if self.kind == "stdlib" else f"'{self.name}'"
        return f"no files ending in {_describe_extensions(self.extensions)} under {where}; choose extensions with --ext"

    def _display(self, relative: str) -> str:
        return os.path.join(self.display_root, relative)

    def _pieces(self) -> Iterator[tuple[str, bool]]:
        files, unreadable = self.list_files()
        self.skipped.extend(unreadable)
        for relative, path in files:
            display = self._display(relative)
            try:
                with open(path, "rb") as handle:
                    head = handle.read(CHUNK_BYTES)
                if b"\0" in head[:BINARY_SNIFF_BYTES]:
                    self.skipped.append((display, "binary (NUL byte)"))
                    continue
                if len(head) < CHUNK_BYTES:
                    text = decode_bytes(head, display, self.errors)
                elif self.errors == "strict":
                    for _ in decoded_blocks(Path(path), display, self.errors):
                        pass  # a bad byte deep in a big file must skip it before any of it is yielded
                    text = None
                else:
                    text = None
            except InvalidUtf8Error as error:
                self.skipped.append((display, f"not valid UTF-8 at byte {error.byte_offset}"))
                continue
            except OSError as error:
                self.skipped.append((display, f"unreadable ({error.strerror or error})"))
                continue
            if text is None:
                yield from _as_one_document(decoded_blocks(Path(path), display, self.errors), ensure_final_newline=True)
            elif text:
                yield _with_final_newline(text), True

    def _identity(self) -> dict[str, Any]:
        files, _ = self.list_files()
        listing = []
        for relative, path in files:
            try:
                info = os.stat(path)
                listing.append((relative, info.st_size, info.st_mtime_ns))
            except OSError:
                listing.append((relative, -1, -1))
        identity = {
            "root": str(self.root.resolve()),
            "extensions": list(self.extensions),
            "errors": self.errors,
            "skipped_dirs": sorted(self.skipped_dirs),
            "files": listing,
        }
        if self.shuffle_seed is not None:  # absent for path order, so caches written before the option stay valid
            identity["shuffle_seed"] = self.shuffle_seed
        return identity

    def _no_documents_message(self) -> str:
        example = f" (e.g. '{self.skipped[0][0]}': {self.skipped[0][1]})" if self.skipped else ""
        return (
            f"corpus '{self.name}' has no text: every file ending in {_describe_extensions(self.extensions)} "
            f"is empty or was skipped{example}"
        )


@dataclass
class TweetSource(Source):
    """A file of tweets; each tweet, HTML escapes decoded and on one line, is a document."""

    path: Path
    tweet_format: str  # resolved: "lines" | "jsonl" | "json" | "csv" | "archive"
    text_field: str | None
    errors: str

    def _pieces(self) -> Iterator[tuple[str, bool]]:
        read = {
            "lines": self._read_lines,
            "jsonl": self._read_jsonl,
            "json": self._read_json,
            "archive": self._read_json,
            "csv": self._read_csv,
        }[self.tweet_format]
        for raw in read():
            if raw is None:
                continue
            tweet = clean_tweet(raw)
            if tweet.strip():
                yield tweet + "\n", True

    def _identity(self) -> dict[str, Any]:
        return {
            "file": _file_identity(self.path, self.name),
            "tweet_format": self.tweet_format,
            "text_field": self.text_field,
            "errors": self.errors,
        }

    def _no_documents_message(self) -> str:
        return f"corpus '{self.name}' has no tweets (read as {self.tweet_format})"

    def _read_lines(self) -> Iterator[str]:
        for _, line in decoded_lines(self.path, self.name, self.errors):
            yield line.rstrip("\r\n")

    def _read_jsonl(self) -> Iterator[str | None]:
        for line_number, line in decoded_lines(self.path, self.name, self.errors):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise CharnnError(f"'{self.name}' line {line_number}: invalid JSON ({error.msg})") from None
            except (ValueError, RecursionError) as error:
                raise CharnnError(f"'{self.name}' line {line_number}: {_json_beyond_limits(error)}") from None
            yield self._valid_text(self._text_of(record, f"line {line_number}"), f"line {line_number}")

    def _read_json(self) -> Iterator[str | None]:
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
        except OSError as error:
            raise CharnnError(f"cannot read '{self.name}': {error.strerror or error}") from None
        text = decode_bytes(data, self.name, self.errors)
        prefix = _ARCHIVE_PREFIX.match(text)
        if prefix:
            # Blank the prefix rather than cut it, so JSON error positions stay true to the file.
            text = re.sub(r"[^\n]", " ", prefix.group(0)) + text[prefix.end() :]
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            hint = "; if it holds one object per line, pass --tweet-format jsonl" if error.msg == "Extra data" else ""
            raise CharnnError(f"'{self.name}' line {error.lineno}: invalid JSON ({error.msg}){hint}") from None
        except (ValueError, RecursionError) as error:
            raise CharnnError(f"'{self.name}': {_json_beyond_limits(error)}") from None
        del text
        for item_number, item in enumerate(self._tweet_list(document), 1):
            yield self._valid_text(self._text_of(item, f"item {item_number}"), f"item {item_number}")

    def _tweet_list(self, document: Any) -> list[Any]:
        if isinstance(document, list):
            return document
        if isinstance(document, dict):
            for key in JSON_TWEET_LIST_KEYS:
                if isinstance(document.get(key), list):
                    return document[key]
            lists = [key for key, value in document.items() if isinstance(value, list)]
            if len(lists) == 1:
                return document[lists[0]]
            raise CharnnError(
                f"'{self.name}' holds a JSON object without a list of tweets under "
                f"{', '.join(JSON_TWEET_LIST_KEYS)}; keys: {_describe_names(list(document))}; "
                "pass --tweet-format text to read it as plain text"
            )
        raise CharnnError(f"'{self.name}' holds a JSON {_json_type(document)}, not a list of tweets")

    def _valid_text(self, text: str | None, where: str) -> str | None:
        """A tweet's text without lone surrogates (a JSON escape of half an emoji): an error, or U+FFFD with --errors
        replace."""
        if text is None or not _LONE_SURROGATE.search(text):
            return text
        if self.errors == "replace":
            return _LONE_SURROGATE.sub("\ufffd", text)
        raise CharnnError(
            f"'{self.name}' {where}: the text escapes half of a surrogate pair (e.g. \\ud83d, a cut emoji), "
            "which is not a character; pass --errors replace to substitute U+FFFD"
        )

    def _text_of(self, record: Any, where: str) -> str | None:
        """The tweet text of a JSON record, None for an empty tweet; CharnnError if it has no text field."""
        if isinstance(record, str) or record is None:
            return record
        if not isinstance(record, dict):
            raise CharnnError(
                f"'{self.name}' {where}: expected a tweet object or a string, got a JSON {_json_type(record)}"
            )
        if self.text_field is not None:
            value = _lookup(record, self.text_field)
            if value is _MISSING:
                raise CharnnError(
                    f"'{self.name}' {where}: no field '{self.text_field}'; fields present: {_describe_fields(record)}"
                )
            if value is not None and not isinstance(value, str):
                raise CharnnError(
                    f"'{self.name}' {where}: field '{self.text_field}' is a JSON {_json_type(value)}, not text"
                )
            return value
        found_empty = False
        for name in TWEET_TEXT_FIELDS:
            value = _lookup(record, name)
            if isinstance(value, str):
                return value
            found_empty = found_empty or value is None
        if found_empty:
            return None
        raise CharnnError(
            f"'{self.name}' {where}: no text field; fields present: {_describe_fields(record)}; "
            "choose one with --text-field"
        )

    def text_column(self, header: list[str]) -> int:
        """Index of the tweet text column in a CSV header; CharnnError naming the columns if there is none."""
        folded = [column.strip().lower() for column in header]
        wanted = [self.text_field.strip().lower()] if self.text_field is not None else list(CSV_TEXT_COLUMNS)
        for name in wanted:
            if name in folded:
                return folded.index(name)
        columns = _describe_names(header)
        if self.text_field is not None:
            raise CharnnError(f"'{self.name}' has no column '{self.text_field}'; columns: {columns}")
        raise CharnnError(f"'{self.name}' has no text column; columns: {columns}; choose one with --text-field")

    def _read_csv(self) -> Iterator[str]:
        lines = (line for _, line in decoded_lines(self.path, self.name, self.errors))
        reader = csv.reader(lines, strict=True)
        header = next_csv_row(reader, self.name)
        if header is None:
            return
        column = self.text_column(header)
        while True:
            row = next_csv_row(reader, self.name)
            if row is None:
                return
            if not row:
                continue
            if column >= len(row):
                raise CharnnError(
                    f"'{self.name}' line {reader.line_num}: the row has {len(row)} columns "
                    f"but the text column is number {column + 1}"
                )
            yield row[column]


@dataclass
class TaskSource(Source):
    """A synthetic task corpus from charnn.tasks; each line (sequence) is a document."""

    task_name: str
    text: str = field(repr=False)
    num_sequences: int
    seed: int

    def _pieces(self) -> Iterator[tuple[str, bool]]:
        text = self.text
        start = 0
        while start < len(text):
            end = text.find("\n", start)
            end = len(text) if end < 0 else end + 1
            yield text[start:end], True
            start = end

    def _identity(self) -> dict[str, Any]:
        return {"task": self.task_name, "text_sha256": hashlib.sha256(self.text.encode()).hexdigest()}

    def _no_documents_message(self) -> str:
        return f"task '{self.task_name}' produced no text"


@dataclass(frozen=True)
class ReaderOptions:
    """How to read a corpus: the corpus options of charnn corpus and charnn train, their defaults in one place."""

    ext: Sequence[str] | None = None  # None: common source extensions
    text_field: str | None = None  # None: text / full_text
    errors: str = "strict"
    tweet_format: str = "auto"
    task_sequences: int = ruled(20000, TASK_SEQUENCES)
    task_seed: int = 0
    shuffle_files: int | None = ruled(None, whole(0))


@dataclass(frozen=True)
class CorpusSpec(ReaderOptions):
    """What to read and how: SRC and its reader options."""

    source: str = "stdlib"

    @classmethod
    def of(cls, source: str, options: Any) -> CorpusSpec:
        """The spec of source with the reader options an object carries under the same names (parsed flags,
        ReaderOptions)."""
        return cls(source=source, **{f.name: getattr(options, f.name) for f in fields(ReaderOptions)})

    def open(self) -> Source:
        """The Source this names (open_source)."""
        return open_source(self.source, **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "source"})


def open_source(
    spec: str,
    *,
    ext: Sequence[str] | None = None,
    text_field: str | None = None,
    errors: str = "strict",
    tweet_format: str = "auto",
    task_sequences: int = 20000,
    task_seed: int = 0,
    shuffle_files: int | None = None,
) -> Source:
    """Resolve what the user named (a path, 'stdlib' or 'task:NAME') into a Source; raise CharnnError on bad input."""
    if errors not in ERROR_MODES:
        raise UsageError(f"--errors must be one of {', '.join(ERROR_MODES)}, not {errors!r}")
    if tweet_format not in TWEET_FORMATS:
        raise UsageError(f"--tweet-format must be one of {', '.join(TWEET_FORMATS)}, not {tweet_format!r}")
    if spec == "stdlib":
        root = Path(sysconfig.get_paths()["stdlib"])
        return _checked_tree(
            CodeTreeSource(
                name="stdlib",
                kind="stdlib",
                root=root,
                display_root=str(root),
                extensions=(".py",),
                errors=errors,
                skipped_dirs=STDLIB_SKIPPED_DIRS,
                shuffle_seed=shuffle_files,
            )
        )
    not_a_tree = f"--shuffle-files orders the files of a directory, but corpus '{spec}' is "
    if spec.startswith("task:"):
        if shuffle_files is not None:
            raise UsageError(not_a_tree + "a generated task (its order is set by --task-seed)")
        return _open_task(spec, spec[len("task:") :], task_sequences, task_seed)

    path = Path(os.path.expanduser(spec))
    try:
        info = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(path):
            raise CharnnError(f"corpus '{spec}' is a symbolic link to a file that does not exist") from None
        raise CharnnError(f"corpus '{spec}' does not exist") from None
    except OSError as error:
        raise CharnnError(f"cannot read corpus '{spec}': {error.strerror or error}") from None

    if stat.S_ISDIR(info.st_mode):
        if tweet_format not in ("auto", "text"):
            raise UsageError(f"--tweet-format {tweet_format} reads one file, but '{spec}' is a directory")
        return _checked_tree(
            CodeTreeSource(
                name=spec,
                kind="code-tree",
                root=path,
                display_root=spec,
                extensions=normalize_extensions(ext),
                errors=errors,
                skipped_dirs=CODE_TREE_SKIPPED_DIRS,
                shuffle_seed=shuffle_files,
            )
        )
    if not stat.S_ISREG(info.st_mode):
        raise CharnnError(f"corpus '{spec}' is neither a file nor a directory")
    if shuffle_files is not None:
        raise UsageError(not_a_tree + "a file")

    head = _read_head(path, spec, 4096)
    if not head.removeprefix(codecs.BOM_UTF8):
        raise CharnnError(f"corpus '{spec}' is empty")
    resolved_format = detect_tweet_format(path, head, tweet_format)
    if resolved_format == "text":
        return TextFileSource(name=spec, kind="text", path=path, errors=errors)
    source = TweetSource(
        name=spec, kind="tweets", path=path, tweet_format=resolved_format, text_field=text_field, errors=errors
    )
    if resolved_format == "csv":
        reader = csv.reader((line for _, line in decoded_lines(path, spec, errors)), strict=True)
        header = next_csv_row(reader, spec)
        if header is None:
            raise CharnnError(f"corpus '{spec}' is empty")
        source.text_column(header)
    return source


def detect_tweet_format(path: Path, head: bytes, tweet_format: str) -> str:
    """The format to read a file as: tweet_format unless "auto", else by extension (and content for .js)."""
    if tweet_format != "auto":
        return tweet_format
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".json":
        return "json"
    if suffix == ".csv":
        return "csv"
    if suffix == ".js" and head.removeprefix(codecs.BOM_UTF8).lstrip().startswith(b"window.YTD."):
        return "archive"
    return "text"


def normalize_extensions(ext: Sequence[str] | str | None) -> tuple[str, ...]:
    """Extensions as lower-case '.x' strings; accepts 'py', '.py', 'PY' and a comma-separated string."""
    if ext is None:
        return DEFAULT_CODE_EXTENSIONS
    items = [
        part for item in ([ext] if isinstance(ext, str) else ext) for part in item.split(",")
    ]  # --ext py,c and --ext py c
    cleaned = ["." + item.strip().lstrip(".").lower() for item in items if item.strip().lstrip(".")]
    if not cleaned:
        raise UsageError("--ext needs at least one extension, e.g. --ext py,c")
    return tuple(dict.fromkeys(cleaned))


def next_csv_row(reader: Any, display: str) -> list[str] | None:
    """The next row of a csv.reader, None at the end; a CharnnError naming the line for malformed CSV."""
    row_start = reader.line_num + 1
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as error:
        raise CharnnError(f"'{display}' line {row_start}: malformed CSV ({error})") from None


def clean_tweet(text: str) -> str:
    """A tweet as one line: HTML escapes decoded, every line break turned into a space."""
    if "&" in text:
        text = html.unescape(text)
    return _LINE_BREAKS_IN_TWEET.sub(" ", text)


def decode_bytes(data: bytes, display: str, errors: str, offset: int = 0) -> str:
    """UTF-8 bytes (a whole file) as text with a leading BOM dropped and \\r\\n turned into \\n."""
    try:
        text = data.decode("utf-8", errors)
    except UnicodeDecodeError as error:
        raise InvalidUtf8Error(display, offset + error.start) from None
    if text.startswith(_BOM):
        text = text[1:]
    return text.replace("\r\n", "\n") if "\r" in text else text


def decoded_blocks(path: Path, display: str, errors: str) -> Iterator[str]:
    """A file's text in non-empty blocks of at most CHUNK_BYTES chars: BOM dropped, \\r\\n → \\n even across blocks."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors)
    bytes_read = 0
    at_start = True
    held_cr = False  # a block ending in \r keeps it back: the next block may start with \n
    try:
        with open(path, "rb") as handle:
            while True:
                data = handle.read(CHUNK_BYTES)
                final = not data
                buffered = len(decoder.getstate()[0])  # bytes of a split character from the last block
                try:
                    text = decoder.decode(data, final)
                except UnicodeDecodeError as error:
                    raise InvalidUtf8Error(display, bytes_read - buffered + error.start) from None
                bytes_read += len(data)
                if at_start and text:
                    at_start = False
                    if text.startswith(_BOM):
                        text = text[1:]
                if held_cr:
                    text = "\r" + text
                    held_cr = False
                if not final and text.endswith("\r"):
                    text = text[:-1]
                    held_cr = True
                if "\r" in text:
                    text = text.replace("\r\n", "\n")
                if text:
                    yield text
                if final:
                    return
    except OSError as error:
        raise CharnnError(f"cannot read '{display}': {error.strerror or error}") from None


def decoded_lines(path: Path, display: str, errors: str) -> Iterator[tuple[int, str]]:
    """(line number from 1, text with its line ending) of a UTF-8 file, split at \\n only; BOM dropped."""
    bytes_read = 0
    try:
        with open(path, "rb") as handle:
            for line_number, raw in enumerate(handle, 1):
                try:
                    line = raw.decode("utf-8", errors)
                except UnicodeDecodeError as error:
                    raise InvalidUtf8Error(display, bytes_read + error.start) from None
                if line_number == 1 and line.startswith(_BOM):
                    line = line[1:]
                bytes_read += len(raw)
                yield line_number, line
    except OSError as error:
        raise CharnnError(f"cannot read '{display}': {error.strerror or error}") from None


def _as_one_document(blocks: Iterable[str], ensure_final_newline: bool) -> Iterator[tuple[str, bool]]:
    """Blocks as pieces of one document: only the last piece ends it (one block of lookahead)."""
    previous = None
    for block in blocks:
        if previous is not None:
            yield previous, False
        previous = block
    if previous is not None:
        yield (_with_final_newline(previous) if ensure_final_newline else previous), True


def _with_final_newline(text: str) -> str:
    """Text ending in \\n, so the next file's first line is not glued to this file's last one."""
    if text.endswith("\n"):
        return text
    if text.endswith("\r"):  # a lone final \r would otherwise become \r\n
        return text[:-1] + "\n"
    return text + "\n"


def _checked_tree(source: CodeTreeSource) -> CodeTreeSource:
    files, _ = source.list_files()
    if not files:
        raise CharnnError(source.no_files_message())
    return source


def _open_task(spec: str, task_name: str, num_sequences: int, seed: int) -> TaskSource:
    try:
        tasks = importlib.import_module("charnn.tasks")
    except ModuleNotFoundError as error:
        if error.name != "charnn.tasks":
            raise
        raise CharnnError(f"corpus '{spec}' needs charnn.tasks, which this installation lacks") from None
    if task_name not in tasks.TASK_NAMES:
        raise UsageError(f"unknown task '{task_name}' in '{spec}'; known tasks: {', '.join(sorted(tasks.TASK_NAMES))}")
    TASK_SEQUENCES.check("task-sequences", num_sequences)
    text = tasks.make_task_text(task_name, num_sequences=num_sequences, seed=seed)
    return TaskSource(name=spec, kind="task", task_name=task_name, text=text, num_sequences=num_sequences, seed=seed)


def _read_head(path: Path, display: str, size: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError as error:
        raise CharnnError(f"cannot read corpus '{display}': {error.strerror or error}") from None


def _file_identity(path: Path, display: str) -> dict[str, Any]:
    try:
        info = path.stat()
    except OSError:
        raise CharnnError(f"corpus '{display}' does not exist") from None
    return {"path": str(path.resolve()), "size": info.st_size, "mtime_ns": info.st_mtime_ns}


_MISSING = object()


def _lookup(record: dict[str, Any], dotted: str) -> Any:
    """record['a']['b'] for 'a.b' (a key with a dot in it is tried whole first); _MISSING if absent."""
    if dotted in record:
        return record[dotted]
    value: Any = record
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _describe_fields(record: dict[str, Any]) -> str:
    names = []
    for key, value in record.items():
        if isinstance(value, dict) and value:
            names.extend(f"{key}.{inner}" for inner in value)
        else:
            names.append(str(key))
    return _describe_names(names)


def _describe_names(names: Sequence[str], limit: int = 12) -> str:
    if not names:
        return "(none)"
    # a name that is blank or holds a line break or another control character is quoted: the sentence stays one line
    shown = ", ".join(
        str(name) if str(name).isprintable() and str(name).strip() else repr(str(name)) for name in names[:limit]
    )
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


def _describe_extensions(extensions: Sequence[str], limit: int = 8) -> str:
    shown = ", ".join(extensions[:limit])
    return shown + (f" … ({len(extensions)} in all)" if len(extensions) > limit else "")


def _json_beyond_limits(error: Exception) -> str:
    """Why valid-looking JSON could not be read: Python's limits on nesting and on digits in a number."""
    if isinstance(error, RecursionError):
        return "JSON nested too deeply to read"
    if "digits" in str(error):
        return "JSON with a number of more than 4,300 digits, which Python refuses to read"
    return f"invalid JSON ({error})"


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "number", float: "number"}.get(type(value), "null")
