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
import hashlib
import importlib
import json
import os
import random
import stat
import sysconfig
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from charnn import decoding
from charnn.argtypes import ruled, whole
from charnn.decoding import InvalidUtf8Error, decode_bytes, decoded_blocks, decoded_lines  # noqa: F401 - InvalidUtf8Error is raised from here too
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
BINARY_SNIFF_BYTES = 8192  # a NUL byte in this many leading bytes marks a file in a code tree as binary
ERROR_MODES = ("strict", "replace")
TWEET_FORMATS = ("auto", "text", "lines", "jsonl", "json", "csv", "archive")
# First present wins: the untruncated text of API v1.1 streams, then flat fields, then archive objects.
CODE_TREE_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "site-packages"})
STDLIB_SKIPPED_DIRS = frozenset({"__pycache__", "site-packages", "dist-packages", "test", "tests", "idle_test"})
FINGERPRINT_VERSION = 2  # bump when the text produced for the same input changes (2: lone surrogates in JSON)
MAX_TASK_SEQUENCES = 10_000_000  # a task corpus is generated in memory: ~150 MB of text at this size
TASK_SEQUENCES = whole(1, MAX_TASK_SEQUENCES)  # --task-sequences


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
                    head = handle.read(decoding.CHUNK_BYTES)
                if b"\0" in head[:BINARY_SNIFF_BYTES]:
                    self.skipped.append((display, "binary (NUL byte)"))
                    continue
                if len(head) < decoding.CHUNK_BYTES:
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
    from charnn.tweets import open_file  # tweets build on this module's sources

    return open_file(path, spec, head, tweet_format, text_field, errors)


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
