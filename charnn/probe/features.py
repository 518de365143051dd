"""Labels computed from the raw characters of a probe text, to rank recorded units against.

Position convention, shared by every label here: entry i describes the state *after reading
text[i]*, the state the RNN's hidden vector at step i has seen (text[: i + 1], text[i] included).

For a delimited span (a string, a comment, a quote) this gives one rule everywhere: the span is
True from its first character (the opening delimiter) up to, but not including, the character that
completes it; that completing character is False, because after reading it the span is over.
So `"ab"` is labelled T T T F, `/* x */` is True up to the `*` and False on the final `/`, and a
line comment is True up to the end of its line and False on the newline. A span that reaches the
end of the text unclosed is True to the end. A word-like span with no closing delimiter (a
hashtag, a mention, a URL, a capitals word) is over only when the next character is not part of
it, so all its characters are True and the character after it is False.

Targets mark the positions whose *next-character* prediction the label should matter for (the
loss at position i predicts text[i + 1]); ablation compares the loss there against elsewhere.
For spans they are the positions just before the completing character, i.e. where the label is
about to fall from True to False.

Each labeller is O(len(text)): regular expressions find the spans and numpy fills the arrays.
Any str is accepted: lone surrogates, carriage returns, the empty string.
"""

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache

import numpy as np

from charnn.errors import CharnnError
from charnn.probe.languages import LANGUAGES, SYNTAXES, Syntax, guess_language, language_for_path, resolve_language

__all__ = ["FEATURE_SETS", "LANGUAGES", "SYNTAXES", "Feature", "Syntax", "code_features", "features_for",
           "guess_language", "language_for_path", "resolve_language", "task_features", "tweet_features"]


@dataclass(frozen=True)
class Feature:
    """One label per character of a probe text, with the positions where it should matter."""

    name: str
    kind: str  # "binary" (values are bool) or "ordinal" (values are int64)
    values: np.ndarray  # (len(text),)
    targets: np.ndarray  # (len(text),) bool: positions whose next-character prediction it drives
    description: str


# ---------------------------------------------------------------- shared helpers


