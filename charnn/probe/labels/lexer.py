"""Where a text's strings, comments and regular-expression literals are, by the rules of its language
(charnn.probe.languages): one left-to-right pass over the openers, each kind of opener a method of `_Scan`.

Linear in the text: every scan is bounded (a /regex/ body within REGEX_MAX_CHARS, Perl's delimiters from
one stack pass, here-document terminators from one index of the text's one-word lines).
"""

import bisect
import re
from dataclasses import dataclass, field
from functools import cache

from charnn.probe.languages import SYNTAXES, Syntax

# where a value may start, so that a '/' opens a regular expression rather than dividing: after an operator or
# an opening bracket, at a line start, or after a keyword such as return (JavaScript, Ruby)
_REGEX_KEYWORDS = (
    "return",
    "typeof",
    "case",
    "in",
    "of",
    "delete",
    "void",
    "throw",
    "yield",
    "await",
    "new",
    "do",
    "else",
    "when",
    "and",
    "or",
    "not",
    "if",
    "unless",
)
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
_PERL_QUOTE = (
    r"(?P<perl_quote>(?<![\w$@%&>:\\-])(?P<perl_op>qq|qw|qx|qr|tr|q|m|s|y)"
    r"(?:(?=\#)|[ \t]*)(?P<perl_delimiter>[/#!|{(\[<~@%:'\"^+]))"
)
_PERL_MATCH = (  # a bare /.../ where a value may start
    r"(?P<perl_match>(?:^|(?<=[=!]~)|(?<=[(,!&|={;?:])|"
    + "|".join(
        rf"(?<=\b{keyword})" for keyword in ("if", "and", "or", "not", "unless", "split", "grep", "map", "return")
    )
    + r")[ \t]*(?P<match_start>/)(?![/*]))"
)
_PERL_FLAGS = re.compile(r"[A-Za-z]*")
_PERL_PAIRS = {"{": "}", "(": ")", "[": "]", "<": ">"}


def _heredoc_pattern(spaced: bool) -> str:
    """<<WORD, <<-WORD, <<~WORD, <<'WORD', <<"WORD"; with spaced (shell), blanks may follow the <<."""
    blanks = r"[ \t]*" if spaced else ""
    return (
        rf"(?P<heredoc>(?<![<\w])<<(?P<heredoc_mode>[-~]?){blanks}(?P<heredoc_quote>[\"']?)"
        r"(?P<heredoc_word>[A-Za-z_]\w*)(?P=heredoc_quote))"
    )


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
    return _Lexer(
        _opener_pattern(syntax),
        bodies,
        dict(syntax.block_comments),
        tuple(closer for _, closer in syntax.line_start_comments),
        syntax.multiline,
    )


@dataclass
class _Spans:
    """Label spans found by the lexer: True on [start, stop); a closed span's target is the position before its
    closer."""

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


