"""The recurrence, stated once: one step of an LSTM, a GRU or a tanh RNN layer, and one way to hold units.

PyTorch's equations and gate order, so the weights of nn.LSTM / nn.GRU / nn.RNN apply as they are. With
x the layer's input and h, c its state before the step:

    LSTM  a = W_ih x + b_ih + W_hh h + b_hh, split into a_i, a_f, a_g, a_o
          i, f, o = σ(a_i), σ(a_f), σ(a_o);  g = tanh(a_g)
          c' = f·c + i·g;  h' = o·tanh(c')
    GRU   x_r, x_z, x_n = W_ih x + b_ih;  h_r, h_z, h_n = W_hh h + b_hh
          r = σ(x_r + h_r);  z = σ(x_z + h_z);  n = tanh(x_n + r·h_n)
          h' = (1 − z)·n + z·h
    RNN   h' = tanh(W_ih x + b_ih + W_hh h + b_hh)

The products are the caller's (a lookup table for layer 0's input, oneDNN's linear, bf16 inputs): a step
takes them as pre-activations. Sampling's FastStepper, the probe's recording and its ablation all step
through these functions; nn.LSTM and cuDNN/oneDNN's whole-sequence kernels are the fast paths beside them
(tests/test_cells.py holds each to this module), and charnn.probe.fused holds units by saturating gates,
tested equal to `Hold`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "rnn": ()}  # PyTorch's order of the weights' rows
SIGMOID_GATES = {"lstm": ("i", "f", "o"), "gru": ("r", "z"), "rnn": ()}  # in [0, 1]; the others in [-1, 1]
STATE_NAMES = {cell: ("h", "c", *gates) if cell == "lstm" else ("h", *gates) for cell, gates in GATES.items()}


def gate_rows(cell: str) -> int:
    """Rows of W_ih and W_hh per unit: 4 for an LSTM, 3 for a GRU, 1 for an RNN."""
    return len(GATES[cell]) or 1


@dataclass
class Hold:
    """Units held at a value inside every step: after the step, state = state · keep + fill, for c first (an LSTM's
    h is then computed from the held c) and then for h, which the next layer, the decoder and the next step see.
    Each tensor broadcasts against a layer's (B, H) state; None leaves that state alone. Zero ablation holds h
    and c at 0; `--clamp 2:5:c=1` holds c alone, so that h = o·tanh(1) still follows the output gate."""

    keep_h: torch.Tensor | None = None
    fill_h: torch.Tensor | None = None
    keep_c: torch.Tensor | None = None
    fill_c: torch.Tensor | None = None

    @staticmethod
    def units(
        hidden: int, held: dict[int, float], device: torch.device | str, rows: int = 1
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(keep, fill) of shape (rows, hidden) holding each unit of `held` at its value in every row."""
        keep = torch.ones(rows, hidden, device=device)
        fill = torch.zeros(rows, hidden, device=device)
        for unit, value in held.items():
            keep[:, unit] = 0.0
            fill[:, unit] = value
        return keep, fill


def held(value: torch.Tensor, keep: torch.Tensor | None, fill: torch.Tensor | None) -> torch.Tensor:
    """value · keep + fill (value itself where nothing is held)."""
    return value if keep is None else torch.addcmul(fill, value, keep)


def lstm_gates(pre: torch.Tensor) -> torch.Tensor:
    """i, f, g, o stacked (..., 4H) from the pre-activations a (..., 4H)."""
    hidden = pre.size(-1) // 4
    gates = pre.sigmoid()
    torch.tanh(pre[..., 2 * hidden : 3 * hidden], out=gates[..., 2 * hidden : 3 * hidden])  # g replaces σ(a_g)
    return gates


def lstm_step(
    pre: torch.Tensor, c: torch.Tensor, hold: Hold | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One LSTM step from the pre-activations (..., 4H) and c (..., H): (h', c', the gates i, f, g, o stacked)."""
    gates = lstm_gates(pre)
    i, f, g, o = gates.split(c.size(-1), -1)
    c = torch.addcmul(f * c, i, g)
    if hold is not None:
        c = held(c, hold.keep_c, hold.fill_c)
    h = o * c.tanh()
    if hold is not None:
        h = held(h, hold.keep_h, hold.fill_h)
    return h, c, gates


def gru_gates(projected: torch.Tensor, recurrent: torch.Tensor) -> torch.Tensor:
    """r, z, n stacked (..., 3H) from the input's part W_ih x + b_ih and the state's W_hh h + b_hh (each (..., 3H))."""
    hidden = projected.size(-1) // 3
    rz = (projected[..., : 2 * hidden] + recurrent[..., : 2 * hidden]).sigmoid()
    n = torch.tanh(torch.addcmul(projected[..., 2 * hidden :], rz[..., :hidden], recurrent[..., 2 * hidden :]))
    return torch.cat([rz, n], -1)


def gru_step(
    projected: torch.Tensor, recurrent: torch.Tensor, h: torch.Tensor, hold: Hold | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One GRU step from the input's part, the state's part (see gru_gates) and h: (h', the gates r, z, n stacked)."""
    gates = gru_gates(projected, recurrent)
    _, z, n = gates.split(h.size(-1), -1)
    h = torch.addcmul(n, z, h - n)
    if hold is not None:
        h = held(h, hold.keep_h, hold.fill_h)
    return h, gates


def rnn_step(pre: torch.Tensor, hold: Hold | None = None) -> torch.Tensor:
    """One tanh-RNN step from its pre-activation (..., H): h'."""
    h = pre.tanh()
    return h if hold is None else held(h, hold.keep_h, hold.fill_h)


def named_gates(cell: str, gates: torch.Tensor) -> dict[str, torch.Tensor]:
    """The stacked gates of a step (..., rows × H), by name."""
    names = GATES[cell]
    return dict(zip(names, gates.chunk(len(names), -1))) if names else {}
