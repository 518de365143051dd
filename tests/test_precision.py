"""The precision policy (charnn.precision) as a pure function, and the model and trainer carrying it out.

CUDA's autocast runs cuDNN's recurrent layers in fp16 whatever dtype the region was given; these tests show,
on a CPU, that no policy the chooser can return puts them under autocast without loss scaling on CUDA, that
CharRNN.forward takes them out of the region when a policy says so, and that the scaled path skips overflowing
steps and resumes exactly.
"""

import itertools

import pytest
import torch

import charnn.trainer
from charnn.checkpoint import load_checkpoint
from charnn.config import TrainConfig
from charnn.device import cpu_autocast_runs_bf16, runs_bf16
from charnn.errors import UsageError
from charnn.model import ModelConfig, new_model
from charnn.precision import CUDA_AUTO, PRECISIONS, Hardware, Precision, choose_precision, policy
from charnn.trainer import Trainer, run_training

CELLS = ("lstm", "gru", "rnn")


def every_hardware():
    for kind, native, recurrent, autocast in itertools.product(("cpu", "cuda", "mps"), *[(False, True)] * 3):
        yield Hardware(kind, f"a {kind}", native, recurrent, autocast)


def test_every_policy_the_chooser_returns_is_one_the_hardware_computes():
    chosen = 0
    for requested, hardware, cell in itertools.product(PRECISIONS, every_hardware(), CELLS):
        try:
            precision = choose_precision(requested, hardware, cell)
        except UsageError as err:
            assert len(str(err).splitlines()) == 1 and "--precision fp32" in str(err)
            continue
        chosen += 1
        assert precision.device_type == hardware.device_type
        assert requested in ("auto", precision.name)
        assert precision.recurrent != "bf16" or hardware.bf16_recurrent
        assert (
            "bf16" not in (precision.head, precision.recurrent) or hardware.device_type == "cpu" or hardware.native_bf16
        )
        assert precision.scaled == ("fp16" in (precision.head, precision.recurrent))
        # CUDA's autocast would run cuDNN's RNN in fp16: only a CPU seen to compute the cell keeps it in the region
        if precision.recurrent_dtype is None:
            assert (
                hardware.device_type == "cpu"
                and hardware.bf16_autocast
                and precision.recurrent == precision.head == "bf16"
            )
    assert chosen > 60


def test_the_policy_refuses_fp16_without_scaling():
    with pytest.raises(ValueError, match="fp16 needs loss scaling"):
        Precision("fp16", "cuda", "fp16", "fp16", scaled=False)
    with pytest.raises(ValueError, match="only a CPU's autocast"):
        Precision("bf16", "cuda", "bf16", "bf16", scaled=False, recurrent_in_autocast=True)
    assert [policy(name, "cuda").recurrent for name in ("fp32", "bf16-head", "bf16", "fp16")] == [
        "fp32",
        "fp32",
        "bf16",
        "fp16",
    ]


@pytest.mark.parametrize(
    "native, recurrent, auto, bf16",
    [(True, True, CUDA_AUTO, "bf16"), (True, False, CUDA_AUTO, None), (False, False, "fp32", None)],
)
def test_cuda_choices(native, recurrent, auto, bf16):
    gpu = Hardware("cuda", "Some GPU (compute capability 7.5)", native, recurrent)
    assert choose_precision("auto", gpu).name == auto
    assert choose_precision("fp16", gpu).scaled  # any GPU: fp16 with a loss scaler
    assert choose_precision("fp32", gpu).describe() == "LSTM fp32/TF32, embedding and decoder fp32"
    if bf16:
        assert choose_precision("bf16", gpu).describe() == "LSTM bf16, embedding and decoder bf16"
    elif native:
        with pytest.raises(UsageError, match="cuDNN's LSTM kernel cannot compute in bf16 .*cuDNN 9.13.*bf16-head"):
            choose_precision("bf16", gpu)
    else:
        with pytest.raises(UsageError, match=r"Some GPU \(compute capability 7.5\) only emulates bf16"):
            choose_precision("bf16", gpu)
    if native:
        assert choose_precision("bf16-head", gpu).describe("gru") == "GRU fp32/TF32, embedding and decoder bf16"


def test_cpu_choices():
    fast = Hardware("cpu", "this CPU", True, True)
    assert choose_precision("auto", fast).name == "bf16"
    assert choose_precision("auto", fast).describe() == "LSTM bf16, embedding and decoder bf16"
    assert choose_precision("auto", Hardware("cpu", "this CPU", False, True)).name == "fp32"
    assert choose_precision("auto", Hardware("cpu", "this CPU", True, False)).name == "fp32"
    with pytest.raises(UsageError, match="--precision fp16 needs a CUDA GPU"):
        choose_precision("fp16", fast)
    with pytest.raises(UsageError, match="on cpu and cuda, not on mps"):
        choose_precision("bf16", Hardware("mps"))
    assert choose_precision("auto", Hardware("mps")).name == "fp32"


