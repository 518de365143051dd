"""Recording: the hand-written recurrence equals nn.LSTM / nn.GRU / nn.RNN at every step and layer,
across chunk boundaries; gates are the ones the module computes; float16 storage; memory-mapped storage."""

import numpy as np
import pytest
import torch

from charnn.cells import STATE_NAMES
from charnn.errors import CharnnError
from charnn.model import CharRNN
from charnn.probe.record import Recording, record

STEPS = 300


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def reference_states(model: CharRNN, ids: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
    """h and c of every layer after every step, from nn.LSTM/GRU/RNN itself, one character per call."""
    hs, cs = [], []
    state = None
    with torch.no_grad():
        for t in range(len(ids)):
            _, state = model.rnn(model.embedding(ids[t : t + 1].unsqueeze(0)), state)
            if model.is_lstm:
                hs.append(state[0][:, 0].numpy().copy())
                cs.append(state[1][:, 0].numpy().copy())
            else:
                hs.append(state[:, 0].numpy().copy())
    return np.stack(hs), (np.stack(cs) if cs else None)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_recorded_h_and_c_equal_the_torch_module_at_every_step_and_layer(cell, strong_model):
    model = strong_model(cell, layers=3, scaled="rnn")
    ids = torch.randint(0, 11, (STEPS,), generator=torch.Generator().manual_seed(1))
    expected_h, expected_c = reference_states(model, ids)
    recording = record(model, ids, chunk=37, dtype=np.float32)  # 37 does not divide 300: a ragged last chunk
    assert recording.states["h"].shape == (STEPS, 3, 20)
    assert set(recording.states) == set(STATE_NAMES[cell])
    np.testing.assert_allclose(recording.states["h"], expected_h, atol=1e-4)  # summation order differs from oneDNN's
    if cell == "lstm":
        np.testing.assert_allclose(recording.states["c"], expected_c, atol=1e-4)
        assert np.abs(expected_c).max() > 1.5  # the test covers cell states beyond tanh's range
    # and the final state of one whole-sequence call (the fast oneDNN path)
    with torch.no_grad():
        _, full = model(ids.unsqueeze(0))
    np.testing.assert_allclose(recording.states["h"][-1], full[0][:, 0].numpy(), atol=1e-4)


def test_chunk_size_does_not_change_the_recording(strong_model):
    model = strong_model("lstm", layers=2, scaled="rnn")
    ids = torch.randint(0, 11, (200,), generator=torch.Generator().manual_seed(2))
    whole = record(model, ids, chunk=1000, dtype=np.float32)
    pieces = record(model, ids, chunk=1, dtype=np.float32)
    for name in whole.states:
        np.testing.assert_allclose(pieces.states[name], whole.states[name], atol=1e-6)


def test_lstm_gates_follow_the_module_weights_in_order_i_f_g_o(strong_model):
    model = strong_model("lstm", layers=2, scaled="rnn")
    ids = torch.randint(0, 11, (120,), generator=torch.Generator().manual_seed(3))
    rec = record(model, ids, dtype=np.float32)
    s = rec.states
    # the cell update, from recorded values alone
    c_before = np.concatenate([np.zeros((1, 2, 20), np.float32), s["c"][:-1]])
    np.testing.assert_allclose(s["c"], s["f"] * c_before + s["i"] * s["g"], atol=1e-5)
    np.testing.assert_allclose(s["h"], s["o"] * np.tanh(s["c"]), atol=1e-5)
    # and the gates of layer 2 at step t from its weights, input (layer 1's h at t) and h at t - 1
    t = 50
    x = torch.from_numpy(s["h"][t, 0])
    h_before = torch.from_numpy(s["h"][t - 1, 1])
    rnn = model.rnn
    with torch.no_grad():
        gates = rnn.weight_ih_l1 @ x + rnn.bias_ih_l1 + rnn.weight_hh_l1 @ h_before + rnn.bias_hh_l1
    i, f, g, o = gates.chunk(4)
    for name, expected in (("i", i.sigmoid()), ("f", f.sigmoid()), ("g", g.tanh()), ("o", o.sigmoid())):
        np.testing.assert_allclose(s[name][t, 1], expected.numpy(), atol=1e-5, err_msg=name)
    assert s["i"].min() >= 0 and s["i"].max() <= 1 and s["g"].min() < 0


def test_gru_gates_reproduce_h(strong_model):
    model = strong_model("gru", layers=2, scaled="rnn")
    ids = torch.randint(0, 11, (100,), generator=torch.Generator().manual_seed(4))
    s = record(model, ids, dtype=np.float32).states
    h_before = np.concatenate([np.zeros((1, 2, 20), np.float32), s["h"][:-1]])
    np.testing.assert_allclose(s["h"], (1 - s["z"]) * s["n"] + s["z"] * h_before, atol=1e-5)


def test_default_storage_is_float16_and_close(strong_model):
    model = strong_model("lstm", layers=2, scaled="rnn")
    ids = torch.randint(0, 11, (100,), generator=torch.Generator().manual_seed(5))
    exact = record(model, ids, dtype=np.float32)
    half = record(model, ids)
    assert half.states["c"].dtype == np.float16
    np.testing.assert_allclose(half.states["c"].astype(np.float32), exact.states["c"], rtol=2e-3, atol=2e-3)


def test_unit_values_count_layers_from_one(tmp_path, strong_model):
    model = strong_model("lstm", layers=2, scaled="rnn")
    ids = torch.randint(0, 11, (64,), generator=torch.Generator().manual_seed(6))
    rec = record(model, ids, directory=tmp_path)  # memory-mapped .npy files
    assert (tmp_path / "c.npy").is_file() and isinstance(rec.states["c"], np.memmap)
    np.testing.assert_array_equal(rec.unit_values(2, 7, "c"), rec.states["c"][:, 1, 7].astype(np.float32))
    assert rec.unit_values(1, 0).shape == (64,)
    with pytest.raises(CharnnError, match="layers 1..2"):
        rec.unit_values(0, 0)
    with pytest.raises(CharnnError, match="no state"):
        rec.unit_values(1, 0, "r")
    assert Recording.nbytes("lstm", 64, 2, 20) == 6 * 64 * 2 * 20 * 2
