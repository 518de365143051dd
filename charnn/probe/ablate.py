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
from tqdm.std import tqdm as Bar  # every bar's base class, in a notebook too

from charnn.cells import Hold
from charnn.device import exact_fp32, sum_dtype
from charnn.errors import CharnnError, UsageError
from charnn.model import CharRNN
from charnn.probe.fused import FUSED_CELLS, FusedStack
from charnn.probe.record import Recurrence, as_id_tensor, torch_threads
from charnn.sample import check_bf16_products

ABLATION_METHODS = ("zero", "mean")
PROBE_PRECISIONS = ("fp32", "bf16")
MAX_BATCH = 128  # copies per pass; more are run in further passes
SMALL_STEP_MACS = 1 << 20  # below this many multiply-adds per step and layer, ablation runs on one thread
CHUNK_ELEMENTS = 1 << 23  # steps per chunk are chosen so that steps * copies * gates stays near this
FUSED_CHUNK = 256  # characters per call of the fused kernels


def ablation_holds(
    recurrence: Recurrence,
    layer_index: int,
    units: Sequence[int | None],
    method: str,
    means: tuple[np.ndarray, np.ndarray | None] | None,
) -> list[Hold | None]:
    """Per layer, what the copies hold: copy b holds units[b] of layer_index (None: nothing) at 0, or at its mean
    over the text (h and c alike)."""
    hidden, device = recurrence.hidden, recurrence.device
    keep = torch.ones(len(units), hidden, device=device)
    fill_h, fill_c = torch.zeros(len(units), hidden, device=device), torch.zeros(len(units), hidden, device=device)
    for row, unit in enumerate(units):
        if unit is None:
            continue
        keep[row, unit] = 0.0
        if method == "mean":
            fill_h[row, unit] = float(means[0][layer_index, unit])
            if recurrence.is_lstm:
                fill_c[row, unit] = float(means[1][layer_index, unit])
    hold = Hold(keep, fill_h, keep, fill_c) if recurrence.is_lstm else Hold(keep, fill_h)
    return [hold if layer == layer_index else None for layer in range(recurrence.layers)]


def check_ablation_precision(precision: str, device: torch.device) -> None:
    """Refuse, before any work, an ablation precision that would be slower than fp32 on device: bf16 where the
    hardware only emulates it, and bf16 on a GPU, where the ablation runs cuDNN's fused kernels in fp32 and bf16
    would take the hand-written steps, bound by launching small kernels."""
    check_bf16_products(precision, device, "probe")
    if precision == "bf16" and device.type == "cuda":
        raise UsageError(
            "--precision bf16: on a GPU the ablation runs cuDNN's fused kernels in fp32, faster than bf16 "
            "products in the hand-written steps would be; probe in fp32 (the default)"
        )


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
    progress: bool | Bar = False,
    fused: bool | None = None,
    precision: str = "fp32",
) -> np.ndarray:
    """Loss sums (copies, masks) in nats: copy b runs with unit units[b] of layer (from 1) replaced (None: nothing).
    fused: run the layers as torch's own kernels, a chunk per call (LSTM and GRU; see charnn.probe.fused), else
    step through the text with the hand-written recurrence (which a plain RNN always does); None: fused on a GPU,
    where the hand-written steps are bound by launching small kernels; by hand on a CPU, where oneDNN's LSTM
    kernel at a hundred copies ran slower than the hand-written steps (docs/results/benchmarks.md, "Probing").
    precision: fp32, or bf16 (the hand-written steps' matrix products take bf16 inputs: faster where the
    hardware has bf16 units, with deltas that differ from fp32's by a little; an opt-in, --precision bf16).
    progress: True for a bar of its own, or a phase's bar (ablate_layers), advanced by pass_work per character."""
    if method not in ABLATION_METHODS:
        raise CharnnError(f"--ablate must be one of {', '.join(ABLATION_METHODS)}, not '{method}'")
    if method == "mean" and means is None:
        raise CharnnError("mean ablation needs the units' means over the text")
    if precision not in PROBE_PRECISIONS:
        raise CharnnError(f"--precision must be one of {', '.join(PROBE_PRECISIONS)}, not '{precision}'")
    device = next(model.parameters()).device
    check_ablation_precision(precision, device)
    if fused is None:
        fused = device.type == "cuda"
    if fused and precision != "fp32":
        raise CharnnError(
            "the fused ablation runs torch's kernels in fp32; bf16 products are the hand-written steps' (fused=False)"
        )
    recurrence = Recurrence(model, torch.bfloat16 if precision == "bf16" else torch.float32)
    if not 1 <= layer <= recurrence.layers:
        raise CharnnError(f"layer {layer} does not exist: the model has layers 1..{recurrence.layers}")
    for unit in units:
        if unit is not None and not 0 <= unit < recurrence.hidden:
            raise CharnnError(f"unit {unit} does not exist: the model has units 0..{recurrence.hidden - 1}")
    width = recurrence.input_table.size(1)
    # small batches of small layers: per-step work too little to share between threads
    threads = 1 if len(units) * recurrence.hidden * width < SMALL_STEP_MACS else None
    with torch_threads(threads):
        return _loss_sums(model, recurrence, ids, layer, units, masks, method, means, chunk, progress, fused, precision)


