"""Scoring: ranks, AUROC and Spearman against hand values and brute-force definitions (with ties),
orientation, held-out selection on planted units, task labels of -1, and a counter planted in a model."""

import numpy as np
import pytest
import torch

from charnn.corpus import Vocab
from charnn.errors import UsageError
from charnn.model import CharRNN, ModelConfig
from charnn.probe.labels import Feature, task_features
from charnn.probe.pipeline import ProbeOptions, run_probe
from charnn.probe.record import Recording, UnitRef, record
from charnn.probe.score import (
    Split,
    apply_sign,
    auroc,
    average_ranks,
    gate_saturation,
    orient,
    score_recording,
    spearman,
    split_text,
)
from charnn.tasks import make_task_text

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def brute_ranks(x: np.ndarray) -> np.ndarray:
    return np.array([1 + (x < v).sum() + 0.5 * ((x == v).sum() - 1) for v in x])


def brute_auroc(x: np.ndarray, positive: np.ndarray) -> float:
    pos, neg = x[positive], x[~positive]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def brute_spearman(x: np.ndarray, y: np.ndarray) -> float:
    return np.corrcoef(brute_ranks(x), brute_ranks(y))[0, 1]


# ---------------------------------------------------------------- the statistics


def test_average_ranks_share_ties():
    np.testing.assert_array_equal(average_ranks(np.array([10, 20, 20, 5])), [2, 3.5, 3.5, 1])
    np.testing.assert_array_equal(average_ranks(np.array([7, 7, 7])), [2, 2, 2])
    columns = np.array([[3, 1], [1, 1], [2, 0]])
    np.testing.assert_array_equal(average_ranks(columns), [[3, 2.5], [1, 2.5], [2, 1]])


def test_ranks_match_brute_force_on_random_data_with_ties():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, size=(80, 9)).astype(np.float32)
    ranks = average_ranks(values)
    for column in range(values.shape[1]):
        np.testing.assert_allclose(ranks[:, column], brute_ranks(values[:, column]))


def test_float16_recordings_rank_as_their_values_do_with_signed_zeros_and_infinities_tied():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(300, 6)).astype(np.float16)  # many ties at float16 precision
    values[::7, 1], values[1::7, 1] = 0.0, -0.0  # -0 ties with +0
    values[:, 2] = 1.5  # a constant column
    values[::11, 3], values[1::11, 3] = np.inf, -np.inf
    values[:, 4] = rng.integers(-3, 3, 300)  # few distinct values
    ranks = average_ranks(values)
    for column in range(values.shape[1]):
        np.testing.assert_allclose(ranks[:, column], brute_ranks(values[:, column].astype(np.float64)))


def test_auroc_hand_values():
    assert auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1], bool)) == pytest.approx(0.75)
    # ties between a positive and a negative count half: (0.5 + 0 + 1 + 1) / 4
    assert auroc(np.array([1, 1, 2, 3]), np.array([0, 1, 0, 1], bool)) == pytest.approx(0.625)
    assert auroc(np.array([5, 5, 5, 5]), np.array([0, 1, 0, 1], bool)) == pytest.approx(0.5)
    assert auroc(np.array([3, 2, 1, 0]), np.array([1, 1, 0, 0], bool)) == pytest.approx(1.0)
    assert np.isnan(auroc(np.array([1.0, 2.0]), np.array([True, True])))


def test_auroc_matches_pair_counting_on_random_data_with_ties():
    rng = np.random.default_rng(1)
    for _ in range(5):
        values = rng.integers(0, 5, size=(70, 6)).astype(np.float32)
        positive = rng.random(70) < 0.3
        expected = [brute_auroc(values[:, j], positive) for j in range(6)]
        np.testing.assert_allclose(auroc(values, positive), expected, atol=1e-12)


