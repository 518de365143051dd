"""Tweets in five formats: one tweet per line, JSON Lines, a JSON array or object (Twitter API objects
included), CSV with a text-like column, and a Twitter/X archive's tweets.js. Each tweet is a document: HTML
escapes decoded, line breaks turned into spaces.
"""

from __future__ import annotations

import codecs
import csv
import html
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from charnn.errors import CharnnError
from charnn.sources import (
    Source,
    TextFileSource,
    _describe_names,
    _file_identity,
    decode_bytes,
    decoded_lines,
)

TWEET_TEXT_FIELDS = ("extended_tweet.full_text", "full_text", "text", "tweet.full_text", "tweet.text", "content")
CSV_TEXT_COLUMNS = ("full_text", "text", "tweet", "tweet_text", "content")
JSON_TWEET_LIST_KEYS = ("tweets", "data", "statuses", "results", "items")
_ARCHIVE_PREFIX = re.compile(r"\s*window\.YTD\.\w+\.part\d+\s*=\s*")
_LINE_BREAKS_IN_TWEET = re.compile(r"\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # json.loads pairs escaped halves, so any left is alone


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


def open_file(path: Path, spec: str, head: bytes, tweet_format: str, text_field: str | None, errors: str) -> Source:
    """The source of a file: tweets in the format asked for (or detected), else a text file."""
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
