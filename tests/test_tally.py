"""Bad numbers stop the run, never the checkpoint: an exploding learning rate stops with last.pt good and
resumable; weights that went non-finite are never saved."""

from pathlib import Path

import pytest
import torch
from helpers import TINY, assert_usable, cli, final_error_line, small_code_file, tiny_config

from charnn.errors import CharnnError
from charnn.run_state import evaluate_and_save
from charnn.trainer import Trainer


@pytest.fixture
def code_file(tmp_path: Path) -> Path:
    return small_code_file(tmp_path)


# ================================================================ 6. numerics


def test_an_exploding_learning_rate_stops_and_last_stays_good_and_resumable(tmp_path, code_file):
    run = tmp_path / "run"
    args = ["train", "--corpus", str(code_file), "--out", "run", "--decay-steps", "1000", "--cache-dir", "cache", *TINY]
    assert cli(*args, "--max-steps", "6", "--eval-every", "3", cwd=tmp_path).returncode == 0
    good = (run / "last.pt").read_bytes()
    exploded = cli(
        *args,
        "--resume",
        "--max-steps",
        "1000",
        "--eval-every",
        "100",
        "--lr",
        "1e30",
        "--warmup-steps",
        "0",
        "--grad-clip",
        "1e30",
        cwd=tmp_path,
    )
    assert exploded.returncode == 1
    message = final_error_line(exploded.stderr)
    assert "became NaN" in message or "infinite" in message
    assert "keeps the last good state (step 6)" in message and "lower --lr" in message and "--resume" in message
    assert (run / "last.pt").read_bytes() == good
    assert_usable(run / "last.pt")
    again = cli(*args, "--resume", "--max-steps", "9", "--eval-every", "3", "--lr", "1e-3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert assert_usable(run / "last.pt")["step"] == 9


def test_an_explosion_before_the_first_checkpoint_can_start_again_with_resume(tmp_path, code_file):
    args = [
        "train",
        "--corpus",
        str(code_file),
        "--out",
        "run",
        "--cache-dir",
        "cache",
        "--max-steps",
        "6",
        "--eval-every",
        "3",
        *TINY,
    ]
    exploded = cli(*args, "--lr", "1e30", "--warmup-steps", "0", "--grad-clip", "1e30", cwd=tmp_path)
    assert exploded.returncode == 1
    assert "no checkpoint had been saved yet" in final_error_line(exploded.stderr)
    assert not (tmp_path / "run" / "last.pt").exists()
    again = cli(*args, "--resume", "--lr", "1e-3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert assert_usable(tmp_path / "run" / "last.pt")["step"] == 6


def test_weights_that_went_non_finite_are_never_saved(tmp_path, code_file):
    trainer = Trainer(tiny_config(tmp_path, code_file), progress=False)
    try:
        for _ in range(5):
            trainer.train_step()
        evaluate_and_save(trainer, None, trainer_bar())
        good = (tmp_path / "run" / "last.pt").read_bytes()
        with torch.no_grad():
            trainer.model.decoder.bias[0] = float("inf")  # an overflow the loss has not shown yet
        with pytest.raises(CharnnError, match="weights became NaN or infinite.*step 5"):
            evaluate_and_save(trainer, None, trainer_bar())
        assert (tmp_path / "run" / "last.pt").read_bytes() == good
    finally:
        trainer.close()


def trainer_bar():
    from tqdm import tqdm

    return tqdm(disable=True)
