"""Record every state of a CharRNN over a text: h, c and the gates of every layer and unit.

nn.LSTM / nn.GRU / nn.RNN return only h (and the last c), and cannot be intervened on mid-sequence,
so `Recurrence` steps through charnn.cells' recurrence by hand over the module's own weights. The same
code path serves recording (batch 1, every state kept) and ablation (batch B, one unit of one layer held
in each copy at every step); charnn.probe.fused is the fast path beside it.

Work is layer-major inside a chunk of T characters: layer l runs all T steps, then its outputs
(T, B, H) become layer l + 1's input, projected with one matmul. States carry across chunks, so
memory is bounded by the chunk, not the text; only the recording itself grows with the text
(float16, chars × layers × hidden × states × 2 bytes; memory-mapped on disk when a directory is given).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from charnn.cells import GATES, STATE_NAMES, Hold, gru_step, lstm_step, named_gates, rnn_step
from charnn.device import exact_fp32
from charnn.errors import CharnnError
from charnn.model import CharRNN
from charnn.probe.fused import FusedStack, LayerState


@dataclass(frozen=True)
class UnitRef:
    """One recorded quantity: a unit of a layer (counted from 1, as in reports and --clamp) and a state."""

    layer: int
    unit: int
    state: str

    def __str__(self) -> str:
        return f"{self.layer}:{self.unit}:{self.state}"


@dataclass
class Recording:
    """Every state of every unit after reading each character: arrays (chars, layers, hidden) per state name."""

    cell: str
    layers: int
    hidden: int
    states: dict[str, np.ndarray]  # name -> (chars, layers, hidden), float16 unless asked otherwise

    def __len__(self) -> int:
        return len(self.states["h"])

    @property
    def state_names(self) -> tuple[str, ...]:
        """The recorded state names in report order (h first)."""
        return STATE_NAMES[self.cell]

    def unit_values(self, layer: int, unit: int, state: str = "h") -> np.ndarray:
        """Per-character values (float32, (chars,)) of one unit; layer counted from 1."""
        if state not in self.states:
            raise CharnnError(f"a {self.cell.upper()} has no state '{state}'; it has {', '.join(self.state_names)}")
        if not 1 <= layer <= self.layers or not 0 <= unit < self.hidden:
            raise CharnnError(
                f"unit {layer}:{unit} does not exist: the model has layers 1..{self.layers} and units "
                f"0..{self.hidden - 1}"
            )
        return np.asarray(self.states[state][:, layer - 1, unit], dtype=np.float32)

    def unit_means(self, state: str = "h", block: int = 65536) -> np.ndarray:
        """Mean of every unit of a state over the text, (layers, hidden) float32 (for mean-replacement)."""
        values = self.states[state]
        total = np.zeros((self.layers, self.hidden), dtype=np.float64)
        for start in range(0, len(values), block):
            total += values[start : start + block].sum(axis=0, dtype=np.float64)
        return (total / max(len(values), 1)).astype(np.float32)

    @staticmethod
    def allocate(
        cell: str,
        chars: int,
        layers: int,
        hidden: int,
        dtype: np.dtype = np.float16,
        directory: str | Path | None = None,
    ) -> Recording:
        """Empty arrays for a recording; memory-mapped .npy files in directory when one is given."""
        states = {}
        for name in STATE_NAMES[cell]:
            shape = (chars, layers, hidden)
            if directory is None:
                states[name] = np.zeros(shape, dtype=dtype)
            else:
                path = Path(directory) / f"{name}.npy"
                states[name] = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        return Recording(cell, layers, hidden, states)

    @staticmethod
    def nbytes(cell: str, chars: int, layers: int, hidden: int, dtype: np.dtype = np.float16) -> int:
        """Size of a recording's arrays in bytes."""
        return len(STATE_NAMES[cell]) * chars * layers * hidden * np.dtype(dtype).itemsize


@dataclass
class ChunkOutput:
    """What one chunk of the recurrence produced."""

    top: torch.Tensor  # (T, B, H) the last layer's h, the decoder's input
    recorded: list[dict[str, torch.Tensor]] | None  # per layer: state name -> (T, B, H), when recording


