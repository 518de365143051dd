import re

import numpy as np
import pytest

from charnn.errors import CharnnError, UsageError
from charnn.tasks import TASK_NAMES, label_task_text, make_task_text

LINE_FORMATS = {
    "count": re.compile(r"(a+)X(b+)"),
    "selective-count": re.compile(r"([aX]*)Y(b+)"),
    "ab-memory": re.compile(r"([AB])(x+)Y([ab])"),
    "copy": re.compile(r"([abc]+)X([abc]+)"),
}


def lines_of(text: str) -> list[str]:
    assert text.endswith("\n")
    return text[:-1].split("\n")


def as_lists(labels: dict[str, np.ndarray]) -> dict[str, list[int]]:
    return {name: values.tolist() for name, values in labels.items()}


@pytest.mark.parametrize("name", TASK_NAMES)
def test_same_seed_same_corpus_other_seed_differs(name):
    assert make_task_text(name, 200, seed=3) == make_task_text(name, 200, seed=3)
    assert make_task_text(name, 200, seed=3) != make_task_text(name, 200, seed=4)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_line_matches_its_format(name):
    text = make_task_text(name, 500, seed=1, min_n=3, max_n=7)
    lines = lines_of(text)
    assert len(lines) == 500
    for line in lines:
        assert LINE_FORMATS[name].fullmatch(line), line


def test_count_lines_have_as_many_bs_as_as_within_range():
    lengths = set()
    for line in lines_of(make_task_text("count", 500, seed=2, min_n=2, max_n=6)):
        a_run, b_run = LINE_FORMATS["count"].fullmatch(line).groups()
        assert len(a_run) == len(b_run)
        lengths.add(len(a_run))
    assert lengths == {2, 3, 4, 5, 6}


def test_selective_count_counts_only_the_as_and_mixes_in_distractors():
    lines = lines_of(make_task_text("selective-count", 500, seed=2, min_n=1, max_n=10))
    for line in lines:
        a_phase, b_run = LINE_FORMATS["selective-count"].fullmatch(line).groups()
        assert 1 <= a_phase.count("a") == len(b_run) <= 10
        assert "XXXX" not in a_phase
    assert sum("X" in line for line in lines) > 100


def test_ab_memory_answer_is_the_first_letter_and_x_count_in_range():
    first_letters = set()
    for line in lines_of(make_task_text("ab-memory", 500, seed=2, min_n=1, max_n=10)):
        first, xs, answer = LINE_FORMATS["ab-memory"].fullmatch(line).groups()
        assert answer == first.lower()
        assert 1 <= len(xs) <= 10
        first_letters.add(first)
    assert first_letters == {"A", "B"}


@pytest.mark.parametrize("copy_length", [1, 3, 5])
def test_copy_second_half_equals_first(copy_length):
    for line in lines_of(make_task_text("copy", 200, seed=2, copy_length=copy_length)):
        first_half, second_half = LINE_FORMATS["copy"].fullmatch(line).groups()
        assert first_half == second_half
        assert len(first_half) == copy_length


def test_count_labels_of_a_hand_written_line():
    assert as_lists(label_task_text("count", "aaXbb\n")) == {
        "count": [1, 2, 2, 1, 0, 0],
        "a_seen": [1, 2, 2, 2, 2, 0],
        "b_remaining": [0, 0, 2, 1, 0, 0],
        "phase": [0, 0, 1, 1, 1, 0],
    }


def test_selective_count_labels_of_a_hand_written_line():
    assert as_lists(label_task_text("selective-count", "XaXaYbb\n")) == {
        "count": [0, 1, 1, 2, 2, 1, 0, 0],
        "a_seen": [0, 1, 1, 2, 2, 2, 2, 0],
        "b_remaining": [0, 0, 0, 0, 2, 1, 0, 0],
        "phase": [0, 0, 0, 0, 1, 1, 1, 0],
        "is_distractor": [1, 0, 1, 0, 0, 0, 0, 0],
    }


def test_ab_memory_labels_of_hand_written_lines():
    assert as_lists(label_task_text("ab-memory", "AxxYa\nBxYb\n")) == {
        "ab_state": [0, 0, 0, 0, 0, -1, 1, 1, 1, 1, -1],
        "x_count": [0, 1, 2, 2, 2, 0, 0, 1, 1, 1, 0],
        "phase": [0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0],
    }


