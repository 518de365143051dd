"""argparse value types shared by the command lines (charnn train/generate/corpus/eval, probe, bench).

Each says in one line what the flag takes; argparse prefixes the flag's name and exits with status 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def whole_number(low: int = 1) -> Callable[[str], int]:
    """argparse type: a whole number >= low."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low}, not '{text}'") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low}, not {value}")
        return value

    return parse


def real_number(wanted: str, accept: Callable[[float], bool]) -> Callable[[str], float]:
    """argparse type: a finite number that accept() takes; wanted describes it ("a number > 0")."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, not '{text}'") from None
        if not (math.isfinite(value) and accept(value)):
            raise argparse.ArgumentTypeError(f"must be {wanted}, not {text}")
        return value

    return parse


positive_number = real_number("a number > 0", lambda value: value > 0)
