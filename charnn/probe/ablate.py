"""Ablate units inside the model and measure what the next-character loss loses.

Ablating a unit replaces its h (and, in an LSTM, its c) with 0 or with its mean over the text at
*every* step, inside the recurrence, so the layer above and the next step both see the replaced
value. (A unit only reaches the rest of the network through h = o * tanh(c); replacing c as well
keeps the recorded state consistent.)

Many units are ablated in one pass: the text runs as B parallel copies, copy b with unit u_b
replaced, and copy 0 with nothing replaced (the baseline every delta is taken against, so
"ablate nothing" is exactly 0). Layers below the ablated one are identical in every copy and run
once. The loss at position i predicts text[i + 1]; per copy it is summed under each mask (a
feature's target positions, everything else) chunk by chunk, so memory does not grow with the text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from charnn.device import exact_fp32, sum_dtype
from charnn.errors import CharnnError
from charnn.model import CharRNN
from charnn.probe.record import Recurrence, Replacement, as_id_tensor, torch_threads

ABLATION_METHODS = ("zero", "mean")
MAX_BATCH = 128  # copies per pass; more are run in further passes
SMALL_STEP_MACS = 1 << 20  # below this many multiply-adds per step and layer, ablation runs on one thread
CHUNK_ELEMENTS = 1 << 23  # steps per chunk are chosen so that steps * copies * gates stays near this


def _replacement(recurrence: Recurrence, layer_index: int, units: Sequence[int | None], method: str,
                 means: tuple[np.ndarray, np.ndarray | None] | None) -> Replacement:
    batch, hidden = len(units), recurrence.hidden
    keep = torch.ones(batch, hidden, device=recurrence.device)
    fill_h = torch.zeros(batch, hidden, device=recurrence.device)
    fill_c = torch.zeros(batch, hidden, device=recurrence.device) if recurrence.is_lstm else None
    for row, unit in enumerate(units):
        if unit is None:
            continue
        keep[row, unit] = 0.0
        if method == "mean":
            fill_h[row, unit] = float(means[0][layer_index, unit])
            if fill_c is not None:
                fill_c[row, unit] = float(means[1][layer_index, unit])
    return Replacement(layer_index, keep, fill_h, fill_c)


@torch.no_grad()
@exact_fp32()
def ablated_loss_sums(
    model: CharRNN,
    ids: np.ndarray | torch.Tensor,
    layer: int,
    units: Sequence[int | None],
    masks: np.ndarray,
    method: str = "zero",
    means: tuple[np.ndarray, np.ndarray | None] | None = None,
    chunk: int | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Loss sums (copies, masks) in nats: copy b runs with unit units[b] of layer (from 1) replaced (None: nothing)."""
    if method not in ABLATION_METHODS:
        raise CharnnError(f"--ablate must be one of {', '.join(ABLATION_METHODS)}, not '{method}'")
    if method == "mean" and means is None:
        raise CharnnError("mean ablation needs the units' means over the text")
    recurrence = Recurrence(model)
    if not 1 <= layer <= recurrence.layers:
        raise CharnnError(f"layer {layer} does not exist: the model has layers 1..{recurrence.layers}")
    for unit in units:
        if unit is not None and not 0 <= unit < recurrence.hidden:
            raise CharnnError(f"unit {unit} does not exist: the model has units 0..{recurrence.hidden - 1}")
    width = recurrence.input_table.size(1)
    # small batches of small layers: per-step work too little to share between threads
    threads = 1 if len(units) * recurrence.hidden * width < SMALL_STEP_MACS else None
    with torch_threads(threads):
        return _loss_sums(recurrence, ids, layer, units, masks, method, means, chunk, progress)