def test_copy_labels_of_a_hand_written_line():
    assert as_lists(label_task_text("copy", "cabXcab\n")) == {
        "copy_position": [1, 2, 3, 0, 1, 2, 3, 0],
        "phase": [0, 0, 0, 1, 1, 1, 1, 0],
        "next_char_id": [-1, -1, -1, 2, 0, 1, -1, -1],
        "first_char_id": [2, 2, 2, 2, 2, 2, 2, -1],
    }


def test_count_labels_follow_a_longer_n_than_trained():
    labels = label_task_text("count", "a" * 25 + "X" + "b" * 25 + "\n")
    assert labels["count"].max() == 25
    assert labels["count"][-2] == 0
    assert labels["b_remaining"][25] == 25
    assert (labels["a_seen"][25:-1] == 25).all()


def test_count_labels_on_a_generated_corpus_agree_with_its_structure():
    text = make_task_text("count", 300, seed=5)
    labels = label_task_text("count", text)
    assert all(len(values) == len(text) for values in labels.values())
    chars = np.array(list(text))
    assert (labels["count"] >= 0).all()
    is_b = chars == "b"
    assert (labels["b_remaining"][is_b] == labels["b_remaining"][np.flatnonzero(is_b) - 1] - 1).all()
    last_b_of_line = np.flatnonzero(chars == "\n") - 1
    assert (labels["b_remaining"][last_b_of_line] == 0).all()
    separators = np.flatnonzero(chars == "X")
    assert (labels["b_remaining"][separators] == labels["a_seen"][separators]).all()
    assert (labels["phase"][chars == "a"] == 0).all() and (labels["phase"][is_b] == 1).all()


@pytest.mark.parametrize("name", TASK_NAMES)
def test_generated_corpus_is_fully_labelled(name):
    text = make_task_text(name, 300, seed=6, min_n=1, max_n=12)
    labels = label_task_text(name, text)
    not_a_newline = np.array(list(text)) != "\n"
    for label_name, values in labels.items():
        assert values.shape == (len(text),)
        assert (values[not_a_newline] >= -1).all()
        if label_name != "next_char_id":
            assert (values[not_a_newline] != -1).all(), label_name


def test_ab_state_holds_for_the_whole_sequence():
    text = make_task_text("ab-memory", 200, seed=7)
    ab_state = label_task_text("ab-memory", text)["ab_state"]
    line_start = 0
    for line in lines_of(text):
        expected = "AB".index(line[0])
        assert (ab_state[line_start : line_start + len(line)] == expected).all()
        line_start += len(line) + 1


def test_copy_next_char_id_names_the_letter_that_follows():
    text = make_task_text("copy", 200, seed=8)
    next_char_id = label_task_text("copy", text)["next_char_id"]
    for i in np.flatnonzero(next_char_id >= 0):
        assert text[i + 1] == "abc"[next_char_id[i]]


def test_malformed_lines_are_marked_and_labelling_resumes():
    labels = as_lists(label_task_text("count", "aaXbbb\nzz\naXb\naaX"))
    assert labels["count"] == [1, 2, 2, 1, 0, -1, -1, -1, -1, -1, 1, 1, 0, 0, 1, 2, 2]
    assert labels["phase"] == [0, 0, 1, 1, 1, -1, -1, -1, -1, -1, 0, 1, 1, 0, 0, 0, 1]


@pytest.mark.parametrize("name", TASK_NAMES)
def test_labelling_text_of_another_format_does_not_crash(name):
    text = "aaXbbb\nzz\n\nAxxYb\nabcXabd\naXaYbb\n"
    labels = label_task_text(name, text)
    assert all(len(values) == len(text) for values in labels.values())
    assert all(len(values) == 0 for values in label_task_text(name, "").values())


def test_unknown_task_name_lists_the_known_ones():
    message = "unknown task 'foo'; known tasks: ab-memory, copy, count, selective-count"
    with pytest.raises(CharnnError, match=re.escape(message)):
        make_task_text("foo")
    with pytest.raises(CharnnError, match=re.escape(message)):
        label_task_text("foo", "aXb\n")


@pytest.mark.parametrize(
    "kwargs, parameter",
    [
        ({"num_sequences": 0}, "num_sequences"),
        ({"min_n": 0}, "min_n"),
        ({"min_n": 5, "max_n": 4}, "max_n"),
        ({"copy_length": 0}, "copy_length"),
    ],
)
def test_bad_sizes_raise_usage_error_naming_the_parameter(kwargs, parameter):
    with pytest.raises(UsageError, match=rf"^{parameter} must be at least"):
        make_task_text("count", **kwargs)
