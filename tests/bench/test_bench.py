"""The benchmark harness: every section runs on tiny settings and reports a well-formed result; the CLI refuses bad
flags.

No timing assertions: this machine is shared and noisy. The figures themselves are in docs/benchmarks.md.
"""

import itertools
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import charnn.bench.timing
from charnn.bench.run import measure_cuda, run_bench
from charnn.bench.sampling import bf16_divergence, divergence_model
from charnn.bench.settings import BenchSettings, TrainShape
from charnn.bench.table import render_table, table_rows
from charnn.bench.timing import CpuWatch, flops_per_char, interleaved, wait_for_quiet
from charnn.bench.training import BareLoop, make_trainer
from charnn.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def code_file(tmp_path_factory) -> Path:
    """A few hundred kilobytes of real Python (a stdlib module, repeated)."""
    import json.decoder

    path = tmp_path_factory.mktemp("bench") / "code.py"
    path.write_text(Path(json.decoder.__file__).read_text() * 40)
    return path


def tiny_settings(tmp_path: Path, corpus: Path, **changes) -> BenchSettings:
    """--quick shrunk further: seconds, not a minute."""
    values = dict(
        repeats=2,
        train_shapes=(TrainShape(1, 16, 4, 8, embed=8), TrainShape(2, 16, 4, 8, embed=8)),
        train_steps=(2, 2),
        train_warmup_steps=1,
        matmul_shape=(64, 32, 64),
        matmul_calls=2,
        sample_layers=2,
        sample_hidden=16,
        sample_chars=10,
        sample_streams=3,
        sample_steps_batched=5,
        encode_sizes_mb=(0.2, 0.4),
        encode_repeats=1,
        corpus=str(corpus),
        cache_dir=str(tmp_path / "cache"),
        budget_minutes=0.03,
        quality_corpus=str(corpus),
        quality_out=str(tmp_path / "quality"),
        quality_overrides={
            "layers": "1",
            "hidden": "16",
            "embed": "8",
            "batch_size": "4",
            "seq_len": "16",
            "warmup_steps": "2",
        },
        runs_dir=str(tmp_path / "no-runs"),  # bf16's divergence on random weights, not on a real run of this checkout
    )
    values.update(changes)
    return BenchSettings.quick(**values)


def spreads(node):
    """Every {median, min, max} dict inside a report."""
    if isinstance(node, dict):
        if {"median", "min", "max"} <= node.keys():
            yield node
        for value in node.values():
            yield from spreads(value)
    elif isinstance(node, list):
        for value in node:
            yield from spreads(value)


def positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def report(tmp_path_factory, code_file):
    tmp = tmp_path_factory.mktemp("report")
    return run_bench(tiny_settings(tmp, code_file), sections=("train", "sample", "encode", "quality"))


def test_report_is_json_with_every_section_and_the_machine(report):
    again = json.loads(json.dumps(report))
    assert set(again["sections"]) == {"matmul", "train", "sample", "encode", "quality"}
    machine = again["machine"]
    assert machine["cores"] >= 1 and machine["threads"] >= 1 and machine["torch"] and machine["cpu"]
    assert positive_finite(again["seconds"])


def test_every_measurement_is_a_sane_spread_and_every_ratio_positive(report):
    found = list(spreads(report))
    assert len(found) > 10
    for node in found:
        assert positive_finite(node["median"]) and node["min"] <= node["median"] <= node["max"]
    sections = report["sections"]
    ratios = [r["ratio"]["median"] for r in sections["train"]]
    ratios += [sections["sample"][k]["ratio"]["median"] for k in ("single", "batched")]
    ratios += [size["ratio"]["median"] for size in sections["encode"]["sizes"]]
    assert len(ratios) == 6 and all(positive_finite(r) for r in ratios)


def test_training_section_compares_the_trainer_with_the_bare_loop_on_each_shape(report):
    train = report["sections"]["train"]
    assert [r["name"] for r in train] == ["1×16", "2×16"]
    for result in train:
        assert result["charnn_chars_per_s"]["values"] and len(result["bare_chars_per_s"]["values"]) == 2
        assert positive_finite(result["mflop_per_char"]) and 0 < result["charnn_fraction_of_ceiling"]
    matmul = report["sections"]["matmul"]
    assert "mkl" in matmul["gflops"] and all(positive_finite(rates["median"]) for rates in matmul["gflops"].values())
    assert matmul["ceiling_gflops"] == max(
        matmul["gflops"][kind]["max"] for kind in ("mkl", "onednn") if kind in matmul["gflops"]
    )


