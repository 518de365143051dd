"""Sampling: every option, determinism, priming, batched independent streams, clamps, CLI errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from charnn.checkpoint import load_checkpoint
from charnn.errors import CharnnError, UsageError
from charnn.model import FastStepper, StepLinear
from charnn.sample import Clamp, SampleOptions, clamp_holds, find_latest_run, generate, warm_up
from charnn.trainer import TrainConfig, run_training

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model trained briefly on real Python code."""
    import json.decoder

    tmp = tmp_path_factory.mktemp("sample")
    corpus = tmp / "code.py"
    corpus.write_text(Path(json.decoder.__file__).read_text() * 4)
    config = TrainConfig.of(
        corpus=str(corpus),
        out=str(tmp / "runs" / "code"),
        layers=2,
        hidden=32,
        embed=16,
        batch_size=8,
        seq_len=32,
        max_steps=60,
        eval_every=30,
        sample_chars=0,
        cache_dir=str(tmp / "cache"),
    )
    run_training(config, progress=False)
    checkpoint = load_checkpoint(tmp / "runs" / "code" / "best.pt")
    return tmp, checkpoint.build_model(), checkpoint.vocab


def test_same_seed_same_text_and_different_seeds_differ(trained):
    _, model, vocab = trained
    a = generate(model, vocab, SampleOptions(length=200, seed=5))
    b = generate(model, vocab, SampleOptions(length=200, seed=5))
    c = generate(model, vocab, SampleOptions(length=200, seed=6))
    assert a == b and a != c
    assert len(a[0]) == 200


def test_top_k_one_is_greedy(trained):
    _, model, vocab = trained
    greedy = generate(model, vocab, SampleOptions(length=100, temperature=0, seed=1))
    top1 = generate(model, vocab, SampleOptions(length=100, temperature=1.3, top_k=1, seed=2))
    tiny_nucleus = generate(model, vocab, SampleOptions(length=100, temperature=1.0, top_p=1e-9, seed=3))
    assert greedy == top1 == tiny_nucleus


def test_prime_sets_the_state_and_is_echoed(trained):
    _, model, vocab = trained
    prime = "def decode(self, s):\n    "
    texts = generate(model, vocab, SampleOptions(length=50, prime=prime, seed=1))
    assert texts[0].startswith(prime) and len(texts[0]) == len(prime) + 50
    quiet = generate(model, vocab, SampleOptions(length=50, prime=prime, seed=1, echo=False))
    assert quiet[0] == texts[0][len(prime) :]
    # the state after priming is the state of running the model over the priming text
    ids = torch.from_numpy(vocab.encode(prime).astype("int64"))
    first, state = warm_up(model, ids, 1, ())
    with torch.no_grad():
        _, expected = model(ids[:-1].unsqueeze(0))
    assert first.tolist() == [ids[-1].item()]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(state, expected))
    other_ids = torch.from_numpy(vocab.encode("    # x").astype("int64"))
    _, other_state = warm_up(model, other_ids, 1, ())
    assert not torch.allclose(other_state[0], state[0], atol=1e-3)  # what was primed is remembered


def test_batched_streams_are_independent(trained):
    _, model, vocab = trained
    batch = generate(model, vocab, SampleOptions(length=80, num_samples=6, seed=11))
    assert len(batch) == 6 and len(set(batch)) == 6
    # with greedy decoding every stream must produce what a single stream produces
    greedy_batch = generate(
        model, vocab, SampleOptions(length=80, num_samples=4, temperature=0, prime="import ", seed=0)
    )
    greedy_one = generate(model, vocab, SampleOptions(length=80, num_samples=1, temperature=0, prime="import ", seed=0))
    assert all(text == greedy_one[0] for text in greedy_batch)


@pytest.mark.parametrize("onednn", [True, False], ids=["onednn", "module"])
def test_many_streams_agree_with_one(trained, onednn, monkeypatch):
    # with oneDNN every stream count takes the hand-written step; without it, 16+ streams take nn.LSTM
    if not onednn:
        monkeypatch.setattr(StepLinear, "pack", lambda self, weight: None)
    _, model, vocab = trained
    many = generate(model, vocab, SampleOptions(length=60, num_samples=20, temperature=0, prime="def ", seed=0))
    one = generate(model, vocab, SampleOptions(length=60, num_samples=1, temperature=0, prime="def ", seed=0))
    assert all(text == one[0] for text in many)
    clamped = generate(
        model,
        vocab,
        SampleOptions(length=60, num_samples=20, temperature=0, prime="def ", seed=0, clamps=[Clamp(2, 3, -0.9)]),
    )
    clamped_one = generate(
        model,
        vocab,
        SampleOptions(length=60, num_samples=1, temperature=0, prime="def ", seed=0, clamps=[Clamp(2, 3, -0.9)]),
    )
    assert clamped[0] == clamped_one[0]


