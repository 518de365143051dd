"""The GPU path, checked on a CPU: devices, precision, RNG, TF32, determinism, and tensors made on the wrong device.

No machine here has a GPU. The usual GPU bug is a tensor made without a device, which lands on the CPU
while the model is on CUDA. Here torch's default device is set to "meta" around a whole run on the
CPU: every such tensor lands on "meta" and fails as soon as it meets the CPU weights or is read.
"""

import json
import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch

import charnn.device
import charnn.model
import charnn.run_state
import charnn.trainer
from charnn.checkpoint import load_checkpoint, save_checkpoint
from charnn.cli import main
from charnn.corpus import Vocab
from charnn.device import (
    Distributed,
    cuda_device,
    deterministic_kernels,
    exact_fp32,
    pick_device,
    resolve_precision,
    restore_rng,
    rng_snapshot,
    tf32_switches,
)
from charnn.errors import CharnnError, UsageError
from charnn.evaluate import preview_sample
from charnn.model import ModelConfig, new_model
from charnn.precision import CUDA_AUTO
from charnn.trainer import StepTally, TrainConfig, Trainer, run_training


@pytest.fixture
def default_device_trap():
    """torch's default device is "meta" inside: a tensor made without a device cannot be mixed with real ones."""
    torch.set_default_device("meta")
    try:
        yield
    finally:
        torch.set_default_device(None)


def tiny_config(tmp_path: Path, corpus: str, **overrides) -> TrainConfig:
    values = dict(
        corpus=corpus,
        out=str(tmp_path / "run"),
        layers=2,
        hidden=16,
        embed=8,
        batch_size=8,
        seq_len=16,
        max_steps=6,
        eval_every=3,
        log_every=2,
        sample_chars=30,
        cache_dir=str(tmp_path / "cache"),
        seed=3,
        device="cpu",
    )
    values.update(overrides)
    return TrainConfig.of(**values)


# ----- tensors made on the model's device ------------------------------------------------------------
def tiny_model(device: torch.device, cell: str = "lstm", vocab: str = "\nabcdef") -> tuple:
    vocab = Vocab(tuple(vocab))
    return new_model(ModelConfig(vocab_size=vocab.size, cell=cell, layers=2, hidden=8, embed=4), device).eval(), vocab


def test_preview_sample_runs_where_the_model_is(fake_gpu):
    # the sample written at every evaluation made its state, its first id and its generator on the CPU
    # whatever the model's device, so every CUDA run died at its first evaluation
    model, vocab = tiny_model(fake_gpu)
    text = preview_sample(model, vocab, 40, seed=1)
    assert len(text) == 40 and set(text) <= set(vocab.chars)


@pytest.mark.filterwarnings("ignore:.*to a meta parameter in the current model")  # the fake GPU's weights hold no data
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_training_evaluation_and_resume_run_where_the_model_is(tmp_path, code_file, fake_gpu, monkeypatch, cell):
    monkeypatch.setattr(charnn.trainer, "pick_device", lambda requested: fake_gpu)
    trainer = Trainer(tiny_config(tmp_path, str(code_file), cell=cell), progress=False)
    try:
        assert trainer.model.decoder.weight.device == fake_gpu and trainer.train_feed.resident
        result = trainer.run()  # steps, the tally, evaluations with their samples, checkpoints
        assert result.steps == 6
    finally:
        trainer.close()
    trainer = Trainer(tiny_config(tmp_path, str(code_file), cell=cell, max_steps=9), resume=True, progress=False)
    try:
        assert all(s.device == fake_gpu for s in trainer.state)  # the carried state goes back to the device
        assert trainer.run().steps == 9
    finally:
        trainer.close()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_sampling_runs_where_the_model_is(fake_gpu, cell):
    from charnn.sample import Clamp, SampleOptions, generate

    model, vocab = tiny_model(fake_gpu, cell)
    printed = []
    for options, on_text in [
        (SampleOptions(length=30, seed=1), None),  # ids stay on the device, read in blocks
        (SampleOptions(length=30, seed=1, prime="abc\nd"), lambda s, t: printed.append(t)),  # streamed
        (
            SampleOptions(length=30, seed=1, num_samples=20, top_k=3, top_p=0.9),
            None,
        ),  # many streams: nn.LSTM's own step
        (SampleOptions(length=30, seed=1, num_samples=3, stop="\n", clamps=[Clamp(1, 1, 0.5)], prime="ab"), None),
        (SampleOptions(length=30, temperature=0, seed=1), None),
    ]:
        texts = generate(model, vocab, options, on_text=on_text)
        assert len(texts) == options.num_samples
    assert printed


