"""charnn.checkpoint on its own: the round trip, which file a run directory gives, and refusals (hostile and
damaged files are covered end to end in test_reliability.py)."""

import io
import json
import pickle
import random
import shutil
import time
from pathlib import Path

import pytest
import torch
from helpers import TINY, assert_usable, cli, one_clear_line, small_code_file, tiny_config

from charnn.checkpoint import (
    CHECKPOINT_NAMES,
    FORMAT_NAME,
    FORMAT_VERSION,
    checkpoint_path,
    find_run_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from charnn.corpus import Vocab
from charnn.errors import CharnnError
from charnn.model import ModelConfig, new_model
from charnn.trainer import Trainer, run_training


def tiny_checkpoint(path, step=7, **meta):
    vocab = Vocab(tuple("\nab"))
    config = ModelConfig(vocab_size=vocab.size, layers=2, hidden=8, embed=4)
    torch.manual_seed(0)
    model = new_model(config)
    save_checkpoint(
        path,
        {"model": config.to_json(), "vocab": vocab.to_json(), "step": step, **meta},
        model.state_dict(),
        {"state_per_rank": [[torch.ones(2, 1, 8)]], "rng_per_rank": [{"cpu": torch.get_rng_state()}]},
    )
    return model


def test_a_checkpoint_round_trips_weights_meta_and_extra(tmp_path):
    model = tiny_checkpoint(tmp_path / "last.pt", note="hello")
    checkpoint = load_checkpoint(tmp_path / "last.pt")
    assert checkpoint.meta["step"] == 7 and checkpoint.meta["note"] == "hello"
    assert checkpoint.vocab.chars == ("\n", "a", "b") and checkpoint.model_config.hidden == 8
    assert torch.equal(checkpoint.extra["state_per_rank"][0][0], torch.ones(2, 1, 8))
    rebuilt = checkpoint.build_model()
    assert not rebuilt.training
    ids = torch.tensor([[0, 1, 2, 1]])
    assert torch.equal(rebuilt(ids)[0], model.eval()(ids)[0])
    assert not list(tmp_path.glob(".*.tmp"))  # written through a temporary file, renamed


def test_a_run_directory_gives_the_checkpoint_asked_for_else_the_other(tmp_path):
    assert CHECKPOINT_NAMES == ("best", "last") and checkpoint_path(tmp_path, "best") == tmp_path / "best.pt"
    tiny_checkpoint(tmp_path / "last.pt")
    assert find_run_checkpoint(tmp_path, "best") == tmp_path / "last.pt"
    tiny_checkpoint(tmp_path / "best.pt")
    assert find_run_checkpoint(tmp_path, "best") == tmp_path / "best.pt"
    assert find_run_checkpoint(tmp_path, "last") == tmp_path / "last.pt"
    (tmp_path / "empty").mkdir()
    with pytest.raises(CharnnError, match="holds no checkpoint"):
        find_run_checkpoint(tmp_path / "empty")
    with pytest.raises(CharnnError, match="does not exist; train one"):
        find_run_checkpoint(tmp_path / "nowhere")


def test_a_newer_format_and_a_directory_are_refused_in_one_sentence(tmp_path):
    tiny_checkpoint(tmp_path / "a.pt")
    payload = torch.load(tmp_path / "a.pt", weights_only=True)
    payload["version"] = FORMAT_VERSION + 1
    torch.save(payload, tmp_path / "newer.pt")
    with pytest.raises(CharnnError, match="written by a newer charnn"):
        load_checkpoint(tmp_path / "newer.pt")
    with pytest.raises(CharnnError, match="is a directory; give a .pt file, or the run directory as --run"):
        load_checkpoint(tmp_path)
    payload["version"] = FORMAT_VERSION
    payload["meta"] = json.dumps({"model": {"vocab_size": 3, "hidden": -1}, "vocab": ["\n", "a", "b"]})
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CharnnError, match="model config charnn cannot build"):
        load_checkpoint(tmp_path / "bad.pt")


@pytest.fixture
def code_file(tmp_path: Path) -> Path:
    return small_code_file(tmp_path)


