"""charnn.checkpoint on its own: the round trip, which file a run directory gives, and refusals (hostile and
damaged files are covered end to end in test_reliability.py)."""

import json

import pytest
import torch

from charnn.checkpoint import (
    CHECKPOINT_NAMES,
    FORMAT_VERSION,
    checkpoint_path,
    find_run_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from charnn.corpus import Vocab
from charnn.errors import CharnnError
from charnn.model import ModelConfig, new_model


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