def test_spearman_hand_values_and_brute_force():
    assert spearman(np.array([1.0, 2, 3]), np.array([1, 3, 2])) == pytest.approx(0.5)
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([40, 30, 20, 10])) == pytest.approx(-1.0)
    assert spearman(np.array([1.0, 4, 9, 16, 25]), np.array([1, 2, 3, 4, 5])) == pytest.approx(
        1.0
    )  # monotone, not linear
    assert spearman(np.array([2.0, 2, 2]), np.array([1, 2, 3])) == 0.0  # a constant unit says nothing
    assert np.isnan(spearman(np.array([1.0, 2, 3]), np.array([4, 4, 4])))
    rng = np.random.default_rng(2)
    values = rng.integers(0, 7, size=(60, 5)).astype(np.float32)
    labels = rng.integers(0, 4, size=60)
    np.testing.assert_allclose(
        spearman(values, labels), [brute_spearman(values[:, j], labels) for j in range(5)], atol=1e-12
    )


def test_orientation_keeps_the_sign_chosen_on_selection():
    score, sign = orient(np.array([0.2, 0.7, 0.5]), "auroc")
    np.testing.assert_allclose(score, [0.8, 0.7, 0.5])
    np.testing.assert_array_equal(sign, [-1, 1, 1])
    # held-out raw 0.3 for the unit that was anti-correlated: it still points the same way (0.7)
    np.testing.assert_allclose(apply_sign(np.array([0.3, 0.3, 0.5]), sign, "auroc"), [0.7, 0.3, 0.5])
    score, sign = orient(np.array([-0.6, 0.4]), "spearman")
    np.testing.assert_allclose(score, [0.6, 0.4])
    np.testing.assert_allclose(apply_sign(np.array([-0.5, -0.1]), sign, "spearman"), [0.5, -0.1])


def test_split_cuts_at_a_newline_near_the_fraction():
    text = "".join(f"line {i:03d}\n" for i in range(100))  # 9 characters a line
    split = split_text(text, 0.5)
    assert split.selection == (0, split.heldout[0]) and split.heldout[1] == len(text)
    assert text[split.heldout[0] - 1] == "\n" and split.cut_at_newline
    assert abs(split.heldout[0] - len(text) / 2) <= 9
    no_newlines = split_text("x" * 1000, 0.25)
    assert no_newlines.selection == (0, 750) and not no_newlines.cut_at_newline


# ---------------------------------------------------------------- planted units


def labelled(name: str, kind: str, values: np.ndarray, defined: np.ndarray) -> Feature:
    """A feature for the scorer: its values, and where it is defined."""
    return Feature(name, kind, values, np.zeros(len(values), bool), "", defined)


def planted_recording(chars: int = 4000, seed: int = 0) -> tuple[Recording, np.ndarray, np.ndarray]:
    """Noise everywhere, except: 2:5:c = NOT inside (binary), 1:2:f tracks a depth, 1:3:h follows inside only in the
    first half."""
    rng = np.random.default_rng(seed)
    rec = Recording.allocate("lstm", chars, 2, 8, dtype=np.float32)
    for values in rec.states.values():
        values[:] = rng.normal(size=values.shape)
    run_lengths = rng.integers(5, 40, size=chars)
    inside = (np.repeat(np.arange(len(run_lengths)) % 2 == 1, run_lengths)[:chars]).astype(bool)
    depth = np.cumsum(rng.choice([-1, 1], size=chars)).clip(0)
    rec.states["c"][:, 1, 5] = -1.0 * inside + 0.3 * rng.normal(size=chars)
    rec.states["f"][:, 0, 2] = np.sqrt(depth) + 0.001 * rng.normal(size=chars)  # monotone in depth
    half = chars // 2
    rec.states["h"][:half, 0, 3] = 1.0 * inside[:half] + 0.01 * rng.normal(
        size=half
    )  # better than 2:5:c, but only here
    return rec, inside, depth


