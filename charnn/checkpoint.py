"""One checkpoint format: tensors plus a JSON document, written atomically, loaded without running code.

A checkpoint is a dict of plain tensors and containers saved with ``torch.save``; everything that is
not a tensor (model config, vocabulary, training config, metrics, data position) is one JSON string
inside it. Loading accepts only torch's zip format and reads it with ``torch.load(weights_only=True)``,
which refuses any pickled object, so a hostile file cannot execute code; the weights are then checked
against the saved config (shapes, finite values) before a model is built, so a hostile config cannot
make charnn allocate more than the file holds. Files are written to a temporary name, synced, then
renamed: a crash at any moment leaves either the old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from charnn.atomic import atomic_write_bytes
from charnn.corpus import Vocab
from charnn.errors import CharnnError, UsageError
from charnn.model import CharRNN, ModelConfig, new_model

FORMAT_NAME = "charnn-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_NAMES = ("best", "last")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive; anything else is never handed to an unpickler


@dataclass
class Checkpoint:
    """What a checkpoint file holds, loaded to CPU."""

    path: Path
    meta: dict[str, Any]  # JSON: model, vocab, train config, step, metrics, data position
    model_state: dict[str, torch.Tensor]
    extra: dict[str, Any]  # optimizer state, RNG states, carried hidden state

    @property
    def model_config(self) -> ModelConfig:
        """The saved model shape."""
        return ModelConfig.from_json(self.meta["model"])

    @property
    def vocab(self) -> Vocab:
        """The saved vocabulary."""
        return Vocab.from_json(self.meta["vocab"])

    def build_model(self, device: torch.device | str = "cpu") -> CharRNN:
        """A CharRNN with the saved weights, in eval mode, on device."""
        model = new_model(self.model_config)  # on the CPU, where the weights were loaded
        try:
            model.load_state_dict(self.model_state)
        except (RuntimeError, KeyError) as err:
            first = str(err).strip().splitlines()[0]
            raise CharnnError(f"'{self.path}' has weights that do not fit its own model config ({first})") from None
        return model.to(device).eval()


def checkpoint_path(run_dir: str | Path, which: str = "best") -> Path:
    """Where checkpoint `which` (best or last) of a run lives."""
    return Path(run_dir) / f"{which}.pt"


def save_checkpoint(path: str | Path, meta: dict, model_state: dict, extra: dict | None = None) -> None:
    """Write a checkpoint atomically (charnn.atomic: temp file, fsync, rename, fsync the directory)."""
    path = Path(path)
    payload = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "meta": json.dumps(meta),
        "model": {k: v.detach().cpu() for k, v in model_state.items()},
        "extra": extra or {},
    }
    # Serialised in memory first: torch's zip writer reports a full disk as a cryptic RuntimeError,
    # a plain file write reports it as OSError(ENOSPC).
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    existed = path.is_file()
    try:
        atomic_write_bytes(path, buffer.getbuffer())
    except OSError as err:
        kept = "the previous checkpoint there is intact" if existed else "no checkpoint was written there"
        raise CharnnError(f"could not write checkpoint '{path}' ({err.strerror or err}); {kept}") from None


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load and check a checkpoint file; anything else (pickle payload, truncated, foreign) is a clear error."""
    path = Path(path)
    if path.is_dir():
        raise CharnnError(f"checkpoint '{path}' is a directory; give a .pt file, or the run directory as --run {path}")
    if not path.is_file():
        raise CharnnError(f"checkpoint '{path}' does not exist")
    try:  # read once: the magic, the archive's CRC-32s and torch.load all work on these bytes
        data = path.read_bytes()
    except OSError as err:
        raise CharnnError(f"cannot read checkpoint '{path}': {err.strerror or err}") from None
    if not data:
        raise CharnnError(f"'{path}' is not a readable charnn checkpoint: the file is empty")
    if data[: len(ZIP_MAGIC)] != ZIP_MAGIC:
        raise CharnnError(
            f"'{path}' is not a readable charnn checkpoint: it is not a PyTorch zip archive, and charnn never "
            "unpickles anything else"
        )
    try:  # torch.load does not check the archive's CRC-32s: a flipped byte in a weight would load as a wrong number
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            damaged_entry = archive.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError):
        raise CharnnError(f"'{path}' is not a readable charnn checkpoint: the file is truncated or damaged") from None
    if damaged_entry is not None:
        raise CharnnError(f"'{path}' is a damaged charnn checkpoint: its part '{damaged_entry}' fails its checksum")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols; the error below says all
            payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for bad files; none of them may escape as a traceback
        text = str(err)
        reason = text.strip().splitlines()[0] if text.strip() else type(err).__name__
        if "GLOBAL" in text or "Unsupported global" in text:
            reason = "it holds Python objects that could run code, which charnn never loads"
        elif "weights_only" in text or "zip archive" in text or "central directory" in text:
            reason = "the file is truncated or damaged"
        raise CharnnError(f"'{path}' is not a readable charnn checkpoint: {reason[:200]}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise CharnnError(f"'{path}' is a PyTorch file but not a charnn checkpoint")
    version = payload.get("version")
    if type(version) is not int or version < 1:
        raise CharnnError(f"'{path}' is a damaged charnn checkpoint: its format version is {version!r}")
    if version > FORMAT_VERSION:
        raise CharnnError(
            f"'{path}' was written by a newer charnn (checkpoint format {version}); this version reads up to "
            f"{FORMAT_VERSION}"
        )
    try:
        meta = json.loads(payload["meta"])
        model_state = payload["model"]
        extra = payload.get("extra", {})
        if not isinstance(meta, dict) or not isinstance(model_state, dict) or not isinstance(extra, dict):
            raise TypeError("wrong layout")
        for key in ("model", "vocab"):
            if key not in meta:
                raise KeyError(key)
    except (KeyError, TypeError, ValueError) as err:
        raise CharnnError(f"'{path}' is a damaged charnn checkpoint ({type(err).__name__}: {err})") from None
    checkpoint = Checkpoint(path, meta, model_state, extra)
    check_weights(checkpoint)
    return checkpoint


def check_weights(checkpoint: Checkpoint) -> None:
    """Refuse a config that cannot be built or weights that do not fit it, before any large allocation."""
    path = checkpoint.path
    try:
        config = checkpoint.model_config
    except (
        TypeError,
        ValueError,
        UsageError,
    ) as err:  # a UsageError from ModelConfig names a flag; here it is the file
        raise CharnnError(f"'{path}' has a model config charnn cannot build ({err})") from None
    try:
        vocab = checkpoint.vocab
    except CharnnError as err:
        raise CharnnError(f"'{path}' is damaged: {err}") from None
    if config.vocab_size != vocab.size:
        raise CharnnError(
            f"'{path}' is damaged: its model has {config.vocab_size} outputs for a vocabulary of {vocab.size} ids"
        )
    with torch.device("meta"):  # shapes only: a hostile config asking for terabytes allocates nothing
        expected = {name: tuple(t.shape) for name, t in CharRNN(config).state_dict().items()}
    saved = checkpoint.model_state
    for name, shape in expected.items():
        tensor = saved.get(name)
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape or not tensor.is_floating_point():
            found = (
                "missing"
                if tensor is None
                else tuple(tensor.shape)
                if isinstance(tensor, torch.Tensor)
                else type(tensor).__name__
            )
            raise CharnnError(
                f"'{path}' has weights that do not fit its own model config ({name}: {found}, expected {shape})"
            )
        if not torch.isfinite(tensor).all():
            raise CharnnError(f"'{path}' is damaged: its weight {name} holds NaN or infinite values")
    unexpected = sorted(set(saved) - set(expected))
    if unexpected:
        raise CharnnError(f"'{path}' has weights its model config does not have: {', '.join(unexpected[:5])}")


def find_run_checkpoint(run_dir: str | Path, which: str = "best") -> Path:
    """The checkpoint file `which` (best or last) of a run directory, else the other one; a clear error when there is
    neither."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CharnnError(f"run directory '{run_dir}' does not exist; train one with: python train.py --out {run_dir}")
    order = [which] + [n for n in CHECKPOINT_NAMES if n != which]
    for name in order:
        candidate = checkpoint_path(run_dir, name)
        if candidate.is_file():
            return candidate
    raise CharnnError(
        f"'{run_dir}' holds no checkpoint (best.pt or last.pt); train one with: python train.py --out {run_dir}"
    )