def _loss_sums(
    model: CharRNN,
    recurrence: Recurrence,
    ids: np.ndarray | torch.Tensor,
    layer: int,
    units: Sequence[int | None],
    masks: np.ndarray,
    method: str,
    means: tuple[np.ndarray, np.ndarray | None] | None,
    chunk: int | None,
    progress: bool | Bar,
    fused: bool,
    precision: str,
) -> np.ndarray:
    ids = as_id_tensor(ids).to(recurrence.device)
    masks = np.asarray(masks, dtype=bool).reshape(-1, len(ids))
    # the last position has no next character to predict
    # each chunk's sums in float64 on a CPU; in fp32 elsewhere (a float64 matmul is slow on most GPUs), added up
    # across chunks in float64 (float32 on MPS, which has none)
    total_dtype = sum_dtype(recurrence.device)
    chunk_dtype = total_dtype if recurrence.device.type == "cpu" else torch.float32
    mask_tensor = torch.from_numpy(masks[:, : len(ids) - 1].T.copy()).to(recurrence.device, chunk_dtype)  # (N - 1, M)
    batch = len(units)
    holds = ablation_holds(recurrence, layer - 1, units, method, means)
    if chunk is None:
        width = recurrence.input_table.size(1)
        chunk = int(min(512, max(16, CHUNK_ELEMENTS // (batch * width))))
    states = recurrence.initial_state(batch, first_batched_layer=layer - 1)
    sums = torch.zeros(batch, masks.shape[0], dtype=total_dtype, device=recurrence.device)
    positions = len(ids) - 1

    def add(start: int, top: torch.Tensor) -> None:
        """Add the losses of positions start.. (the top layer's h there, (T, B, H)) under every mask."""
        stop = start + len(top)
        log_probs = torch.log_softmax(recurrence.logits(top), dim=-1)  # (T, B, V)
        targets = ids[start + 1 : stop + 1].view(-1, 1, 1).expand(-1, batch, 1)
        losses = -log_probs.gather(2, targets).squeeze(2)  # (T, B)
        sums.add_((losses.T.to(chunk_dtype) @ mask_tensor[start:stop]).to(total_dtype))
        bar.update((stop - start) * weight)

    shared = isinstance(progress, Bar)
    weight = pass_work(recurrence.layers, layer, batch) if shared else 1
    if shared:
        progress.set_postfix_str(f"layer {layer}, {batch} copies", refresh=False)
    own = tqdm(
        total=positions,
        desc=f"ablating layer {layer} ×{batch}",
        unit="char",
        unit_scale=True,
        disable=shared or not progress,
        leave=False,
    )
    with own:
        bar = progress if shared else own
        if fused and recurrence.cell in FUSED_CELLS and positions > 1:
            # the first character by hand puts each copy's fill in place; the kernels hold it from there
            add(0, recurrence.run_chunk(ids[:1], states, holds).top)
            stack = FusedStack(model, states, held=(layer - 1, units))
            for start in range(1, positions, FUSED_CHUNK):
                stop = min(start + FUSED_CHUNK, positions)
                add(start, stack.run(ids[start:stop])[0])
        else:
            for start in range(0, positions, chunk):
                stop = min(start + chunk, positions)
                add(start, recurrence.run_chunk(ids[start:stop], states, holds).top)
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
    progress: bool | Bar = False,
    precision: str = "fp32",
) -> np.ndarray:
    """Change in mean loss (nats/char) under each mask when each unit is ablated alone, (units, masks); NaN for empty
    masks."""
    masks = np.asarray(masks, dtype=bool).reshape(-1, len(ids))
    counts = masks[:, : len(ids) - 1].sum(axis=1)
    deltas = np.zeros((len(units), masks.shape[0]))
    ablated = [index for index, unit in enumerate(units) if unit is not None]
    per_pass = max(1, max_batch - 1)
    for start in range(0, len(ablated), per_pass):
        rows = ablated[start : start + per_pass]
        sums = ablated_loss_sums(
            model,
            ids,
            layer,
            [None] + [units[r] for r in rows],
            masks,
            method,
            means,
            progress=progress,
            precision=precision,
        )
        deltas[rows] = sums[1:] - sums[0]  # copy 0 is the baseline of this pass
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, deltas / np.maximum(counts, 1), np.nan)


def pass_work(layers: int, layer: int, copies: int) -> int:
    """What one character of an ablation pass costs, in layer-steps of one copy: the layers below `layer`
    run once, the ablated one and those above it once per copy."""
    return (layer - 1) + (layers - layer + 1) * copies


def ablation_work(layers: int, positions: int, plan: dict[int, int], max_batch: int = MAX_BATCH) -> int:
    """The work of ablating plan's units ({layer: units}) of a text of positions + 1 characters (pass_work units)."""
    per_pass = max(1, max_batch - 1)
    total = 0
    for layer, count in plan.items():
        for start in range(0, count, per_pass):
            total += positions * pass_work(layers, layer, min(per_pass, count - start) + 1)
    return total


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
    precision: str = "fp32",
) -> dict[int, LayerAblation]:
    """For each layer (from 1) with flagged units: ablate them and random_count random units of that layer, one at a
    time."""
    results = {}
    hidden = model.config.hidden
    chosen = {}
    for layer, units in sorted(flagged.items()):
        random_units = draw_random_units(hidden, random_count, seed, layer)
        spare = draw_spare_unit(hidden, random_units, seed, layer) if set(units) & set(random_units) else None
        everyone = sorted(set(units) | set(random_units) | ({spare} if spare is not None else set()))
        chosen[layer] = (random_units, spare, everyone)
    # one bar for the whole phase, its ETA from the work done (layers x copies per character), not pass by pass
    work = ablation_work(
        model.config.layers, len(ids) - 1, {layer: len(everyone) for layer, (_, _, everyone) in chosen.items()}
    )
    with tqdm(
        total=work,
        desc="ablating",
        disable=not progress,
        leave=False,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}",
    ) as bar:
        for layer, (random_units, spare, everyone) in chosen.items():
            deltas = ablation_deltas(
                model, ids, layer, everyone, masks, method, means, progress=bar, precision=precision
            )
            results[layer] = LayerAblation(
                layer, random_units, {unit: deltas[row] for row, unit in enumerate(everyone)}, spare
            )
    return results
