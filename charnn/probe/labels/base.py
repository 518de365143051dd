"""Labels computed from the raw characters of a probe text, to rank recorded units against: what they share.

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

from dataclasses import dataclass

import numpy as np

__all__ = ["Feature", "chars_into_line", "code_points_of", "just_before", "mask_at", "span_mask"]


@dataclass(frozen=True)
class Feature:
    """One label per character of a probe text, with the positions where it should matter."""

    name: str
    kind: str  # "binary" (values are bool) or "ordinal" (values are int64)
    values: np.ndarray  # (len(text),)
    targets: np.ndarray  # (len(text),) bool: positions whose next-character prediction it drives
    description: str
    defined: np.ndarray | None = None  # (len(text),) bool: where the label means something; None: everywhere

    @property
    def defined_mask(self) -> np.ndarray:
        """Where the label is defined: scoring, the control and the share of passing units use these positions only."""
        return np.ones(len(self.values), dtype=bool) if self.defined is None else self.defined

    @property
    def target_mask(self) -> np.ndarray:
        """The targets where the label is defined: the positions ablation measures the loss change on."""
        targets = np.asarray(self.targets, dtype=bool)
        return targets if self.defined is None else targets & self.defined


def code_points_of(text: str) -> np.ndarray:
    """The text as one uint32 code point per character (lone surrogates kept as they are)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def span_mask(length: int, starts: list[int], stops: list[int]) -> np.ndarray:
    """True on every [start, stop); the spans must not overlap."""
    delta = np.zeros(length + 1, dtype=np.int32)
    np.add.at(delta, np.asarray(starts, dtype=np.int64), 1)
    np.add.at(delta, np.asarray(stops, dtype=np.int64), -1)
    return np.cumsum(delta[:length]) > 0


def mask_at(length: int, positions: list[int]) -> np.ndarray:
    mask = np.zeros(length, dtype=bool)
    mask[np.asarray(positions, dtype=np.int64)] = True
    return mask


def just_before(mask: np.ndarray) -> np.ndarray:
    """Positions i whose next character i + 1 is in mask."""
    shifted = np.zeros_like(mask)
    shifted[:-1] = mask[1:]
    return shifted


def chars_into_line(code_points: np.ndarray) -> np.ndarray:
    """Characters of the current line read so far, text[i] included; a newline resets it to 0."""
    positions = np.arange(len(code_points), dtype=np.int64)
    last_newline = np.where(code_points == ord("\n"), positions, -1)
    np.maximum.accumulate(last_newline, out=last_newline)
    return positions - last_newline
