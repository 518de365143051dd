"""Sampling throughput: generate() against nn.LSTM called once per character; bf16 against fp32."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from charnn.bench.settings import SAMPLE_VOCAB, BenchSettings
from charnn.bench.timing import interleaved
from charnn.device import timed
from charnn.errors import CharnnError


# ----- sampling ----------------------------------------------------------------------------------
def sample_model(
    layers: int, hidden: int, vocab_size: int, seed: int = 0, device: torch.device = torch.device("cpu")
) -> Any:
    """A randomly initialised CharRNN in eval mode (speed does not depend on the weights)."""
    from charnn.model import ModelConfig, new_model

    torch.manual_seed(seed)
    return new_model(
        ModelConfig(vocab_size=vocab_size, layers=layers, hidden=hidden, embed=64, dropout=0.0), device
    ).eval()


@torch.no_grad()
def naive_sample(model: Any, streams: int, length: int, seed: int = 0, temperature: float = 1.0) -> list[list[int]]:
    """The baseline sampler: nn.LSTM called once per character, then decoder, softmax and multinomial."""
    device = model.decoder.weight.device
    generator = torch.Generator(device=device).manual_seed(seed)
    ids = torch.zeros(streams, dtype=torch.long, device=device)
    state = None
    out: list[list[int]] = []
    for _ in range(length):
        hidden, state = model.rnn(model.embedding(ids[:, None]), state)  # (B, 1, H)
        logits = model.decoder(hidden[:, -1])  # (B, V)
        ids = torch.multinomial(torch.softmax(logits / temperature, dim=1), 1, generator=generator).squeeze(1)
        out.append(ids.tolist())
    return out


def charnn_sample(
    model: Any, vocab: Any, streams: int, length: int, seed: int = 0, precision: str = "fp32"
) -> list[str]:
    """charnn's sampler, as `charnn generate` runs it."""
    from charnn.sample import SampleOptions, generate

    return generate(
        model,
        vocab,
        SampleOptions(length=length, temperature=1.0, seed=seed, num_samples=streams, echo=False, precision=precision),
    )


def has_fast_bf16(device: torch.device) -> bool:
    """Whether `generate --precision bf16` runs on this device (hardware bf16)."""
    from charnn.device import cpu_has_fast_bf16, cuda_has_native_bf16

    return cpu_has_fast_bf16() if device.type == "cpu" else device.type == "cuda" and cuda_has_native_bf16(device)


@torch.no_grad()
def bf16_divergence(model: Any, streams: int = 64, steps: int = 200, seed: int = 0) -> dict:
    """How far bf16 sampling's next-character distributions are from fp32's: both steps from the same fp32 state
    along a trajectory sampled in fp32 (temperature 1); KL(fp32 || bf16) in nats per step, and how often the most
    likely character is the same."""
    from charnn.model import FastStepper

    exact, approximate = FastStepper(model), FastStepper(model, torch.bfloat16)
    device = model.decoder.weight.device
    generator = torch.Generator(device=device).manual_seed(seed)
    state = model.init_state(streams, device)
    ids = torch.zeros(streams, dtype=torch.long, device=device)
    kls, same = [], []
    for _ in range(steps):
        logits, next_state = exact.step(ids, state)
        other, _ = approximate.step(ids, state)
        log_p, log_q = torch.log_softmax(logits, 1), torch.log_softmax(other, 1)
        kls.append((log_p.exp() * (log_p - log_q)).sum(1))
        same.append(logits.argmax(1) == other.argmax(1))
        state = next_state
        ids = torch.multinomial(log_p.exp(), 1, generator=generator).squeeze(1)
    kl = torch.cat(kls)
    return {
        "streams": streams,
        "steps": steps,
        "mean_kl_nats": float(kl.mean()),
        "max_kl_nats": float(kl.max()),
        "same_argmax_share": float(torch.cat(same).float().mean()),
    }


