"""On a real CUDA GPU (skipped without one): what the CPU-side tests of tests/test_device.py cannot show.

The numbers a GPU computes differ from a CPU's, so these compare a GPU with itself: the hand-written steps
with cuDNN's LSTM under exact fp32, a deterministic run with its resume, sampling and probing end to end.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from charnn.checkpoint import load_checkpoint
from charnn.cli import main
from charnn.device import exact_fp32
from charnn.model import FastStepper, ModelConfig, new_model
from charnn.probe.record import record

pytestmark = pytest.mark.gpu
ROOT = Path(__file__).resolve().parents[1]


def test_a_training_step_never_waits_for_the_gpu(tmp_path, code_file):
    from charnn.trainer import TrainConfig, Trainer

    trainer = Trainer(
        TrainConfig.of(
            corpus=str(code_file),
            out=str(tmp_path / "run"),
            cache_dir=str(tmp_path / "cache"),
            layers=2,
            hidden=32,
            embed=8,
            batch_size=8,
            seq_len=32,
            device="cuda",
        ),
        progress=False,
    )
    try:
        trainer.train_step()
        torch.cuda.set_sync_debug_mode("error")  # any synchronising call raises
        try:
            for _ in range(3):
                trainer.train_step()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    finally:
        trainer.close()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_every_precision_this_gpu_accepts_runs_cudnn_in_the_dtype_it_names(tmp_path, code_file, cell):
    # CUDA's autocast would have run cuDNN's RNN in fp16 under a "bf16" region: the policy's dtype is what runs
    from charnn.errors import UsageError
    from charnn.model import DTYPES
    from charnn.trainer import TrainConfig, Trainer

    for precision in ("fp32", "bf16-head", "bf16", "fp16"):
        config = TrainConfig.of(
            corpus=str(code_file),
            out=str(tmp_path / precision / cell),
            cache_dir=str(tmp_path / "cache"),
            cell=cell,
            layers=2,
            hidden=32,
            embed=8,
            batch_size=8,
            seq_len=32,
            device="cuda",
            precision=precision,
        )
        try:
            trainer = Trainer(config, progress=False)
        except UsageError:
            continue  # this GPU or its cuDNN cannot: refused in one sentence, tested on the CPU
        try:
            seen = []
            trainer.model.rnn.register_forward_hook(lambda module, inputs, output: seen.append(output[0].dtype))
            loss, _ = trainer.train_step()
            assert seen == [DTYPES[trainer.precision.recurrent]], (precision, seen)
            assert torch.isfinite(loss)
        finally:
            trainer.close()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_hand_written_steps_match_cudnn_in_exact_fp32(cell):
    torch.manual_seed(0)
    model = new_model(ModelConfig(vocab_size=20, cell=cell, layers=2, hidden=64, embed=16), "cuda").eval()
    ids = torch.randint(20, (8, 50), device="cuda")
    with torch.no_grad(), exact_fp32():
        logits, _ = model(ids)
        stepper = FastStepper(model)
        state = model.init_state(8)
        for t in range(50):
            step_logits, state = stepper.step(ids[:, t], state)
            torch.testing.assert_close(step_logits, logits[:, t], atol=1e-4, rtol=1e-4)
        recording = record(model, ids[0].cpu().numpy(), dtype=np.float32)
        out, _ = model.rnn(model.embedding(ids[:1]))
        np.testing.assert_allclose(recording.states["h"][:, -1], out[0].cpu().numpy(), atol=1e-4)


def charnn(*args: str, cwd: Path) -> None:
    """A CLI command in a fresh process (cuBLAS reads CUBLAS_WORKSPACE_CONFIG once, at its first call in a process)."""
    result = subprocess.run(
        [sys.executable, "-m", "charnn.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_deterministic_run_resumes_bit_for_bit_on_one_gpu(tmp_path, code_file):
    # two layers with dropout: cuDNN's dropout state must follow the restored generator too
    common = [
        "train",
        "--corpus",
        str(code_file),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--layers",
        "2",
        "--hidden",
        "32",
        "--embed",
        "8",
        "--batch-size",
        "8",
        "--seq-len",
        "32",
        "--eval-every",
        "10",
        "--decay-steps",
        "20",
        "--dropout",
        "0.2",
        "--device",
        "cuda",
        "--deterministic",
        "--quiet",
    ]
    charnn(*common, "--out", "whole", "--max-steps", "20", cwd=tmp_path)
    charnn(*common, "--out", "parts", "--max-steps", "10", cwd=tmp_path)
    charnn("train", "--out", "parts", "--resume", "--max-steps", "20", "--quiet", cwd=tmp_path)
    whole = load_checkpoint(tmp_path / "whole" / "last.pt").model_state
    parts = load_checkpoint(tmp_path / "parts" / "last.pt").model_state
    assert all(torch.equal(whole[name], parts[name]) for name in whole)


def test_sample_eval_and_probe_on_the_gpu(tmp_path, code_file):
    run = str(tmp_path / "run")
    assert (
        main(
            [
                "train",
                "--corpus",
                str(code_file),
                "--out",
                run,
                "--cache-dir",
                str(tmp_path / "cache"),
                "--layers",
                "1",
                "--hidden",
                "32",
                "--embed",
                "8",
                "--batch-size",
                "8",
                "--seq-len",
                "32",
                "--max-steps",
                "20",
                "--eval-every",
                "10",
                "--device",
                "cuda",
                "--quiet",
            ]
        )
        == 0
    )
    for streams in ("1", "20"):
        assert (
            main(
                [
                    "generate",
                    "--run",
                    run,
                    "--device",
                    "cuda",
                    "--length",
                    "50",
                    "--seed",
                    "1",
                    "--num-samples",
                    streams,
                ]
            )
            == 0
        )
    probe_text = tmp_path / "probe.py"
    probe_text.write_text(code_file.read_text()[:4000])
    assert main(["eval", "--run", run, "--device", "cuda", "--text", str(probe_text), "--json"]) == 0
    assert (
        main(
            [
                "probe",
                "--run",
                run,
                "--device",
                "cuda",
                "--text",
                str(probe_text),
                "--features",
                "code",
                "--random-units",
                "8",
                "--json",
                str(tmp_path / "p.json"),
            ]
        )
        == 0
    )
