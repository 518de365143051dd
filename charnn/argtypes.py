"""argparse value types shared by the command lines (charnn train/generate/corpus/eval, probe, bench).

Each says in one line what the flag takes; argparse prefixes the flag's name and exits with status 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def whole_number(low: int = 1, high: int | None = None) -> Callable[[str], int]:
    """argparse type: a whole number >= low (and <= high when given)."""
    wanted = f"a whole number >= {low}" if high is None else f"a whole number from {low} to {high}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, not '{text}'") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {wanted}, not {value}")
        return value

    return parse


seed_number = whole_number(0, 2**32 - 1)  # what torch.manual_seed and numpy's generators both take


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
