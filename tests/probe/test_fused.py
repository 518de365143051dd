"""The probe's fused kernels (charnn.probe.fused) against the hand-written recurrence they replace: every
recorded state, the ablated copies' losses (zero and mean, every layer, LSTM and GRU), a held unit's value
at every step, the linear scan, and float16 ranks by counting against ranks by sorting."""

import numpy as np
import pytest
import torch

from charnn.model import ModelConfig, new_model
from charnn.probe.ablate import ablated_loss_sums, ablation_holds
from charnn.probe.fused import FusedStack, linear_scan
from charnn.probe.record import Recurrence, record

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
VOCAB, HIDDEN = 13, 24


def model_of(cell: str, layers: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    model = new_model(
        ModelConfig(vocab_size=VOCAB, cell=cell, layers=layers, hidden=HIDDEN, embed=8, dropout=0.0)
    ).eval()
    with torch.no_grad():  # larger weights than the initialisation: saturated gates, long memories
        for parameter in model.rnn.parameters():
            parameter.mul_(3)
    return model


def some_ids(length: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (length,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_the_fused_recording_is_the_hand_written_one(cell):
    model, ids = model_of(cell), some_ids(700)
    fused = record(model, ids, chunk=128, dtype=np.float32)  # chunks of 128: the states carry across 5 boundaries
    by_hand = record(model, ids, chunk=1000, dtype=np.float32, fused=False)
    assert fused.state_names == by_hand.state_names
    for name in fused.state_names:
        np.testing.assert_allclose(fused.states[name], by_hand.states[name], atol=2e-5, err_msg=name)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("method", ["zero", "mean"])
@pytest.mark.parametrize("layer", [1, 2])
def test_fused_ablation_gives_the_hand_written_losses(cell, method, layer):
    model, ids = model_of(cell, seed=layer), some_ids(600, seed=2)
    units = [None, 0, 5, HIDDEN - 1, 5]
    rng = np.random.default_rng(3)
    means = (rng.uniform(-0.6, 0.6, (2, HIDDEN)).astype(np.float32), rng.uniform(-2, 2, (2, HIDDEN)).astype(np.float32))
    masks = np.stack([np.arange(len(ids)) % 3 == 0, np.ones(len(ids), bool)])
    fused = ablated_loss_sums(model, ids, layer, units, masks, method, means, fused=True)
    by_hand = ablated_loss_sums(model, ids, layer, units, masks, method, means, fused=False)
    np.testing.assert_allclose(fused, by_hand, rtol=1e-5, atol=1e-4)
    deltas = fused[1:] - fused[0]
    assert np.abs(deltas).max() > 1e-2  # the ablations did something, so the comparison means something
    np.testing.assert_allclose(fused[2], fused[4])  # the same unit twice: the same losses


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("method", ["zero", "mean"])
def test_a_held_unit_keeps_its_fill_at_every_step(cell, method):
    model, ids = model_of(cell), some_ids(400)
    recurrence = Recurrence(model)
    units = [None, 3, 11]
    fill = 0.37
    means = (np.full((2, HIDDEN), fill, np.float32), np.full((2, HIDDEN), 0.9, np.float32))
    states = recurrence.initial_state(len(units), first_batched_layer=0)
    recurrence.run_chunk(ids[:1], states, ablation_holds(recurrence, 0, units, method, means))
    stack = FusedStack(model, states, held=(0, units))
    stack.layers = stack.layers[:1]  # the held layer's own h
    h, _ = stack.run(ids[1:])
    expected = 0.0 if method == "zero" else fill
    if method == "zero":
        assert (h[:, 1, 3] == 0).all() and (h[:, 2, 11] == 0).all()  # exactly
    else:
        torch.testing.assert_close(h[:, 1, 3], torch.full_like(h[:, 1, 3], expected), rtol=0, atol=1e-6)
        torch.testing.assert_close(h[:, 2, 11], torch.full_like(h[:, 2, 11], expected), rtol=0, atol=1e-6)
    assert h[:, 0].std(0).min() > 0  # the copy with nothing held moves


def test_linear_scan_is_the_recurrence():
    generator = torch.Generator().manual_seed(0)
    decay, add = torch.rand(1000, 7, generator=generator), torch.randn(1000, 7, generator=generator)
    initial = torch.randn(7, generator=generator)
    expected, value = [], initial
    for t in range(len(decay)):
        value = decay[t] * value + add[t]
        expected.append(value)
    torch.testing.assert_close(linear_scan(decay, add, initial), torch.stack(expected), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(linear_scan(decay[:1], add[:1], initial), expected[0][None])
