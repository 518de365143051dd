"""Ablation: nothing ablated changes nothing; batched copies equal single runs and an independent
nn.LSTMCell reference; mean-replacement; the random band and its percentile."""

import numpy as np
import pytest
import torch

from charnn.errors import CharnnError
from charnn.evaluate import evaluate_ids
from charnn.model import CharRNN
from charnn.probe.ablate import (
    ablate_layers,
    ablated_loss_sums,
    ablation_deltas,
    draw_random_units,
    percentile_among,
)
from charnn.probe.record import record

VOCAB = 11
HIDDEN = 12


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def some_ids(length: int = 240, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB, (length,), generator=torch.Generator().manual_seed(seed))


def reference_loss(model: CharRNN, ids: torch.Tensor, layer: int, unit: int, means: tuple | None = None) -> float:
    """Total next-character loss with one unit held at 0 (or its mean), from nn.LSTMCell, step by step."""
    cfg = model.config
    cells = []
    for index in range(cfg.layers):
        cell = torch.nn.LSTMCell(cfg.embed if index == 0 else cfg.hidden, cfg.hidden)
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).data.copy_(getattr(model.rnn, f"{name}_l{index}").data)
        cells.append(cell)
    states = [(torch.zeros(1, cfg.hidden), torch.zeros(1, cfg.hidden)) for _ in cells]
    total = 0.0
    with torch.no_grad():
        for t in range(len(ids) - 1):
            x = model.embedding(ids[t : t + 1])
            for index, cell in enumerate(cells):
                h, c = cell(x, states[index])
                if index == layer - 1:
                    h, c = h.clone(), c.clone()
                    h[0, unit] = 0.0 if means is None else float(means[0][index, unit])
                    c[0, unit] = 0.0 if means is None else float(means[1][index, unit])
                states[index] = (h, c)
                x = h
            total -= torch.log_softmax(model.decoder(x), dim=-1)[0, ids[t + 1]].item()
    return total


def test_ablating_nothing_changes_nothing(strong_model):
    model, ids = strong_model(hidden=HIDDEN, vocab_size=VOCAB), some_ids()
    masks = np.ones((1, len(ids)), bool)
    sums = ablated_loss_sums(model, ids, 1, [None, None], masks)
    assert sums[1, 0] == pytest.approx(sums[0, 0], rel=1e-6)  # rows of one matmul may round differently
    # and the unablated copy is the model's own loss, computed by nn.LSTM
    assert sums[0, 0] / (len(ids) - 1) == pytest.approx(evaluate_ids(model, ids, "cpu")["nats_per_char"], abs=1e-5)
    deltas = ablation_deltas(model, ids, 2, [None, 3, None], masks)
    assert deltas[0, 0] == 0.0 and deltas[2, 0] == 0.0 and deltas[1, 0] != 0.0


@pytest.mark.parametrize("layer", [1, 2])
def test_batched_ablation_equals_a_single_run_and_an_independent_reference(layer, strong_model):
    model, ids = strong_model(hidden=HIDDEN, vocab_size=VOCAB), some_ids()
    targets = np.zeros(len(ids), bool)
    targets[::4] = True
    masks = np.stack([targets, ~targets, np.ones(len(ids), bool)])
    batched = ablation_deltas(model, ids, layer, list(range(HIDDEN)), masks)
    alone = ablation_deltas(model, ids, layer, [7], masks)
    np.testing.assert_allclose(batched[7], alone[0], atol=1e-6)
    small_batches = ablation_deltas(model, ids, layer, list(range(HIDDEN)), masks, max_batch=4)  # several passes
    np.testing.assert_allclose(small_batches, batched, atol=1e-6)

    baseline = ablated_loss_sums(model, ids, layer, [None], masks)[0, 2]
    for unit in (0, 7):
        expected = (reference_loss(model, ids, layer, unit) - baseline) / (len(ids) - 1)
        assert batched[unit, 2] == pytest.approx(expected, abs=2e-5)
    assert np.abs(batched[:, 2]).max() > 1e-3  # the ablations do something


def test_mean_replacement_matches_the_reference(strong_model):
    model, ids = strong_model(layers=1, hidden=HIDDEN, vocab_size=VOCAB), some_ids(160)
    recording = record(model, ids, dtype=np.float32)
    means = (recording.unit_means("h"), recording.unit_means("c"))
    masks = np.ones((1, len(ids)), bool)
    sums = ablated_loss_sums(model, ids, 1, [None, 5], masks, method="mean", means=means)
    assert sums[1, 0] == pytest.approx(reference_loss(model, ids, 1, 5, means), rel=1e-5)
    zero = ablated_loss_sums(model, ids, 1, [None, 5], masks, method="zero")
    assert zero[1, 0] != pytest.approx(sums[1, 0], rel=1e-6)


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_gru_and_rnn_ablation_batched_equals_alone(cell, strong_model):
    model, ids = strong_model(cell, hidden=HIDDEN, vocab_size=VOCAB), some_ids(120)
    masks = np.ones((1, len(ids)), bool)
    batched = ablation_deltas(model, ids, 1, list(range(HIDDEN)), masks)
    alone = ablation_deltas(model, ids, 1, [4], masks)
    np.testing.assert_allclose(batched[4], alone[0], atol=1e-6)
    assert np.abs(batched).max() > 1e-4


