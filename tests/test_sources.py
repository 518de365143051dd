"""Tests for charnn.sources: what text each kind of source yields, how it is cut into documents, and its errors."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import sysconfig
import types
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charnn import decoding, sources
from charnn.errors import CharnnError, UsageError
from charnn.sources import DEFAULT_CODE_EXTENSIONS, Source, open_source

CORPORA = Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora"


def shared_corpus(name: str) -> Path:
    path = CORPORA / name
    if not path.is_file():
        pytest.skip(f"shared corpus {name} is not available")
    return path


def read_text(source: Source) -> str:
    return "".join(text for text, _ in source.chunks())


def read_documents(source: Source) -> list[str]:
    documents, current = [], []
    for text, ends_document in source.chunks():
        assert text, "chunks are never empty"
        current.append(text)
        if ends_document:
            documents.append("".join(current))
            current = []
    assert not current, "the last chunk must end a document"
    assert len(documents) == source.documents
    return documents


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def error_message(spec: str | Path, **options) -> str:
    """The message of the CharnnError raised by opening spec or reading it to the end."""
    with pytest.raises(CharnnError) as caught:
        read_text(open_source(str(spec), **options))
    return str(caught.value)


# --- the standard library -----------------------------------------------------------------------


def test_stdlib_is_the_library_without_tests_in_a_fixed_order():
    root = Path(sysconfig.get_paths()["stdlib"])
    first = open_source("stdlib")
    documents = read_documents(first)
    assert first.kind == "stdlib" and first.name == "stdlib"
    assert len(documents) > 100
    assert sum(map(len, documents)) > 5_000_000
    assert all(document.endswith("\n") for document in documents)
    assert first.skipped == []
    contents = set(documents)
    assert (root / "bisect.py").read_text(encoding="utf-8") in contents
    test_file = root / "test" / "test_bisect.py"
    if test_file.exists():
        assert test_file.read_text(encoding="utf-8") not in contents
    again = hashlib.sha256(read_text(open_source("stdlib")).encode()).hexdigest()
    assert hashlib.sha256("".join(documents).encode()).hexdigest() == again


def test_stdlib_leaves_out_tests_site_packages_and_caches(tmp_path, monkeypatch):
    for relative in [
        "os.py",
        "json/__init__.py",
        "test/test_os.py",
        "unittest/test/test_case.py",
        "lib2to3/tests/data/bom.py",
        "idlelib/idle_test/test_x.py",
        "idlelib/editor.py",
        "site-packages/numpy/core.py",
        "__pycache__/os.py",
        "tkinter/notes.txt",
    ]:
        write(tmp_path / relative, f"# {relative}\n")
    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    documents = read_documents(open_source("stdlib"))
    assert documents == ["# idlelib/editor.py\n", "# json/__init__.py\n", "# os.py\n"]


# --- plain text files ---------------------------------------------------------------------------


def test_linux_text_file_is_one_document_streamed_in_chunks(monkeypatch):
    path = shared_corpus("linux_6M.txt")
    expected = path.read_text(encoding="utf-8")
    monkeypatch.setattr(decoding, "CHUNK_BYTES", 1 << 20)
    source = open_source(str(path))
    pieces = list(source.chunks())
    assert source.kind == "text" and source.documents == 1
    assert len(pieces) >= 6
    assert [ends for _, ends in pieces] == [False] * (len(pieces) - 1) + [True]
    assert all(0 < len(text) <= (1 << 20) + 1 for text, _ in pieces)
    assert "".join(text for text, _ in pieces) == expected


def test_text_file_drops_bom_and_normalises_crlf(tmp_path):
    path = write(tmp_path / "notes.txt", "\ufeffline one\r\nline two\r\nold mac\rend")
    assert read_text(open_source(str(path))) == "line one\nline two\nold mac\rend"


def test_crlf_straddling_a_chunk_border_is_normalised(tmp_path, monkeypatch):
    monkeypatch.setattr(decoding, "CHUNK_BYTES", 8)
    path = write(tmp_path / "crlf.txt", "1234567\r\n89\r\n€uro\r\n")  # the first \r is byte 8
    pieces = list(open_source(str(path)).chunks())
    assert "".join(text for text, _ in pieces) == "1234567\n89\n€uro\n"
    assert all(text for text, _ in pieces)


@settings(max_examples=150, deadline=None)
@given(
    text=st.lists(st.sampled_from(["a", "\r", "\n", "\r\n", "é", "€", "😀", "\ufeff"]), max_size=30).map("".join),
    chunk_bytes=st.integers(min_value=1, max_value=12),
)
def test_streamed_text_equals_the_whole_file_decoded(tmp_path_factory, text, chunk_bytes):
    path = tmp_path_factory.mktemp("stream") / "sample.txt"
    path.write_bytes(text.encode("utf-8"))
    expected = text.removeprefix("\ufeff").replace("\r\n", "\n")
    with mock.patch.object(decoding, "CHUNK_BYTES", chunk_bytes):
        blocks = list(decoding.decoded_blocks(path, "sample.txt", "strict"))
    assert "".join(blocks) == expected
    assert all(blocks)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=30), chunk_bytes=st.integers(min_value=1, max_value=9))
def test_invalid_utf8_is_reported_at_its_byte_offset(tmp_path_factory, data, chunk_bytes):
    data = "€ok".encode() + data
    path = tmp_path_factory.mktemp("bytes") / "sample.bin"
    path.write_bytes(data)
    with mock.patch.object(decoding, "CHUNK_BYTES", chunk_bytes):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as error:
            with pytest.raises(CharnnError, match=f"at byte {error.start};"):
                list(decoding.decoded_blocks(path, "sample.bin", "strict"))
        else:
            assert "".join(decoding.decoded_blocks(path, "sample.bin", "strict")) == data.decode().replace("\r\n", "\n")
        replaced = "".join(decoding.decoded_blocks(path, "sample.bin", "replace"))
        assert replaced == data.decode("utf-8", "replace").replace("\r\n", "\n")


def test_invalid_utf8_message_names_file_offset_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(decoding, "CHUNK_BYTES", 16)
    path = write(tmp_path / "bad.txt", b"x" * 1234 + b"\xff tail\n")
    message = error_message(path)
    assert message == (f"'{path}' is not valid UTF-8 at byte 1234; pass --errors replace to substitute U+FFFD")
    assert read_text(open_source(str(path), errors="replace")) == "x" * 1234 + "\ufffd tail\n"


def test_truncated_character_at_end_of_file_is_reported(tmp_path):
    path = write(tmp_path / "cut.txt", "abc€".encode()[:-1])
    assert "at byte 3;" in error_message(path)


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf"], ids=["zero-bytes", "bom-only"])
def test_empty_text_file_is_an_error_at_open(tmp_path, content):
    path = write(tmp_path / "empty.txt", content)
    with pytest.raises(CharnnError, match=f"corpus '{path}' is empty"):
        open_source(str(path))


def test_whitespace_only_file_is_text_not_empty(tmp_path):
    path = write(tmp_path / "blank.txt", " \n")
    assert read_text(open_source(str(path))) == " \n"


# --- code trees ---------------------------------------------------------------------------------


def make_tree(root: Path) -> Path:
    write(root / "b.py", "b = 2\n")
    write(root / "a" / "x.py", "x = 1")  # no final newline
    write(root / "a" / "z.C", "int z;\n")  # upper-case extension
    write(root / "a-b" / "y.py", "y = 3\r\n")
    write(root / "README.md", "# not code\n")
    write(root / "empty.py", "")
    write(root / "blob.c", b"\x7fELF\x00\x00binary")
    write(root / ".git" / "hooks.py", "hidden = True\n")
    write(root / ".hidden.py", "hidden = True\n")
    write(root / "__pycache__" / "b.py", "cached = True\n")
    write(root / "node_modules" / "left_pad.js", "module.exports = 1;\n")
    return root


def test_code_tree_reads_matching_files_in_sorted_path_order(tmp_path):
    root = make_tree(tmp_path / "project")
    source = open_source(str(root))
    documents = read_documents(source)
    assert source.kind == "code-tree"
    assert documents == ["x = 1\n", "int z;\n", "y = 3\n", "b = 2\n"]
    assert source.skipped == [(os.path.join(str(root), "blob.c"), "binary (NUL byte)")]


def test_shuffle_files_reads_the_same_files_in_an_order_fixed_by_the_seed(tmp_path):
    root = tmp_path / "project"
    for package in ("drivers", "kernel"):
        for i in range(12):
            write(root / package / f"f{i:02}.c", f"int {package}_{i};\n")
    in_path_order = read_documents(open_source(str(root)))
    shuffled = read_documents(open_source(str(root), shuffle_files=7))
    assert sorted(shuffled) == sorted(in_path_order) and shuffled != in_path_order
    assert read_documents(open_source(str(root), shuffle_files=7)) == shuffled
    assert read_documents(open_source(str(root), shuffle_files=8)) != shuffled
    # the first half of the shuffled files mixes both directories, the path order does not
    assert {doc.split("_")[0] for doc in shuffled[:12]} == {"int drivers", "int kernel"}
    assert {doc.split("_")[0] for doc in in_path_order[:12]} == {"int drivers"}


def test_shuffle_files_changes_the_cache_key_but_path_order_keeps_the_old_one(tmp_path):
    root = make_tree(tmp_path / "project")
    path_order = open_source(str(root))
    assert "shuffle_seed" not in path_order._identity()  # caches written before the option stay valid
    keys = {
        path_order.fingerprint(),
        open_source(str(root), shuffle_files=0).fingerprint(),
        open_source(str(root), shuffle_files=1).fingerprint(),
    }
    assert len(keys) == 3


def test_shuffle_files_of_a_file_or_a_task_is_refused(tmp_path):
    path = write(tmp_path / "notes.txt", "just text\n")
    with pytest.raises(
        UsageError, match=r"--shuffle-files orders the files of a directory, but corpus '.*notes.txt' is a file"
    ):
        open_source(str(path), shuffle_files=0)
    with pytest.raises(UsageError, match="generated task"):
        open_source("task:count", shuffle_files=0)


def test_code_tree_extension_filter_with_or_without_dots(tmp_path):
    root = make_tree(tmp_path / "project")
    for ext in (["py"], [".py"], [".PY"], "py"):
        assert read_documents(open_source(str(root), ext=ext)) == ["x = 1\n", "y = 3\n", "b = 2\n"]
    assert read_documents(open_source(str(root), ext=["md", "c"])) == ["# not code\n", "int z;\n"]


def test_code_tree_does_not_follow_symlinked_directories(tmp_path):
    root = make_tree(tmp_path / "project")
    os.symlink(root / "a", root / "linked")
    assert read_documents(open_source(str(root), ext=["py"])) == ["x = 1\n", "y = 3\n", "b = 2\n"]


def test_code_tree_skips_undecodable_files_and_says_where(tmp_path):
    root = tmp_path / "project"
    write(root / "good.py", "ok = 1\n")
    write(root / "latin1.py", b"s = '" + "café".encode("latin-1") + b"'\n")
    source = open_source(str(root))
    assert read_documents(source) == ["ok = 1\n"]
    assert source.skipped == [(os.path.join(str(root), "latin1.py"), "not valid UTF-8 at byte 8")]
    assert read_documents(open_source(str(root), errors="replace")) == ["ok = 1\n", "s = 'caf\ufffd'\n"]


def test_code_tree_file_bigger_than_a_chunk_is_streamed_or_skipped_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(decoding, "CHUNK_BYTES", 16)
    root = tmp_path / "project"
    write(root / "a_big.py", "# " + "long comment " * 10)
    write(root / "b_bad.py", ("x = 1\n" * 10).encode() + b"\xff\n")
    source = open_source(str(root))
    pieces = list(source.chunks())
    assert "".join(text for text, _ in pieces) == "# " + "long comment " * 10 + "\n"
    assert [ends for _, ends in pieces].count(True) == 1 and pieces[-1][1]
    assert source.skipped == [(os.path.join(str(root), "b_bad.py"), "not valid UTF-8 at byte 60")]


def test_code_tree_of_only_unusable_files_is_an_error(tmp_path):
    root = tmp_path / "project"
    write(root / "blob.py", b"\x00\x01")
    write(root / "empty.py", "")
    message = error_message(root)
    assert f"corpus '{root}' has no text" in message and "binary (NUL byte)" in message


def test_default_extensions_cover_common_languages():
    assert {".py", ".c", ".h", ".cpp", ".java", ".js", ".go", ".rs"} <= set(DEFAULT_CODE_EXTENSIONS)
    assert all(ext.startswith(".") and ext == ext.lower() for ext in DEFAULT_CODE_EXTENSIONS)


# --- tweets -------------------------------------------------------------------------------------


def test_trump_tweets_as_lines_give_one_document_per_tweet():
    path = shared_corpus("trump_tweets.txt")
    source = open_source(str(path), tweet_format="lines")
    assert source.kind == "tweets"
    assert read_text(source) == path.read_text(encoding="utf-8")
    assert source.documents == 32_807
    assert open_source(str(path)).kind == "text"  # a .txt file is plain text unless told otherwise


TWEETS = ["Fish &amp; chips &lt;3", "two\r\nlines\nand\rmore", "Emoji 😀 and 中文", "   "]
EXPECTED = ["Fish & chips <3\n", "two lines and more\n", "Emoji 😀 and 中文\n"]


def test_tweets_as_lines(tmp_path):
    path = write(tmp_path / "tweets.txt", "Fish &amp; chips &lt;3\r\n\nEmoji 😀 and 中文\n   \nlast")
    assert read_documents(open_source(str(path), tweet_format="lines")) == [EXPECTED[0], EXPECTED[2], "last\n"]


def test_tweets_as_flat_jsonl(tmp_path):
    records = [{"id": i, "full_text": text, "text": "truncated…"} for i, text in enumerate(TWEETS)]
    path = write(tmp_path / "tweets.jsonl", "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n\n")
    source = open_source(str(path))
    assert source.kind == "tweets"
    assert read_documents(source) == EXPECTED


def test_tweets_as_nested_archive_jsonl(tmp_path):
    lines = [json.dumps({"tweet": {"id": "1", "full_text": text}}) for text in TWEETS]
    lines.append(json.dumps({"tweet": {"id": "2", "full_text": None}}))
    path = write(tmp_path / "tweets.jsonl", "\n".join(lines))
    assert read_documents(open_source(str(path))) == EXPECTED


def test_tweets_from_a_custom_json_field(tmp_path):
    lines = [json.dumps({"body": {"message": text}, "text": "not this"}) for text in TWEETS]
    path = write(tmp_path / "tweets.ndjson", "\n".join(lines))
    assert read_documents(open_source(str(path), text_field="body.message")) == EXPECTED


def test_tweets_as_json_array_of_objects_or_strings(tmp_path):
    objects = write(tmp_path / "a.json", json.dumps([{"text": text} for text in TWEETS], indent=1))
    strings = write(tmp_path / "b.json", json.dumps(TWEETS))
    wrapped = write(tmp_path / "c.json", json.dumps({"meta": {"n": 4}, "data": [{"text": t} for t in TWEETS]}))
    for path in (objects, strings, wrapped):
        assert read_documents(open_source(str(path))) == EXPECTED


def test_tweets_as_csv_with_a_chosen_column(tmp_path):
    path = tmp_path / "tweets.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "date", "Message"])
        for i, text in enumerate(TWEETS):
            writer.writerow([i, "2017-01-01", text])
    assert read_documents(open_source(str(path), text_field="message")) == EXPECTED
    message = error_message(path)
    assert message == f"'{path}' has no text column; columns: id, date, Message; choose one with --text-field"
    with pytest.raises(CharnnError, match="has no column 'body'; columns: id, date, Message"):
        open_source(str(path), text_field="body")


def test_tweets_as_csv_find_a_text_column(tmp_path):
    path = write(tmp_path / "tweets.csv", '\ufeffid,Text\r\n1,"Fish &amp; chips, ""fresh"""\r\n\r\n2,"a\r\nb"\r\n')
    assert read_documents(open_source(str(path))) == ['Fish & chips, "fresh"\n', "a b\n"]