def _code_points(text: str) -> np.ndarray:
    """The text as one uint32 code point per character (lone surrogates kept as they are)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _span_mask(length: int, starts: list[int], stops: list[int]) -> np.ndarray:
    """True on every [start, stop); the spans must not overlap."""
    delta = np.zeros(length + 1, dtype=np.int32)
    np.add.at(delta, np.asarray(starts, dtype=np.int64), 1)
    np.add.at(delta, np.asarray(stops, dtype=np.int64), -1)
    return np.cumsum(delta[:length]) > 0


def _mask_at(length: int, positions: list[int]) -> np.ndarray:
    mask = np.zeros(length, dtype=bool)
    mask[np.asarray(positions, dtype=np.int64)] = True
    return mask


def _before(mask: np.ndarray) -> np.ndarray:
    """Positions i whose next character i + 1 is in mask."""
    shifted = np.zeros_like(mask)
    shifted[:-1] = mask[1:]
    return shifted


def _chars_into_line(code_points: np.ndarray) -> np.ndarray:
    """Characters of the current line read so far, text[i] included; a newline resets it to 0."""
    positions = np.arange(len(code_points), dtype=np.int64)
    last_newline = np.where(code_points == ord("\n"), positions, -1)
    np.maximum.accumulate(last_newline, out=last_newline)
    return positions - last_newline


# ---------------------------------------------------------------- source code

# where a value may start, so that a '/' opens a regular expression rather than dividing: after an operator or
# an opening bracket, at a line start, or after a keyword such as return (JavaScript, Ruby)
_REGEX_KEYWORDS = ("return", "typeof", "case", "in", "of", "delete", "void", "throw", "yield", "await", "new", "do",
                   "else", "when", "and", "or", "not", "if", "unless")
_SLASH_REGEX = (
    r"(?P<slash_regex>(?:^|(?<=[(,=:\[!&|?{};~])|(?<==>)|"
    + "|".join(rf"(?<=\b{keyword})" for keyword in _REGEX_KEYWORDS)
    + r")[ \t]*(?P<regex_start>/)(?![*/]))"
)
# a regex's body: escapes, [classes] (a / inside one does not close it) and other characters, then the closing /;
# matched within REGEX_MAX_CHARS of its start, so that a long line of divisions costs a bounded scan per '/'
_SLASH_BODY = re.compile(r"(?:\\.|\[(?:\\.|[^\]\\\n])*\]|[^/\\\n\[])+/")
REGEX_MAX_CHARS = 500
# Perl's quote-like operators: q qq qw qx are strings; m qr s tr y are regular expressions. Not after a sigil,
# -> or \ (\s in a regex), and a '#' delimits only right after the operator (after a blank it starts a comment).
_PERL_QUOTE = (r"(?P<perl_quote>(?<![\w$@%&>:\\-])(?P<perl_op>qq|qw|qx|qr|tr|q|m|s|y)"
               r"(?:(?=\#)|[ \t]*)(?P<perl_delimiter>[/#!|{(\[<~@%:'\"^+]))")
_PERL_MATCH = (  # a bare /.../ where a value may start
    r"(?P<perl_match>(?:^|(?<=[=!]~)|(?<=[(,!&|={;?:])|"
    + "|".join(rf"(?<=\b{keyword})" for keyword in ("if", "and", "or", "not", "unless", "split", "grep", "map", "return"))
    + r")[ \t]*(?P<match_start>/)(?![/*]))"
)
_PERL_FLAGS = re.compile(r"[A-Za-z]*")
_PERL_PAIRS = {"{": "}", "(": ")", "[": "]", "<": ">"}


def _heredoc_pattern(spaced: bool) -> str:
    """<<WORD, <<-WORD, <<~WORD, <<'WORD', <<"WORD"; with spaced (shell), blanks may follow the <<."""
    blanks = r"[ \t]*" if spaced else ""
    return (rf"(?P<heredoc>(?<![<\w])<<(?P<heredoc_mode>[-~]?){blanks}(?P<heredoc_quote>[\"']?)"
            r"(?P<heredoc_word>[A-Za-z_]\w*)(?P=heredoc_quote))")


def _opener_pattern(syntax: Syntax) -> re.Pattern[str]:
    """One regular expression for everything that opens a string, a comment or a regular expression, longest first."""
    alternatives = []
    for index, (opener, _) in enumerate(syntax.line_start_comments):
        alternatives.append(rf"(?P<line_start_comment{index}>^{opener})")
    if syntax.long_brackets:
        alternatives.append(rf"(?P<long_bracket>(?P<long_comment>{re.escape(syntax.long_brackets)})?\[(?P<level>=*)\[)")
    if syntax.rust_raw_strings:
        alternatives.append(r'(?P<rust_raw>(?<!\w)b?r(?P<hashes>\#*)")')
    if syntax.char_literals:
        alternatives.append(r"(?P<char>(?<!\w)b?'(?:\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F_]{1,8}\}|[^\n])|[^'\\\n])')")
    if syntax.heredocs:
        alternatives.append(_heredoc_pattern(spaced=syntax.heredocs == "spaced"))
    if syntax.regex_literals == "perl":
        alternatives += [_PERL_QUOTE, _PERL_MATCH]
    for index, opener in enumerate(sorted((opener for opener, _ in syntax.block_comments), key=len, reverse=True)):
        alternatives.append(rf"(?P<block_comment{index}>{re.escape(opener)})")
    if syntax.regex_literals == "slash":  # after the comments: // and /* are never a regular expression
        alternatives.append(_SLASH_REGEX)
    if syntax.strings:
        quotes = "|".join(re.escape(delimiter) for delimiter in sorted(syntax.strings, key=len, reverse=True))
        guard = rf"(?<![{re.escape(syntax.not_after)}])" if syntax.not_after else ""
        alternatives.append(rf"{guard}(?P<quote>{quotes})")
    markers = []
    for marker in sorted(syntax.line_comments, key=len, reverse=True):
        if marker == "//":
            markers.append(r"(?<!:)//")  # `://` is a URL, not a comment
        elif marker == "#" and syntax.hash_at_word_start:
            markers.append(r"(?<![^\s;|&(])\#")  # `$#`, `${#x}` and `a#b` are not comments
        else:
            markers.append(re.escape(marker))
    if markers:
        alternatives.append(rf"(?P<line_comment>{'|'.join(markers)})")
    return re.compile("|".join(alternatives), re.MULTILINE)


def _string_body(delimiter: str, multiline: bool, raw: bool) -> re.Pattern[str]:
    """What follows an opening delimiter, up to (not including) its closer or a line end that breaks it."""
    quote = re.escape(delimiter[0])
    if raw:
        return re.compile(rf"[^{quote}]*" if multiline else rf"[^{quote}\n]*")
    if len(delimiter) == 1:
        excluded = rf"{quote}\\" if multiline else rf"{quote}\\\n"
        return re.compile(rf"[^{excluded}]*(?:\\[\s\S][^{excluded}]*)*")
    # a triple quote: one or two of its quote characters in a row do not close it
    return re.compile(rf"[^{quote}\\]*(?:(?:\\[\s\S]|{quote}(?!{re.escape(delimiter[1:])}))[^{quote}\\]*)*")


@dataclass(frozen=True)
class _Lexer:
    openers: re.Pattern[str]
    bodies: dict[str, re.Pattern[str]]
    block_closers: dict[str, str]
    line_start_closers: tuple[str, ...]
    multiline: frozenset[str]


@cache
def _lexer(language: str) -> _Lexer:
    """The compiled rules of one language, built the first time a text of that language is labelled."""
    syntax = SYNTAXES[language]
    bodies = {
        delimiter: _string_body(delimiter, delimiter in syntax.multiline, delimiter in syntax.raw)
        for delimiter in syntax.strings
    }
    return _Lexer(_opener_pattern(syntax), bodies, dict(syntax.block_comments),
                  tuple(closer for _, closer in syntax.line_start_comments), syntax.multiline)


@dataclass
class _Spans:
    """Label spans found by the lexer: True on [start, stop); a closed span's target is the position before its closer."""

    starts: list[int] = field(default_factory=list)
    stops: list[int] = field(default_factory=list)
    closed: list[bool] = field(default_factory=list)
    multiline: list[bool] = field(default_factory=list)  # opened by a delimiter whose strings may span lines

    def add(self, start: int, stop: int, closed: bool, multiline: bool = False) -> None:
        self.starts.append(start)
        self.stops.append(stop)
        self.closed.append(closed)
        self.multiline.append(multiline)

    @property
    def targets(self) -> list[int]:
        return [stop - 1 for stop, closed in zip(self.stops, self.closed) if closed]

    def select(self, multiline: bool) -> "_Spans":
        """The spans of one kind: multiline or not."""
        chosen = _Spans()
        for span in zip(self.starts, self.stops, self.closed, self.multiline):
            if span[3] == multiline:
                chosen.add(*span)
        return chosen


