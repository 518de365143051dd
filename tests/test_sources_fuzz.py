"""Fuzzed bytes, text and JSON through every source kind, and pathological files: a corpus or a CharnnError,
never a crash or a hang."""

import json
import tempfile
from pathlib import Path

import pytest
from helpers import FUZZ, at_most
from hypothesis import given
from hypothesis import strategies as st

from charnn.corpus_cache import load_corpus
from charnn.errors import CharnnError

FILE_KINDS = [  # (file name, --tweet-format, bytes before the fuzzed content)
    ("a.txt", "auto", b""),
    ("a.txt", "lines", b""),
    ("a.jsonl", "auto", b""),
    ("a.json", "auto", b""),
    ("a.csv", "auto", b"text\n"),
    ("a.csv", "auto", b""),
    ("tweets.js", "auto", b"window.YTD.tweets.part0 = "),
    ("a.json", "archive", b""),
    ("a.bin", "text", b"\xef\xbb\xbf"),
]


def read_every_way(data: bytes, kind: tuple[str, str, bytes], errors: str) -> None:
    """Read data as a file of this kind and as a one-file code tree; a Corpus must be sound, anything else a
    CharnnError."""
    name, tweet_format, prefix = kind
    with tempfile.TemporaryDirectory() as scratch, at_most(20):
        root = Path(scratch)
        (root / "tree" / "pkg").mkdir(parents=True)
        (root / name).write_bytes(prefix + data)
        (root / "tree" / "pkg" / "m.py").write_bytes(data)
        for spec, options in ((str(root / name), {"tweet_format": tweet_format}), (str(root / "tree"), {})):
            try:
                corpus = load_corpus(spec, errors=errors, cache_dir=root / "cache", progress=False, **options)
            except CharnnError as error:
                assert str(error) and "\n" not in str(error)
                continue
            text = corpus.text()
            text.encode("utf-8")  # no lone surrogates: everything downstream writes UTF-8
            assert len(text) == len(corpus) > 0 and "\ufeff" not in text[:1]
            assert list(corpus.vocab.chars) == sorted(set(text))
            cached = load_corpus(spec, errors=errors, cache_dir=root / "cache", progress=False, **options)
            assert cached.from_cache and cached.text() == text


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(FILE_KINDS), st.sampled_from(["strict", "replace"]))
def test_random_bytes_through_every_source_kind(data, kind, errors):
    read_every_way(data, kind, errors)


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300), st.sampled_from(FILE_KINDS))
def test_random_unicode_through_every_source_kind(text, kind):
    read_every_way(text.encode("utf-8"), kind, "strict")


JSON_STRINGS = st.text(max_size=15) | st.sampled_from(["\ud83d", "a\udc00b", "😀", "&amp;", "\r\n", ""])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | JSON_STRINGS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["text", "full_text", "tweet", "data", "tweets", "x"]) | st.text(max_size=4),
            inner,
            max_size=4,
        )
    ),
    max_leaves=15,
)


@FUZZ
@given(
    JSON_VALUES,
    st.sampled_from(
        [("a.json", "auto", b""), ("a.jsonl", "auto", b""), ("tweets.js", "auto", b"window.YTD.tweets.part0 = ")]
    ),
    st.sampled_from(["strict", "replace"]),
)
def test_random_json_documents_as_tweets(value, kind, errors):
    read_every_way(json.dumps(value).encode(), kind, errors)


@pytest.mark.parametrize(
    "name, data",
    [
        ("deep.json", b"[" * 100_000 + b"]" * 100_000),
        ("deep.jsonl", b"[" * 100_000 + b"]" * 100_000 + b"\n"),
        ("digits.json", b"[" + b"7" * 5000 + b"]"),
        ("digits.jsonl", b'{"text": ' + b"7" * 5000 + b"}\n"),
        ("half_emoji.jsonl", b'{"text": "cut \\ud83d"}\n'),
        ("field.csv", b'text\n"' + b"x" * 200_000 + b'"\n'),
        ("nul.csv", b"text\na\x00b\n"),
        ("crlf_only.txt", b"\r\n" * 1000),
        ("bom_only.txt", b"\xef\xbb\xbf"),
        ("invalid.txt", b"ok\xff\xfe\xfd"),
    ],
)
def test_pathological_files_give_a_result_or_a_clear_error(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    for errors in ("strict", "replace"):
        with at_most(30):
            try:
                corpus = load_corpus(str(tmp_path / name), errors=errors, cache_dir=tmp_path / "cache", progress=False)
            except CharnnError as error:
                assert "\n" not in str(error)
            else:
                corpus.text().encode("utf-8")


@pytest.mark.parametrize(
    "spec, sequences", [("task:nope", 10), ("task:", 10), ("task:count", 0), ("task:count", 10**12)]
)
def test_bad_task_corpora_are_refused_before_any_work(tmp_path, spec, sequences):
    with at_most(10), pytest.raises(CharnnError):
        load_corpus(spec, task_sequences=sequences, cache_dir=tmp_path, progress=False)
