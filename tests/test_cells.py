"""charnn.cells, the one statement of the recurrence, against PyTorch's own cells; and one way to hold units.

The fast paths are held to it elsewhere: FastStepper (tests/test_model.py), the probe's recording
(tests/test_probe_record.py) and the fused kernels' saturated gates (tests/test_probe_fused.py).
"""

import pytest
import torch

from charnn.cells import GATES, STATE_NAMES, Hold, gate_rows, gru_step, lstm_step, named_gates, rnn_step

CELLS = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "rnn": torch.nn.RNNCell}


def step(cell: str, module: torch.nn.Module, x: torch.Tensor, state: tuple, hold: Hold | None = None) -> tuple:
    """One step of charnn.cells with the products written out from the module's weights."""
    h = state[0]
    if cell == "gru":
        projected = x @ module.weight_ih.T + module.bias_ih
        recurrent = h @ module.weight_hh.T + module.bias_hh
        return gru_step(projected, recurrent, h, hold)[:1]
    pre = x @ module.weight_ih.T + module.bias_ih + h @ module.weight_hh.T + module.bias_hh
    if cell == "lstm":
        return lstm_step(pre, state[1], hold)[:2]
    return (rnn_step(pre, hold),)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_step_is_pytorchs_over_many_steps(cell):
    torch.manual_seed(0)
    module = CELLS[cell](6, 8)
    with torch.no_grad():
        for weight in module.parameters():
            weight.mul_(3)  # out of the gates' linear range
        ours = theirs = tuple(torch.randn(5, 8) for _ in range(2 if cell == "lstm" else 1))
        for _ in range(30):
            x = torch.randn(5, 6)
            ours = step(cell, module, x, ours)
            theirs = module(x, theirs if cell == "lstm" else theirs[0])
            theirs = theirs if cell == "lstm" else (theirs,)
            for a, b in zip(ours, theirs):
                torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_gates_come_back_in_pytorchs_order_with_their_names():
    pre = torch.tensor([[0.0, 10.0, -10.0, 3.0]])  # a_i, a_f, a_g, a_o of one unit
    h, c, gates = lstm_step(pre, torch.ones(1, 1))
    named = named_gates("lstm", gates)
    assert list(named) == ["i", "f", "g", "o"] and list(GATES["gru"]) == ["r", "z", "n"]
    assert named["i"].item() == pytest.approx(0.5) and named["g"].item() == pytest.approx(-1.0)
    assert c.item() == pytest.approx(torch.sigmoid(torch.tensor(10.0)).item() - 0.5, abs=1e-6)
    assert STATE_NAMES["lstm"] == ("h", "c", "i", "f", "g", "o") and [gate_rows(c) for c in GATES] == [4, 3, 1]


def test_a_held_unit_stays_at_its_value_and_the_rest_run_on():
    torch.manual_seed(1)
    module = torch.nn.LSTMCell(4, 6)
    keep, fill = Hold.units(6, {2: 0.5}, "cpu")
    both, c_only = Hold(keep, fill, keep, fill), Hold(keep_c=keep, fill_c=fill)
    free = held_both = held_c = (torch.zeros(3, 6), torch.zeros(3, 6))
    with torch.no_grad():
        for _ in range(10):
            x = torch.randn(3, 4)
            free = step("lstm", module, x, free)
            held_both = step("lstm", module, x, held_both, both)
            held_c = step("lstm", module, x, held_c, c_only)
            assert (held_both[0][:, 2] == 0.5).all() and (held_both[1][:, 2] == 0.5).all()
            # c alone held: h still follows the output gate, o·tanh(0.5)
            assert (held_c[1][:, 2] == 0.5).all() and (held_c[0][:, 2].abs() < 0.47).all()
    assert not torch.equal(free[0][:, 0], held_both[0][:, 0])  # the others read the held unit
