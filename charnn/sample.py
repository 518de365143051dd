"""Generation from a checkpoint: temperature, top-k/top-p, priming, seeds, many streams, stop strings,
clamped units, and output streamed as it is produced.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

from charnn.cells import Hold, held
from charnn.checkpoint import Checkpoint, find_run_checkpoint, load_checkpoint
from charnn.corpus import Vocab
from charnn.device import cpu_has_fast_bf16, cuda_has_native_bf16, exact_fp32
from charnn.errors import CharnnError, UsageError
from charnn.model import CharRNN, FastStepper, State, next_ids
from charnn.sample_options import Clamp, SampleOptions  # noqa: F401 - where sampling's callers have always found them


def find_latest_run(runs_dir: str | Path = "runs") -> Path:
    """The most recently written run directory under runs_dir that holds a checkpoint."""
    runs_dir = Path(runs_dir)
    candidates = (
        [p.parent for p in runs_dir.glob("*/*.pt") if p.name in ("best.pt", "last.pt")] if runs_dir.is_dir() else []
    )
    if not candidates:
        raise CharnnError(
            f"no trained run found under '{runs_dir}/'; train one with: python train.py (or pass --run or --checkpoint)"
        )
    return max(candidates, key=lambda d: max(p.stat().st_mtime for p in d.glob("*.pt")))


def resolve_checkpoint(
    run: str | None = None, checkpoint: str | None = None, which: str = "best", runs_dir: str | Path = "runs"
) -> Checkpoint:
    """Load the checkpoint a user named: --checkpoint FILE, --run DIR (best or last), or the newest run."""
    if which not in ("best", "last"):
        raise UsageError(f"--which must be best or last, not '{which}'")
    if checkpoint and run:
        raise UsageError("give --run or --checkpoint, not both")
    if checkpoint:
        return load_checkpoint(checkpoint)
    run_dir = Path(run) if run else find_latest_run(runs_dir)
    return load_checkpoint(find_run_checkpoint(run_dir, which))


MODULE_STEP_STREAMS = (
    16  # without oneDNN, from this many streams on nn.LSTM's own kernel beats an addmm step (charnn bench)
)


def step_function(
    model: CharRNN, streams: int, holds: Sequence[Hold | None] = (), precision: str = "fp32"
) -> Callable[[torch.Tensor, State], tuple[torch.Tensor, State]]:
    """One step (ids (B,), state) -> (logits (B, V), state): the hand-written step, except for many streams
    where its products cannot go through oneDNN (there nn.LSTM's own kernel is faster). Held (clamped) units are
    held inside the hand-written step, where every layer and the decoder see them, so clamping always takes it,
    and so does bf16 (its products in bf16, the rest in fp32)."""
    stepper = FastStepper(model, torch.bfloat16 if precision == "bf16" else torch.float32)
    if holds or precision == "bf16" or streams < MODULE_STEP_STREAMS or stepper.decoder.packed is not None:
        return lambda ids, state: stepper.step(ids, state, holds)

    def module_step(ids: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        logits, state = model(ids[:, None], state)
        return logits[:, -1], state

    return module_step


def clamp_holds(clamps: Sequence[Clamp], model: CharRNN) -> list[Hold | None]:
    """Per layer, the charnn.cells.Hold of the clamps (layers counted from 1, resolved); [] without clamps."""
    if not clamps:
        return []
    cfg, device = model.config, next(model.parameters()).device
    holds: list[Hold | None] = []
    for layer in range(1, cfg.layers + 1):
        hold = Hold()
        for state in ("h", "c"):
            values = {clamp.unit: clamp.value for clamp in clamps if clamp.layer == layer and clamp.state == state}
            if values:
                keep, fill = Hold.units(cfg.hidden, values, device)
                setattr(hold, f"keep_{state}", keep)
                setattr(hold, f"fill_{state}", fill)
        holds.append(hold if hold.keep_h is not None or hold.keep_c is not None else None)
    return holds


def apply_holds(state: State, holds: Sequence[Hold | None]) -> State:
    """The state with every held unit at its value (the state the first step starts from)."""
    if not holds:
        return state
    state = tuple(s.clone() for s in state)
    for layer, hold in enumerate(holds):
        if hold is not None:
            state[0][layer] = held(state[0][layer], hold.keep_h, hold.fill_h)
            if len(state) > 1:
                state[1][layer] = held(state[1][layer], hold.keep_c, hold.fill_c)
    return state


@torch.no_grad()
def warm_up(
    model: CharRNN, prime_ids: torch.Tensor, streams: int, holds: Sequence[Hold | None]
) -> tuple[torch.Tensor, State]:
    """Run the model over all but the last priming character; returns the first inputs (B,) and the state."""
    device = next(model.parameters()).device
    state = apply_holds(model.init_state(streams, device), holds)
    if len(prime_ids) > 1:
        context = prime_ids[:-1].to(device).unsqueeze(0).expand(streams, -1)
        if holds:  # clamping has to act at every step, so walk the priming text one step at a time
            stepper = FastStepper(model)
            for t in range(context.size(1)):
                _, state = stepper.step(context[:, t], state, holds)
        else:
            _, state = model(context, state)
    first = prime_ids[-1:].to(device).expand(streams).clone()
    return first, state


def check_bf16_products(precision: str, device: torch.device, work: str = "sample") -> None:
    """Refuse bf16 products where the hardware only emulates bf16 (slower than fp32), in one sentence; work says
    what would run in fp32 instead (sample, probe)."""
    if precision != "bf16":
        return
    if device.type == "cpu" and not cpu_has_fast_bf16():
        raise UsageError(
            "--precision bf16: this CPU has no bf16 unit (AVX-512 BF16 or AMX), so its bf16 products would be "
            f"slower than fp32; {work} in fp32 (the default)"
        )
    if device.type == "cuda" and not cuda_has_native_bf16(device):
        raise UsageError(
            "--precision bf16: this GPU only emulates bf16 (native bf16 needs compute capability 8.0 or newer); "
            f"{work} in fp32 (the default)"
        )
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--precision bf16 runs on cpu and cuda, not on {device.type}; {work} in fp32 (the default)")


BLOCK_CHARS = 256  # without streaming or --stop, sampled ids stay on the device and are read this many steps at a time


class Sampler:
    """The streams of one sampling call: validated options, the warmed-up state, and `next()`, which draws the
    next character of every stream (ids (B,) on the model's device). Each call computes in no_grad and exact
    fp32 and leaves both as they were, so a caller may do anything between two characters."""

    def __init__(self, model: CharRNN, vocab: Vocab, options: SampleOptions):
        options.validate(model)
        self.model, self.vocab, self.options = model, vocab, options
        self.holds = clamp_holds([clamp.resolved(model.config.layers) for clamp in options.clamps], model)
        model.eval()
        seed = options.seed if options.seed is not None else random.SystemRandom().randrange(2**31)
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        if options.prime:
            prime_ids = torch.from_numpy(
                vocab.encode(options.prime, unknown=options.unknown, source="the priming text").astype("int64")
            )
        else:
            start = "\n" if "\n" in vocab.chars else vocab.chars[0]
            prime_ids = torch.tensor([vocab.chars.index(start)], device="cpu")
        self.streams = options.num_samples
        with torch.no_grad(), exact_fp32():
            self.inputs, self.state = warm_up(model, prime_ids, self.streams, self.holds)
        check_bf16_products(options.precision, self.device)
        self.step = step_function(model, self.streams, self.holds, options.precision)

    def next(self) -> torch.Tensor:
        """The next character id of every stream."""
        options = self.options
        with torch.no_grad(), exact_fp32():
            logits, self.state = self.step(self.inputs, self.state)
            self.inputs = next_ids(
                logits, options.temperature, options.top_k, options.top_p, self.generator, banned=self.vocab.unknown_id
            )
        return self.inputs


def stream(model: CharRNN, vocab: Vocab, options: SampleOptions) -> Iterator[tuple[int, str]]:
    """(stream, text) pieces as they are produced: the priming text first (with echo), then one character at a
    time; a stream that produced options.stop says no more, and the whole ends when every stream has."""
    sampler = Sampler(model, vocab, options)
    if options.echo and options.prime:
        for s in range(sampler.streams):
            yield s, options.prime
    chars = vocab.chars
    generated = [""] * sampler.streams
    done = [False] * sampler.streams
    for _ in range(options.length):
        for s, char_id in enumerate(sampler.next().tolist()):
            if done[s]:
                continue
            char = chars[char_id]
            generated[s] += char
            yield s, char
            if options.stop and generated[s].endswith(options.stop):
                done[s] = True
        if all(done):
            return


def generate(
    model: CharRNN,
    vocab: Vocab,
    options: SampleOptions,
    on_text: Callable[[int, str], None] | None = None,
) -> list[str]:
    """Sample options.num_samples streams together; on_text(stream, text) receives text as it is produced.

    The sampled ids stay on the model's device; the host reads them every step only when it has to look
    at each character (on_text, or options.stop), else once every BLOCK_CHARS steps, so a GPU is not made
    to wait for the host once per character. The same seed gives the same text either way.
    """
    streams = options.num_samples
    if on_text is not None or options.stop is not None:
        texts = [""] * streams
        for s, piece in stream(model, vocab, options):
            texts[s] += piece
            if on_text:
                on_text(s, piece)
        return texts
    sampler = Sampler(model, vocab, options)
    texts = [options.prime if options.echo else "" for _ in range(streams)]
    block = torch.empty(min(BLOCK_CHARS, max(options.length, 1)), streams, dtype=torch.long, device=sampler.device)
    for position in range(options.length):
        block[position % len(block)] = sampler.next()
        if (position + 1) % len(block) == 0 or position + 1 == options.length:
            rows = block[: position % len(block) + 1].T.tolist()  # (streams, chars)
            for s in range(streams):
                texts[s] += vocab.decode(rows[s])
    return texts