def test_scorer_finds_planted_units_and_the_held_out_part_exposes_a_fluke():
    rec, inside, depth = planted_recording()
    split = Split((0, 2000), (2000, 4000), 0.5, False)
    everywhere = np.ones(len(inside), bool)
    scores = score_recording(
        rec, [labelled("inside", "binary", inside, everywhere), labelled("depth", "ordinal", depth, everywhere)], split
    )

    top = scores["inside"].top_units(2)
    assert {unit["ref"] for unit in top} == {UnitRef(2, 5, "c"), UnitRef(1, 3, "h")}
    best, fluke = top  # sorted by held-out score
    assert best["ref"] == UnitRef(2, 5, "c") and best["sign"] == -1
    assert best["score"] > 0.95 and best["heldout_score"] > 0.95
    assert fluke["score"] > best["score"]  # the selection part alone would have preferred the fluke
    assert abs(fluke["heldout_score"] - 0.5) < 0.1

    depth_top = scores["depth"].top_units(1)[0]
    assert depth_top["ref"] == UnitRef(1, 2, "f") and depth_top["sign"] == 1 and depth_top["heldout_score"] > 0.95
    assert scores["depth"].best_heldout() == depth_top["heldout_score"]
    assert scores["depth"].share_passing(0.7) == pytest.approx(1 / 16)  # 1 of 2 × 8 units


def test_top_units_keep_one_state_per_unit():
    rec, inside, _ = planted_recording()
    rec.states["h"][:, 1, 5] = rec.states["c"][:, 1, 5] * 0.9  # the same unit again, in h
    scores = score_recording(
        rec,
        [labelled("inside", "binary", inside, np.ones(len(inside), bool))],
        Split((0, 2000), (2000, 4000), 0.5, False),
    )
    refs = [(unit["ref"].layer, unit["ref"].unit) for unit in scores["inside"].top_units(5)]
    assert len(refs) == len(set(refs)) == 5


def test_positions_without_a_label_are_ignored():
    rec, inside, depth = planted_recording()
    valid = np.ones(len(depth), bool)
    valid[::3] = False
    noisy_depth = depth.copy()
    noisy_depth[~valid] = -1
    split = Split((0, 2000), (2000, 4000), 0.5, False)
    masked = score_recording(rec, [labelled("depth", "ordinal", noisy_depth, valid)], split)["depth"]
    expected = spearman(rec.states["f"][:2000, 0, 2][valid[:2000]], depth[:2000][valid[:2000]])
    assert masked.selection[rec.state_names.index("f"), 0, 2] == pytest.approx(expected)


def test_gate_saturation_counts_steps_beyond_the_thresholds():
    rec = Recording.allocate("lstm", 10, 1, 2, dtype=np.float32)
    rec.states["f"][:, 0, 0] = [0.05] * 3 + [0.95] * 5 + [0.5] * 2
    rec.states["f"][:, 0, 1] = 0.5
    layer = gate_saturation(rec)[0]
    assert layer["layer"] == 1 and set(layer["gates"]) == {"i", "f", "o"}
    assert layer["gates"]["f"]["left"] == [0.3, 0.0] and layer["gates"]["f"]["right"] == [0.5, 0.0]


# ---------------------------------------------------------------- a counter planted in a real model


def counting_model(vocab: Vocab) -> CharRNN:
    """A 1 × 6 LSTM whose unit 0 adds 1 per 'a', subtracts 1 per 'b' and forgets at each newline: c ≈ the count."""
    torch.manual_seed(0)
    model = CharRNN(
        ModelConfig(vocab_size=vocab.size, cell="lstm", layers=1, hidden=6, embed=vocab.size, dropout=0.0)
    ).eval()
    a, b, newline = (vocab.chars.index(c) for c in "ab\n")
    hidden = 6
    with torch.no_grad():
        model.embedding.weight.copy_(torch.eye(vocab.size))
        rnn = model.rnn
        for weights in (rnn.weight_ih_l0, rnn.weight_hh_l0):
            weights[[0, hidden, 2 * hidden, 3 * hidden]] = 0.0
        rnn.bias_ih_l0[[0, hidden, 2 * hidden, 3 * hidden]] = torch.tensor([20.0, 20.0, 0.0, 20.0])
        rnn.bias_hh_l0[[0, hidden, 2 * hidden, 3 * hidden]] = 0.0
        rnn.weight_ih_l0[2 * hidden, a] = 10.0  # g = tanh(10) ≈ 1 on 'a'
        rnn.weight_ih_l0[2 * hidden, b] = -10.0  # and ≈ -1 on 'b'
        rnn.weight_ih_l0[hidden, newline] = -40.0  # f ≈ 0: forget at the newline
    return model


