"""Code labels: inside a string (of each kind), inside a comment, indentation depth, block depth, indent still to
write, bracket depth, column."""

import re

import numpy as np

from charnn.errors import CharnnError
from charnn.probe.labels.base import Feature, chars_into_line, code_points_of, just_before, mask_at, span_mask
from charnn.probe.labels.indentation import indentation_features
from charnn.probe.labels.lexer import lex_strings_and_comments
from charnn.probe.languages import SYNTAXES, resolve_language

_LEADING_WHITESPACE = re.compile(r"^[ \t]*", re.MULTILINE)
_BRACE_IS_NOT_A_BLOCK = frozenset({"python"})  # where a { ... } spanning lines continues a statement


def _depth(code_points: np.ndarray, in_code: np.ndarray, openers: str, closers: str) -> tuple[np.ndarray, np.ndarray]:
    """Nesting depth of the given brackets in code after each character, never below 0; and where each closer is."""
    opens = np.isin(code_points, [ord(char) for char in openers]) & in_code
    closes = np.isin(code_points, [ord(char) for char in closers]) & in_code
    running_sum = np.cumsum(opens.astype(np.int64) - closes)
    # Clamping at 0 after each step equals subtracting the lowest running sum reached so far.
    lowest_so_far = np.minimum(np.minimum.accumulate(running_sum), 0)
    return running_sum - lowest_so_far, closes


def _indentation(
    text: str, code_points: np.ndarray, column: np.ndarray, tab_width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indentation width in columns per character, and the positions just before each line's code."""
    length = len(text)
    widths, lead_starts, lead_stops, first_code_positions = [], [], [], []
    tabbed_leads: list[tuple[int, str]] = []
    for lead in _LEADING_WHITESPACE.finditer(text):
        start, stop = lead.span()
        whitespace = lead.group()
        if "\t" in whitespace:
            widths.append(len(whitespace.expandtabs(tab_width)))
            tabbed_leads.append((start, whitespace))
        else:
            widths.append(len(whitespace))
        lead_starts.append(start)
        lead_stops.append(stop)
        if 0 < stop < length and text[stop] not in "\r\n":
            first_code_positions.append(stop - 1)

    is_newline = code_points == ord("\n")
    line_of_char = np.cumsum(is_newline) - is_newline
    indent = np.asarray(widths, dtype=np.int64)[line_of_char]
    in_lead = span_mask(length, lead_starts, lead_stops)
    indent[in_lead] = column[in_lead]  # running width; right when there are no tabs
    for start, whitespace in tabbed_leads:
        running, column = [], 0
        for char in whitespace:
            column = (column // tab_width + 1) * tab_width if char == "\t" else column + 1
            running.append(column)
        indent[start : start + len(running)] = running
    indent[is_newline] = 0
    return indent, mask_at(length, first_code_positions)


def code_features(text: str, tab_width: int = 8, language: str | None = None) -> dict[str, Feature]:
    """Label source code: inside_string, inside_comment, indent_depth, block_depth, indent_remaining, bracket_depth,
    column.

    language names the lexical rules of strings and comments (a key of SYNTAXES); None or "auto"
    guesses from the text: its '#!' lines, else python or c (resolve_language also reads a file name).
    """
    if tab_width < 1:
        raise CharnnError(f"tab_width must be at least 1, got {tab_width}")
    language = resolve_language(language, text)
    length = len(text)
    code_points = code_points_of(text)
    strings, comments, regexes = lex_strings_and_comments(text, language)
    inside_string = span_mask(length, strings.starts, strings.stops)
    inside_comment = span_mask(length, comments.starts, comments.stops)

    in_code = ~(inside_string | inside_comment | span_mask(length, regexes.starts, regexes.stops))
    bracket_depth, closes = _depth(code_points, in_code, "([{", ")]}")
    continuing = _depth(code_points, in_code, *(("([{", ")]}") if language in _BRACE_IS_NOT_A_BLOCK else ("([", ")]")))[
        0
    ]

    column = chars_into_line(code_points)
    indent_depth, before_line_code = _indentation(text, code_points, column, tab_width)
    before_newline = just_before(code_points == ord("\n"))

    # Where the text has strings of both kinds, each kind is also a feature of its own: a model may keep
    # docstrings and one-line literals in different units, which inside_string alone would not show.
    string_kinds = {}
    if any(strings.multiline) and not all(strings.multiline):
        for multiline, name, description in (
            (
                True,
                "inside_multiline_string",
                "inside a string whose delimiter lets it span lines (triple quotes, "
                "JavaScript templates, Go raw strings ...): Python's docstrings",
            ),
            (
                False,
                "inside_oneline_string",
                "inside a string that ends on its line ('...', \"...\", character literals)",
            ),
        ):
            kind = strings.select(multiline)
            string_kinds[name] = Feature(
                name,
                "binary",
                span_mask(length, kind.starts, kind.stops),
                mask_at(length, kind.targets),
                f"{description}; lexed as {language}",
            )

    return {
        "inside_string": Feature(
            "inside_string",
            "binary",
            inside_string,
            mask_at(length, strings.targets),
            f"inside a string, opening quote in, closing quote out (lexed as {language}: "
            f"{SYNTAXES[language].description})",
        ),
        **string_kinds,
        "inside_comment": Feature(
            "inside_comment",
            "binary",
            inside_comment,
            mask_at(length, comments.targets),
            f"inside a comment (lexed as {language}; in C, preprocessor lines are code)",
        ),
        "indent_depth": Feature(
            "indent_depth",
            "ordinal",
            indent_depth,
            before_line_code,
            f"leading whitespace of the current line in columns (tab = next multiple of {tab_width})",
        ),
        **indentation_features(text, inside_string, inside_comment, in_code, continuing, tab_width),
        "bracket_depth": Feature(
            "bracket_depth",
            "ordinal",
            bracket_depth,
            just_before(closes),
            "nesting depth of (), [], {} outside strings, comments and regular expressions, never below 0",
        ),
        "column": Feature(
            "column",
            "ordinal",
            column,
            before_newline,
            "characters of the current line read so far (0 on the newline)",
        ),
    }
