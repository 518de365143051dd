"""CharRNN: embedding → nn.LSTM / nn.GRU / nn.RNN stack → dropout → linear decoder.

PyTorch's own recurrent modules do the sequence work, so cuDNN serves the GPU path and oneDNN the
CPU path. Sampling runs one character at a time, where those kernels spend more time setting up
than computing: `FastStepper` does the same step by hand over the module's own weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from charnn.cells import Hold, gru_step, lstm_step, rnn_step
from charnn.config import ModelConfig

__all__ = ["CharRNN", "FastStepper", "ModelConfig", "StepLinear", "detach_state", "new_model", "next_ids"]

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}  # charnn.config.CELL_NAMES
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}  # charnn.precision's names
State = tuple[torch.Tensor, ...]  # LSTM: (h, c); GRU/RNN: (h,); each (layers, batch, hidden)


class CharRNN(nn.Module):
    """A container of an embedding, a recurrent stack and a decoder over the vocabulary."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embed)
        self.rnn = CELLS[config.cell](
            config.embed,
            config.hidden,
            num_layers=config.layers,
            batch_first=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.decoder = nn.Linear(config.hidden, config.vocab_size)

    @property
    def is_lstm(self) -> bool:
        """Whether the state holds a cell state c beside h."""
        return self.config.cell == "lstm"

    def layer_weights(self, layer: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Layer's (W_ih, W_hh, b_ih, b_hh), detached: the recurrence written out by hand reads these."""
        return tuple(
            getattr(self.rnn, f"{name}_l{layer}").detach() for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        )

    def init_state(self, batch: int, device: torch.device | str | None = None) -> State:
        """All-zero state for `batch` streams, on the model's own device unless another is named."""
        shape = (self.config.layers, batch, self.config.hidden)
        device = self.decoder.weight.device if device is None else device
        zeros = lambda: torch.zeros(shape, device=device)  # noqa: E731
        return (zeros(), zeros()) if self.is_lstm else (zeros(),)

    def forward(
        self, ids: torch.Tensor, state: State | None = None, recurrent_dtype: str | None = None
    ) -> tuple[torch.Tensor, State]:
        """Logits (B, T, V) for ids (B, T) and the state after the last character.

        recurrent_dtype ("fp32", "bf16", "fp16"): the recurrent layers compute in it outside any autocast region,
        their weights (fp32 parameters, so gradients stay fp32), input and state cast to it; None: they run as the
        caller's region says. CUDA's autocast runs cuDNN's RNN in fp16 whatever dtype the region was given."""
        x = self.embedding(ids)  # (B, T, E)
        hx = None if state is None else state if self.is_lstm else state[0]
        if recurrent_dtype is None:
            out, new_state = self.rnn(x, hx)
        else:
            out, new_state = self.recurrence_in(DTYPES[recurrent_dtype], x, hx)
        logits = self.decoder(self.dropout(out))
        return logits, tuple(new_state) if self.is_lstm else (new_state,)

    def recurrence_in(self, dtype: torch.dtype, x: torch.Tensor, hx: Any) -> tuple[torch.Tensor, Any]:
        """The recurrent layers over x in dtype, with autocast off around them."""
        cast = lambda t: t.to(dtype)  # noqa: E731
        hx = None if hx is None else tuple(map(cast, hx)) if self.is_lstm else cast(hx)
        device_type = x.device.type
        with torch.autocast(device_type, enabled=False) if device_type in ("cpu", "cuda") else nullcontext():
            if all(p.dtype == dtype for p in self.rnn.parameters()):
                return self.rnn(cast(x), hx)
            weights = {name: cast(p) for name, p in self.rnn.named_parameters()}
            with warnings.catch_warnings():  # the cast weights are not one flat buffer: cuDNN copies them once per call
                warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous chunk")
                return torch.func.functional_call(self.rnn, weights, (cast(x), hx))

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters())


def new_model(config: ModelConfig, device: torch.device | str = "cpu") -> CharRNN:
    """A freshly initialised CharRNN on device. The weights are drawn on the CPU whatever torch's default
    device is, so that a seed gives the same model on every device."""
    with torch.device("cpu"):
        model = CharRNN(config)
    return model.to(device)


def detach_state(state: State) -> State:
    """Cut the graph behind a carried state (truncated BPTT)."""
    return tuple(s.detach() for s in state)


class StepLinear:
    """x @ weight.T (+ bias) for the small batches of one sampling step.

    On a CPU it goes through oneDNN's linear with the weight packed once (the kernel nn.LSTM itself
    uses), faster than torch.addmm's MKL at these shapes (docs/results/benchmarks.md). Elsewhere, or when
    this torch build lacks the op, it is torch.addmm.
    Both compute the same fp32 product (to float rounding).

    With dtype bfloat16 the weight is kept in bf16 and x is rounded to bf16 for the product, which
    accumulates in fp32; the bias is added in fp32 and the result is fp32 (an opt-in: not the fp32
    product to float tolerance).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype = torch.float32):
        self.dtype = dtype
        self.bias = None if bias is None else bias.detach().float().contiguous()
        weight = weight.detach().to(dtype)
        self.packed = self.pack(weight)
        self.weight_t = weight.T.contiguous() if self.packed is None else None

    def pack(self, weight: torch.Tensor) -> torch.Tensor | None:
        """The weight in oneDNN's layout, or None where the oneDNN path is not available."""
        if weight.device.type != "cpu" or not torch.backends.mkldnn.is_available():
            return None
        op = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
        try:
            packed = weight.contiguous().to_mkldnn()
            op(
                torch.zeros(1, weight.size(1), device=weight.device, dtype=self.dtype),
                packed,
                self._fused_bias(),
                "none",
                [],
                "",
            )
        except (RuntimeError, TypeError, AttributeError):
            return None
        return packed

    def _fused_bias(self) -> torch.Tensor | None:
        """The bias inside oneDNN's op: the fp32 one, except in bf16, where it is added afterwards in fp32."""
        return self.bias if self.dtype == torch.float32 else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.dtype != torch.float32:
            x = x.to(self.dtype)
            out = (
                torch.ops.mkldnn._linear_pointwise(x, self.packed, None, "none", [], "")
                if self.packed is not None
                else x @ self.weight_t
            )
            return out.float() if self.bias is None else torch.add(self.bias, out.float())
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, self.bias, "none", [], "")
        return x @ self.weight_t if self.bias is None else torch.addmm(self.bias, x, self.weight_t)