def test_a_planted_counter_is_found_on_the_count_task():
    text = make_task_text("count", 300, seed=3)
    vocab = Vocab(tuple(sorted(set(text))))
    model = counting_model(vocab)
    ids = vocab.encode(text)
    recording = record(model, ids)
    counter = recording.unit_values(1, 0, "c")
    count = task_features(text, "count")["count"].values
    assert np.abs(counter - count).max() < 0.1  # the plant does count

    result = run_probe(model, ids, text, ProbeOptions(feature_set="task", task="count", random_units=5, top=3))
    report = result.report
    best = report["features"]["count"]["units"][0]
    assert (best["layer"], best["unit"], best["state"]) == (1, 0, "c")
    assert best["heldout_score"] > 0.99 and best["sign"] == 1
    assert report["features"]["count"]["control_best"] < 0.99
    assert 0 <= best["ablation"]["random_percentile"] <= 100
    np.testing.assert_array_equal(result.recording.unit_values(1, 0, "c"), counter)


def test_task_labels_of_minus_one_are_invalid_even_for_binary_features():
    text = "aaXbbb\naXb\n"  # the first line breaks the format at its third b
    features = task_features(text, "count")
    defined = features["phase"].defined_mask  # the feature itself says where it is defined
    assert not defined[text.index("bbb") + 2]  # binary 'phase' holds False there, but it is undefined
    assert defined[text.index("aXb\n")]


@pytest.mark.parametrize("cell, states, gates", [("gru", {"h", "r", "z", "n"}, {"r", "z"}), ("rnn", {"h"}, set())])
def test_gru_and_rnn_models_are_probed_too(cell, states, gates):
    text = make_task_text("count", 120, seed=4)
    vocab = Vocab(tuple(sorted(set(text))))
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=vocab.size, cell=cell, layers=2, hidden=8, embed=4)).eval()
    report = run_probe(
        model, vocab.encode(text), text, ProbeOptions(feature_set="task", task="count", random_units=4, ablate="mean")
    ).report
    units = [unit for feature in report["features"].values() for unit in feature["units"]]
    assert units and {unit["state"] for unit in units} <= states
    assert all(unit["ablation"]["random_units"] >= 3 for unit in units)
    assert [set(layer["gates"]) for layer in report["saturation"]] == [gates, gates]


def test_the_language_option_is_checked_resolved_and_reported():
    text = 'def f(x):\n    """Doc."""\n    return "a" + x  # c\n' * 8
    vocab = Vocab(tuple(sorted(set(text))))
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=vocab.size, layers=1, hidden=8, embed=4)).eval()
    with pytest.raises(UsageError, match="--language must be one of"):
        run_probe(model, vocab.encode(text), text, ProbeOptions(language="cobol"))
    options = ProbeOptions(language="auto", ablation=False, control=False)
    report = run_probe(model, vocab.encode(text), text, options).report
    assert report["language"] == "python"
    assert {"inside_multiline_string", "inside_oneline_string"} <= set(report["features"])
    shell = run_probe(
        model, vocab.encode(text), text, ProbeOptions(language="shell", ablation=False, control=False)
    ).report
    assert shell["language"] == "shell" and "inside_multiline_string" not in shell["features"]
