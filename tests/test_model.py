"""CharRNN and its hand-written single-step path."""

import pytest
import torch

from charnn.errors import UsageError
from charnn.model import CharRNN, FastStepper, ModelConfig, StepLinear, next_ids


@pytest.mark.parametrize("onednn", [True, False], ids=["onednn", "addmm"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_fast_step_matches_the_module_over_many_steps(cell, onednn, monkeypatch):
    # both ways StepLinear computes its products: oneDNN's packed linear, and addmm where that is missing
    if onednn and StepLinear(torch.ones(2, 2), None).packed is None:
        pytest.skip("this torch build has no oneDNN linear")
    if not onednn:
        monkeypatch.setattr(StepLinear, "pack", lambda self, weight: None)
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=23, cell=cell, layers=3, hidden=32, embed=8, dropout=0.2)).eval()
    ids = torch.randint(0, 23, (4, 300))
    with torch.no_grad():
        reference, _ = model(ids)
        stepper = FastStepper(model)
        assert (stepper.decoder.packed is not None) == onednn
        state = model.init_state(4)
        worst = 0.0
        for t in range(ids.size(1)):
            logits, state = stepper.step(ids[:, t], state)
            worst = max(worst, (logits - reference[:, t]).abs().max().item())
    assert worst < 1e-4


def test_forward_carries_state_like_one_long_call():
    torch.manual_seed(1)
    model = CharRNN(ModelConfig(vocab_size=11, layers=2, hidden=16, embed=4, dropout=0.0)).eval()
    ids = torch.randint(0, 11, (3, 40))
    with torch.no_grad():
        whole, _ = model(ids)
        first, state = model(ids[:, :25])
        second, _ = model(ids[:, 25:], state)
    assert torch.allclose(torch.cat([first, second], 1), whole, atol=1e-5)


def test_config_rejects_bad_shapes():
    with pytest.raises(UsageError, match="--layers"):
        ModelConfig(vocab_size=5, layers=0)
    with pytest.raises(UsageError, match="--dropout"):
        ModelConfig(vocab_size=5, dropout=1.0)
    with pytest.raises(UsageError, match="--cell"):
        ModelConfig(vocab_size=5, cell="transformer")


def test_next_ids_greedy_top_k_and_top_p():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.9], [5.0, 0.0, 0.0, 0.0]])
    g = torch.Generator().manual_seed(0)
    assert next_ids(logits, 0.0, None, None, g).tolist() == [1, 0]
    for _ in range(20):
        assert next_ids(logits, 1.0, 1, None, g).tolist() == [1, 0]  # top-k 1 is greedy
        assert next_ids(logits, 1.0, 2, None, g)[0].item() in (1, 3)
        assert next_ids(logits, 1.0, None, 1e-6, g).tolist() == [1, 0]  # a tiny nucleus keeps only the best
    banned = next_ids(torch.tensor([[9.0, 0.0]]), 0.0, None, None, g, banned=0)
    assert banned.tolist() == [1]
