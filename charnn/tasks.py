"""The synthetic corpora of "Exploring LSTMs" and the ground-truth state behind every character.

Each sequence is one line ending in a newline; a corpus is many sequences concatenated:

    count            a^N X b^N                     aaaXbbb
    selective-count  a^N with X's mixed in, Y, b^N  aXaaXaYbbb
    ab-memory        A|B, x^N, Y, a|b (the first)   AxxxYa
    copy             L of {a,b,c}, X, the same L    abcXabc
"""

import random
from collections.abc import Callable

import numpy as np

from charnn.errors import CharnnError, UsageError

TASK_NAMES: tuple[str, ...] = ("count", "selective-count", "ab-memory", "copy")

COPY_ALPHABET = "abc"
DISTRACTOR_PROBABILITY = 0.3
MAX_DISTRACTORS_IN_A_ROW = 3

# A walker reads one line (without its newline) and returns a label row for each character that
# fits the format, stopping at the first that does not, and whether the line was a whole sequence.
LineWalker = Callable[[str], tuple[list[tuple[int, ...]], bool]]


def _check_task_name(name: str) -> None:
    if name not in TASK_NAMES:
        raise CharnnError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASK_NAMES))}")


def _distractor_run(rng: random.Random) -> str:
    run_length = 0
    while run_length < MAX_DISTRACTORS_IN_A_ROW and rng.random() < DISTRACTOR_PROBABILITY:
        run_length += 1
    return "X" * run_length


def _selective_count_line(rng: random.Random, n: int) -> str:
    a_phase = _distractor_run(rng) + "".join("a" + _distractor_run(rng) for _ in range(n))
    return a_phase + "Y" + "b" * n


def _ab_memory_line(rng: random.Random, n: int) -> str:
    first_letter = rng.choice("AB")
    return first_letter + "x" * n + "Y" + first_letter.lower()


def make_task_text(
    name: str,
    num_sequences: int = 20000,
    seed: int = 0,
    min_n: int = 1,
    max_n: int = 10,
    copy_length: int = 3,
) -> str:
    """Generate a corpus of the named task: num_sequences lines, deterministic for a seed."""
    _check_task_name(name)
    if num_sequences < 1:
        raise UsageError(f"num_sequences must be at least 1, got {num_sequences}")
    if min_n < 1:
        raise UsageError(f"min_n must be at least 1, got {min_n}")
    if max_n < min_n:
        raise UsageError(f"max_n must be at least min_n ({min_n}), got {max_n}")
    if copy_length < 1:
        raise UsageError(f"copy_length must be at least 1, got {copy_length}")

    rng = random.Random(seed)
    lines = []
    for _ in range(num_sequences):
        if name == "copy":
            half = "".join(rng.choice(COPY_ALPHABET) for _ in range(copy_length))
            lines.append(half + "X" + half)
        elif name == "count":
            n = rng.randint(min_n, max_n)
            lines.append("a" * n + "X" + "b" * n)
        elif name == "selective-count":
            lines.append(_selective_count_line(rng, rng.randint(min_n, max_n)))
        else:
            lines.append(_ab_memory_line(rng, rng.randint(min_n, max_n)))
    return "\n".join(lines) + "\n"


def _walk_counting_line(line: str, separator: str, allow_distractors: bool) -> tuple[list[tuple[int, ...]], bool]:
    rows: list[tuple[int, ...]] = []
    a_seen = b_remaining = 0
    in_b_phase = False
    for char in line:
        if not in_b_phase and char == "a":
            a_seen += 1
            row = (a_seen, a_seen, 0, 0, 0)
        elif not in_b_phase and allow_distractors and char == "X":
            row = (a_seen, a_seen, 0, 0, 1)
        elif not in_b_phase and char == separator and a_seen > 0:
            in_b_phase = True
            b_remaining = a_seen
            row = (b_remaining, a_seen, b_remaining, 1, 0)
        elif in_b_phase and char == "b" and b_remaining > 0:
            b_remaining -= 1
            row = (b_remaining, a_seen, b_remaining, 1, 0)
        else:
            break
        rows.append(row if allow_distractors else row[:4])
    return rows, in_b_phase and b_remaining == 0 and len(rows) == len(line)


def _walk_count_line(line: str) -> tuple[list[tuple[int, ...]], bool]:
    return _walk_counting_line(line, separator="X", allow_distractors=False)


def _walk_selective_count_line(line: str) -> tuple[list[tuple[int, ...]], bool]:
    return _walk_counting_line(line, separator="Y", allow_distractors=True)