class Recurrence:
    """The CharRNN's recurrence written out by hand over its own weights (eval mode, no grad)."""

    def __init__(self, model: CharRNN, dtype: torch.dtype = torch.float32):
        cfg = model.config
        self.dtype = dtype  # of the matrix products' inputs: float32, or bfloat16 (opt-in, --precision bf16)
        self.cell = cfg.cell
        self.layers = cfg.layers
        self.hidden = cfg.hidden
        if getattr(model.rnn, "nonlinearity", "tanh") != "tanh":
            raise CharnnError("only tanh RNNs can be probed")
        with torch.no_grad():
            self.input_weights: list[torch.Tensor] = []  # (in, G), unused for layer 0 (its input is a lookup)
            self.input_biases: list[torch.Tensor] = []  # (G,)
            self.hidden_weights: list[torch.Tensor] = []  # (H, G)
            self.hidden_biases: list[torch.Tensor] = []  # (G,) GRU only: b_hh stays inside r * (W_hn h + b_hn)
            for layer in range(cfg.layers):
                w_ih, w_hh, b_ih, b_hh = (t.float() for t in model.layer_weights(layer))
                bias = b_ih if cfg.cell == "gru" else b_ih + b_hh
                self.input_weights.append(w_ih.T.contiguous())
                self.input_biases.append(bias.contiguous())
                self.hidden_weights.append(w_hh.T.contiguous())
                self.hidden_biases.append(b_hh.contiguous())
            # layer 0's input projection of every character, (V, G): a gather instead of a matmul
            embedding = model.embedding.weight.detach().float()
            self.input_table = (embedding @ self.input_weights[0] + self.input_biases[0]).contiguous()
            self.decoder_weight = model.decoder.weight.detach().float().T.contiguous()  # (H, V)
            self.decoder_bias = model.decoder.bias.detach().float().clone()
        self.device = self.input_table.device
        if dtype != torch.float32:  # products take bf16 inputs and give fp32; the gates' arithmetic stays fp32
            self.input_weights = [w.to(dtype) for w in self.input_weights]
            self.hidden_weights = [w.to(dtype) for w in self.hidden_weights]

    def _product(
        self, add: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """add + x @ weight, in fp32 (x rounded to bf16 first when the recurrence computes its products in bf16)."""
        if self.dtype == torch.float32:
            return (
                torch.addmm(add, x, weight, out=out)
                if x.dim() == 2
                else torch.add(add, torch.matmul(x, weight), out=out)
            )
        return torch.add(add, torch.matmul(x.to(self.dtype), weight), out=out)

    @property
    def is_lstm(self) -> bool:
        """Whether layers carry a cell state c."""
        return self.cell == "lstm"

    def initial_state(self, batch: int, first_batched_layer: int = 0) -> list[LayerState]:
        """Zero state per layer; layers below first_batched_layer run once (batch 1) and are shared by all copies."""
        states = []
        for layer in range(self.layers):
            rows = batch if layer >= first_batched_layer else 1
            zeros = torch.zeros(rows, self.hidden, device=self.device)
            states.append((zeros, zeros.clone()) if self.is_lstm else (zeros,))
        return states

    @torch.no_grad()
    def run_chunk(
        self, ids: torch.Tensor, states: list[LayerState], holds: Sequence[Hold | None] = (), record: bool = False
    ) -> ChunkOutput:
        """Run ids (T,) through every layer, updating states in place; holds[l] holds units of layer l
        (charnn.cells.Hold,
        one row per copy: the copies fan out at the first layer whose state has more than one row)."""
        steps = len(ids)
        x = self.input_table[ids].unsqueeze(1)  # (T, 1, G): layer 0's projected input
        recorded: list[dict[str, torch.Tensor]] | None = [] if record else None
        for layer in range(self.layers):
            batch = states[layer][0].size(0)
            if layer > 0:
                x = self._product(self.input_biases[layer], x, self.input_weights[layer])  # (T, B', G)
            if x.size(1) != batch:
                x = x.expand(steps, batch, x.size(2))
            hold = holds[layer] if holds else None
            x, states[layer], kept = self._run_layer(layer, x, states[layer], hold, record)
            if recorded is not None:
                recorded.append(kept)
        return ChunkOutput(x, recorded)

    def _run_layer(
        self, layer: int, projected: torch.Tensor, state: LayerState, hold: Hold | None, record: bool
    ) -> tuple[torch.Tensor, LayerState, dict[str, torch.Tensor]]:
        """One layer over a chunk, a step at a time through charnn.cells: its h (T, B, H), its state after the chunk
        and, when recording, its c and gates (T, B, H) by name."""
        steps, batch, _ = projected.shape
        w_hh = self.hidden_weights[layer]
        out = torch.empty(steps, batch, self.hidden, device=self.device)
        cs: list[torch.Tensor] = []
        gates: list[torch.Tensor] = []
        h, c = state[0], state[1] if self.is_lstm else None
        for t in range(steps):
            if self.cell == "lstm":
                h, c, step_gates = lstm_step(self._product(projected[t], h, w_hh), c, hold)
            elif self.cell == "gru":
                h, step_gates = gru_step(projected[t], self._product(self.hidden_biases[layer], h, w_hh), h, hold)
            else:
                h, step_gates = rnn_step(self._product(projected[t], h, w_hh), hold), None
            out[t] = h
            if record:
                cs.append(c)
                gates.append(step_gates)
        kept: dict[str, torch.Tensor] = {"h": out}
        if record and self.is_lstm:
            kept["c"] = torch.stack(cs)
        if record and GATES[self.cell]:
            kept.update(named_gates(self.cell, torch.stack(gates)))
        return out, (h, c) if self.is_lstm else (h,), kept

    def logits(self, top: torch.Tensor) -> torch.Tensor:
        """Decoder logits (T, B, V) for the last layer's h (T, B, H)."""
        return torch.matmul(top, self.decoder_weight) + self.decoder_bias


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run a block with count intra-op threads (None: as configured), then restore the setting.

    The per-step work here is small matrices; on a busy machine a second thread mostly waits at
    barriers, so the probe lets the caller choose.
    """
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def as_id_tensor(ids: np.ndarray | torch.Tensor | Sequence[int]) -> torch.Tensor:
    """Ids as an int64 CPU tensor (T,)."""
    if isinstance(ids, torch.Tensor):
        return ids.to(torch.int64).reshape(-1)
    return torch.from_numpy(np.asarray(ids).astype(np.int64).reshape(-1))


@torch.no_grad()
@exact_fp32()
def record(
    model: CharRNN,
    ids: np.ndarray | torch.Tensor,
    chunk: int = 1024,
    dtype: np.dtype = np.float16,
    directory: str | Path | None = None,
    progress: bool = False,
    description: str = "recording",
    fused: bool = True,
) -> Recording:
    """Run the model over ids (one stream from a zero state) and keep every state of every layer and unit.
    fused: h from torch's own kernels a chunk at a time, the gates and c recomputed from it (charnn.probe.fused);
    else the hand-written recurrence, step by step."""
    if chunk < 1:
        raise CharnnError(f"chunk must be at least 1, not {chunk}")
    with torch_threads(1):  # one stream: matrix-vector steps, where a second thread costs more than it brings
        return _record(model, ids, chunk, dtype, directory, progress, description, fused)


def _record(
    model: CharRNN,
    ids: np.ndarray | torch.Tensor,
    chunk: int,
    dtype: np.dtype,
    directory: str | Path | None,
    progress: bool,
    description: str,
    fused: bool,
) -> Recording:
    recurrence = Recurrence(model)
    ids = as_id_tensor(ids).to(recurrence.device)
    recording = Recording.allocate(recurrence.cell, len(ids), recurrence.layers, recurrence.hidden, dtype, directory)
    states = recurrence.initial_state(1)
    stack = FusedStack(model, states) if fused else None  # the kernels run h; the gates and c are recomputed from it
    names = recording.state_names
    stored = torch.from_numpy(np.zeros(0, dtype=dtype)).dtype  # the recording's dtype, converted on the device
    with tqdm(total=len(ids), desc=description, unit="char", unit_scale=True, disable=not progress, leave=False) as bar:
        for start in range(0, len(ids), chunk):
            stop = min(start + chunk, len(ids))
            if stack is not None:
                recorded = stack.run(ids[start:stop], record=True)[1]
            else:
                recorded = recurrence.run_chunk(ids[start:stop], states, record=True).recorded
            # every state of every layer in one block, (states, T, layers, H): one copy to the host per chunk
            block = torch.stack([torch.stack([kept[name][:, 0, :] for kept in recorded], 1) for name in names])
            block = block.to(stored).cpu().numpy()
            for index, name in enumerate(names):
                recording.states[name][start:stop] = block[index]
            bar.update(stop - start)
    return recording