def test_tweets_from_a_twitter_archive(tmp_path):
    items = [{"tweet": {"id_str": str(i), "full_text": text}} for i, text in enumerate(TWEETS)]
    path = write(tmp_path / "tweets.js", "window.YTD.tweets.part0 = " + json.dumps(items, indent=2))
    source = open_source(str(path))
    assert source.kind == "tweets"
    assert read_documents(source) == EXPECTED
    assert open_source(str(write(tmp_path / "app.js", "let x = 1;\n"))).kind == "text"


def test_tweet_format_option_overrides_the_extension(tmp_path):
    path = write(tmp_path / "tweets.jsonl", '{"text": "a"}\n')
    assert open_source(str(path), tweet_format="text").kind == "text"
    assert read_documents(open_source(str(path), tweet_format="lines")) == ['{"text": "a"}\n']


# --- tasks --------------------------------------------------------------------------------------


def test_task_corpus_has_one_document_per_sequence():
    pytest.importorskip("charnn.tasks")
    source = open_source("task:count", task_sequences=50, task_seed=3)
    documents = read_documents(source)
    assert source.kind == "task" and len(documents) == 50
    assert all(document.endswith("\n") and document.count("\n") == 1 for document in documents)
    assert "".join(documents) == read_text(open_source("task:count", task_sequences=50, task_seed=3))
    with pytest.raises(CharnnError, match="count"):
        open_source("task:no-such-task")