def test_empty_masks_give_nan_and_bad_units_are_refused(strong_model):
    model, ids = strong_model(hidden=HIDDEN, vocab_size=VOCAB), some_ids(50)
    deltas = ablation_deltas(model, ids, 1, [2], np.zeros((1, len(ids)), bool))
    assert np.isnan(deltas[0, 0])
    with pytest.raises(CharnnError, match="layers 1..2"):
        ablated_loss_sums(model, ids, 3, [None], np.ones((1, len(ids)), bool))
    with pytest.raises(CharnnError, match="units 0..11"):
        ablated_loss_sums(model, ids, 1, [12], np.ones((1, len(ids)), bool))


def test_percentile_among_random_units():
    assert percentile_among(5.0, [1, 2, 3, 4]) == 100.0
    assert percentile_among(0.0, [1, 2, 3, 4]) == 0.0
    assert percentile_among(2.0, [1, 2, 3, 4]) == pytest.approx(37.5)  # one below, one tie counted half
    assert percentile_among(1.0, []) is None
    rng = np.random.default_rng(0)
    for _ in range(20):
        value = percentile_among(rng.normal(), rng.normal(size=rng.integers(1, 30)))
        assert 0.0 <= value <= 100.0


def test_layer_ablation_bands_leave_the_unit_itself_out(strong_model):
    model, ids = strong_model(hidden=HIDDEN, vocab_size=VOCAB), some_ids(100)
    masks = np.stack([np.ones(len(ids), bool)])
    results = ablate_layers(model, ids, {2: [3]}, masks, random_count=100, seed=0)
    layer = results[2]
    assert layer.random_units == list(range(HIDDEN))  # at most every unit of the layer
    band = layer.band(3, 0)
    assert len(band) == HIDDEN - 1 and layer.deltas[3][0] not in band
    assert draw_random_units(256, 100, seed=0, layer=1) == draw_random_units(256, 100, seed=0, layer=1)
    assert len(set(draw_random_units(256, 100, seed=0, layer=1))) == 100


def test_a_flagged_unit_among_the_random_units_is_still_compared_with_as_many(strong_model):
    model, ids = strong_model(hidden=HIDDEN, vocab_size=VOCAB), some_ids(100)
    masks = np.stack([np.ones(len(ids), bool)])
    drawn = draw_random_units(HIDDEN, 4, seed=0, layer=1)
    outside = next(unit for unit in range(HIDDEN) if unit not in drawn)
    layer = ablate_layers(model, ids, {1: [drawn[0], outside]}, masks, random_count=4, seed=0)[1]
    assert layer.random_units == drawn and layer.spare not in drawn and layer.spare is not None
    assert len(layer.band_units(drawn[0])) == 4 and drawn[0] not in layer.band_units(drawn[0])
    assert layer.band_units(outside) == drawn  # a unit outside the draw keeps the draw as it is
    assert len(layer.band(drawn[0], 0)) == 4


def test_a_bf16_ablation_where_bf16_is_only_emulated_is_refused_before_any_work(monkeypatch):
    import charnn.sample
    from charnn.errors import UsageError
    from charnn.model import ModelConfig
    from charnn.probe.pipeline import ProbeOptions, run_probe

    monkeypatch.setattr(charnn.sample, "cpu_has_fast_bf16", lambda: False)
    model = CharRNN(ModelConfig(vocab_size=5, layers=1, hidden=8, embed=4, dropout=0.0)).eval()
    text = "abcd" * 200
    ids = np.array(["abcd".index(c) for c in text])
    with pytest.raises(UsageError, match="no bf16 unit.*probe in fp32"):
        run_probe(model, ids, text, ProbeOptions(precision="bf16", random_units=2))
    findings = run_probe(
        model, ids, text, ProbeOptions(precision="bf16", ablation=False, control=False, random_units=2)
    )
    assert findings is not None  # no ablation, nothing in bf16: nothing to refuse


def test_bf16_on_a_gpu_is_refused_with_the_reason_and_the_fused_path_stays_fp32(monkeypatch, strong_model):
    import torch

    import charnn.sample
    from charnn.errors import CharnnError, UsageError
    from charnn.probe.ablate import check_ablation_precision

    monkeypatch.setattr(charnn.sample, "cuda_has_native_bf16", lambda device: True)
    with pytest.raises(UsageError, match="on a GPU the ablation runs cuDNN's fused kernels in fp32.*probe in fp32"):
        check_ablation_precision("bf16", torch.device("cuda", 0))
    check_ablation_precision("fp32", torch.device("cuda", 0))
    model, ids = strong_model(hidden=HIDDEN, vocab_size=VOCAB), some_ids(50)
    with pytest.raises(CharnnError, match="fused ablation runs torch's kernels in fp32"):
        ablated_loss_sums(model, ids, 1, [None, 0], np.ones((1, len(ids)), bool), fused=True, precision="bf16")


def test_the_untrained_control_leaves_every_generator_as_it_was(monkeypatch, strong_model):
    import torch

    from charnn.probe.pipeline import untrained_copy

    model = strong_model(hidden=HIDDEN, vocab_size=VOCAB)
    reseeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: reseeded.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: reseeded.append(seed))
    before = torch.get_rng_state()
    first, second = untrained_copy(model, seed=3), untrained_copy(model, seed=3)
    assert reseeded == [] and torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))  # the seed still decides it
