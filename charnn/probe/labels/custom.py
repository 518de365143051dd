"""A user's own hypothesis as a feature: `--feature NAME=REGEX` is True on the characters of each match
(the position convention of charnn.probe.labels.base: after reading them), and its targets are each
match's last character. Python's `re` syntax, searched over the whole probe text (use (?m) for ^ and $
at line ends).
"""

from __future__ import annotations

import re

import numpy as np

from charnn.errors import UsageError
from charnn.probe.labels.base import Feature, mask_at, span_mask

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


def builtin_names() -> set[str]:
    """Every feature name the built-in label sets use (a user's feature may not take one)."""
    from charnn.probe.labels.code import code_features
    from charnn.probe.labels.tasks import task_features
    from charnn.probe.labels.tweets import tweet_features
    from charnn.tasks import TASK_NAMES

    both_strings = 'x = """a"""\ny = "b"  # c\n'  # a text with both kinds of string gets the two kinds' features too
    names = set(code_features(both_strings, language="python")) | set(tweet_features("a #b\n"))
    for task in TASK_NAMES:
        names |= set(task_features("", task))
    return names


def parse_pattern(spec: str) -> tuple[str, str]:
    """NAME=REGEX, checked: (name, pattern). UsageError (exit 2) for a bad name, a bad regex, or a pattern
    that matches the empty string (it would label nothing, or everything between characters)."""
    name, equals, pattern = spec.partition("=")
    if not equals or not pattern:
        raise UsageError(f"--feature takes NAME=REGEX, e.g. todo=TODO|FIXME, not '{spec}'")
    return check_pattern(name, pattern)


def check_pattern(name: str, pattern: str) -> tuple[str, str]:
    """A user feature's name and regex, checked (see parse_pattern)."""
    if not NAME.fullmatch(name):
        raise UsageError(f"--feature {name}=...: a name is letters, digits, '_' or '-', starting with a letter or '_'")
    if name in builtin_names():
        raise UsageError(f"--feature {name}=...: '{name}' is a built-in feature's name; choose another")
    try:
        compiled = re.compile(pattern)
    except re.error as err:
        raise UsageError(f"--feature {name}={pattern}: not a regular expression ({err})") from None
    if compiled.search("") is not None:
        raise UsageError(f"--feature {name}={pattern}: the pattern matches the empty string; make it match at least one character")
    return name, pattern


def pattern_feature(name: str, pattern: str, text: str) -> Feature:
    """True on the characters of each match of pattern in text; targets: each match's last character."""
    starts, stops = [], []
    for match in re.finditer(pattern, text):
        if match.end() > match.start():  # (a pattern that can match empty inside a text, like a|(?=b))
            starts.append(match.start())
            stops.append(match.end())
    values = span_mask(len(text), starts, stops) if starts else np.zeros(len(text), dtype=bool)
    targets = mask_at(len(text), [stop - 1 for stop in stops])
    return Feature(name, "binary", values, targets, f"the user's feature: inside a match of /{pattern}/ (--feature {name}=...)")