class RunsCode:
    """Unpickling this calls exec: the marker file appears if a loader ever unpickles it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def small_model():
    from charnn.model import CharRNN, ModelConfig

    return CharRNN(ModelConfig(vocab_size=4, cell="gru", layers=1, hidden=4, embed=2, dropout=0.0))


def good_checkpoint(path, **changes) -> None:
    """A small valid checkpoint (to a path or a buffer), with any top-level field replaced."""
    model = small_model()
    payload = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "meta": json.dumps({"model": model.config.to_json(), "vocab": ["a", "b", "c"], "step": 1}),
        "model": model.state_dict(),
        "extra": {},
    }
    payload.update(changes)
    torch.save(payload, path)


def hostile_files(directory: Path, marker: Path) -> dict[str, Path]:
    files = {}

    def put(name: str, data: bytes | None = None, **changes) -> None:
        files[name] = directory / f"{name}.pt"
        if data is None:
            good_checkpoint(files[name], **changes)
        else:
            files[name].write_bytes(data)

    buffer = io.BytesIO()
    torch.save({"format": FORMAT_NAME, "version": 1, "meta": RunsCode(marker)}, buffer)
    put("code in a torch file", buffer.getvalue())
    put("code in a plain pickle", pickle.dumps(RunsCode(marker)))
    buffer = io.BytesIO()
    good_checkpoint(buffer)
    put("truncated", buffer.getvalue()[: len(buffer.getvalue()) // 2])
    put("random bytes", random.Random(0).randbytes(4096))
    put("empty", b"")
    buffer = io.BytesIO()
    torch.save(torch.zeros(3), buffer)
    put("a tensor", buffer.getvalue())
    buffer = io.BytesIO()
    torch.save({"weights": torch.zeros(3)}, buffer)
    put("someone else's dict", buffer.getvalue())
    put("newer format", version=FORMAT_VERSION + 1)
    put("no version", version=None)
    huge = {"vocab_size": 4, "cell": "lstm", "layers": 4, "hidden": 10**7, "embed": 10**6, "dropout": 0.0}
    put("config asking for petabytes", meta=json.dumps({"model": huge, "vocab": ["a", "b", "c"]}))
    put("weights of the wrong shape", model={"embedding.weight": torch.zeros(4, 3)})
    put("NaN weights", model={k: torch.full_like(v, float("nan")) for k, v in small_model().state_dict().items()})
    put(
        "vocabulary and model disagree",
        meta=json.dumps(
            {
                "model": {"vocab_size": 9, "cell": "gru", "layers": 1, "hidden": 4, "embed": 2, "dropout": 0.0},
                "vocab": ["a", "b", "c"],
            }
        ),
    )
    put(
        "config of the wrong type",
        meta=json.dumps({"model": {"vocab_size": 4, "dropout": "lots"}, "vocab": ["a", "b", "c"]}),
    )
    put("meta not JSON", meta="{not json")
    buffer = io.BytesIO()  # weights of 0.25, one of which gets a flipped bit: 0.25 -> 1.7e38, still a finite number
    good_checkpoint(buffer, model={k: torch.full_like(v, 0.25) for k, v in small_model().state_dict().items()})
    data = bytearray(buffer.getvalue())
    quarter = data.index(torch.tensor([0.25]).numpy().tobytes())
    data[quarter + 3] |= 0x40
    put("a flipped bit in a weight", bytes(data))
    return files


EXPECTED_REASON = {
    "code in a torch file": "could run code",
    "code in a plain pickle": "never unpickles",
    "truncated": "truncated or damaged",
    "random bytes": "not a PyTorch zip archive",
    "empty": "empty",
    "a tensor": "not a charnn checkpoint",
    "someone else's dict": "not a charnn checkpoint",
    "newer format": "newer charnn",
    "no version": "format version is None",
    "config asking for petabytes": "do not fit",
    "weights of the wrong shape": "do not fit",
    "NaN weights": "NaN or infinite",
    "vocabulary and model disagree": "outputs for a vocabulary",
    "config of the wrong type": "cannot build",
    "meta not JSON": "damaged",
    "a flipped bit in a weight": "fails its checksum",
}


def test_hostile_and_broken_checkpoints_are_refused_clearly(tmp_path):
    marker = tmp_path / "PWNED"
    files = hostile_files(tmp_path, marker)
    assert set(files) == set(EXPECTED_REASON)
    for name, path in files.items():
        started = time.monotonic()
        with pytest.raises(CharnnError) as refused:
            load_checkpoint(path)
        assert EXPECTED_REASON[name] in str(refused.value), (name, str(refused.value))
        assert str(path) in str(refused.value)
        assert time.monotonic() - started < 10, name  # the petabyte config allocates nothing
    assert not marker.exists()


@pytest.mark.slow
def test_hostile_checkpoints_through_generate_eval_and_resume(tmp_path, code_file):
    marker = tmp_path / "PWNED"
    files = hostile_files(tmp_path, marker)
    assert (
        cli(
            "train",
            "--corpus",
            str(code_file),
            "--out",
            "run",
            "--max-steps",
            "2",
            "--eval-every",
            "2",
            "--cache-dir",
            "cache",
            *TINY,
            cwd=tmp_path,
        ).returncode
        == 0
    )
    for name in ("code in a torch file", "code in a plain pickle", "config asking for petabytes"):
        for command in (
            ["generate", "--checkpoint", str(files[name]), "--length", "5"],
            ["eval", "--checkpoint", str(files[name]), "--text", str(code_file)],
        ):
            result = cli(*command, cwd=tmp_path)
            assert result.returncode == 1
            assert EXPECTED_REASON[name] in one_clear_line(result.stderr)
        shutil.copy(files[name], tmp_path / "run" / "last.pt")
        resumed = cli("train", "--out", "run", "--resume", "--quiet", cwd=tmp_path)
        assert resumed.returncode == 1 and EXPECTED_REASON[name] in one_clear_line(resumed.stderr)
    assert not marker.exists()


def test_a_checkpoint_with_a_damaged_training_state_refuses_to_resume(tmp_path, code_file):
    run_training(tiny_config(tmp_path, code_file, max_steps=5), progress=False)
    last = tmp_path / "run" / "last.pt"
    payload = torch.load(last, weights_only=True)
    payload["extra"]["optimizer"]["state"][0]["exp_avg"] = torch.zeros(3)
    torch.save(payload, last)
    with pytest.raises(CharnnError, match="damaged and cannot be resumed"):
        Trainer(tiny_config(tmp_path, code_file, max_steps=10), resume=True, progress=False)
    assert_usable(last)  # still fine for sampling