def measure_sampling(
    settings: BenchSettings, status: Callable[[str], None], device: torch.device = torch.device("cpu")
) -> dict:
    """generate() vs the one-step nn.LSTM loop, with 1 stream and with many, interleaved."""
    from charnn.corpus import Vocab

    vocab = Vocab(SAMPLE_VOCAB)
    model = sample_model(settings.sample_layers, settings.sample_hidden, vocab.size, device=device)
    result: dict[str, Any] = {"model": f"{settings.sample_layers}×{settings.sample_hidden}", "vocab": vocab.size}
    for label, streams, length in (
        ("single", 1, settings.sample_chars),
        ("batched", settings.sample_streams, settings.sample_steps_batched),
    ):
        charnn_sample(model, vocab, streams, 5)  # warm-up
        naive_sample(model, streams, 5)
        pairs = interleaved(
            lambda: streams * length / timed(lambda: charnn_sample(model, vocab, streams, length), device),
            lambda: streams * length / timed(lambda: naive_sample(model, streams, length), device),
            settings,
            status,
            f"sampling {streams} stream(s) on {device.type}",
        )
        result[label] = {
            "streams": streams,
            "chars_per_stream": length,
            "charnn_chars_per_s": pairs["charnn"],
            "naive_chars_per_s": pairs["baseline"],
            "ratio": pairs["ratio"],
            "others_cpu_share_per_repeat": pairs["others_cpu_share_per_repeat"],
            "disturbed_pairs": pairs["disturbed_pairs"],
        }
        if has_fast_bf16(device):  # generate --precision bf16 beside fp32, interleaved the same way
            charnn_sample(model, vocab, streams, 5, precision="bf16")
            pairs = interleaved(
                lambda: (
                    streams
                    * length
                    / timed(lambda: charnn_sample(model, vocab, streams, length, precision="bf16"), device)
                ),
                lambda: streams * length / timed(lambda: charnn_sample(model, vocab, streams, length), device),
                settings,
                status,
                f"sampling {streams} stream(s) in bf16 on {device.type}",
            )
            result[label]["bf16"] = {
                "charnn_chars_per_s": pairs["charnn"],
                "fp32_chars_per_s": pairs["baseline"],
                "ratio": pairs["ratio"],
                "others_cpu_share_per_repeat": pairs["others_cpu_share_per_repeat"],
                "disturbed_pairs": pairs["disturbed_pairs"],
            }
    if device.type == "cuda":  # each wait for the GPU stalls the queue of kernels: the sampler reads ids in blocks
        for label, streams in (("single", 1), ("batched", settings.sample_streams)):
            syncs = host_syncs(lambda: charnn_sample(model, vocab, streams, settings.sample_steps_batched))
            result[label]["host_syncs_per_char"] = syncs / settings.sample_steps_batched
    if has_fast_bf16(device):
        trained, source = divergence_model(settings, device)
        result["bf16_divergence"] = {
            **bf16_divergence(model if trained is None else trained, settings.sample_streams),
            "model": source,
        }
    return result


def host_syncs(work: Callable[[], Any]) -> int:
    """How many times work made the host wait for the GPU (CUDA's sync debug mode warns once per wait)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            work()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchronizing" in str(warning.message) for warning in caught)


def divergence_model(settings: BenchSettings, device: torch.device) -> tuple[Any, str]:
    """The trained model bf16 sampling is compared on (--divergence-run, else the newest run), and what it is;
    (None, why) when there is none: an untrained model's near-uniform distributions would understate the divergence."""
    from charnn.sample import resolve_checkpoint

    try:
        checkpoint = resolve_checkpoint(settings.divergence_run, runs_dir=settings.runs_dir)
    except CharnnError:
        if settings.divergence_run:
            raise
        return None, (
            f"random {settings.sample_layers}×{settings.sample_hidden} weights (no trained run under "
            f"{settings.runs_dir}/; --divergence-run RUN gives the real figure)"
        )
    model = checkpoint.build_model(device).eval()
    config = model.config
    return model, f"{checkpoint.path} ({config.layers}×{config.hidden} {config.cell.upper()}, trained)"
