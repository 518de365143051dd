"""Code labels on real code, on any text (property tests), and the dispatch of feature sets."""

import inspect
import json.decoder

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from label_marks import target_positions

from charnn.errors import CharnnError
from charnn.probe.labels import FEATURE_SETS, code_features, features_for, tweet_features
from charnn.probe.languages import SYNTAXES

# ---------------------------------------------------------------- real code


def test_real_python_source_has_plausible_labels():
    text = inspect.getsource(json.decoder)
    features = code_features(text)
    string = features["inside_string"]
    assert 0.01 < string.values.mean() < 0.5
    assert 0.005 < features["inside_comment"].values.mean() < 0.3
    assert all(text[i + 1] in "'\"" for i in target_positions(string))
    assert string.targets.sum() > 50
    assert all(text[i + 1] == "\n" for i in target_positions(features["inside_comment"]))
    assert not (string.values & features["inside_comment"].values).any()
    assert features["bracket_depth"].values[-1] == 0  # the whole module balances
    assert features["indent_depth"].values.max() >= 16
    # A docstring line is inside, the code that uses the string scanner is outside.
    assert string.values[text.index("after the end quote")]
    assert not string.values[text.index("chunks = []")]


# ---------------------------------------------------------------- any input


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_any_text_gets_labels_of_its_length(text):
    for feature in [*code_features(text).values(), *tweet_features(text).values()]:
        assert feature.values.shape == (len(text),)
        assert feature.targets.shape == (len(text),) and feature.targets.dtype == bool
        assert feature.kind in ("binary", "ordinal")
        assert feature.kind == "ordinal" or feature.values.dtype == bool
        assert feature.defined_mask.shape == (len(text),) and (feature.target_mask <= feature.defined_mask).all()
    code = code_features(text)
    assert (code["block_depth"].values >= 0).all() and (code["indent_remaining"].values >= 0).all()


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="\"'#/*\\\n\t (){}[]ab"))
def test_code_invariants_on_code_like_noise(text):
    features = code_features(text, tab_width=4)
    string, comment = features["inside_string"], features["inside_comment"]
    assert not (string.values & comment.values).any()
    for i in target_positions(string):
        assert text[i + 1] in "'\"" and string.values[i] and not string.values[i + 1]
    assert all(comment.values[i] and not comment.values[i + 1] for i in target_positions(comment))
    assert (features["bracket_depth"].values >= 0).all() and (features["indent_depth"].values >= 0).all()


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="\"'`#/*\\\n\t -[](){}abr"), st.sampled_from(sorted(SYNTAXES)))
def test_every_language_keeps_the_span_invariants(text, language):
    features = code_features(text, language=language)
    string, comment = features["inside_string"], features["inside_comment"]
    assert not (string.values & comment.values).any()
    for i in target_positions(
        string
    ):  # a closed string ends on a quote (or a raw string's '#', a [[long]] string's ']')
        assert text[i + 1] in "'\"`#]" and string.values[i] and not string.values[i + 1]
    assert all(comment.values[i] and not comment.values[i + 1] for i in target_positions(comment))
    assert (features["bracket_depth"].values >= 0).all() and (features["indent_depth"].values >= 0).all()


@settings(max_examples=80, deadline=None)
@given(
    st.text(alphabet="\"'`#/\\\n\t -=~<[](){}qmsyEOF;$"),
    st.sampled_from(["shell", "perl", "ruby", "javascript", "cmake", "lua"]),
)
def test_here_documents_regexes_and_long_brackets_keep_the_span_invariants(text, language):
    features = code_features(text, language=language)
    string, comment = features["inside_string"], features["inside_comment"]
    assert not (string.values & comment.values).any()
    for feature in (string, comment):
        assert all(feature.values[i] and not feature.values[i + 1] for i in target_positions(feature))
    assert (features["bracket_depth"].values >= 0).all()


def test_lone_surrogates_do_not_crash():
    text = "x = '\ud800' # \udfff\n@a\ud83d #b"
    assert code_features(text)["inside_string"].values.sum() == 2
    assert tweet_features(text)["inside_mention"].values.sum() == 2


def test_pathological_text_stays_linear():
    for text in ["#define x\\\n" * 20000, "“" * 200000, '"' * 200001, "http://" + "." * 200000]:
        assert len(code_features(text)["column"].values) == len(tweet_features(text)["caps_word"].values)
    assert len(tweet_features("http://a.com/" + ")" * 100000)["inside_url"].values) == 100013
    for language, text in [
        ("perl", "s{" * 30000),
        ("perl", "=~ /" * 15000),
        ("javascript", "x = /a[/" * 8000),
        ("javascript", ("[" + "(/[" * 160 + "]") * 60),
        ("perl", "y(" * 10000 + "a)" * 10000),
        ("shell", "".join(f"<<A{i}\n" for i in range(10000))),
        ("lua", "[[" * 30000),
    ]:
        assert len(code_features(text, language=language)["column"].values) == len(text)


# ---------------------------------------------------------------- dispatch and tasks


def test_features_for_dispatches_and_rejects_unknown_kinds():
    code_names = {
        "inside_string",
        "inside_comment",
        "indent_depth",
        "block_depth",
        "indent_remaining",
        "bracket_depth",
        "column",
    }
    assert set(features_for("code", "x")) == code_names
    assert set(features_for("tweets", "x")) == set(FEATURE_SETS["tweets"]("x"))
    with pytest.raises(CharnnError, match="unknown feature set 'poems'"):
        features_for("poems", "x")
    with pytest.raises(CharnnError, match="needs a task name"):
        features_for("task", "x")
