"""What the explorer page carries of a recording and its labels, compact: each unit's track one signed byte per
character at 255, 31 or 15 levels (c as differences from the previous character), a feature's labels a bit or
the smallest integer a character, each part deflated and base64-encoded; and the coverages to choose from,
most states first, then most precision, with what each would weigh.
"""

from __future__ import annotations

import base64
import zlib
from dataclasses import dataclass

import numpy as np

from charnn.cells import SIGMOID_GATES
from charnn.probe.labels import Feature
from charnn.probe.record import Recording

FULL_LEVELS = 127  # int8: the flagged units, and the other units when they fit
COARSE_LEVELS = (15, 7)  # coarser steps for the other units when int8 does not fit
UNIT_BLOCK = 64  # units quantised at once (bounds memory on long texts)
SAMPLE_TRACKS = 16  # tracks per state deflated to estimate the size of a coverage before building it
DELTA_STATES = {"c"}
GATES = frozenset(gate for gates in SIGMOID_GATES.values() for gate in gates)
Unit = tuple[int, int]  # (layer counted from 1, unit)


@dataclass(frozen=True)
class Coverage:
    """Which tracks of the units that are not flagged go into the page, and at what precision."""

    states: tuple[str, ...]  # states of every unit; () = flagged units only
    levels: int  # steps on each side of 0

    def describe(self, recording: Recording, flagged: int) -> str:
        """One sentence for the page and the console."""
        units = recording.layers * recording.hidden
        if not self.states:
            return f"only the {flagged} flagged units (every state); the other units are not in this file"
        every = self.states == recording.state_names
        which = "every state" if every else " and ".join(self.states)
        if self.levels == FULL_LEVELS:
            text = f"{which} of all {units} units at 255 levels"
        else:
            text = (
                f"{which} of all {units} units at {2 * self.levels + 1} levels (steps of {1 / self.levels:.2f}); "
                f"the {flagged} flagged units at 255"
            )
        return text if every else f"{text}; the other states only for the {flagged} flagged units"


def coverages_for(recording: Recording) -> list[Coverage]:
    """The coverage options, best first: more states before more precision."""
    names = recording.state_names
    sets = [names] + [subset for subset in (("h", "c"), ("h",)) if set(subset) <= set(names) and subset != names]
    options = [Coverage(states, levels) for states in sets for levels in (FULL_LEVELS, *COARSE_LEVELS)]
    return options + [Coverage((), FULL_LEVELS)]


def flagged_units(report: dict) -> list[Unit]:
    """(layer, unit) of every unit the report lists under some feature."""
    return sorted(
        {(unit["layer"], unit["unit"]) for feature in report["features"].values() for unit in feature["units"]}
    )


def packed(data: bytes) -> dict:
    """A deflated, base64-encoded binary blob as the page reads it."""
    return {"enc": "deflate", "b64": base64.b64encode(zlib.compress(data, 6)).decode("ascii")}


def quantise(values: np.ndarray, state: str, levels: int, scale: np.ndarray | None = None) -> np.ndarray:
    """Values (chars, k) of one state as int8 steps in -levels..levels (see the module docstring)."""
    values = values.astype(np.float32)
    if state in GATES:  # in [0, 1]: stored as 2v - 1; h, g, n are in [-1, 1]
        values = 2.0 * values - 1.0
    elif state == "c":
        values = values / scale
    return np.clip(np.rint(values * levels), -levels, levels).astype(np.int8)


def encode_tracks(
    recording: Recording, state: str, units: list[Unit], chars: int, levels: int
) -> tuple[bytes, list[float]]:
    """One state of some units over the first chars characters: (k tracks of chars bytes each, scale per track)."""
    parts, scales = [], []
    for start in range(0, len(units), UNIT_BLOCK):
        block = units[start : start + UNIT_BLOCK]
        layers = np.array([layer - 1 for layer, _ in block], dtype=np.int64)
        columns = np.array([unit for _, unit in block], dtype=np.int64)
        values = np.asarray(recording.states[state][:chars])[:, layers, columns].astype(np.float32)  # (chars, k)
        scale = np.ones(len(block), dtype=np.float32)
        if state == "c":
            scale = np.maximum(np.abs(values).max(axis=0), 1e-6) if chars else scale
        steps = quantise(values, state, levels, scale).T  # (k, chars)
        if state in DELTA_STATES:  # mod 256; the page adds them up again in int8 arithmetic
            steps = np.diff(steps.astype(np.int16), axis=1, prepend=0).astype(np.int8)
        parts.append(np.ascontiguousarray(steps).tobytes())
        scales += [float(value) for value in scale]
    return b"".join(parts), scales


def track_group(recording: Recording, state: str, units: list[Unit], chars: int, levels: int) -> dict:
    """A block of tracks of one state as the page reads it."""
    data, scales = encode_tracks(recording, state, units, chars, levels)
    return {
        "state": state,
        "levels": levels,
        "delta": state in DELTA_STATES,
        "units": [list(unit) for unit in units],
        "scales": scales if state == "c" else None,
        "data": packed(data),
    }


def estimate_bytes(recording: Recording, coverage: Coverage, others: list[Unit], chars: int, samples: dict) -> int:
    """Page bytes the other units' tracks would take, from deflating a sample of them (cached in samples)."""
    total = 0
    if not others:
        return 0
    for state in coverage.states:
        cached = (state, coverage.levels)
        if cached not in samples:
            picks = [others[i] for i in np.linspace(0, len(others) - 1, min(SAMPLE_TRACKS, len(others))).astype(int)]
            data, _ = encode_tracks(recording, state, picks, chars, coverage.levels)
            samples[cached] = len(zlib.compress(data, 6)) / max(len(data), 1)
        total += int(samples[cached] * len(others) * chars * 4 / 3) + 16 * len(others)
    return total


def feature_blob(feature: Feature, chars: int) -> dict:
    """One feature's labels over the first chars characters, as the page reads them."""
    values = np.asarray(feature.values[:chars])
    defined = None  # where the label is undefined, the page neither underlines, plots nor lists it
    if feature.defined is not None:
        defined = packed(np.packbits(feature.defined[:chars].astype(bool), bitorder="little").tobytes())
        if len(values) and feature.defined[:chars].any():
            values = np.where(feature.defined[:chars], values, values[feature.defined[:chars]].min())
    if feature.kind == "binary":
        data = np.packbits(values.astype(bool), bitorder="little").tobytes()
        return {"dtype": "bits", "min": 0, "max": 1, "data": packed(data), "defined": defined}
    if values.dtype.kind == "f":  # a user's float labels: the page plots their ranks (what Spearman scores)
        values = np.unique(values, return_inverse=True)[1]
    values = values.astype(np.int64)
    low, high = (int(values.min()), int(values.max())) if len(values) else (0, 0)
    for name, dtype in (("uint8", np.uint8), ("int16", np.int16), ("int32", np.int32)):  # noqa: B007 - read after the loop
        if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
            break
    values = np.clip(values, np.iinfo(np.int32).min, np.iinfo(np.int32).max)
    return {"dtype": name, "min": low, "max": high, "data": packed(values.astype(dtype).tobytes()), "defined": defined}