class _Delimited:
    """Where Perl quote-like bodies end, in linear time over a text: a bracket's partner from one pass with a stack
    (its first closer at depth 0 is the one that pops it), another delimiter's next unescaped repeat by search,
    remembering where none is left."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.partners: dict[str, dict[int, int]] = {}  # opening bracket -> {its index: its partner's index}
        self.missing_after: dict[str, int] = {}  # delimiter -> a position from which it has no unescaped repeat

    def _bracket_partners(self, opener: str) -> dict[int, int]:
        if opener not in self.partners:
            closer, stack, partners = _PERL_PAIRS[opener], [], {}
            for token in _repeat_scanner(opener + closer).finditer(self.text):
                if token.group() == opener:
                    stack.append(token.start())
                elif token.group() == closer and stack:
                    partners[stack.pop()] = token.start()
            self.partners[opener] = partners
        return self.partners[opener]

    def end(self, opener_index: int) -> int | None:
        """Index of the closer of the body whose delimiter is text[opener_index], or None when the text ends first."""
        opener = self.text[opener_index]
        if opener in _PERL_PAIRS:
            return self._bracket_partners(opener).get(opener_index)
        start = opener_index + 1
        if start >= self.missing_after.get(opener, len(self.text) + 1):
            return None
        for token in _repeat_scanner(opener).finditer(self.text, start):
            if token.group() == opener:
                return token.start()
        self.missing_after[opener] = start  # below any earlier mark, or the search above would not have run
        return None


@cache
def _repeat_scanner(delimiters: str) -> re.Pattern[str]:
    """Backslash escapes (a character and the one after it) and each of delimiters."""
    return re.compile(rf"\\.|[{re.escape(delimiters)}]", re.DOTALL)


_PERL_TWO_PARTS = frozenset({"s", "tr", "y"})
_PERL_STRINGS = frozenset({"q", "qq", "qw", "qx"})
_SECOND_PART = re.compile(r"[ \t\n]*[{(\[<]")


def _perl_quote_end(opener: re.Match[str], delimited: _Delimited) -> int | None:
    """Index of the last closer of a Perl quote-like operator (m/a/, s{a}{b}, tr/a/b/, qw(a b)), or None.
    An s{a} or s/a/ whose second part never comes ends with its first."""
    end = delimited.end(opener.start("perl_delimiter"))
    if end is None or opener.group("perl_op") not in _PERL_TWO_PARTS:
        return end
    if opener.group("perl_delimiter") in _PERL_PAIRS:  # s{a}{b}: the second part has its own brackets
        second = _SECOND_PART.match(delimited.text, end + 1)
        second_end = delimited.end(second.end() - 1) if second else None
    else:  # s/a/b/: the middle delimiter is shared
        second_end = delimited.end(end)
    return end if second_end is None else second_end


_WORD_LINE = re.compile(r"^([ \t]*)([A-Za-z_]\w*)[ \t]*\r?$", re.MULTILINE)


class _WordLines:
    """Where each line that is a single word (a here-document's terminator, maybe) ends, indexed once per text."""

    def __init__(self, text: str) -> None:
        self.ends: dict[tuple[str, bool], list[int]] = {}  # (word, indented allowed) -> index of the word's last letter
        for line in _WORD_LINE.finditer(text):
            last = line.end(2) - 1
            self.ends.setdefault((line.group(2), True), []).append(last)
            if not line.group(1):
                self.ends.setdefault((line.group(2), False), []).append(last)

    def after(self, word: str, indented: bool, position: int) -> int | None:
        """The last letter of the first line after position that is word alone (indented only if allowed), or None."""
        ends = self.ends.get((word, indented), [])
        found = bisect.bisect_right(ends, position)
        return ends[found] if found < len(ends) else None


def _lex_strings_and_comments(text: str, language: str) -> tuple[_Spans, _Spans, _Spans]:
    """Find the spans of strings, comments and regular expression literals in one left-to-right pass over their openers."""
    strings, comments, regexes = _Spans(), _Spans(), _Spans()
    lexer = _lexer(language)
    length = len(text)
    delimited = None  # built at the first Perl quote-like operator
    word_lines = None  # built at the first here-document
    heredoc = None  # (line end, terminator's last letter) of a here-document whose body starts after this line
    position = 0

    def closed_by(closer: str, spans: _Spans, start: int, body_start: int, multiline: bool = False) -> int | None:
        """Add a span ending with the last character of the next closer; None when it never comes."""
        found = text.find(closer, body_start)
        if found < 0:
            spans.add(start, length, closed=False, multiline=multiline)
            return None
        last = found + len(closer) - 1  # the closer's last character ends the span
        spans.add(start, last, closed=True, multiline=multiline)
        return last + 1

    while True:
        opener = lexer.openers.search(text, position, heredoc[0] if heredoc else length)
        if opener is None:
            if heredoc is None:
                break
            line_end, last = heredoc  # the body: from the newline that starts it to the terminator's last letter
            strings.add(line_end, last, closed=True, multiline=True)
            position, heredoc = last + 1, None
            continue
        kind, start, body_start = opener.lastgroup, opener.start(), opener.end()
        if kind == "line_comment":
            newline = text.find("\n", body_start)
            if newline < 0:
                comments.add(start, length, closed=False)
                break
            comments.add(start, newline, closed=True)
            position = newline + 1
        elif kind.startswith("block_comment"):
            if (position := closed_by(lexer.block_closers[opener.group()], comments, start, body_start)) is None:
                break
        elif kind.startswith("line_start_comment"):
            closer = lexer.line_start_closers[int(kind.removeprefix("line_start_comment"))]
            if (position := closed_by(closer, comments, start, body_start)) is None:
                break
        elif kind == "long_bracket":
            closer = "]" + opener.group("level") + "]"
            spans = comments if opener.group("long_comment") else strings
            if (position := closed_by(closer, spans, start, body_start, multiline=True)) is None:
                break
        elif kind == "rust_raw":
            if (position := closed_by('"' + opener.group("hashes"), strings, start, body_start, True)) is None:
                break
        elif kind == "char":  # a whole character literal, matched with its closing quote
            strings.add(start, opener.end() - 1, closed=True)
            position = opener.end()
        elif kind == "slash_regex":
            body = _SLASH_BODY.match(text, body_start, body_start + REGEX_MAX_CHARS + 1)
            if body is None:  # no closing / on the line: a division after all
                position = body_start
            else:
                regexes.add(opener.start("regex_start"), body.end() - 1, closed=True)
                position = body.end()
        elif kind in ("perl_quote", "perl_match"):
            delimited = delimited or _Delimited(text)
            if kind == "perl_match":
                end = delimited.end(opener.start("match_start"))
                spans, start = regexes, opener.start("match_start")
            else:
                end = _perl_quote_end(opener, delimited)
                spans = strings if opener.group("perl_op") in _PERL_STRINGS else regexes
                start = opener.start("perl_delimiter")
            if end is None:  # no closer: an ordinary word or operator after all
                position = body_start
            else:
                spans.add(start, end, closed=True, multiline=text.find("\n", start, end) >= 0)
                position = _PERL_FLAGS.match(text, end + 1).end()  # m/a/s: the s is a flag, not an operator
        elif kind == "heredoc":
            line_end = text.find("\n", body_start)
            word_lines = word_lines or _WordLines(text)
            last = (word_lines.after(opener.group("heredoc_word"), bool(opener.group("heredoc_mode")), line_end)
                    if line_end >= 0 else None)
            if heredoc is None and last is not None:
                heredoc = (line_end, last)  # the rest of this line is lexed first
            position = body_start
        else:
            delimiter = opener.group("quote")
            multiline = delimiter in lexer.multiline
            body_end = lexer.bodies[delimiter].match(text, body_start).end()
            if text.startswith(delimiter, body_end):
                last_quote = body_end + len(delimiter) - 1
                strings.add(start, last_quote, closed=True, multiline=multiline)
                position = last_quote + 1
            elif body_end < length and text[body_end] == "\n":  # unterminated: recover on the next line
                strings.add(start, body_end, closed=False, multiline=multiline)
                position = body_end + 1
            else:  # runs to the end of the text
                strings.add(start, length, closed=False, multiline=multiline)
                break
        if heredoc is not None and any(spans.stops and spans.stops[-1] > heredoc[0] for spans in (strings, comments, regexes)):
            heredoc = None  # a span on the here-document's line ran past it: lexed as it ran, without the body
    return strings, comments, regexes


_LEADING_WHITESPACE = re.compile(r"^[ \t]*", re.MULTILINE)


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
    in_lead = _span_mask(length, lead_starts, lead_stops)
    indent[in_lead] = column[in_lead]  # running width; right when there are no tabs
    for start, whitespace in tabbed_leads:
        running, column = [], 0
        for char in whitespace:
            column = (column // tab_width + 1) * tab_width if char == "\t" else column + 1
            running.append(column)
        indent[start : start + len(running)] = running
    indent[is_newline] = 0
    return indent, _mask_at(length, first_code_positions)


def code_features(text: str, tab_width: int = 8, language: str | None = None) -> dict[str, Feature]:
    """Label source code: inside_string, inside_comment, indent_depth, bracket_depth, column.

    language names the lexical rules of strings and comments (a key of SYNTAXES); None or "auto"
    guesses from the text: its '#!' lines, else python or c (resolve_language also reads a file name).
    """
    if tab_width < 1:
        raise CharnnError(f"tab_width must be at least 1, got {tab_width}")
    language = resolve_language(language, text)
    length = len(text)
    code_points = _code_points(text)
    strings, comments, regexes = _lex_strings_and_comments(text, language)
    inside_string = _span_mask(length, strings.starts, strings.stops)
    inside_comment = _span_mask(length, comments.starts, comments.stops)

    in_code = ~(inside_string | inside_comment | _span_mask(length, regexes.starts, regexes.stops))
    opens = np.isin(code_points, [ord("("), ord("["), ord("{")]) & in_code
    closes = np.isin(code_points, [ord(")"), ord("]"), ord("}")]) & in_code
    running_sum = np.cumsum(opens.astype(np.int64) - closes)
    # Clamping at 0 after each step equals subtracting the lowest running sum reached so far.
    lowest_so_far = np.minimum(np.minimum.accumulate(running_sum), 0)
    bracket_depth = running_sum - lowest_so_far

    column = _chars_into_line(code_points)
    indent_depth, before_line_code = _indentation(text, code_points, column, tab_width)
    before_newline = _before(code_points == ord("\n"))

    # Where the text has strings of both kinds, each kind is also a feature of its own: a model may keep
    # docstrings and one-line literals in different units, which inside_string alone would not show.
    string_kinds = {}
    if any(strings.multiline) and not all(strings.multiline):
        for multiline, name, description in (
            (True, "inside_multiline_string", "inside a string whose delimiter lets it span lines (triple quotes, "
                                              "JavaScript templates, Go raw strings ...): Python's docstrings"),
            (False, "inside_oneline_string", "inside a string that ends on its line ('...', \"...\", character literals)"),
        ):
            kind = strings.select(multiline)
            string_kinds[name] = Feature(name, "binary", _span_mask(length, kind.starts, kind.stops),
                                         _mask_at(length, kind.targets), f"{description}; lexed as {language}")

    return {
        "inside_string": Feature(
            "inside_string",
            "binary",
            inside_string,
            _mask_at(length, strings.targets),
            f"inside a string, opening quote in, closing quote out (lexed as {language}: {SYNTAXES[language].description})",
        ),
        **string_kinds,
        "inside_comment": Feature(
            "inside_comment",
            "binary",
            inside_comment,
            _mask_at(length, comments.targets),
            f"inside a comment (lexed as {language}; in C, preprocessor lines are code)",
        ),
        "indent_depth": Feature(
            "indent_depth",
            "ordinal",
            indent_depth,
            before_line_code,
            f"leading whitespace of the current line in columns (tab = next multiple of {tab_width})",
        ),
        "bracket_depth": Feature(
            "bracket_depth",
            "ordinal",
            bracket_depth,
            _before(closes),
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


# ---------------------------------------------------------------- tweets

_WORD_CHAR = r"[\w\u0300-\u036f]"  # word characters and combining accents (decomposed é)
_HASHTAG = re.compile(rf"(?<![\w&])#(?=\d*[^\W\d]){_WORD_CHAR}+")  # not '&#39;', not '#1'
_MENTION = re.compile(r"(?<![\w@])@[A-Za-z0-9_]+")  # not e-mail addresses
# a scheme, www., or a bare host with a common top-level domain and a path (pic.twitter.com/x, bit.ly/y)
_BARE_HOST = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9-]+)*\.(?:com|org|net|gov|edu|mil|int|info|biz|io|co|ly|gl|me|tv|us|uk|ca|au|de|fr|news)/"
_URL = re.compile(rf"(?P<prefix>(?<![\w/.])(?:https?://|www\.)|(?<![\w/.@-]){_BARE_HOST})\S*", re.IGNORECASE)
_URL_TRAILING_PUNCTUATION = ".,;:!?)]\"'”’…"
_URL_CLOSERS = {")": "(", "]": "["}


def _url_without_trailing_punctuation(url: str) -> str:
    """url without the punctuation that ends the sentence around it; a ) or ] that closes one inside the URL stays."""
    unmatched = {closer: url.count(closer) - url.count(opener) for closer, opener in _URL_CLOSERS.items()}
    end = len(url)
    while end and url[end - 1] in _URL_TRAILING_PUNCTUATION:
        char = url[end - 1]
        if char in unmatched:
            if unmatched[char] <= 0:  # en.wikipedia.org/wiki/Mercury_(planet): it closes one inside the URL
                break
            unmatched[char] -= 1
        end -= 1
    return url[:end]


_DOUBLE_QUOTE = re.compile(r'"[^"\n]*"|“[^“”\n]*”')
_LETTER_RUN = re.compile(r"[^\W\d_]{2,}")


def _spans_of(
    pattern: re.Pattern[str], text: str, excluded: np.ndarray | None = None
) -> tuple[list[int], list[int]]:
    starts, stops = [], []
    for match in pattern.finditer(text):
        if excluded is None or not excluded[match.start()]:
            starts.append(match.start())
            stops.append(match.end())
    return starts, stops


def _word_feature(name: str, length: int, starts: list[int], stops: list[int], description: str) -> Feature:
    """A span feature whose span is over once the next character is not part of it."""
    values = _span_mask(length, starts, stops)
    targets = _mask_at(length, [stop - 1 for stop in stops if stop < length])
    return Feature(name, "binary", values, targets, description)


def tweet_features(text: str) -> dict[str, Feature]:
    """Label tweets (one per line): inside_hashtag, inside_mention, inside_url, inside_quote, caps_word, position_in_tweet."""
    length = len(text)
    code_points = _code_points(text)

    url_starts, url_stops = [], []
    for match in _URL.finditer(text):
        url = _url_without_trailing_punctuation(match.group())
        if len(url) > len(match.group("prefix")):
            url_starts.append(match.start())
            url_stops.append(match.start() + len(url))
    inside_url = _span_mask(length, url_starts, url_stops)

    quote_starts, quote_stops = _spans_of(_DOUBLE_QUOTE, text)
    quote_closers = [stop - 1 for stop in quote_stops]  # the closing quote is already outside
    caps_starts, caps_stops = [], []
    for match in _LETTER_RUN.finditer(text):
        if match.group().isupper():
            caps_starts.append(match.start())
            caps_stops.append(match.end())
    caps_word = _span_mask(length, caps_starts, caps_stops)
    position_in_tweet = _chars_into_line(code_points)

    return {
        "inside_hashtag": _word_feature(
            "inside_hashtag",
            length,
            *_spans_of(_HASHTAG, text, inside_url),
            "the # and word characters of a #hashtag",
        ),
        "inside_mention": _word_feature(
            "inside_mention", length, *_spans_of(_MENTION, text, inside_url), "the @ and name of an @mention"
        ),
        "inside_url": Feature(
            "inside_url",
            "binary",
            inside_url,
            _mask_at(length, [stop - 1 for stop in url_stops if stop < length]),
            "an http(s)://, www. or host.tld/path address, without punctuation that ends the sentence",
        ),
        "inside_quote": Feature(
            "inside_quote",
            "binary",
            _span_mask(length, quote_starts, quote_closers),
            _mask_at(length, [closer - 1 for closer in quote_closers]),
            'inside "..." or “...” on one line (opening quote in, closing quote out; apostrophes are not)',
        ),
        "caps_word": Feature(
            "caps_word",
            "binary",
            caps_word,
            caps_word & _before(caps_word),
            "a letter of an all-capitals word of 2 or more letters (USA, FAKE NEWS)",
        ),
        "position_in_tweet": Feature(
            "position_in_tweet",
            "ordinal",
            position_in_tweet,
            _before(code_points == ord("\n")),
            "characters of the current tweet read so far (0 on the newline)",
        ),
    }


# ---------------------------------------------------------------- synthetic tasks

_COUNT_LIKE_TASK_LABELS = frozenset({"count", "a_seen", "b_remaining"})
_ORDINAL_TASK_LABELS = frozenset({"count", "a_seen", "b_remaining", "x_count", "copy_position"})


def _task_label_kind(name: str, values: np.ndarray) -> str:
    if name in _ORDINAL_TASK_LABELS:  # a count stays ordinal even on a text where it never passes 1
        return "ordinal"
    defined = values[values != -1]
    return "binary" if np.isin(defined, [0, 1]).all() else "ordinal"


def _task_label_targets(name: str, values: np.ndarray, code_points: np.ndarray) -> np.ndarray:
    is_b = code_points == ord("b")
    if name in _COUNT_LIKE_TASK_LABELS:  # the b's, and the newline after the last b
        newline_after_b = code_points == ord("\n")
        newline_after_b[0:1] = False
        newline_after_b[1:] &= is_b[:-1]
        next_char_decided = _before(is_b | newline_after_b)
    elif name == "ab_state":  # the answer letter after Y
        next_char_decided = _before(is_b | (code_points == ord("a")))
    elif name == "next_char_id":  # the letters of the copy, which are -1 nowhere else
        return values >= 0
    else:
        next_char_decided = np.ones(len(values), dtype=bool)
    return next_char_decided & (values != -1)


def task_features(text: str, task: str) -> dict[str, Feature]:
    """Label a synthetic task's text from its ground truth (charnn.tasks.label_task_text)."""
    from charnn.tasks import label_task_text  # imported here: tasks sits upstream, needed only for this

    task_name = task.removeprefix("task:")
    code_points = _code_points(text)
    features = {}
    for name, labels in label_task_text(task_name, text).items():
        kind = _task_label_kind(name, labels)
        values = labels == 1 if kind == "binary" else labels.astype(np.int64)
        description = f"{task_name} ground truth '{name}' after reading each character (-1: malformed line)"
        targets = _task_label_targets(name, labels, code_points)
        features[name] = Feature(name, kind, values, targets, description)
    return features


FEATURE_SETS: dict[str, Callable[[str], dict[str, Feature]]] = {
    "code": code_features,
    "tweets": tweet_features,
}


def features_for(kind: str, text: str, task: str | None = None, language: str | None = None) -> dict[str, Feature]:
    """Dispatch on --features code|tweets|task (language: see code_features); CharnnError for an unknown kind."""
    if kind == "task":
        if not task:
            raise CharnnError("--features task needs a task name: count, selective-count, ab-memory or copy")
        return task_features(text, task)
    if kind not in FEATURE_SETS:
        known = ", ".join([*sorted(FEATURE_SETS), "task"])
        raise CharnnError(f"unknown feature set {kind!r}; known feature sets: {known}")
    if kind == "code":
        return code_features(text, language=language)
    return FEATURE_SETS[kind](text)