def test_task_source_passes_options_to_the_task_module(monkeypatch):
    calls = []

    def make_task_text(name: str, num_sequences: int = 20000, seed: int = 0) -> str:
        calls.append((name, num_sequences, seed))
        return "aXb\naaXbb\n"

    fake = types.SimpleNamespace(make_task_text=make_task_text, TASK_NAMES=("count",))
    monkeypatch.setitem(sys.modules, "charnn.tasks", fake)
    source = open_source("task:count", task_sequences=2, task_seed=7)
    assert read_documents(source) == ["aXb\n", "aaXbb\n"]
    assert calls == [("count", 2, 7)]


# --- bad input ----------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    path = tmp_path / "nope.txt"
    with pytest.raises(CharnnError, match=f"corpus '{path}' does not exist"):
        open_source(str(path))


def test_path_that_is_neither_file_nor_directory(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(CharnnError, match=f"corpus '{fifo}' is neither a file nor a directory"):
        open_source(str(fifo))


def test_directory_without_matching_files(tmp_path):
    write(tmp_path / "notes.md", "# hi\n")
    with pytest.raises(CharnnError) as caught:
        open_source(str(tmp_path))
    assert str(caught.value).startswith("no files ending in .py, .pyi, .c")
    assert f"under '{tmp_path}'" in str(caught.value) and "--ext" in str(caught.value)
    with pytest.raises(CharnnError, match=f"no files ending in .rs under '{tmp_path}'"):
        open_source(str(tmp_path), ext=["rs"])


def test_tweet_file_without_tweets(tmp_path):
    path = write(tmp_path / "tweets.jsonl", '{"text": ""}\n{"text": "   "}\n')
    assert error_message(path) == f"corpus '{path}' has no tweets (read as jsonl)"
    assert "is empty" in error_message(write(tmp_path / "empty.csv", ""))


def test_malformed_jsonl_names_the_line(tmp_path):
    path = write(tmp_path / "tweets.jsonl", '{"text": "a"}\n\n{"text": "b" "c"}\n')
    assert error_message(path) == f"'{path}' line 3: invalid JSON (Expecting ',' delimiter)"


def test_record_without_text_lists_its_fields(tmp_path):
    path = write(
        tmp_path / "tweets.jsonl", '{"text": "a"}\n{"text": "b"}\n{"id": 3, "created_at": "x", "user": {"name": "u"}}\n'
    )
    assert error_message(path) == (
        f"'{path}' line 3: no text field; fields present: id, created_at, user.name; choose one with --text-field"
    )


def test_malformed_json_array_names_the_line(tmp_path):
    path = write(tmp_path / "tweets.json", '[\n  {"text": "a"},\n  {"text": }\n]')
    assert error_message(path) == f"'{path}' line 3: invalid JSON (Expecting value)"
    lines = write(tmp_path / "lines.json", '{"text": "a"}\n{"text": "b"}\n')
    assert "line 2: invalid JSON (Extra data); if it holds one object per line, pass --tweet-format jsonl" in (
        error_message(lines)
    )


def test_json_object_without_a_list_of_tweets(tmp_path):
    path = write(tmp_path / "tweets.json", '{"count": 2, "user": "x"}')
    assert "holds a JSON object without a list of tweets" in error_message(path)
    assert "keys: count, user" in error_message(path)


def test_malformed_csv_names_the_line(tmp_path):
    path = write(tmp_path / "tweets.csv", 'id,text\n1,"ok"\n2,"bad"quote\n')
    assert error_message(path) == f"'{path}' line 3: malformed CSV (',' expected after '\"')"
    unclosed = write(tmp_path / "unclosed.csv", 'id,text\n1,"never closed\n2,b\n')
    assert error_message(unclosed).startswith(f"'{unclosed}' line 2: malformed CSV")


def test_invalid_utf8_in_tweets_gives_the_byte_offset(tmp_path):
    path = write(tmp_path / "tweets.jsonl", b'{"text": "a"}\n{"text": "\xc3("}\n')
    assert error_message(path).startswith(f"'{path}' is not valid UTF-8 at byte 24;")
    assert read_documents(open_source(str(path), errors="replace")) == ["a\n", "\ufffd(\n"]


def test_unreadable_file_is_named(tmp_path, monkeypatch):
    path = write(tmp_path / "locked.txt", "secret\n")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sources, "open", refuse, raising=False)
    with pytest.raises(CharnnError, match=f"cannot read corpus '{path}': Permission denied"):
        open_source(str(path))


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"errors": "ignore"}, ["--errors", "strict, replace", "'ignore'"]),
        ({"tweet_format": "xml"}, ["--tweet-format", "lines, jsonl, json, csv, archive", "'xml'"]),
        ({"ext": []}, ["--ext", "at least one"]),
    ],
)
def test_options_out_of_range_are_usage_errors(tmp_path, options, words):
    write(tmp_path / "a.py", "a = 1\n")
    with pytest.raises(UsageError) as caught:
        open_source(str(tmp_path), **options)
    assert all(word in str(caught.value) for word in words)


