"""What a model scores: bits and nats per character of a split or a text, in full fp32, and the short
sample a training run writes at each evaluation. Used by training, `charnn eval` and the probe's checks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from charnn.batches import DeviceBatches, StreamBatches
from charnn.corpus import Vocab
from charnn.device import exact_fp32, sum_dtype
from charnn.model import CharRNN, FastStepper, next_ids

LN2 = math.log(2)


@torch.no_grad()
@exact_fp32()
def evaluate(
    model: CharRNN, batches: StreamBatches | DeviceBatches, device: torch.device, max_chars: int | None = None
) -> dict:
    """Nats and bits per character over (a prefix of) a split, on its own streams and its own state."""
    was_training = model.training
    model.eval()
    state = None
    total_nats = torch.zeros((), dtype=sum_dtype(device), device=device)
    total_chars = 0
    steps = batches.steps_per_epoch
    if max_chars:
        steps = max(1, min(steps, max_chars // batches.chars_per_step))
    for step in range(steps):
        x, y = batches.batch(step)
        x, y = x.to(device), y.to(device)
        logits, state = model(x, state)
        total_nats += F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum")
        total_chars += y.numel()
    model.train(was_training)
    nats = total_nats.item() / total_chars  # the one wait for the device
    return {"nats_per_char": nats, "bits_per_char": nats / LN2, "chars": total_chars}


@torch.no_grad()
@exact_fp32()
def evaluate_ids(
    model: CharRNN, ids: torch.Tensor, device: torch.device, chunk: int = 4096, progress: bool = False
) -> dict:
    """Nats and bits per character of a whole text (ids (N,)) read as one stream, state carried across chunks."""
    model.eval()
    state = None
    total_nats = torch.zeros((), dtype=sum_dtype(device), device=device)
    targets = len(ids) - 1
    with tqdm(total=targets, desc="evaluating", unit="char", unit_scale=True, disable=not progress, leave=False) as bar:
        for start in range(0, targets, chunk):
            stop = min(start + chunk, targets)
            x = ids[start:stop].unsqueeze(0).to(device)
            y = ids[start + 1 : stop + 1].unsqueeze(0).to(device)
            logits, state = model(x, state)
            total_nats += F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1), reduction="sum")
            bar.update(stop - start)
    nats = total_nats.item() / max(targets, 1)
    return {"nats_per_char": nats, "bits_per_char": nats / LN2, "chars": targets}


@torch.no_grad()
@exact_fp32()
def preview_sample(model: CharRNN, vocab: Vocab, length: int, seed: int, temperature: float = 0.8) -> str:
    """A short sample from the model, on the model's device (its own generator: the training RNG is not touched)."""
    if length <= 0:
        return ""
    was_training = model.training
    model.eval()
    device = model.decoder.weight.device
    stepper = FastStepper(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    state = model.init_state(1)
    newline = vocab.chars.index("\n") if "\n" in vocab.chars else 0
    ids = torch.full((1,), newline, dtype=torch.long, device=device)
    out = torch.empty(length, dtype=torch.long, device=device)  # read once at the end, not once per character
    for position in range(length):
        logits, state = stepper.step(ids, state)
        ids = next_ids(logits, temperature, None, None, generator, banned=vocab.unknown_id)
        out[position] = ids[0]
    model.train(was_training)
    return vocab.decode(out.tolist())