def _walk_ab_memory_line(line: str) -> tuple[list[tuple[int, ...]], bool]:
    rows: list[tuple[int, ...]] = []
    if not line or line[0] not in "AB":
        return rows, False
    ab_state = "AB".index(line[0])
    x_count = 0
    seen_y = answered = False
    rows.append((ab_state, 0, 0))
    for char in line[1:]:
        if not seen_y and char == "x":
            x_count += 1
        elif not seen_y and char == "Y" and x_count > 0:
            seen_y = True
        elif seen_y and not answered and char == "ab"[ab_state]:
            answered = True
        else:
            break
        rows.append((ab_state, x_count, int(seen_y)))
    return rows, answered and len(rows) == len(line)


def _walk_copy_line(line: str) -> tuple[list[tuple[int, ...]], bool]:
    rows: list[tuple[int, ...]] = []
    first_half = ""
    copied = -1  # letters of the second half written so far; -1 before the X
    for char in line:
        if copied < 0 and char in COPY_ALPHABET:
            first_half += char
            rows.append((len(first_half), 0, -1, COPY_ALPHABET.index(first_half[0])))
        elif copied < 0 and char == "X" and first_half:
            copied = 0
            first_id = COPY_ALPHABET.index(first_half[0])
            rows.append((0, 1, first_id, first_id))
        elif 0 <= copied < len(first_half) and char == first_half[copied]:
            copied += 1
            next_id = COPY_ALPHABET.index(first_half[copied]) if copied < len(first_half) else -1
            rows.append((copied, 1, next_id, COPY_ALPHABET.index(first_half[0])))
        else:
            break
    return rows, copied == len(first_half) and len(rows) == len(line)


# Per task: label names (the columns of a walker's rows), the walker, and the row for a newline
# that closes a whole sequence (the state of a fresh sequence with nothing read yet).
_LABELLERS: dict[str, tuple[tuple[str, ...], LineWalker, tuple[int, ...]]] = {
    "count": (("count", "a_seen", "b_remaining", "phase"), _walk_count_line, (0, 0, 0, 0)),
    "selective-count": (
        ("count", "a_seen", "b_remaining", "phase", "is_distractor"),
        _walk_selective_count_line,
        (0, 0, 0, 0, 0),
    ),
    "ab-memory": (("ab_state", "x_count", "phase"), _walk_ab_memory_line, (-1, 0, 0)),
    "copy": (("copy_position", "phase", "next_char_id", "first_char_id"), _walk_copy_line, (0, 0, -1, -1)),
}


def label_task_text(name: str, text: str) -> dict[str, np.ndarray]:
    """Ground-truth state per character of text written in the task's format.

    Every array is int64 of length len(text); entry i is the state after reading text[i] (text[i]
    included), so it only depends on text[: i + 1]. Any N >= 1 is accepted, not only the trained range.
    A newline that closes a whole sequence gets the state of a fresh sequence (zeros, -1 where
    undefined). From the first character that breaks the format up to and including its line's
    newline, every label is -1; labelling resumes on the next line. A last line without a newline
    is labelled as far as it goes.

    count and selective-count:
      count          a's read so far while reading a's; from the separator (X or Y) on, the b's still to come
      a_seen         a's read so far in the sequence (constant from the separator on)
      b_remaining    0 while reading a's; N at the separator, then one less at each b, 0 at the last b
      phase          0 while reading a's (and X distractors), 1 from the separator on
      is_distractor  selective-count only: 1 at an X among the a's, else 0
    ab-memory:
      ab_state       0 if the sequence began with A, 1 if with B (through the answer); -1 on the newline
      x_count        x's read so far
      phase          0 up to the last x, 1 at Y and the answer
    copy:
      copy_position  letters of the current half read so far: 1..L on the letters, 0 at X and the newline
      phase          0 in the first half, 1 from X on
      next_char_id   index in "abc" of the letter the copy must produce next; -1 in the first half
                     (not yet determined), at the last letter and on the newline
      first_char_id  index in "abc" of the sequence's first letter; -1 on the newline
    """
    _check_task_name(name)
    label_names, walk_line, fresh_sequence_row = _LABELLERS[name]
    table = np.full((len(text), len(label_names)), -1, dtype=np.int64)
    line_start = 0
    for line in text.split("\n"):
        rows, is_whole_sequence = walk_line(line)
        if rows:
            table[line_start : line_start + len(rows)] = rows
        newline_index = line_start + len(line)
        if newline_index < len(text) and is_whole_sequence:
            table[newline_index] = fresh_sequence_row
        line_start = newline_index + 1
    return {label_name: table[:, column].copy() for column, label_name in enumerate(label_names)}