def autocast_inside_the_recurrence(model, *args):
    """Whether autocast was on, and the dtype of the recurrent layers' output, as CharRNN ran them."""
    seen = {}

    def hook(module, inputs, output):
        seen["autocast"] = torch.is_autocast_enabled("cpu")
        seen["dtype"] = output[0].dtype

    handle = model.rnn.register_forward_hook(hook)
    try:
        model(*args)
    finally:
        handle.remove()
    return seen["autocast"], seen["dtype"]


@pytest.mark.parametrize("cell", CELLS)
def test_the_model_runs_the_recurrence_outside_autocast_in_the_dtype_asked(cell):
    torch.manual_seed(0)
    model = new_model(ModelConfig(vocab_size=12, cell=cell, layers=2, hidden=16, embed=8, dropout=0.0))
    ids = torch.randint(12, (3, 7))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert autocast_inside_the_recurrence(model, ids, None, "fp32") == (False, torch.float32)
        assert autocast_inside_the_recurrence(model, ids, None, "bf16") == (False, torch.bfloat16)
        logits, state = model(ids, None, "bf16")
    # the weights cast for the step stay fp32 parameters, and their gradients reach them in fp32
    logits.float().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.rnn.parameters())
    exact, _ = model(ids)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        head_only, _ = model(ids, None, "fp32")
    torch.testing.assert_close(head_only.float(), exact, atol=0.05, rtol=0.05)


def tiny(tmp_path, code_file, **changes):
    settings = dict(
        corpus=str(code_file),
        out=str(tmp_path / "run"),
        cache_dir=str(tmp_path / "cache"),
        layers=2,
        hidden=32,
        embed=8,
        batch_size=8,
        seq_len=32,
        eval_every=10,
        eval_chars=2000,
        sample_chars=20,
        dropout=0.0,
        device="cpu",
    )
    return TrainConfig.of(**{**settings, **changes})


@pytest.mark.skipif(not runs_bf16("lstm"), reason="PyTorch's LSTM kernel cannot compute in bf16 on this CPU")
@pytest.mark.parametrize("cell", CELLS)
def test_bf16_on_a_cpu_computes_every_cell_in_bf16(tmp_path, code_file, cell):
    # the GRU too, which a CPU's autocast would leave in fp32
    trainer = Trainer(tiny(tmp_path, code_file, cell=cell, precision="bf16", max_steps=2), progress=False)
    try:
        seen = []
        trainer.model.rnn.register_forward_hook(lambda module, inputs, output: seen.append(output[0].dtype))
        trainer.train_step()
        assert seen == [torch.bfloat16]
        assert trainer.precision.recurrent_dtype == (None if cpu_autocast_runs_bf16(cell) else "bf16")
    finally:
        trainer.close()


def test_bf16_head_trains_with_an_fp32_recurrence_and_records_what_ran(tmp_path, code_file, capsys):
    result = run_training(tiny(tmp_path, code_file, precision="bf16-head", max_steps=20, lr=1e-2), progress=False)
    assert result.steps == 20
    meta = load_checkpoint(tmp_path / "run" / "last.pt").meta
    assert meta["resolved"]["precision"]["name"] == "bf16-head" and meta["train"]["precision"] == "bf16-head"
    assert meta["resolved"]["precision"]["describe"] == "LSTM fp32, embedding and decoder bf16"
    assert "bf16-head: LSTM fp32, embedding and decoder bf16" in capsys.readouterr().err


SCALED = Precision("fp16", "cpu", "bf16", "bf16", scaled=True)  # a loss-scaled policy a CPU can run


def test_a_scaled_policy_skips_overflowing_steps_and_resumes_exactly(tmp_path, code_file, monkeypatch):
    monkeypatch.setattr(charnn.trainer, "resolve_precision", lambda *args, **kwargs: SCALED)
    trainer = Trainer(tiny(tmp_path, code_file, max_steps=40), progress=False)
    try:
        trainer.scaler = type(trainer.scaler)("cpu", init_scale=float("inf"))  # every gradient overflows
        before = [p.detach().clone() for p in trainer.model.parameters()]
        trainer.train_step()
        assert all(torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))  # skipped, not applied
        reading = trainer.tally.read()
        assert not reading.failed and reading.skipped == 1
    finally:
        trainer.close()
    # N steps + resume + M steps is N + M steps in one go, the scaler's state included
    whole = run_training(tiny(tmp_path, code_file, out=str(tmp_path / "whole"), max_steps=20), progress=False)
    run_training(tiny(tmp_path, code_file, out=str(tmp_path / "parts"), max_steps=10, decay_steps=20), progress=False)
    run_training(tiny(tmp_path, code_file, out=str(tmp_path / "parts"), max_steps=20), resume=True, progress=False)
    assert whole.steps == 20
    saved = {name: load_checkpoint(tmp_path / name / "last.pt") for name in ("whole", "parts")}
    assert "grad_scaler" in saved["parts"].extra
    assert all(
        torch.equal(saved["whole"].model_state[k], saved["parts"].model_state[k]) for k in saved["whole"].model_state
    )