def test_tweet_format_on_a_directory_is_a_usage_error(tmp_path):
    write(tmp_path / "a.py", "a = 1\n")
    with pytest.raises(UsageError, match=f"--tweet-format jsonl reads one file, but '{tmp_path}' is a directory"):
        open_source(str(tmp_path), tweet_format="jsonl")


# --- fingerprints -------------------------------------------------------------------------------


def test_fingerprint_follows_file_content_and_options(tmp_path):
    path = write(tmp_path / "text.txt", "hello\n")
    source = open_source(str(path))
    first = source.fingerprint()
    assert len(first) == 64 and int(first, 16) >= 0
    assert source.fingerprint() == first == open_source(str(path)).fingerprint()
    assert open_source(str(path), errors="replace").fingerprint() != first
    assert open_source(str(path), tweet_format="lines").fingerprint() != first
    write(path, "hello, world\n")
    resized = source.fingerprint()
    assert resized != first
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))
    assert source.fingerprint() != resized


def test_fingerprint_of_a_code_tree_follows_its_files_and_extensions(tmp_path):
    root = make_tree(tmp_path / "project")
    source = open_source(str(root))
    first = source.fingerprint()
    write(root / "a" / "new.py", "new = 1\n")
    added = source.fingerprint()
    assert added != first
    write(root / "README.md", "# changed but not read\n")
    assert source.fingerprint() == added
    write(root / "b.py", "b = 22\n")
    assert source.fingerprint() != added
    assert open_source(str(root), ext=["py"]).fingerprint() != source.fingerprint()


def test_fingerprint_of_tweets_follows_the_text_field(tmp_path):
    path = write(tmp_path / "tweets.jsonl", '{"text": "a", "full_text": "b"}\n')
    assert open_source(str(path)).fingerprint() != open_source(str(path), text_field="text").fingerprint()


def test_fingerprint_of_stdlib_is_stable():
    assert open_source("stdlib").fingerprint() == open_source("stdlib").fingerprint()
