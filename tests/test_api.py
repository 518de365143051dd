"""The Python API, called as README's "Python API" section calls it (a tiny model on a small corpus)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import charnn

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import json.decoder

    tmp = tmp_path_factory.mktemp("api")
    corpus = tmp / "code.py"
    corpus.write_text(Path(json.decoder.__file__).read_text() * 4)
    return charnn.train(
        corpus=corpus,
        out=tmp / "runs" / "api",
        layers=1,
        hidden=32,
        embed=16,
        batch_size=8,
        seq_len=32,
        max_steps=80,
        eval_every=40,
        cache_dir=str(tmp / "cache"),
        progress=False,
    )


def test_import_charnn_is_light_and_lists_the_api():
    code = (
        "import sys, charnn; assert 'torch' not in sys.modules; "
        "print(sorted(n for n in dir(charnn) if not n.startswith('_')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == str(["CharnnError", "Model", "ProbeResult", "Run", "UsageError", "load", "train"])
    for name in ("train", "load", "Run", "Model", "ProbeResult"):
        assert getattr(charnn, name).__doc__


def test_train_returns_the_run_and_load_the_model(run):
    assert run.steps == 80 and run.stopped_by == "max-steps" and run.best_val_bpc > 0
    assert len(run.history) == 2 and (run.directory / "best.pt").is_file()
    model = run.load()
    same = charnn.load(run.directory / "best.pt")  # a checkpoint file works too
    assert model.step == same.step == 80 and model.config.hidden == 32
    assert "1 × 32 LSTM" in repr(model)


def test_generate_stream_and_clamp(run):
    model = run.load()
    text = model.generate(prime="def ", length=60, temperature=0.7, seed=1)
    assert isinstance(text, str) and text.startswith("def ") and len(text) == 64
    assert "".join(model.stream(prime="def ", length=60, temperature=0.7, seed=1)) == text  # the same text, as produced
    two = model.generate(length=20, num_samples=2, seed=3)
    assert isinstance(two, list) and len(two) == 2 and two[0] != two[1]
    assert model.generate(prime="def ", length=5, seed=1, clamp="-1:3=1") == model.generate(
        prime="def ", length=5, seed=1, clamp="1:3=1"
    )
    held = [f"-1:{unit}=1" for unit in range(16)]  # the top layer counted from the top, as generate --clamp does
    clamped = model.generate(prime="def ", length=60, temperature=0.7, seed=1, clamp=held)
    assert clamped != text and clamped == model.generate(
        prime="def ", length=60, temperature=0.7, seed=1, clamp=[held_unit.replace("-1:", "1:") for held_unit in held]
    )
    assert model.generate(prime="x", length=200, seed=2, stop="\n").count("\n") <= 1


def test_evaluate_and_probe(run, tmp_path):
    model = run.load()
    text = (ROOT / "charnn" / "api.py").read_text()[:6000]
    result = model.evaluate(text, unknown="replace")
    assert set(result) >= {"bits_per_char", "nats_per_char", "chars", "unknown_chars"} and result["bits_per_char"] > 0
    probe = model.probe(text, features="code", random_units=20, unknown="replace")
    try:
        best = probe.units("inside_string")[0]
        assert {"layer", "unit", "state", "heldout_score", "ablation"} <= set(best)
        assert json.loads(probe.to_json())["features"]["inside_string"]["units"][0] == best
        page = probe.to_html(tmp_path / "probe.html")
        assert page.startswith("<!DOCTYPE html>") and (tmp_path / "probe.html").read_text(encoding="utf-8") == page
        inline = probe._repr_html_()
        assert inline.startswith("<iframe srcdoc=") and "<script" not in inline  # the page is escaped inside srcdoc
        from rich.console import Console

        console = Console(record=True, width=140)
        console.print(probe.table())
        shown = console.export_text()
        assert "inside_string" in shown and "held-out" in shown
        assert "inside_string" in repr(probe)
        with pytest.raises(charnn.UsageError, match="no feature 'nosuch'"):
            probe.units("nosuch")
    finally:
        probe.close()


def test_bad_input_raises_the_command_lines_sentence(run, tmp_path):
    model = run.load()
    with pytest.raises(charnn.UsageError, match="unknown training setting 'hiden' \\(did you mean 'hidden'\\?\\)"):
        charnn.train(corpus="stdlib", hiden=64)
    with pytest.raises(charnn.UsageError, match="--layers must be a whole number >= 1, not 0"):
        charnn.train(corpus="stdlib", out=tmp_path / "x", layers=0)
    with pytest.raises(charnn.UsageError, match="--temperature"):
        model.generate(temperature=-1)
    with pytest.raises(charnn.UsageError, match="--top-p"):
        model.stream(top_p=2)  # checked when called, not at the first character
    with pytest.raises(charnn.UsageError, match="--clamp takes LAYER:UNIT=VALUE"):
        model.generate(clamp="two:3=1")
    with pytest.raises(charnn.CharnnError, match="outside the model's vocabulary"):
        model.evaluate("snow ☃ man")
    with pytest.raises(charnn.UsageError, match="--features must be code, tweets, task or none"):
        model.probe("x = 1\n" * 10, features="python")
    with pytest.raises(charnn.CharnnError, match="does not exist"):
        charnn.load(tmp_path / "no-such-run")


def test_probe_a_hypothesis_of_your_own(run):
    probe = run.load().probe(
        (ROOT / "charnn" / "api.py").read_text()[:4000],
        features="none",
        unknown="replace",
        patterns={"defs": r"def \w+"},
        ablation=False,
        control=False,
    )
    assert list(probe.report["features"]) == ["defs"] and probe.units("defs")
    with pytest.raises(charnn.UsageError, match="built-in feature's name"):
        run.load().probe("x = 1\n" * 10, patterns={"column": "x"})
