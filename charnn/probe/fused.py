"""The CharRNN's layers as torch's own one-layer RNN modules, run a whole chunk of characters per call.

`Recurrence` (charnn.probe.record) steps through the text by hand, ~8 small tensor operations per
character and layer, and is bound by launching them. The fused kernels (oneDNN on a CPU, cuDNN on a
GPU) run a whole chunk per call. Two things the hand-written loop did per step are done here without it:

- **Recording.** The kernels return only h. Every gate is a function of the layer's input at t and
  h at t - 1, so all of them come from one matrix product over the chunk once h is known; an LSTM's c
  then follows from c_t = f_t c_{t-1} + i_t g_t, a linear recurrence computed as a parallel scan
  (log2 T elementwise passes).
- **Ablation.** Copy b of the text has unit u_b of one layer replaced at every step. Each copy gets a
  one-hot input column of its own whose weights drive that unit's gates to saturation (±1e4: a sigmoid
  of it is exactly 0 or 1 in fp32): in an LSTM i = 0, f = 1 and o = 1, so c_u never changes and
  h_u = tanh(c_u); starting from c_u = atanh(fill) it is the fill value (0 exactly for zero ablation) at
  every step. In a GRU z = 1, so h_u keeps its value: the fill. The first character runs through the
  hand-written recurrence, which puts the fill in place; the kernels carry it from there. A plain RNN's
  unit cannot be held this way (tanh of a saturated input is ±1), so it keeps the hand-written loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from charnn import cells
from charnn.cells import named_gates
from charnn.model import CELLS, CharRNN

SATURATE = 1e4  # added to a gate's pre-activation: sigmoid(±1e4) is exactly 1 or 0 in fp32 and bf16
FUSED_CELLS = ("lstm", "gru")  # cells whose units the kernels can hold at a value


def layer_module(model: CharRNN, layer: int, extra_inputs: int = 0) -> nn.Module:
    """Layer `layer` (from 0) of the model as a one-layer torch module of the same cell, eval mode, on the
    model's device; `extra_inputs` zero-weight input columns are appended after the layer's own input."""
    cfg = model.config
    w_ih, w_hh, b_ih, b_hh = (t.float() for t in model.layer_weights(layer))
    module = CELLS[cfg.cell](w_ih.size(1) + extra_inputs, cfg.hidden, num_layers=1, device=w_ih.device)
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.cat([w_ih, w_ih.new_zeros(w_ih.size(0), extra_inputs)], 1))
        module.weight_hh_l0.copy_(w_hh)
        module.bias_ih_l0.copy_(b_ih)
        module.bias_hh_l0.copy_(b_hh)
    return module.eval().requires_grad_(False)


def hold_units(module: nn.Module, cell: str, hidden: int, units: Sequence[int | None], first_column: int) -> None:
    """Give copy b's one-hot input column (first_column + b) the weights that hold unit units[b] (None: none)."""
    weight = module.weight_ih_l0
    with torch.no_grad():
        for copy, unit in enumerate(units):
            if unit is None:
                continue
            column = first_column + copy
            if cell == "lstm":  # gate rows i, f, g, o
                weight[unit, column] = -SATURATE
                weight[hidden + unit, column] = SATURATE
                weight[3 * hidden + unit, column] = SATURATE
            else:  # gru: r, z, n
                weight[hidden + unit, column] = SATURATE


def held_cell_state(h: torch.Tensor, c: torch.Tensor, units: Sequence[int | None]) -> torch.Tensor:
    """An LSTM's c with each held unit's c set to atanh(its h), so that h = 1 * tanh(c) stays the fill."""
    c = c.clone()
    for copy, unit in enumerate(units):
        if unit is not None:
            c[copy, unit] = torch.atanh(h[copy, unit])
    return c


def linear_scan(decay: torch.Tensor, add: torch.Tensor, initial: torch.Tensor) -> torch.Tensor:
    """x_t = decay_t * x_{t-1} + add_t for t = 0..T-1 along dim 0, with x_{-1} = initial (Hillis-Steele scan)."""
    values = add.clone()
    values[0] += decay[0] * initial
    factors = decay.clone()
    span = 1
    steps = len(values)
    while span < steps:
        # after this pass, values[t] sums the terms from t - 2 * span + 1 to t, factors[t] their decay
        values[span:] = values[span:] + factors[span:] * values[:-span]
        factors[span:] = factors[span:] * factors[:-span]
        span *= 2
    return values


