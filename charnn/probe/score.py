"""Rank every recorded unit against every feature: AUROC for binary labels, Spearman for ordinal ones.

Both come from ranks, computed once per unit and reused for every feature:
- AUROC is the Mann-Whitney U statistic over n1 * n0: U = (sum of the positives' ranks) - n1 (n1 + 1) / 2,
  ties averaged, so a unit that cannot tell the classes apart scores exactly 0.5.
- Spearman is the Pearson correlation of the ranks.
Ranks of a block of units are one argsort of a (chars, units) matrix; the sums are matrix products.

Orientation: a unit may fire *against* a feature. A unit's score is max(auc, 1 - auc) (or |rho|)
with the sign that says which way; the held-out score keeps the sign chosen on the selection part,
so a unit whose direction flips on new text scores below 0.5 (or below 0) there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from charnn.cells import SIGMOID_GATES
from charnn.probe.labels.base import Feature
from charnn.probe.record import Recording, UnitRef

METRICS = {"binary": "auroc", "ordinal": "spearman"}
PASS_THRESHOLDS = {"auroc": 0.9, "spearman": 0.7}  # held-out score a unit must reach to count as passing
CHANCE = {"auroc": 0.5, "spearman": 0.0}
RANK_BLOCK_BYTES = 16 << 20  # float64 ranks of a block of units (peak memory is a few times this)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks (1-based, float64) of each column of values (n,) or (n, m); tied values share their mean rank."""
    values = np.asarray(values)
    if values.ndim == 1:
        return average_ranks(values[:, None])[:, 0]
    n, m = values.shape
    if n == 0:
        return np.empty((n, m), dtype=np.float64)
    if values.dtype == np.float16:
        values = values.astype(
            np.float32
        )  # exact; numpy sorts float32 with SIMD, float16 far more slowly (docs/results/benchmarks.md)
    # work along contiguous rows of the transpose: a sort along a strided axis is several times slower
    rows = np.ascontiguousarray(values.T)  # (m, n)
    order = np.argsort(rows, axis=1)  # ties may land in any order: they get the same rank anyway
    ordered = np.take_along_axis(rows, order, axis=1)
    position = np.arange(n, dtype=np.int64)
    starts_run = np.ones((m, n), dtype=bool)
    np.not_equal(ordered[:, 1:], ordered[:, :-1], out=starts_run[:, 1:])
    ends_run = np.ones((m, n), dtype=bool)
    ends_run[:, :-1] = starts_run[:, 1:]
    # first and last sorted position of the run of equal values each entry belongs to
    run_start = np.maximum.accumulate(np.where(starts_run, position, 0), axis=1)
    run_end = np.minimum.accumulate(np.where(ends_run, position, n - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty((m, n), dtype=np.float64)
    np.put_along_axis(ranks, order, (run_start + run_end) * 0.5 + 1.0, axis=1)
    return ranks.T


def auroc_from_ranks(ranks: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """AUROC (m,) of columns whose ranks (n, m) are given, for bool labels (n,); NaN when one class is missing."""
    positive = np.asarray(positive, dtype=bool)
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    if n1 == 0 or n0 == 0:
        return np.full(ranks.shape[1:], np.nan)
    rank_sum = positive.astype(np.float64) @ ranks
    return (rank_sum - n1 * (n1 + 1) / 2.0) / (n1 * n0)


def spearman_from_ranks(ranks: np.ndarray, label_ranks: np.ndarray) -> np.ndarray:
    """Spearman rho (m,) of columns with ranks (n, m) against label ranks (n,); NaN for constant labels, 0 for constant
    columns."""
    centred_labels = label_ranks - label_ranks.mean()
    label_norm = np.sqrt(centred_labels @ centred_labels)
    if label_norm == 0:
        return np.full(ranks.shape[1:], np.nan)
    centred = ranks - ranks.mean(axis=0)
    norms = np.sqrt(np.einsum("ij,ij->j", centred, centred))
    covariance = centred_labels @ centred
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = covariance / (label_norm * norms)
    return np.where(norms > 0, rho, 0.0)


def auroc(values: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """AUROC of values (n,) or each column of (n, m) for bool labels; 0.5 is chance, ties count half."""
    values = np.asarray(values)
    result = auroc_from_ranks(average_ranks(values.reshape(len(values), -1)), positive)
    return result[0] if values.ndim == 1 else result


def spearman(values: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of values (n,) or each column of (n, m) with labels (n,)."""
    values = np.asarray(values)
    result = spearman_from_ranks(average_ranks(values.reshape(len(values), -1)), average_ranks(np.asarray(labels)))
    return result[0] if values.ndim == 1 else result


def orient(raw: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(score, sign) from raw AUROC or rho: score = max(auc, 1 - auc) or |rho|, sign +1 or -1."""
    if metric == "auroc":
        sign = np.where(raw >= 0.5, 1, -1)
        return np.where(sign > 0, raw, 1.0 - raw), sign
    sign = np.where(raw >= 0, 1, -1)
    return np.abs(raw), sign


def apply_sign(raw: np.ndarray, sign: np.ndarray, metric: str) -> np.ndarray:
    """Score raw values in a direction fixed elsewhere (the held-out score of a selected sign)."""
    if metric == "auroc":
        return np.where(sign > 0, raw, 1.0 - raw)
    return raw * sign


@dataclass
class Split:
    """Contiguous parts of the probe text: units are selected on one and scored on the other."""

    selection: tuple[int, int]
    heldout: tuple[int, int]
    heldout_fraction: float
    cut_at_newline: bool

    def to_json(self) -> dict:
        """The split as JSON."""
        return {
            "method": "contiguous: the first part selects units, the last part scores them",
            "selection": {"start": self.selection[0], "stop": self.selection[1]},
            "heldout": {"start": self.heldout[0], "stop": self.heldout[1]},
            "heldout_fraction": self.heldout_fraction,
            "cut_at_newline": self.cut_at_newline,
        }


def split_text(text: str, heldout_fraction: float = 0.5) -> Split:
    """Cut text into a selection part and a held-out tail, at a newline near the cut when there is one."""
    length = len(text)
    cut = int(round(length * (1.0 - heldout_fraction)))
    cut = min(max(cut, 1), length - 1)
    slack = max(length // 20, 1)  # move the cut at most 5% of the text to end on a newline
    newline = text.find("\n", cut - 1, min(cut - 1 + slack, length - 1))
    at_newline = newline >= 0
    if at_newline:
        cut = newline + 1
    return Split((0, cut), (cut, length), heldout_fraction, at_newline)


@dataclass
class FeatureScores:
    """Raw scores of every (state, layer, unit) on both parts of the text for one feature."""

    feature: Feature
    state_names: tuple[str, ...]
    selection: np.ndarray  # (states, layers, hidden) raw AUROC or rho, NaN when undefined
    heldout: np.ndarray  # (states, layers, hidden)

    @property
    def metric(self) -> str:
        """auroc or spearman."""
        return METRICS[self.feature.kind]

    @property
    def oriented(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(selection score, sign, held-out score in the selected direction), each (states, layers, hidden)."""
        score, sign = orient(self.selection, self.metric)
        return score, sign, apply_sign(self.heldout, sign, self.metric)

    def top_units(self, count: int) -> list[dict]:
        """The best units by selection score, at most one state per (layer, unit), sorted by held-out score."""
        score, sign, heldout = self.oriented
        flat = np.where(np.isnan(score), -np.inf, score).ravel()
        order = np.argsort(-flat, kind="stable")
        chosen, seen = [], set()
        for index in order:
            if len(chosen) == count or not np.isfinite(flat[index]):
                break
            state_index, layer_index, unit = np.unravel_index(index, score.shape)
            if (layer_index, unit) in seen:
                continue
            seen.add((layer_index, unit))
            held = heldout[state_index, layer_index, unit]
            chosen.append(
                {
                    "ref": UnitRef(int(layer_index) + 1, int(unit), self.state_names[state_index]),
                    "score": float(score[state_index, layer_index, unit]),
                    "heldout_score": None if np.isnan(held) else float(held),
                    "sign": int(sign[state_index, layer_index, unit]),
                }
            )
        chosen.sort(key=lambda unit: -np.inf if unit["heldout_score"] is None else unit["heldout_score"], reverse=True)
        return chosen

    def best_heldout(self) -> float | None:
        """Held-out score of the unit the selection part ranks first (the figure a control is compared on)."""
        top = self.top_units(1)
        return top[0]["heldout_score"] if top else None

    def share_passing(self, threshold: float) -> float | None:
        """Share of units (layer, unit) with any state whose held-out score reaches threshold."""
        _, _, heldout = self.oriented
        if np.isnan(heldout).all():
            return None
        passing = np.nan_to_num(heldout, nan=-np.inf) >= threshold  # (states, layers, hidden)
        return float(passing.any(axis=0).mean())


def _label_ranks(feature: Feature, rows: np.ndarray) -> np.ndarray | None:
    values = feature.values[rows]
    if feature.kind == "binary":
        return None
    return average_ranks(values.astype(np.float64))


def score_recording(
    recording: Recording,
    features: Sequence[Feature],
    split: Split,
    progress: bool = False,
    description: str = "scoring",
) -> dict[str, FeatureScores]:
    """Score every recorded (state, layer, unit) against every feature on the selection and held-out parts."""
    layers, hidden = recording.layers, recording.hidden
    units = layers * hidden
    names = recording.state_names
    results = {
        feature.name: FeatureScores(
            feature, names, np.full((len(names), layers, hidden), np.nan), np.full((len(names), layers, hidden), np.nan)
        )
        for feature in features
    }
    # features sharing a valid mask share the ranks of the units
    parts = {"selection": split.selection, "heldout": split.heldout}
    groups: dict[tuple[str, bytes], tuple[np.ndarray, list[Feature]]] = {}
    for part, (start, stop) in parts.items():
        for feature in features:
            defined = feature.defined_mask[start:stop]
            rows = start + np.flatnonzero(defined)
            key = (part, np.packbits(defined).tobytes())
            groups.setdefault(key, (rows, []))[1].append(feature)
    total = len(names) * len(groups) * units
    with tqdm(total=total, desc=description, unit="unit", unit_scale=True, disable=not progress, leave=False) as bar:
        for (part, _), (rows, group) in groups.items():
            label_ranks = {feature.name: _label_ranks(feature, rows) for feature in group}
            block = max(1, RANK_BLOCK_BYTES // (8 * max(len(rows), 1)))
            for state_index, name in enumerate(names):
                flat = recording.states[name].reshape(len(recording), units)
                for start in range(0, units, block):
                    stop = min(start + block, units)
                    if len(rows) >= 2:
                        contiguous = rows[-1] - rows[0] + 1 == len(rows)
                        block_values = (
                            flat[rows[0] : rows[-1] + 1, start:stop] if contiguous else flat[rows, start:stop]
                        )
                        ranks = average_ranks(np.asarray(block_values))
                        for feature in group:
                            if feature.kind == "binary":
                                raw = auroc_from_ranks(ranks, feature.values[rows].astype(bool))
                            else:
                                raw = spearman_from_ranks(ranks, label_ranks[feature.name])
                            target = getattr(results[feature.name], part)[state_index].reshape(units)
                            target[start:stop] = raw
                    bar.update(stop - start)
    return results


def gate_saturation(recording: Recording, low: float = 0.1, high: float = 0.9, block: int = 65536) -> list[dict]:
    """Per layer and sigmoid gate: the fraction of steps each unit's gate is below low (left) or above high (right)."""
    chars = len(recording)
    layers = []
    counts = {}
    for gate in SIGMOID_GATES[recording.cell]:
        values = recording.states[gate]
        left = np.zeros((recording.layers, recording.hidden), dtype=np.int64)
        right = np.zeros_like(left)
        for start in range(0, chars, block):
            part = values[start : start + block]
            left += (part < low).sum(axis=0)
            right += (part > high).sum(axis=0)
        counts[gate] = (left / max(chars, 1), right / max(chars, 1))
    for layer_index in range(recording.layers):
        gates = {}
        for gate, (left, right) in counts.items():
            gates[gate] = {
                "left": left[layer_index].tolist(),
                "right": right[layer_index].tolist(),
                "mean_left": float(left[layer_index].mean()),
                "mean_right": float(right[layer_index].mean()),
            }
        layers.append({"layer": layer_index + 1, "gates": gates})
    return layers