def _loss_sums(recurrence: Recurrence, ids: np.ndarray | torch.Tensor, layer: int, units: Sequence[int | None],
               masks: np.ndarray, method: str, means: tuple[np.ndarray, np.ndarray | None] | None,
               chunk: int | None, progress: bool) -> np.ndarray:
    ids = as_id_tensor(ids).to(recurrence.device)
    masks = np.asarray(masks, dtype=bool).reshape(-1, len(ids))
    # the last position has no next character to predict
    # each chunk's sums in float64 on a CPU; in fp32 elsewhere (a float64 matmul is slow on most GPUs), added up
    # across chunks in float64 (float32 on MPS, which has none)
    total_dtype = sum_dtype(recurrence.device)
    chunk_dtype = total_dtype if recurrence.device.type == "cpu" else torch.float32
    mask_tensor = torch.from_numpy(masks[:, : len(ids) - 1].T.copy()).to(recurrence.device, chunk_dtype)  # (N - 1, M)
    batch = len(units)
    replacement = _replacement(recurrence, layer - 1, units, method, means)
    if chunk is None:
        width = recurrence.input_table.size(1)
        chunk = int(min(512, max(16, CHUNK_ELEMENTS // (batch * width))))
    states = recurrence.initial_state(batch, first_batched_layer=layer - 1)
    sums = torch.zeros(batch, masks.shape[0], dtype=total_dtype, device=recurrence.device)
    positions = len(ids) - 1
    with tqdm(total=positions, desc=f"ablating layer {layer} ×{batch}", unit="char", unit_scale=True, disable=not progress, leave=False) as bar:
        for start in range(0, positions, chunk):
            stop = min(start + chunk, positions)
            output = recurrence.run_chunk(ids[start:stop], states, replacement)
            log_probs = torch.log_softmax(recurrence.logits(output.top), dim=-1)  # (T, B, V)
            targets = ids[start + 1 : stop + 1].view(-1, 1, 1).expand(-1, batch, 1)
            losses = -log_probs.gather(2, targets).squeeze(2)  # (T, B)
            sums += (losses.T.to(chunk_dtype) @ mask_tensor[start:stop]).to(total_dtype)
            bar.update(stop - start)
    return sums.cpu().numpy()


def ablation_deltas(
    model: CharRNN,
    ids: np.ndarray | torch.Tensor,
    layer: int,
    units: Sequence[int | None],
    masks: np.ndarray,
    method: str = "zero",
    means: tuple[np.ndarray, np.ndarray | None] | None = None,
    max_batch: int = MAX_BATCH,
    progress: bool = False,
) -> np.ndarray:
    """Change in mean loss (nats/char) under each mask when each unit is ablated alone, (units, masks); NaN for empty masks."""
    masks = np.asarray(masks, dtype=bool).reshape(-1, len(ids))
    counts = masks[:, : len(ids) - 1].sum(axis=1)
    deltas = np.zeros((len(units), masks.shape[0]))
    ablated = [index for index, unit in enumerate(units) if unit is not None]
    per_pass = max(1, max_batch - 1)
    for start in range(0, len(ablated), per_pass):
        rows = ablated[start : start + per_pass]
        sums = ablated_loss_sums(model, ids, layer, [None] + [units[r] for r in rows], masks, method, means, progress=progress)
        deltas[rows] = sums[1:] - sums[0]  # copy 0 is the baseline of this pass
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, deltas / np.maximum(counts, 1), np.nan)


def percentile_among(value: float, others: Sequence[float] | np.ndarray) -> float | None:
    """Percentage (0..100) of others below value, ties counting half; None without others or for NaN."""
    others = np.asarray(others, dtype=np.float64)
    others = others[~np.isnan(others)]
    if len(others) == 0 or value is None or np.isnan(value):
        return None
    below = (others < value).sum() + 0.5 * (others == value).sum()
    return float(100.0 * below / len(others))


def draw_random_units(hidden: int, count: int, seed: int, layer: int) -> list[int]:
    """count distinct units of a layer of hidden units (all of them when count >= hidden), reproducibly."""
    rng = np.random.default_rng([seed, layer])
    return sorted(rng.choice(hidden, size=min(count, hidden), replace=False).tolist())


def draw_spare_unit(hidden: int, drawn: Sequence[int], seed: int, layer: int) -> int | None:
    """One more unit outside drawn, for a flagged unit that is itself among them; None when drawn holds the layer."""
    rest = sorted(set(range(hidden)) - set(drawn))
    if not rest:
        return None
    return int(rest[np.random.default_rng([seed, layer, 1]).integers(len(rest))])


@dataclass
class LayerAblation:
    """Deltas of every ablated unit of one layer (flagged and random) under every mask."""

    layer: int  # from 1
    random_units: list[int]
    deltas: dict[int, np.ndarray]  # unit -> (masks,) change in mean loss, nats/char
    spare: int | None = None  # takes the place of a flagged unit that is among the random units

    def band_units(self, unit: int) -> list[int]:
        """The random units a unit is compared with: as many as drawn, never the unit itself."""
        if unit not in self.random_units:
            return list(self.random_units)
        others = [u for u in self.random_units if u != unit]
        return others + ([self.spare] if self.spare is not None else [])

    def band(self, unit: int, mask_index: int) -> np.ndarray:
        """The random units' deltas under a mask, without the unit itself."""
        return np.array([self.deltas[u][mask_index] for u in self.band_units(unit)])


def ablate_layers(
    model: CharRNN,
    ids: np.ndarray | torch.Tensor,
    flagged: dict[int, Sequence[int]],
    masks: np.ndarray,
    random_count: int,
    method: str = "zero",
    means: tuple[np.ndarray, np.ndarray | None] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict[int, LayerAblation]:
    """For each layer (from 1) with flagged units: ablate them and random_count random units of that layer, one at a time."""
    results = {}
    hidden = model.config.hidden
    for layer, units in sorted(flagged.items()):
        random_units = draw_random_units(hidden, random_count, seed, layer)
        spare = draw_spare_unit(hidden, random_units, seed, layer) if set(units) & set(random_units) else None
        everyone = sorted(set(units) | set(random_units) | ({spare} if spare is not None else set()))
        deltas = ablation_deltas(model, ids, layer, everyone, masks, method, means, progress=progress)
        results[layer] = LayerAblation(layer, random_units, {unit: deltas[row] for row, unit in enumerate(everyone)}, spare)
    return results