def test_stop_string_ends_each_stream(trained):
    _, model, vocab = trained
    texts = generate(model, vocab, SampleOptions(length=500, num_samples=5, stop="\n", seed=4, echo=False))
    for text in texts:
        assert text.count("\n") <= 1
        assert text.endswith("\n") or len(text) == 500


def test_streamed_text_arrives_as_it_is_produced(trained):
    _, model, vocab = trained
    pieces = []
    texts = generate(
        model, vocab, SampleOptions(length=30, prime="x = ", seed=2), on_text=lambda s, t: pieces.append(t)
    )
    assert "".join(pieces) == texts[0] and len(pieces) == 31  # the prime, then one piece per character


def test_a_clamped_unit_is_what_the_next_layer_and_the_decoder_see(trained):
    _, model, _ = trained
    model.eval()
    stepper, top = FastStepper(model), model.config.layers - 1
    state, ids = model.init_state(1, "cpu"), torch.tensor([1])
    with torch.no_grad():
        free_logits, free = stepper.step(ids, state)
        logits, clamped = stepper.step(ids, state, clamp_holds([Clamp(top + 1, 3, 0.9)], model))
        assert clamped[0][top, 0, 3] == pytest.approx(0.9)
        assert torch.allclose(logits, model.decoder(clamped[0][top]), atol=1e-5)  # the output reads the clamped h
        assert not torch.allclose(logits, free_logits)
        _, lower = stepper.step(ids, state, clamp_holds([Clamp(1, 3, 0.9)], model))
        assert not torch.allclose(lower[0][1], free[0][1])  # layer 2 reads layer 1's clamped unit in the same step
        _, held_c = stepper.step(ids, state, clamp_holds([Clamp(1, 3, -4.0, "c")], model))
        assert held_c[1][0, 0, 3] == pytest.approx(-4.0) and -1 < held_c[0][0, 0, 3] < 0  # h = o * tanh(c)


def test_clamping_a_unit_changes_the_text(trained):
    _, model, vocab = trained
    free = generate(model, vocab, SampleOptions(length=120, seed=9))
    clamped = generate(
        model, vocab, SampleOptions(length=120, seed=9, clamps=[Clamp.parse("2:3=1.0"), Clamp.parse("2:5:c=-3")])
    )
    assert free != clamped
    with pytest.raises(UsageError, match="--clamp 3:0"):
        generate(model, vocab, SampleOptions(clamps=[Clamp(3, 0, 1.0)]))
    with pytest.raises(UsageError, match="LAYER:UNIT=VALUE"):
        Clamp.parse("1-2")
    with pytest.raises(UsageError, match=r"--clamp 2:3=1e\+38: h of a .* lies in \[-1, 1\]"):
        generate(model, vocab, SampleOptions(clamps=[Clamp.parse("2:3=1e38")]))
    with pytest.raises(UsageError, match="--clamp 2:3 is given twice"):
        generate(model, vocab, SampleOptions(clamps=[Clamp.parse("2:3=1"), Clamp.parse("2:3=-1")]))
    generate(
        model, vocab, SampleOptions(length=5, clamps=[Clamp.parse("2:3=1"), Clamp.parse("2:3:c=-40")])
    )  # h and c of one unit


def test_a_layer_counted_from_the_top_clamps_the_same_unit(trained):
    _, model, vocab = trained
    top = model.config.layers
    from_top = generate(model, vocab, SampleOptions(length=60, seed=4, clamps=[Clamp.parse("-1:3=1")]))
    from_bottom = generate(model, vocab, SampleOptions(length=60, seed=4, clamps=[Clamp.parse(f"{top}:3=1")]))
    assert from_top == from_bottom
    with pytest.raises(UsageError, match=r"--clamp -3:0: the model has layers 1..2 \(or -1..-2 from the top\)"):
        generate(model, vocab, SampleOptions(clamps=[Clamp(-3, 0, 1.0)]))
    with pytest.raises(UsageError, match=f"--clamp {top}:3 is given twice"):
        generate(model, vocab, SampleOptions(clamps=[Clamp.parse("-1:3=1"), Clamp.parse(f"{top}:3=0")]))


