"""What each setting takes, said once: a Rule is both the command line's argparse type and the check
the configs (TrainConfig, SampleOptions, ProbeOptions) run on values given from Python.

A config field declares its rule with `ruled(default, rule)`; the parser takes `rule_of(Config, name)` as
the flag's type, and the config's validate() calls `check_rules(self)`, so `--layers 0` and
`charnn.train(layers=0)` are refused by one rule, in the same words. Cross-field checks (a model too
large, a clamp outside the model) stay in the configs. Imports no torch.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any

from charnn.errors import UsageError

MAX_SEED = 2**32 - 1  # what torch.manual_seed and numpy's generators both take


@dataclass(frozen=True)
class Rule:
    """The values one setting takes: whole numbers or finite reals that `accept` takes; `wanted` says which."""

    wanted: str  # "a whole number >= 1"
    accept: Callable[[float], bool]
    whole: bool = False

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.whole and not isinstance(value, int):
            return False
        return math.isfinite(value) and bool(self.accept(value))

    def __call__(self, text: str) -> int | float:
        """argparse type: the value of a flag's text; argparse prefixes the flag's name and exits 2."""
        try:
            value = int(text) if self.whole else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {self.wanted}, not '{text}'") from None
        if not self.accepts(value):
            raise argparse.ArgumentTypeError(f"must be {self.wanted}, not {text}")
        return value

    def check(self, flag: str, value: Any) -> None:
        """Refuse a value given from Python in the command line's words."""
        if not self.accepts(value):
            raise UsageError(f"--{flag} must be {self.wanted}, not {value!r}")


def whole(low: int = 1, high: int | None = None) -> Rule:
    """Whole numbers >= low (and <= high)."""
    wanted = f"a whole number >= {low}" if high is None else f"a whole number from {low} to {high}"
    return Rule(wanted, lambda value: value >= low and (high is None or value <= high), whole=True)


def real(wanted: str, accept: Callable[[float], bool]) -> Rule:
    """Finite numbers that accept() takes."""
    return Rule(wanted, accept)


SEED = whole(0, MAX_SEED)
POSITIVE = real("a finite number > 0", lambda value: value > 0)
DROPOUT = real("a number in [0, 1)", lambda value: 0 <= value < 1)  # TrainConfig's and ModelConfig's


def ruled(default: Any, rule: Rule) -> Any:
    """A dataclass field with its rule (a default of None means "not given", which the rule lets pass)."""
    return field(default=default, metadata={"rule": rule})


def rule_of(config: type, name: str) -> Rule:
    """The rule a config declares for a field: the flag's argparse type."""
    for item in fields(config):
        if item.name == name and "rule" in item.metadata:
            return item.metadata["rule"]
    raise KeyError(f"{config.__name__}.{name} declares no rule")


def check_rules(config: Any, flags: dict[str, str] | None = None) -> None:
    """Check every ruled field of a config instance; flags maps a field to its flag where the two names differ."""
    for item in fields(config):
        rule = item.metadata.get("rule")
        value = getattr(config, item.name)
        if is_dataclass(value) and not isinstance(value, type):  # settings nested in settings (TrainConfig.model)
            check_rules(value, flags)
        if rule is None:
            continue
        if value is None and item.default is None and item.default is not MISSING:
            continue  # an optional setting left out
        rule.check((flags or {}).get(item.name, item.name.replace("_", "-")), value)
