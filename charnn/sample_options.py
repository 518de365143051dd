"""How to sample (SampleOptions) and what to hold (Clamp): the settings of charnn generate and Model.generate,
each with its rule. Imports no torch, so the command line can build its flags from them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from charnn.argtypes import SEED, check_rules, real, ruled, whole
from charnn.errors import UsageError

SAMPLE_PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Clamp:
    """Hold one unit of one layer at a value while sampling (Radford's sentiment-neuron trick)."""

    layer: int  # from 1, as the probe report and --clamp count layers; -1 is the top layer, -2 the one below
    unit: int
    value: float
    state: str = "h"  # h or c

    @classmethod
    def parse(cls, text: str) -> Clamp:
        """Parse LAYER:UNIT=VALUE (layer counted from 1, as the probe report shows), optionally LAYER:UNIT:c=VALUE."""
        try:
            where, value = text.split("=")
            parts = where.split(":")
            state = parts[2] if len(parts) == 3 else "h"
            if len(parts) not in (2, 3) or state not in ("h", "c"):
                raise ValueError
            return cls(int(parts[0]), int(parts[1]), float(value), state)
        except ValueError:
            raise UsageError(
                f"--clamp takes LAYER:UNIT=VALUE or LAYER:UNIT:c=VALUE (layer from 1, or -1 for the top), not '{text}'"
            ) from None

    def resolved(self, layers: int) -> Clamp:
        """The same clamp with a layer counted from the top (-1) turned into one counted from 1."""
        return Clamp(layers + 1 + self.layer, self.unit, self.value, self.state) if self.layer < 0 else self


@dataclass
class SampleOptions:
    """How to sample; validated before any work."""

    length: int = ruled(500, whole(0))
    temperature: float = ruled(0.8, real("a finite number >= 0 (0 means greedy argmax)", lambda value: value >= 0))
    top_k: int | None = ruled(None, whole(1))
    top_p: float | None = ruled(None, real("a number in (0, 1]", lambda value: 0 < value <= 1))
    prime: str = ""
    seed: int | None = ruled(None, SEED)
    num_samples: int = ruled(1, whole(1))
    stop: str | None = None
    echo: bool = True
    unknown: str = "error"
    clamps: Sequence[Clamp] = ()
    precision: str = "fp32"  # fp32, or bf16: the step's matrix products in bf16 (faster where the hardware has it)

    def validate(self, model: Any = None) -> None:
        """Reject values outside what is allowed, naming the flag: each field's rule, the clamps, and with a
        model (a CharRNN: its .config is read) whether the clamps fit it."""
        check_rules(self)
        if self.precision not in SAMPLE_PRECISIONS:
            raise UsageError(f"--precision must be one of {', '.join(SAMPLE_PRECISIONS)}, not {self.precision!r}")
        for clamp in self.clamps:
            if not math.isfinite(clamp.value):
                raise UsageError(f"--clamp needs a finite VALUE in LAYER:UNIT=VALUE, not {clamp.value!r}")
        if self.stop == "":
            raise UsageError("--stop must not be empty")
        if model is not None:
            cfg = model.config
            for clamp in self.clamps:
                if not 1 <= abs(clamp.layer) <= cfg.layers or not 0 <= clamp.unit < cfg.hidden:
                    raise UsageError(
                        f"--clamp {clamp.layer}:{clamp.unit}: the model has layers 1..{cfg.layers} "
                        f"(or -1..-{cfg.layers} from the top) and units 0..{cfg.hidden - 1}"
                    )
                if clamp.state == "c" and cfg.cell != "lstm":
                    raise UsageError(f"--clamp {clamp.layer}:{clamp.unit}:c: a {cfg.cell.upper()} has no cell state c")
                if clamp.state == "h" and not -1 <= clamp.value <= 1:
                    larger = (
                        "; clamp its cell state (LAYER:UNIT:c=VALUE) for larger values" if cfg.cell == "lstm" else ""
                    )
                    raise UsageError(
                        f"--clamp {clamp.layer}:{clamp.unit}={clamp.value:g}: h of a {cfg.cell.upper()} "
                        f"lies in [-1, 1] (a tanh){larger}"
                    )
            held = [(clamp.resolved(cfg.layers).layer, clamp.unit, clamp.state) for clamp in self.clamps]
            if len(set(held)) < len(held):
                twice = next(unit for unit in held if held.count(unit) > 1)
                raise UsageError(
                    f"--clamp {twice[0]}:{twice[1]}{':c' if twice[2] == 'c' else ''} is given twice; "
                    f"a unit holds one value"
                )