def lstm_gates(module: nn.Module, x: torch.Tensor, h_before: torch.Tensor, hidden: int) -> dict[str, torch.Tensor]:
    """i, f, g, o (T, B, H) of an LSTM layer from its input x (T, B, I) and h at the step before (T, B, H)."""
    pre = torch.addmm(module.bias_ih_l0 + module.bias_hh_l0, x.flatten(0, 1), module.weight_ih_l0.T)
    pre = torch.addmm(pre, h_before.flatten(0, 1), module.weight_hh_l0.T).view(*x.shape[:2], 4 * hidden)
    return named_gates("lstm", cells.lstm_gates(pre))


def gru_gates(module: nn.Module, x: torch.Tensor, h_before: torch.Tensor, hidden: int) -> dict[str, torch.Tensor]:
    """r, z, n (T, B, H) of a GRU layer from its input x (T, B, I) and h at the step before (T, B, H)."""
    shape = (*x.shape[:2], 3 * hidden)
    projected = torch.addmm(module.bias_ih_l0, x.flatten(0, 1), module.weight_ih_l0.T).view(shape)
    recurrent = torch.addmm(module.bias_hh_l0, h_before.flatten(0, 1), module.weight_hh_l0.T).view(shape)
    return named_gates("gru", cells.gru_gates(projected, recurrent))


GATE_FUNCTIONS = {"lstm": lstm_gates, "gru": gru_gates}
LayerState = tuple[torch.Tensor, ...]  # (h, c) for LSTM, (h,) otherwise; each (B, H)


def run_layer(module: nn.Module, cell: str, x: torch.Tensor, state: LayerState) -> tuple[torch.Tensor, LayerState]:
    """One layer's kernel over a chunk x (T, B, I) from state: its h (T, B, H) and the state after the chunk."""
    if cell == "lstm":
        out, (h, c) = module(x, (state[0].unsqueeze(0).contiguous(), state[1].unsqueeze(0).contiguous()))
        return out, (h[0], c[0])
    out, h = module(x, state[0].unsqueeze(0).contiguous())
    return out, (h[0],)


class FusedStack:
    """The model's layers as fused kernels, stepping through a text chunk by chunk with its states carried.

    With `held` = (layer index, units), the text runs as len(units) copies from that layer up, copy b with
    units[b] held at the value its state has (see the module docstring); the layers below run once."""

    def __init__(
        self, model: CharRNN, states: Sequence[LayerState], held: tuple[int, Sequence[int | None]] | None = None
    ):
        cfg = model.config
        self.cell, self.hidden = cfg.cell, cfg.hidden
        self.held_layer, units = held if held is not None else (None, ())
        copies = len(units)
        self.layers = [
            layer_module(model, layer, copies if layer == self.held_layer else 0) for layer in range(cfg.layers)
        ]
        self.embedding = model.embedding.weight.detach().float()
        self.states = [tuple(state) for state in states]
        self.one_hot = None
        if self.held_layer is not None:
            width = cfg.embed if self.held_layer == 0 else cfg.hidden
            hold_units(self.layers[self.held_layer], self.cell, self.hidden, units, width)
            self.one_hot = torch.eye(copies, device=self.embedding.device)
            if self.cell == "lstm":
                h, c = self.states[self.held_layer]
                self.states[self.held_layer] = (h, held_cell_state(h, c, units))

    def run(self, ids: torch.Tensor, record: bool = False) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]] | None]:
        """ids (T,) through every layer: the top layer's h (T, B, H) and, when recording, every state per layer."""
        x = self.embedding[ids].unsqueeze(1)  # (T, 1, E)
        recorded: list[dict[str, torch.Tensor]] | None = [] if record else None
        for index, module in enumerate(self.layers):
            if index == self.held_layer:
                copies = self.one_hot.size(0)
                x = torch.cat([x.expand(len(ids), copies, x.size(2)), self.one_hot.expand(len(ids), copies, copies)], 2)
            layer_input, before = x, self.states[index]
            x, self.states[index] = run_layer(module, self.cell, layer_input, before)
            if recorded is not None:
                recorded.append(self._states(module, layer_input, x, before))
        return x, recorded

    def _states(
        self, module: nn.Module, x: torch.Tensor, out: torch.Tensor, before: LayerState
    ) -> dict[str, torch.Tensor]:
        """Every state of a layer over the chunk just run: h from the kernel, the gates (and c) recomputed."""
        kept = {"h": out}
        if self.cell not in GATE_FUNCTIONS:
            return kept
        h_before = torch.cat([before[0].unsqueeze(0).expand(1, out.size(1), self.hidden), out[:-1]])
        gates = GATE_FUNCTIONS[self.cell](module, x, h_before, self.hidden)
        if self.cell == "lstm":
            kept["c"] = linear_scan(gates["f"], gates["i"] * gates["g"], before[1])
        kept.update(gates)
        return kept
