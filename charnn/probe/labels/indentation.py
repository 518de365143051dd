"""The two indentation labels of the "Exploring LSTMs" seed: the level of the block a statement is in, and the
spaces still to be written of an indent (indent_depth, the raw leading width, stays in charnn.probe.labels.code).

A line is read as one of:
- blank (only whitespace): neither label is defined on it, nor on the newline before it for indent_remaining;
- inside a string (its first character continues a string opened on an earlier line, as a docstring's lines do):
  its text is the string's, not indentation, so neither label is defined on it or on the newline before it;
- a continuation (the code brackets of an earlier line are still open, the line before ended with a backslash or
  an operator, or the line continues a block comment): it takes the level of the statement it continues;
- otherwise the first line of a statement: its level is its leading width (tabs to the next multiple of tab_width)
  divided by the text's indentation step.
The step is found from the text: the most common positive difference between the leading widths of consecutive
statement lines (the smallest if several are as common); a text with no indentation is at level 0 throughout.
"""

from collections import Counter

import numpy as np

from charnn.probe.labels.base import Feature

# a line whose last code character is one of these goes on (':' opens a block in Python and ends a label in C)
_CONTINUING = frozenset("+-*/%=&|^<>,?\\")
_NOT_CONTINUING_ENDS = ("++", "--")  # i++ ends a statement where no ';' is needed


def _width(whitespace: str, tab_width: int) -> list[int]:
    """The column after each character of a line's leading whitespace (a tab moves to the next tab stop)."""
    running, column = [], 0
    for char in whitespace:
        column = (column // tab_width + 1) * tab_width if char == "\t" else column + 1
        running.append(column)
    return running


def indentation_features(
    text: str,
    inside_string: np.ndarray,
    inside_comment: np.ndarray,
    in_code: np.ndarray,
    continuation_brackets: np.ndarray,
    tab_width: int = 8,
) -> dict[str, Feature]:
    """block_depth and indent_remaining of a code text.

    inside_string, inside_comment, in_code: per-character masks from the lexer; continuation_brackets: per
    character, how many code brackets that continue a statement are open after reading it (parentheses and
    square brackets; braces too where they are not blocks, as in Python).
    """
    length = len(text)
    block_depth = np.zeros(length, dtype=np.int64)
    block_defined = np.zeros(length, dtype=bool)
    block_targets = np.zeros(length, dtype=bool)
    remaining = np.zeros(length, dtype=np.int64)
    remaining_defined = np.zeros(length, dtype=bool)
    remaining_targets = np.zeros(length, dtype=bool)

    lines = []  # (start, first, end, widths, kind) with kind "statement", "continuation"
    previous_end_continues = False
    start = 0
    while start <= length:
        end = text.find("\n", start)
        end = length if end < 0 else end
        line = text[start:end]
        stripped = line.lstrip(" \t")
        first = start + len(line) - len(stripped)
        if start > 0 and inside_string[start - 1]:
            pass  # a string's text, not indentation
        elif stripped.strip():
            continued = start > 0 and (
                bool(inside_comment[start - 1]) or continuation_brackets[start - 1] > 0 or previous_end_continues
            )
            lines.append((start, first, end, _width(line[: first - start], tab_width), continued))
            last = next((i for i in range(end - 1, first - 1, -1) if in_code[i] and not text[i].isspace()), None)
            if last is not None:
                ends = text[max(first, last - 1) : last + 1]
                preprocessor = text[first] == "#" and in_code[first]
                previous_end_continues = (
                    text[last] in _CONTINUING
                    and not ends.endswith(_NOT_CONTINUING_ENDS)
                    and (not preprocessor or text[last] == "\\")
                )
            else:
                previous_end_continues = False
        if end >= length:
            break
        start = end + 1

    widths = [(wide[-1] if wide else 0) for _, _, _, wide, continued in lines if not continued]
    steps = Counter(b - a for a, b in zip(widths, widths[1:]) if b > a)
    step = min(steps, key=lambda s: (-steps[s], s)) if steps else None

    level = 0
    for start, first, end, wide, continued in lines:
        width = wide[-1] if wide else 0
        if not continued:
            level = width // step if step else 0
        if first < end:
            block_depth[first:end] = level
            block_defined[first:end] = True
            block_targets[end - 1] = end < length  # the line's last character: its next is the newline
        positions = list(range(start, first))
        values = [width - column for column in wide]
        if start > 0:  # the newline before the line: the whole indent is still to be written
            positions.insert(0, start - 1)
            values.insert(0, width)
        if positions:
            remaining[positions] = values
            remaining_defined[positions] = True
            remaining_targets[first - 1] = True  # where the line's first non-blank character is predicted

    step_text = f"{step} columns, found in this text" if step else "none: this text has no indentation"
    return {
        "block_depth": Feature(
            "block_depth",
            "ordinal",
            block_depth,
            block_targets,
            f"indentation level of the statement a character belongs to (its first line's leading width / the step: "
            f"{step_text}; continuation lines take their statement's level); undefined on newlines, leading "
            f"whitespace, blank lines and lines inside a string",
            defined=block_defined,
        ),
        "indent_remaining": Feature(
            "indent_remaining",
            "ordinal",
            remaining,
            remaining_targets,
            f"on a newline and a line's leading whitespace, the columns of whitespace still to be written before the "
            f"line's first non-blank character (tab = next multiple of {tab_width}); undefined elsewhere, before "
            f"blank lines and in lines inside a string",
            defined=remaining_defined,
        ),
    }