class _Scan:
    """One pass over a text's openers, left to right. Each kind of opener (a group name of the language's opener
    pattern) has a method that adds its span and returns where the scan goes on, or None when the span runs to
    the end of the text."""

    def __init__(self, text: str, language: str) -> None:
        self.text = text
        self.length = len(text)
        self.lexer = _lexer(language)
        self.strings, self.comments, self.regexes = _Spans(), _Spans(), _Spans()
        self.delimited: _Delimited | None = None  # built at the first Perl quote-like operator
        self.word_lines: _WordLines | None = None  # built at the first here-document
        self.pending_heredoc: tuple[int, int] | None = (
            None  # (line end, terminator's last letter) of a body after this line
        )

    def run(self) -> tuple[_Spans, _Spans, _Spans]:
        position: int | None = 0
        while position is not None:
            opener = self.lexer.openers.search(
                self.text, position, self.pending_heredoc[0] if self.pending_heredoc else self.length
            )
            if opener is None:
                if self.pending_heredoc is None:
                    break
                line_end, last = (
                    self.pending_heredoc
                )  # the body: from the newline that starts it to the terminator's last letter
                self.strings.add(line_end, last, closed=True, multiline=True)
                position, self.pending_heredoc = last + 1, None
                continue
            kind = opener.lastgroup.rstrip("0123456789")  # block_comment0, line_start_comment1, ...
            position = getattr(self, kind)(opener)
            if self.pending_heredoc is not None and any(
                spans.stops and spans.stops[-1] > self.pending_heredoc[0]
                for spans in (self.strings, self.comments, self.regexes)
            ):
                self.pending_heredoc = (
                    None  # a span on the here-document's line ran past it: lexed as it ran, without the body
                )
        return self.strings, self.comments, self.regexes

    def closed_by(self, closer: str, spans: _Spans, start: int, body_start: int, multiline: bool = False) -> int | None:
        """Add a span ending with the last character of the next closer; None when it never comes."""
        found = self.text.find(closer, body_start)
        if found < 0:
            spans.add(start, self.length, closed=False, multiline=multiline)
            return None
        last = found + len(closer) - 1  # the closer's last character ends the span
        spans.add(start, last, closed=True, multiline=multiline)
        return last + 1

    def line_comment(self, opener: re.Match[str]) -> int | None:
        newline = self.text.find("\n", opener.end())
        if newline < 0:
            self.comments.add(opener.start(), self.length, closed=False)
            return None
        self.comments.add(opener.start(), newline, closed=True)
        return newline + 1

    def block_comment(self, opener: re.Match[str]) -> int | None:
        return self.closed_by(self.lexer.block_closers[opener.group()], self.comments, opener.start(), opener.end())

    def line_start_comment(self, opener: re.Match[str]) -> int | None:
        closer = self.lexer.line_start_closers[int(opener.lastgroup.removeprefix("line_start_comment"))]
        return self.closed_by(closer, self.comments, opener.start(), opener.end())

    def long_bracket(self, opener: re.Match[str]) -> int | None:
        spans = self.comments if opener.group("long_comment") else self.strings
        return self.closed_by("]" + opener.group("level") + "]", spans, opener.start(), opener.end(), multiline=True)

    def rust_raw(self, opener: re.Match[str]) -> int | None:
        return self.closed_by('"' + opener.group("hashes"), self.strings, opener.start(), opener.end(), True)

    def char(self, opener: re.Match[str]) -> int | None:
        self.strings.add(opener.start(), opener.end() - 1, closed=True)  # matched whole, with its closing quote
        return opener.end()

    def slash_regex(self, opener: re.Match[str]) -> int | None:
        body_start = opener.end()
        body = _SLASH_BODY.match(self.text, body_start, body_start + REGEX_MAX_CHARS + 1)
        if body is None:  # no closing / on the line: a division after all
            return body_start
        self.regexes.add(opener.start("regex_start"), body.end() - 1, closed=True)
        return body.end()

    def perl_match(self, opener: re.Match[str]) -> int | None:
        self.delimited = self.delimited or _Delimited(self.text)
        start = opener.start("match_start")
        return self.perl_span(opener, self.regexes, start, self.delimited.end(start))

    def perl_quote(self, opener: re.Match[str]) -> int | None:
        self.delimited = self.delimited or _Delimited(self.text)
        spans = self.strings if opener.group("perl_op") in _PERL_STRINGS else self.regexes
        return self.perl_span(opener, spans, opener.start("perl_delimiter"), _perl_quote_end(opener, self.delimited))

    def perl_span(self, opener: re.Match[str], spans: _Spans, start: int, end: int | None) -> int:
        if end is None:  # no closer: an ordinary word or operator after all
            return opener.end()
        spans.add(start, end, closed=True, multiline=self.text.find("\n", start, end) >= 0)
        return _PERL_FLAGS.match(self.text, end + 1).end()  # m/a/s: the s is a flag, not an operator

    def heredoc(self, opener: re.Match[str]) -> int | None:
        line_end = self.text.find("\n", opener.end())
        self.word_lines = self.word_lines or _WordLines(self.text)
        last = (
            self.word_lines.after(opener.group("heredoc_word"), bool(opener.group("heredoc_mode")), line_end)
            if line_end >= 0
            else None
        )
        if self.pending_heredoc is None and last is not None:
            self.pending_heredoc = (line_end, last)  # the rest of this line is lexed first
        return opener.end()

    def quote(self, opener: re.Match[str]) -> int | None:
        start, delimiter = opener.start(), opener.group("quote")
        multiline = delimiter in self.lexer.multiline
        body_end = self.lexer.bodies[delimiter].match(self.text, opener.end()).end()
        if self.text.startswith(delimiter, body_end):
            last_quote = body_end + len(delimiter) - 1
            self.strings.add(start, last_quote, closed=True, multiline=multiline)
            return last_quote + 1
        if body_end < self.length and self.text[body_end] == "\n":  # unterminated: recover on the next line
            self.strings.add(start, body_end, closed=False, multiline=multiline)
            return body_end + 1
        self.strings.add(start, self.length, closed=False, multiline=multiline)  # runs to the end of the text
        return None


def lex_strings_and_comments(text: str, language: str) -> tuple[_Spans, _Spans, _Spans]:
    """The spans of strings, comments and regular expression literals of a text, by one language's rules."""
    return _Scan(text, language).run()