def test_encoding_reports_speed_and_peak_memory_at_two_sizes(report):
    encode = report["sections"]["encode"]
    small, large = encode["sizes"]
    assert small["mb"] < large["mb"]
    for size in (small, large):
        assert size["charnn_peak_rss_mb"] > 1 and size["naive_peak_rss_mb"] > 1
    assert math.isfinite(encode["charnn_rss_growth_per_mb"])


def test_quality_section_trains_for_the_budget_and_reports_val_loss(report, tmp_path_factory):
    quality = report["sections"]["quality"]
    assert quality["steps"] >= 1 and quality["split"] == "0.9,0.1"
    assert positive_finite(quality["best_val_nats_per_char"])
    assert quality["best_val_bits_per_char"] == pytest.approx(quality["best_val_nats_per_char"] / math.log(2))
    assert quality["settings"]["model"]["hidden"] == 16  # --quality-set reached the run
    assert Path(quality["run"], "best.pt").is_file()


def test_the_table_renders_and_the_labs_goals_read_the_report(report, tmp_path):
    assert all(set(row) == {"what", "charnn", "baseline", "ratio"} for row in report["rows"])
    from rich.console import Console

    console = Console(width=200, record=True, file=open(os.devnull, "w"))
    console.print(render_table(report))
    assert "[min–max]" in console.export_text()
    # the goals are the lab's (benchmarks/goals.py), read from the report the product wrote
    (tmp_path / "report.json").write_text(json.dumps(report))
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "goals.py"), str(tmp_path / "report.json"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode in (0, 1), done.stderr
    goals = json.loads(done.stdout)
    assert {g["what"] for g in goals} >= {
        "sample 1 stream: charnn / naive",
        "encode: MB/s",
        "quality: best val nats/char",
    }
    assert all(g["met"] in (True, False) for g in goals)


def test_flops_per_char_matches_the_measured_ceilings_note():
    # docs/benchmarks.md's baselines from before charnn: 2 × 128 is 1.45 MFLOP/char and 3 × 512 is 32.55 with embed 64
    # and ~100 characters
    assert flops_per_char(2, 128, 64, 100) / 1e6 == pytest.approx(1.45, abs=0.01)
    assert flops_per_char(3, 512, 64, 100) / 1e6 == pytest.approx(32.55, abs=0.01)


def test_cli_json_prints_one_object(tmp_path, code_file, monkeypatch, capsys):
    tiny = tiny_settings(tmp_path, code_file)
    monkeypatch.setattr(BenchSettings, "quick", classmethod(lambda cls, **changes: tiny))
    assert main(["bench", "--quick", "--json", "--only", "sample"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert list(printed["sections"]) == ["sample"] and printed["rows"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "charnn.cli", "bench", *args], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_cli_help_lists_the_flags():
    done = run_cli("--help")
    assert done.returncode == 0
    for flag in ("--json", "--quick", "--quality", "--budget-minutes", "--only"):
        assert flag in done.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("--only", "everything"),
        ("--repeats", "0"),
        ("--budget-minutes", "-1"),
        ("--threads", "two"),
        ("--quality-set", "hidden"),
        ("--no-such-flag",),
    ],
)
def test_bad_flags_exit_2_in_one_line(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *args])
    assert exit_info.value.code == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1


def test_bad_quality_settings_are_refused_before_any_work(tmp_path, capsys):
    assert main(["bench", "--only", "quality", "--quality-set", "colour=blue"]) == 2
    assert "colour" in capsys.readouterr().err
    assert main(["bench", "--only", "quality", "--quality-corpus", str(tmp_path / "missing.txt")]) == 1
    stderr = capsys.readouterr().err
    assert "missing.txt" in stderr and len(stderr.strip().splitlines()) == 1


def test_bf16_this_cpu_cannot_compute_is_refused_before_the_measurements(monkeypatch, capsys):
    import charnn.device

    monkeypatch.setattr(charnn.device, "runs_bf16", lambda cell, device=None: False)
    assert main(["bench", "--only", "train", "--quick", "--precision", "bf16"]) == 2
    stderr = capsys.readouterr().err
    assert "cannot compute in bf16 here" in stderr and len(stderr.strip().splitlines()) == 1


def test_the_disturbance_of_other_processes_is_a_share_of_the_cpus():
    share = wait_for_quiet(0.1, window=0.05)
    assert share is None or 0 <= share <= 1