def test_evaluation_and_every_probe_stage_run_where_the_model_is(fake_gpu):
    from charnn.evaluate import evaluate_ids
    from charnn.probe.ablate import ablate_layers
    from charnn.probe.html import next_char_predictions
    from charnn.probe.pipeline import untrained_copy
    from charnn.probe.record import record

    model, vocab = tiny_model(fake_gpu, vocab="\nabcdef():{}\"' ")
    text = 'def f(a):\n    "b"\n' * 20
    ids = vocab.encode(text)
    assert set(evaluate_ids(model, torch.from_numpy(ids.astype("int64")), fake_gpu)) >= {"bits_per_char", "chars"}
    recording = record(model, ids, chunk=64)
    assert recording.states["c"].shape == (len(ids), 2, 8)
    masks = np.zeros((2, len(ids)), dtype=bool)
    masks[0, ::7] = True
    masks[1] = ~masks[0]
    ablations = ablate_layers(model, ids, {1: [0], 2: [3]}, masks, random_count=4)
    assert set(ablations) == {1, 2}
    top_ids, top_probs, actual = next_char_predictions(model, ids)
    assert top_ids.shape == (len(ids), 5)
    assert next(untrained_copy(model, seed=1).parameters()).device == fake_gpu


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_train_resume_generate_eval_and_probe_make_no_tensor_off_the_models_device(
    tmp_path, code_file, cell, default_device_trap, capsys
):
    run_training(tiny_config(tmp_path, str(code_file), cell=cell), progress=False)
    run_training(tiny_config(tmp_path, str(code_file), cell=cell, max_steps=9), resume=True, progress=False)
    run = str(tmp_path / "run")
    probe_text = tmp_path / "probe.py"
    probe_text.write_text(code_file.read_text()[:3000])
    assert main(["generate", "--run", run, "--length", "40", "--seed", "1"]) == 0  # one stream, printed as it comes
    assert (
        main(
            [
                "generate",
                "--run",
                run,
                "--length",
                "40",
                "--seed",
                "1",
                "--num-samples",
                "20",
                "--top-k",
                "5",
                "--top-p",
                "0.9",
            ]
        )
        == 0
    )
    assert (
        main(["generate", "--run", run, "--length", "40", "--num-samples", "3", "--stop", "\n", "--clamp", "1:0=0.5"])
        == 0
    )
    assert main(["eval", "--run", run, "--text", str(probe_text), "--json"]) == 0
    assert (
        main(
            [
                "probe",
                "--run",
                run,
                "--text",
                str(probe_text),
                "--features",
                "code",
                "--random-units",
                "4",
                "--json",
                str(tmp_path / "p.json"),
                "--html",
                str(tmp_path / "p.html"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "p.json").read_text())["features"]
    assert "Traceback" not in capsys.readouterr().err


# ----- which device ------------------------------------------------------------------------------------
@pytest.fixture
def two_gpus(monkeypatch):
    """A machine that says it has two CUDA GPUs (nothing here runs on them)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    for name in ("WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def under_torchrun(monkeypatch, world: int, local_rank: int, local_world: int | None = None) -> None:
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(local_world or world))


def test_nccl_is_told_its_gpu_and_the_timeout_and_its_barrier_names_the_gpu(two_gpus):
    import torch.distributed as dist

    from charnn.cli import leave_process_group
    from charnn.device import barrier

    calls = {}
    under_torchrun(two_gpus, 2, 1)
    two_gpus.setattr(torch.cuda, "set_device", lambda device: calls.setdefault("set_device", device))
    two_gpus.setattr(dist, "is_initialized", lambda: "init" in calls)

    def init_process_group(backend=None, init_method=None, timeout=None, device_id=None):  # torch 2.3+'s signature
        calls["init"] = {"backend": backend, "timeout": timeout, "device_id": device_id}

    two_gpus.setattr(dist, "init_process_group", init_process_group)
    two_gpus.setattr(dist, "get_rank", lambda group=None: 1)
    two_gpus.setattr(dist, "get_world_size", lambda group=None: 2)
    group = Distributed.from_environment(torch.device("cuda", 1), timeout_minutes=45)
    assert group.active and group.rank == 1 and calls["set_device"] == torch.device("cuda", 1)
    assert calls["init"] == {"backend": "nccl", "timeout": timedelta(minutes=45), "device_id": torch.device("cuda", 1)}
    two_gpus.setattr(dist, "get_backend", lambda group=None: "nccl")
    two_gpus.setattr(torch.cuda, "current_device", lambda: 1)
    two_gpus.setattr(dist, "barrier", lambda **options: calls.setdefault("barriers", []).append(options))
    two_gpus.setattr(dist, "destroy_process_group", lambda: calls.setdefault("destroyed", True))
    barrier()
    leave_process_group()  # after an error every rank raised: wait for the others, on this rank's GPU
    assert calls["barriers"] == [{"device_ids": [1]}, {"device_ids": [1]}] and calls["destroyed"]
    two_gpus.setattr(dist, "get_backend", lambda group=None: "gloo")
    barrier()
    assert calls["barriers"][-1] == {}


def test_one_process_under_torchrun_joins_a_group_and_one_without_it_does_not(monkeypatch):
    import torch.distributed as dist

    joined = []
    monkeypatch.setattr(dist, "is_initialized", lambda: bool(joined))
    monkeypatch.setattr(dist, "init_process_group", lambda **options: joined.append(options))
    monkeypatch.setattr(dist, "get_rank", lambda group=None: 0)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 1)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    under_torchrun(monkeypatch, 1, 0)
    assert not Distributed.from_environment(torch.device("cpu"), 30).active and not joined
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")  # torchrun --nproc_per_node 1
    assert Distributed.from_environment(torch.device("cpu"), 30).active and joined[0]["backend"] == "gloo"


def test_one_process_takes_the_gpu_it_is_given(two_gpus):
    assert pick_device("auto") == torch.device("cuda", 0)
    assert pick_device("cuda") == torch.device("cuda", 0)
    assert pick_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(UsageError, match="only 2 CUDA device"):
        pick_device("cuda:2")


@pytest.mark.parametrize("requested", ["auto", "cuda"])
def test_under_torchrun_each_rank_takes_the_gpu_of_its_local_rank(two_gpus, requested):
    for rank in (0, 1):
        under_torchrun(two_gpus, 2, rank)
        assert pick_device(requested) == torch.device("cuda", rank)


def test_under_torchrun_a_fixed_gpu_and_more_ranks_than_gpus_are_one_sentence(two_gpus):
    under_torchrun(two_gpus, 2, 1)
    with pytest.raises(UsageError, match="every process takes the GPU of its LOCAL_RANK; give --device cuda or auto"):
        pick_device("cuda:0")  # every rank on GPU 0
    under_torchrun(two_gpus, 4, 3)
    for requested in ("auto", "cuda"):
        with pytest.raises(
            CharnnError, match="started 4 processes on this machine, but it has 2 CUDA GPU.*--nproc_per_node 2"
        ):
            pick_device(requested)
    # two machines of two GPUs: the local rank counts, not the global one
    under_torchrun(two_gpus, 4, 1, local_world=2)
    assert cuda_device(None, "cuda") == torch.device("cuda", 1)


def test_without_cuda_the_cpu_and_clear_errors():
    assert pick_device("auto") == torch.device("cpu")
    with pytest.raises(UsageError, match="no CUDA GPU is available"):
        pick_device("cuda")


# ----- precision ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "capability, auto", [((7, 5), "fp32"), ((7, 0), "fp32"), ((8, 0), CUDA_AUTO), ((9, 0), CUDA_AUTO)]
)
def test_bf16_on_cuda_only_where_the_gpu_computes_it_natively(monkeypatch, capability, auto):
    # is_bf16_supported() says True on a Turing GPU too, which emulates bf16 more slowly than fp32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Some GPU")
    monkeypatch.setattr(charnn.device, "runs_bf16", lambda cell, device=None: True)  # cuDNN 9.13+
    gpu = torch.device("cuda", 0)
    assert resolve_precision("auto", gpu).name == auto
    assert resolve_precision("fp32", gpu).name == "fp32"
    if auto != "fp32":
        assert (
            resolve_precision("bf16", gpu).recurrent == "bf16"
        )  # cast outside autocast, never left to CUDA's autocast
    else:
        with pytest.raises(
            UsageError, match=r"Some GPU \(compute capability 7\.\d\) only emulates bf16.*--precision fp32"
        ):
            resolve_precision("bf16", gpu)
        with pytest.raises(
            UsageError, match="'runs/x' trained in bf16: continue it in fp32 with --resume --precision fp32"
        ):
            resolve_precision("bf16", gpu, resuming="runs/x")


def test_exact_fp32_turns_tf32_off_inside_and_restores_it():
    before = [getattr(owner, name) for owner, name, _ in tf32_switches()]
    with exact_fp32():
        assert [getattr(owner, name) for owner, name, _ in tf32_switches()] == [
            exact for _, _, exact in tf32_switches()
        ]
    assert [getattr(owner, name) for owner, name, _ in tf32_switches()] == before


def test_sampling_evaluation_and_probing_run_in_exact_fp32(monkeypatch):
    # the wrappers themselves: a stage that forgot exact_fp32 would sample in TF32 on an Ampere GPU
    from charnn.evaluate import evaluate_ids
    from charnn.probe.ablate import ablated_loss_sums
    from charnn.probe.record import record
    from charnn.sample import SampleOptions, generate

    vocab = Vocab(tuple("\nab"))
    model = new_model(ModelConfig(vocab_size=vocab.size, layers=1, hidden=4, embed=2)).eval()
    seen = []
    real_step = charnn.model.FastStepper.step

    def watching_step(self, *args, **kwargs):
        seen.append([getattr(owner, name) == exact for owner, name, exact in tf32_switches()])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(charnn.model.FastStepper, "step", watching_step)
    generate(model, vocab, SampleOptions(length=3, seed=1))
    preview_sample(model, vocab, 3, seed=1)
    assert seen and all(all(flags) for flags in seen)
    real_forward = model.forward

    def watching_forward(*args, **kwargs):
        seen.append([getattr(owner, name) == exact for owner, name, exact in tf32_switches()])
        return real_forward(*args, **kwargs)

    seen.clear()
    monkeypatch.setattr(model, "forward", watching_forward)
    evaluate_ids(model, torch.tensor([0, 1, 2, 1]), "cpu")
    assert seen and all(all(flags) for flags in seen)
    real_matmul = torch.addmm
    seen.clear()

    def watching_addmm(*args, **kwargs):
        seen.append([getattr(owner, name) == exact for owner, name, exact in tf32_switches()])
        return real_matmul(*args, **kwargs)

    monkeypatch.setattr(torch, "addmm", watching_addmm)
    record(model, np.array([0, 1, 2, 1]))
    ablated_loss_sums(model, np.array([0, 1, 2, 1]), 1, [None, 0], np.ones((1, 4), dtype=bool))
    assert seen and all(all(flags) for flags in seen)


def test_deterministic_kernels_switch_on_and_restore():
    before = (
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
    )
    with deterministic_kernels(True):
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert torch.are_deterministic_algorithms_enabled()
    assert (
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
    ) == before
    with deterministic_kernels(False):
        assert torch.backends.cudnn.benchmark  # the fastest kernel per shape, chosen by timing


def test_deterministic_after_cuda_was_used_without_the_cublas_setting_is_refused(monkeypatch):
    # cuBLAS reads CUBLAS_WORKSPACE_CONFIG when it makes its handle: set after CUDA's first use, it may be too late
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    with pytest.raises(CharnnError, match="used CUDA before charnn could set CUBLAS_WORKSPACE_CONFIG.*:4096:8"):
        with deterministic_kernels(True, cuda=True):
            pass
    with deterministic_kernels(True, cuda=False):  # a CPU run does not use cuBLAS
        pass
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # set before Python started: deterministic
    with deterministic_kernels(True, cuda=True):
        assert torch.are_deterministic_algorithms_enabled()
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    with deterministic_kernels(True, cuda=True):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"  # set before cuBLAS's first handle
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ


def test_deterministic_from_python_after_cuda_was_used_is_one_sentence_before_any_work(
    monkeypatch, tmp_path, code_file
):
    import charnn

    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)  # as after a notebook cell that used the GPU
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    with pytest.raises(CharnnError, match="start Python with CUBLAS_WORKSPACE_CONFIG=:4096:8"):
        charnn.train(corpus=str(code_file), out=str(tmp_path / "run"), deterministic=True, max_steps=2, progress=False)
    assert not (tmp_path / "run").exists()


def test_a_deterministic_run_trains_saves_the_flag_and_resumes_with_it(tmp_path, code_file):
    assert (
        main(
            [
                "train",
                "--corpus",
                str(code_file),
                "--out",
                str(tmp_path / "run"),
                "--cache-dir",
                str(tmp_path / "cache"),
                "--layers",
                "1",
                "--hidden",
                "8",
                "--embed",
                "4",
                "--batch-size",
                "4",
                "--seq-len",
                "8",
                "--max-steps",
                "4",
                "--eval-every",
                "2",
                "--deterministic",
                "--quiet",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["deterministic"] is True
    assert not torch.are_deterministic_algorithms_enabled()  # the run restored the process's settings
    assert main(["train", "--out", str(tmp_path / "run"), "--resume", "--max-steps", "6", "--quiet"]) == 0


# ----- random numbers ----------------------------------------------------------------------------------
def test_rng_snapshot_carries_the_gpu_state_on_cuda(monkeypatch):
    gpu_state = {"value": torch.tensor([7], dtype=torch.uint8)}
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device=None: gpu_state["value"].clone())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device=None: gpu_state.update(value=state.clone()))
    gpu = torch.device("cuda", 0)
    snapshot = rng_snapshot(gpu)
    assert set(snapshot) == {"cpu", "cuda"}
    expected = torch.rand(3)
    gpu_state["value"] = torch.tensor([9], dtype=torch.uint8)
    restore_rng(snapshot, gpu)
    assert torch.equal(torch.rand(3), expected) and int(gpu_state["value"][0]) == 7
    assert set(rng_snapshot(torch.device("cpu"))) == {"cpu"}
    restore_rng({"cpu": snapshot["cpu"], "cuda": None}, gpu)  # a run saved on a CPU continues on a GPU


def test_checkpoints_keep_a_random_state_per_rank_and_device(tmp_path, code_file):
    run_training(tiny_config(tmp_path, str(code_file)), progress=False)
    extra = load_checkpoint(tmp_path / "run" / "last.pt").extra
    assert len(extra["rng_per_rank"]) == 1 and set(extra["rng_per_rank"][0]) == {"cpu"}  # and "cuda" on a GPU


def test_resume_with_another_number_of_processes_starts_the_streams_afresh(tmp_path, code_file, capsys):
    run_training(tiny_config(tmp_path, str(code_file)), progress=False)
    last = tmp_path / "run" / "last.pt"
    checkpoint = load_checkpoint(last)
    meta = dict(checkpoint.meta, data_position={**checkpoint.meta["data_position"], "world": 2})
    save_checkpoint(last, meta, checkpoint.model_state, checkpoint.extra)
    capsys.readouterr()
    trainer = Trainer(tiny_config(tmp_path, str(code_file), max_steps=9), resume=True, progress=False)
    try:
        assert trainer.state is None and trainer.step == 6
    finally:
        trainer.close()
    assert "trained by 2 process(es), this run has 1" in capsys.readouterr().err


# ----- the loop waits for the device once per block -----------------------------------------------------
def test_the_tally_finds_the_first_step_that_was_not_finite():
    tally = StepTally(torch.device("cpu"))
    for step, (loss, norm) in enumerate([(2.0, 1.0), (3.0, float("inf")), (float("nan"), float("nan"))], start=11):
        tally.add(torch.tensor(loss), torch.tensor(norm), step)
    reading = tally.read()
    assert reading.steps == 3 and reading.failed_step == 12 and reading.failed_norm == float("inf")
    assert "at step 12" in reading.failure_text()
    tally.add(torch.tensor(1.0), torch.tensor(0.5), 14)
    tally.add(torch.tensor(2.0), torch.tensor(0.25), 15)
    reading = tally.read()
    assert not reading.failed and reading.mean_loss == 1.5 and reading.grad_norm == 0.25


def test_training_steps_never_read_the_device(tmp_path, code_file, monkeypatch):
    # reading a tensor's value (.item(), .tolist(), bool(), ...) makes the host wait for a GPU: a step reads none
    # (the tally is read once per block); tests/test_gpu.py checks the same with CUDA's own sync detector
    trainer = Trainer(tiny_config(tmp_path, str(code_file)), progress=False)
    try:
        trainer.train_step()
        reads = []
        for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__"):
            real = getattr(torch.Tensor, name)
            monkeypatch.setattr(
                torch.Tensor, name, lambda self, *a, _real=real, _name=name: reads.append(_name) or _real(self, *a)
            )
        for _ in range(3):
            trainer.train_step()
        assert reads == []
    finally:
        trainer.close()


# ----- several processes -------------------------------------------------------------------------------
def test_a_single_process_needs_no_process_group():
    dist = Distributed()
    assert dist.any(True, False) == (True, False)
    assert dist.on_main(lambda: 5) == 5
    with pytest.raises(CharnnError, match="disk full"):
        dist.on_main(lambda: (_ for _ in ()).throw(CharnnError("disk full")))


def test_the_fake_gpu_fails_what_a_gpu_would(fake_gpu):
    probs = torch.ones(2, 3, device=fake_gpu)
    with pytest.raises(RuntimeError, match="device type for generator"):
        torch.multinomial(probs, 1, generator=torch.Generator())  # a CPU generator for GPU probabilities
    assert torch.multinomial(probs, 1, generator=torch.Generator(device=fake_gpu)).shape == (2, 1)
    with pytest.raises(RuntimeError, match="device"):
        torch.zeros(3) + torch.zeros(3, device=fake_gpu)
    assert torch.zeros(3, device=fake_gpu).cpu().tolist() == [0.0, 0.0, 0.0]  # a copy to the host reads zeros


# ----- out of memory -------------------------------------------------------------------------------------
def out_of_memory(*args, **kwargs):
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.1 GiB total capacity)")


def last_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    return stderr.strip().splitlines()[-1]


TINY_RUN = [
    "--layers",
    "1",
    "--hidden",
    "8",
    "--embed",
    "4",
    "--batch-size",
    "4",
    "--seq-len",
    "8",
    "--quiet",
    "--device",
    "cpu",
]


def test_running_out_of_memory_while_training_or_validating_is_one_sentence_and_keeps_the_checkpoint(
    tmp_path, code_file, monkeypatch, capsys
):
    args = [
        "train",
        "--corpus",
        str(code_file),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--eval-every",
        "3",
        "--max-steps",
        "9",
        *TINY_RUN,
    ]
    real_step = Trainer.train_step

    def step_until_out_of_memory(self):
        return out_of_memory() if self.step == 4 else real_step(self)

    monkeypatch.setattr(Trainer, "train_step", step_until_out_of_memory)
    assert main([*args, "--out", str(tmp_path / "a")]) == 1
    assert last_line(capsys.readouterr().err) == (
        "charnn train: the CPU ran out of memory while training; lower --batch-size (now 4) or --seq-len (now 8)"
    )
    assert load_checkpoint(tmp_path / "a" / "last.pt").meta["step"] == 3  # the last evaluation's, intact
    monkeypatch.setattr(Trainer, "train_step", real_step)
    monkeypatch.setattr(charnn.run_state, "evaluate", out_of_memory)
    assert main([*args, "--out", str(tmp_path / "b")]) == 1
    assert (
        last_line(capsys.readouterr().err)
        == "charnn train: the CPU ran out of memory while validating; lower --batch-size (now 4)"
    )


def test_running_out_of_memory_while_sampling_evaluating_or_probing_is_one_sentence(
    tmp_path, code_file, monkeypatch, capsys
):
    import charnn.evaluate
    import charnn.probe.pipeline
    import charnn.sample

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
                "--max-steps",
                "2",
                "--eval-every",
                "2",
                *TINY_RUN,
            ]
        )
        == 0
    )
    capsys.readouterr()
    text = tmp_path / "text.py"
    text.write_text(code_file.read_text()[:3000])
    monkeypatch.setattr(charnn.sample, "generate", out_of_memory)
    monkeypatch.setattr(charnn.sample, "stream", out_of_memory)
    monkeypatch.setattr(charnn.evaluate, "evaluate_ids", out_of_memory)
    monkeypatch.setattr(charnn.probe.pipeline, "probe_text", out_of_memory)
    expected = {
        ("generate", "--num-samples", "3"): "the CPU ran out of memory while sampling; lower --num-samples (now 3)",
        ("generate",): "the CPU ran out of memory while sampling; lower the model's size: sample on --device cpu",
        (
            "eval",
            "--text",
            str(text),
        ): "the CPU ran out of memory while evaluating; lower the model's size: evaluate on --device cpu",
        ("probe", "--text", str(text), "--features", "code", "--max-chars", "2000"): (
            "the CPU ran out of memory while probing; lower --max-chars (now 2,000) or --random-units (now 100)"
        ),
    }
    for args, sentence in expected.items():
        assert main([args[0], "--run", run, *args[1:]]) == 1
        assert last_line(capsys.readouterr().err) == f"charnn {args[0]}: {sentence}"


def test_running_out_of_memory_anywhere_else_is_still_one_sentence(tmp_path, code_file, monkeypatch, capsys):
    import charnn.corpus_cache

    def no_memory(*args, **kwargs):
        raise RuntimeError("MPS backend out of memory (MPS allocated: 17.00 GB)")

    monkeypatch.setattr(charnn.corpus_cache, "load_corpus", no_memory)
    assert main(["corpus", str(code_file), "--no-cache"]) == 1
    assert last_line(capsys.readouterr().err) == (
        "charnn corpus: ran out of memory (MPS backend out of memory (MPS allocated: "
        "17.00 GB)); lower the batch, the text or the model, or use --device cpu"
    )