class FastStepper:
    """One character per call for many streams, by hand over a CharRNN's weights (eval mode, no grad): each layer's
    step is charnn.cells', over products made fast for one step.

    Layer l's pre-activations are one product of [x, h] with the concatenated [W_ih | W_hh]; layer 0's input
    projection is folded into a lookup table (vocab, gates), so it is a gather, not a product. The products go
    through StepLinear (oneDNN on a CPU). The same computation as nn.LSTM/GRU/RNN in eval mode (tests/test_cells.py);
    with dtype bfloat16 (generate --precision bf16) its products take bf16 inputs, the rest stays fp32.
    """

    def __init__(self, model: CharRNN, dtype: torch.dtype = torch.float32):
        cfg = model.config
        self.cell = cfg.cell
        self.layers = cfg.layers
        self.hidden = cfg.hidden
        with torch.no_grad():
            emb = model.embedding.weight.detach()
            # layer 0: h @ W_hh^T, with the input part looked up in input_table (V, G) = E @ W_ih^T + b_ih;
            # layers >= 1: [x, h] @ [W_ih | W_hh]^T + b_ih + b_hh. G = 4H (LSTM), 3H (GRU), H (RNN).
            # GRU keeps the input and recurrent parts apart: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).
            self.recurrent: list[StepLinear] = []  # h's part (GRU), or layer 0's h part, or [x, h] (LSTM/RNN)
            self.inputs: list[StepLinear | None] = []  # x's part, GRU layers >= 1 only
            gru = cfg.cell == "gru"
            for layer in range(cfg.layers):
                w_ih, w_hh, b_ih, b_hh = model.layer_weights(layer)
                if layer == 0:
                    folded = b_ih if gru else b_ih + b_hh  # GRU applies b_hh inside r * (...), so it stays apart
                    self.input_table = (emb @ w_ih.T + folded).contiguous()
                    self.recurrent.append(StepLinear(w_hh, b_hh if gru else None, dtype))
                    self.inputs.append(None)
                elif gru:
                    self.recurrent.append(StepLinear(w_hh, b_hh, dtype))
                    self.inputs.append(StepLinear(w_ih, b_ih, dtype))
                else:
                    self.recurrent.append(StepLinear(torch.cat([w_ih, w_hh], 1), b_ih + b_hh, dtype))
                    self.inputs.append(None)
            self.decoder = StepLinear(model.decoder.weight, model.decoder.bias, dtype)

    def step(self, ids: torch.Tensor, state: State, holds: Sequence[Hold | None] = ()) -> tuple[torch.Tensor, State]:
        """Logits (B, V) for the next character after ids (B,), and the new state; holds[l] holds units of layer l
        (charnn.cells.Hold: what the next layer, the decoder and the next step see)."""
        new_h, new_c = [], []
        x = None
        for layer in range(self.layers):
            h = state[0][layer]
            hold = holds[layer] if holds else None
            if self.cell == "gru":
                projected = self.input_table[ids] if layer == 0 else self.inputs[layer](x)
                h, _ = gru_step(projected, self.recurrent[layer](h), h, hold)
            else:
                if layer == 0:
                    pre = self.recurrent[0](h).add_(self.input_table[ids])
                else:
                    pre = self.recurrent[layer](torch.cat([x, h], 1))
                if self.cell == "lstm":
                    h, c, _ = lstm_step(pre, state[1][layer], hold)
                    new_c.append(c)
                else:
                    h = rnn_step(pre, hold)
            new_h.append(h)
            x = h
        logits = self.decoder(x)
        return logits, (torch.stack(new_h), torch.stack(new_c)) if self.cell == "lstm" else (torch.stack(new_h),)


def next_ids(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
    banned: int | None = None,
) -> torch.Tensor:
    """Choose the next id of every stream from logits (B, V): temperature 0 is argmax; top-k, then top-p (nucleus)."""
    logits = logits.float().clone()
    if banned is not None:
        logits[:, banned] = float("-inf")
    if temperature == 0:
        return logits.argmax(dim=1)
    logits /= temperature
    # masked_fill, not logits[mask] = ...: a boolean index makes the GPU tell the host how many it selected
    if top_k is not None and top_k < logits.size(1):
        kth = torch.topk(logits, top_k, dim=1).values[:, -1:]
        logits.masked_fill_(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=1, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=1).cumsum(dim=1)
        drop_sorted = cumulative - torch.softmax(sorted_logits, dim=1) >= top_p  # keeps the first token always
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        logits.masked_fill_(drop, float("-inf"))
    probs = torch.softmax(logits, dim=1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