def test_with_wait_quiet_a_disturbed_pair_is_measured_again(monkeypatch):
    shares = itertools.chain(
        [0.6, 0.0, 0.5, 0.0, 0.7, 0.8, 0.9, 0.9, 0.9], itertools.repeat(0.9)
    )  # others' share, per pair
    monkeypatch.setattr(charnn.bench.timing, "wait_for_quiet", lambda seconds: 0.0)
    monkeypatch.setattr(CpuWatch, "others_share", lambda self: next(shares))
    calls = iter(range(1, 100))
    result = interleaved(
        lambda: float(next(calls)), lambda: 1.0, BenchSettings(repeats=3, wait_quiet=1.0), lambda text: None, "test"
    )
    # two quiet pairs, then the 3 × 3 attempts ran out, so the last disturbed pair was kept
    assert result["others_cpu_share_per_repeat"] == [0.0, 0.0, 0.9]
    assert [pair["others_cpu_share"] for pair in result["disturbed_pairs"]] == [0.6, 0.5, 0.7, 0.8, 0.9, 0.9]
    without_waiting = interleaved(lambda: 2.0, lambda: 1.0, BenchSettings(repeats=3), lambda text: None, "test")
    assert without_waiting["ratio"]["median"] == 2.0 and without_waiting["disturbed_pairs"] == []  # every pair is kept


def test_the_bare_loop_trains_like_the_trainer(tmp_path, code_file):
    # like for like: the trainer's policy (here the recurrence in fp32 outside autocast) and its fused AdamW
    import torch

    trainer = make_trainer(
        TrainShape(1, 16, 4, 8, embed=8),
        str(code_file),
        str(tmp_path / "cache"),
        tmp_path / "run",
        precision="bf16-head",
    )
    try:
        bare = BareLoop(trainer.vocab.size, TrainShape(1, 16, 4, 8, embed=8), trainer.precision)
        seen = []
        bare.model.rnn.register_forward_hook(
            lambda module, inputs, output: seen.append((torch.is_autocast_enabled("cpu"), output[0].dtype))
        )
        bare.step()
        assert seen == [(False, torch.float32)]
        assert bare.optimizer.param_groups[0].get("fused") == trainer.optimizer.param_groups[0].get("fused")
    finally:
        trainer.close()


def test_the_gpu_section_measures_on_the_models_device(tmp_path, code_file, fake_gpu, monkeypatch):
    # no GPU here: the fake one fails any tensor the trainer, the bare loop or either sampler makes on the CPU
    import charnn.trainer

    monkeypatch.setattr(charnn.trainer, "pick_device", lambda requested: fake_gpu)
    settings = tiny_settings(
        tmp_path, code_file, cuda_train_shapes=(TrainShape(2, 16, 4, 8, embed=8),), cuda_train_steps=(2,)
    )
    result = measure_cuda(settings, lambda text: None, device=fake_gpu)
    assert result["device"] == "meta" and len(result["train"]) == 1
    assert result["train"][0]["shape"]["hidden"] == 16 and set(result["sample"]) >= {"single", "batched"}
    rows = table_rows({"cuda": result})
    assert rows and all(row["what"].startswith("meta: ") for row in rows)


def test_the_gpu_section_without_a_gpu_is_one_sentence(capsys):
    assert main(["bench", "--only", "cuda", "--quick"]) == 1
    stderr = capsys.readouterr().err
    assert "no CUDA GPU is available here" in stderr and len(stderr.strip().splitlines()) == 1


def test_bf16_divergence_is_measured_on_a_trained_run_and_says_when_there_is_none(tmp_path, code_file):
    import torch

    from charnn.config import TrainConfig
    from charnn.errors import CharnnError
    from charnn.trainer import run_training

    empty = BenchSettings(runs_dir=str(tmp_path / "runs"))
    model, source = divergence_model(empty, torch.device("cpu"))
    assert model is None and "random" in source and "--divergence-run" in source
    run = tmp_path / "runs" / "tiny"
    run_training(
        TrainConfig.of(
            corpus=str(code_file),
            out=str(run),
            layers=1,
            hidden=16,
            embed=8,
            batch_size=4,
            seq_len=16,
            max_steps=6,
            eval_every=3,
            sample_chars=0,
            cache_dir=str(tmp_path / "cache"),
            device="cpu",
            precision="fp32",
        ),
        progress=False,
    )
    for settings in (empty, BenchSettings(divergence_run=str(run))):  # the newest run, or the one named
        model, source = divergence_model(settings, torch.device("cpu"))
        assert model.config.hidden == 16 and str(run) in source and "trained" in source
        divergence = bf16_divergence(model, streams=2, steps=5)
        assert divergence["max_kl_nats"] >= divergence["mean_kl_nats"] and 0 <= divergence["same_argmax_share"] <= 1
    with pytest.raises(CharnnError):
        divergence_model(BenchSettings(divergence_run=str(tmp_path / "nothing")), torch.device("cpu"))
