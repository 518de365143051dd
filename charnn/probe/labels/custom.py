"""A user's own hypothesis as a feature: `--feature NAME=REGEX` is True on the characters of each match
(the position convention of charnn.probe.labels.base: after reading them), and its targets are each
match's last character. Python's `re` syntax, searched over the whole probe text (use (?m) for ^ and $
at line ends).
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import numpy as np

from charnn.errors import CharnnError, UsageError
from charnn.probe.labels.base import Feature, mask_at, span_mask

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


@functools.cache
def builtin_names() -> frozenset[str]:
    """Every feature name the built-in label sets use (a user's feature may not take one)."""
    from charnn.probe.labels.code import code_features
    from charnn.probe.labels.tasks import task_features
    from charnn.probe.labels.tweets import tweet_features
    from charnn.tasks import TASK_NAMES

    both_strings = 'x = """a"""\ny = "b"  # c\n'  # a text with both kinds of string gets the two kinds' features too
    names = set(code_features(both_strings, language="python")) | set(tweet_features("a #b\n"))
    for task in TASK_NAMES:
        names |= set(task_features("", task))
    return frozenset(names)


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
        raise UsageError(
            f"--feature {name}={pattern}: the pattern matches the empty string; make it match at least one character"
        )
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
    return Feature(
        name, "binary", values, targets, f"the user's feature: inside a match of /{pattern}/ (--feature {name}=...)"
    )


def label_targets(kind: str, values: np.ndarray, defined: np.ndarray) -> np.ndarray:
    """Where a user's label should matter for the next character: the last character of each True run
    (binary), or each position whose next value differs (ordinal); defined positions only."""
    targets = np.zeros(len(values), dtype=bool)
    if len(values) < 2:
        return targets
    both = defined[:-1] & defined[1:]
    if kind == "binary":
        targets[:-1] = values[:-1] & ~values[1:] & both
    else:
        targets[:-1] = (values[:-1] != values[1:]) & both
    return targets


def _label_array(path: str, name: str, raw: object, length: int) -> Feature:
    """One label set of a --labels file, checked: a Feature (null, or -1 in an int array, is undefined)."""
    where = f"--labels '{path}'" + (f" ({name})" if name else "")
    if isinstance(raw, np.ndarray):
        if raw.ndim != 1 or raw.dtype.kind not in "biuf":
            raise CharnnError(
                f"{where} holds a {raw.dtype} array of shape {raw.shape}; give one label per character "
                f"(a 1-D bool, int or float array)"
            )
        values = raw
        defined = np.ones(len(raw), dtype=bool) if raw.dtype.kind in "bf" else raw != -1
    else:
        if not isinstance(raw, list):
            raise CharnnError(f"{where}: each name must map to a list of labels, one per character")
        kinds = {type(value) for value in raw if value is not None}
        if not kinds <= {bool, int, float} or (bool in kinds and len(kinds) > 1):
            raise CharnnError(
                f"{where} mixes label types ({', '.join(sorted(k.__name__ for k in kinds))}); give bools, or "
                f"numbers, and null where a label is undefined"
            )
        defined = np.array([value is not None for value in raw], dtype=bool)
        fill = False if bool in kinds else 0
        dtype = bool if bool in kinds else (float if float in kinds else np.int64)
        values = np.array([fill if value is None else value for value in raw], dtype=dtype)
    if len(values) != length:
        raise CharnnError(
            f"{where} has {len(values):,} labels for a probe text of {length:,} characters (after --max-chars); "
            f"give one label per character"
        )
    if values.dtype.kind == "f" and not np.isfinite(values[defined]).all():
        raise CharnnError(f"{where} has NaN or infinite labels; use null (JSON) for an undefined label")
    if not defined.any():
        raise CharnnError(f"{where} has no defined label")
    kind = "binary" if values.dtype.kind == "b" else "ordinal"
    if kind == "ordinal" and values.dtype.kind == "u":
        values = values.astype(np.int64)
    return Feature(
        name, kind, values, label_targets(kind, values, defined), f"the user's labels from {path}", defined=defined
    )


def read_label_file(path: str, length: int) -> dict[str, Feature]:
    """--labels FILE: a JSON object {NAME: [label per character, null = undefined]} or a .npy array (one
    label set, named after the file). CharnnError (exit 1) naming the file for anything wrong, read
    before any model work."""
    file = Path(path)
    if not file.is_file():
        raise CharnnError(
            f"--labels '{path}' does not exist" if not file.exists() else f"--labels '{path}' is not a file"
        )
    if file.suffix == ".npy":
        try:
            array = np.load(file, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise CharnnError(f"--labels '{path}' is not a .npy array numpy can read without pickles ({err})") from None
        name = file.stem
        check_pattern_name(name, path)
        return {name: _label_array(path, name, array, length)}
    try:
        data = json.loads(file.read_text(encoding="utf-8"), parse_constant=lambda constant: float("nan"))
    except (ValueError, UnicodeDecodeError) as err:
        raise CharnnError(f"--labels '{path}' is not JSON ({err}); give {{NAME: [labels]}} or a .npy array") from None
    if not isinstance(data, dict) or not data:
        raise CharnnError(f"--labels '{path}' must hold a JSON object {{NAME: [one label per character], ...}}")
    features = {}
    for name, raw in data.items():
        check_pattern_name(name, path)
        features[name] = _label_array(path, name, raw, length)
    return features


def check_pattern_name(name: str, path: str) -> None:
    """A label set's name, as --feature names are checked."""
    if not NAME.fullmatch(name) or name in builtin_names():
        reason = "is a built-in feature's name" if NAME.fullmatch(name) else "is not letters, digits, '_' or '-'"
        raise CharnnError(f"--labels '{path}': the name '{name}' {reason}; rename it")