def test_generate_cli_takes_a_clamp_and_a_prime_that_start_with_a_dash(trained):
    tmp, _, _ = trained
    result = run_generate("--clamp", "-1:0=1", "--prime", "-x", "--length", "10", "--seed", "1", cwd=tmp)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("-x")
    assert result.stdout == run_generate("--clamp=2:0=1", "--prime=-x", "--length", "10", "--seed", "1", cwd=tmp).stdout


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(temperature=-1), "--temperature"),
        (dict(top_p=0), "--top-p"),
        (dict(top_p=1.5), "--top-p"),
        (dict(top_k=0), "--top-k"),
        (dict(length=-1), "--length"),
        (dict(num_samples=0), "--num-samples"),
    ],
)
def test_bad_options_are_refused(trained, options, message):
    _, model, vocab = trained
    with pytest.raises(UsageError, match=message):
        generate(model, vocab, SampleOptions(**options))


def test_prime_outside_the_vocabulary_follows_the_policy(trained):
    _, model, vocab = trained
    with pytest.raises(CharnnError, match="outside the model's vocabulary.*'☃'"):
        generate(model, vocab, SampleOptions(prime="snow ☃", length=5))
    texts = generate(model, vocab, SampleOptions(prime="snow ☃", length=5, unknown="replace", seed=0))
    assert texts[0].startswith("snow ☃")


def test_newest_run_is_found(trained, tmp_path):
    tmp, _, _ = trained
    assert find_latest_run(tmp / "runs") == tmp / "runs" / "code"
    with pytest.raises(CharnnError, match="no trained run found.*python train.py"):
        find_latest_run(tmp_path)


def run_generate(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "generate.py"), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )


def test_generate_cli_defaults_to_the_newest_run(trained):
    tmp, _, _ = trained
    result = run_generate("--length", "40", "--seed", "3", "--prime", "class ", cwd=tmp)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("class ") and len(result.stdout) == len("class ") + 40 + 1
    again = run_generate(
        "--run",
        "runs/code",
        "--length",
        "40",
        "--seed",
        "3",
        "--prime",
        "class ",
        "--num-samples",
        "2",
        "--out",
        "s.txt",
        cwd=tmp,
    )
    assert again.returncode == 0 and again.stdout.count("--- sample") == 2
    assert (tmp / "s.txt").read_text().count("--- sample") == 2


@pytest.mark.parametrize(
    "args, message",
    [
        (["--temperature", "-0.5"], "--temperature"),
        (["--top-p", "2"], "--top-p"),
        (["--num-samples", "0"], "--num-samples"),
        (["--run", "runs/none"], "does not exist"),
        (["--checkpoint", "code.py"], "not a readable charnn checkpoint"),
        (["--prime", "☃"], "outside the model's vocabulary"),
    ],
)
def test_generate_cli_bad_input(trained, args, message):
    tmp, _, _ = trained
    result = run_generate(*args, cwd=tmp)
    assert result.returncode in (1, 2)
    assert message in result.stderr and "Traceback" not in result.stderr


def test_bf16_sampling_is_close_to_fp32_and_refused_where_the_cpu_only_emulates_it(trained, monkeypatch):
    from charnn import sample as sample_module

    _, model, vocab = trained
    model.eval()
    state = model.init_state(8)
    ids = torch.arange(8) % vocab.size
    exact, bf16 = FastStepper(model), FastStepper(model, torch.bfloat16)
    for _ in range(50):  # the two walk the same inputs; the bf16 step's logits stay close to fp32's
        with torch.no_grad():
            logits, next_state = exact.step(ids, state)
            approximate, _ = bf16.step(ids, state)
        kl = torch.nn.functional.kl_div(
            torch.log_softmax(approximate, 1), torch.log_softmax(logits, 1), log_target=True, reduction="batchmean"
        )
        assert 0 < (approximate - logits).abs().max() < 0.1 and kl < 1e-3  # different products, close distributions
        state, ids = next_state, logits.argmax(1)
    monkeypatch.setattr(sample_module, "cpu_has_fast_bf16", lambda: True)
    a = generate(model, vocab, SampleOptions(length=100, seed=3, num_samples=3, precision="bf16"))
    assert a == generate(model, vocab, SampleOptions(length=100, seed=3, num_samples=3, precision="bf16"))  # seeded
    assert len(a) == 3 and all(len(text) == 100 for text in a)
    monkeypatch.setattr(sample_module, "cpu_has_fast_bf16", lambda: False)
    with pytest.raises(UsageError, match="no bf16 unit"):
        generate(model, vocab, SampleOptions(length=5, precision="bf16"))
    with pytest.raises(UsageError, match="--precision must be one of fp32, bf16"):
        SampleOptions(precision="fp16").validate()
