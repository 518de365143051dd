"""charnn from Python, for notebooks and scripts: train a model, load one, sample, evaluate, probe.

    import charnn
    run = charnn.train(corpus="my_code/", out="runs/mine", max_minutes=5)
    model = run.load()                       # or charnn.load("runs/mine")
    print(model.generate(prime="def ", length=200, seed=1))
    model.evaluate(open("held_out.py").read())["bits_per_char"]
    probe = model.probe(open("held_out.py").read(), features="code")
    probe                                    # in Jupyter: the explorer, inline

The settings and defaults are the command line's (a flag --max-minutes is the keyword max_minutes), and
bad input raises charnn.CharnnError (charnn.UsageError for a value out of range) with the sentence the
command line prints. The command line is built on these calls, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charnn.errors import CharnnError, UsageError

if TYPE_CHECKING:
    from charnn.probe.result import ProbeResult
    from charnn.trainer import Run

__all__ = ["train", "load", "Run", "Model", "ProbeResult"]


def __getattr__(name: str) -> Any:
    if name == "Run":  # the trainer makes it; loaded with torch when first asked for
        from charnn.trainer import Run

        return Run
    if name == "ProbeResult":  # the probe makes it
        from charnn.probe.result import ProbeResult

        return ProbeResult
    raise AttributeError(f"module 'charnn.api' has no attribute {name!r}")


def _settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Python-friendly spellings of the training settings: ext="py" or ext=[".py", ".c"], split=(0.9, 0.1)."""
    settings = dict(settings)
    if isinstance(settings.get("ext"), str):
        settings["ext"] = [settings["ext"]]
    if isinstance(settings.get("split"), (tuple, list)):
        settings["split"] = ",".join(f"{value:g}" for value in settings["split"])
    if "corpus" in settings and isinstance(settings["corpus"], Path):
        settings["corpus"] = str(settings["corpus"])
    if "out" in settings and isinstance(settings["out"], Path):
        settings["out"] = str(settings["out"])
    return settings


def train(
    corpus: str | Path | None = None,
    out: str | Path | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    **settings: Any,
) -> Run:
    """Train a model, as `python train.py` does, and return the finished Run.

    corpus: a text file, a directory of code, a tweet file, "stdlib" (the default) or "task:NAME".
    out: the run directory (default: runs/<corpus name>); resume=True continues the run in it exactly.
    settings: any `charnn train` flag as a keyword, dashes as underscores: layers=2, hidden=256, max_steps=2000,
    max_minutes=10, seq_len=128, batch_size=64, lr=2e-3, ext=[".py"], split=(0.9, 0.1), seed=1337, device="auto" ...
    progress: tqdm bars (in a notebook, its widgets); False for none.
    """
    from charnn.config import merge_train_config
    from charnn.trainer import run_training

    given = _settings(
        {**settings, **({"corpus": corpus} if corpus is not None else {}), **({"out": out} if out is not None else {})}
    )
    return run_training(merge_train_config(given, resume), resume=resume, overwrite=overwrite, progress=progress)


def load(path: str | Path | None = None, *, which: str = "best", device: str = "cpu") -> Model:
    """A trained model: `path` is a run directory (its best.pt, or last.pt with which="last") or a checkpoint
    file; None takes the newest run under runs/. device: "cpu", "cuda", "cuda:N", "mps" or "auto".
    Loading never runs code from the file."""
    from charnn.device import pick_device
    from charnn.sample import resolve_checkpoint

    is_file = path is not None and Path(path).is_file()
    checkpoint = resolve_checkpoint(
        None if is_file or path is None else str(path), str(path) if is_file else None, which
    )
    return Model(checkpoint, pick_device(device))


def _clamps(clamp: str | Sequence[Any] | None) -> list:
    """Clamps from "2:117=1.0", a list of such strings, or Clamp objects."""
    from charnn.sample import Clamp

    if clamp is None:
        return []
    items = [clamp] if isinstance(clamp, (str, Clamp)) else list(clamp)
    return [item if isinstance(item, Clamp) else Clamp.parse(str(item)) for item in items]


class Model:
    """A trained char-RNN with its vocabulary: generate, stream, evaluate and probe."""

    def __init__(self, checkpoint: Any, device: Any):
        self.checkpoint = checkpoint
        self.device = device
        self.network = checkpoint.build_model(device)  # the torch module (charnn.model.CharRNN)
        self.vocab = checkpoint.vocab

    @property
    def config(self) -> Any:
        """The model's shape: cell, layers, hidden, embed, dropout, vocab_size."""
        return self.network.config

    @property
    def step(self) -> int | None:
        """The training step the checkpoint was saved at."""
        return self.checkpoint.meta.get("step")

    def __repr__(self) -> str:
        cfg = self.config
        return (
            f"Model('{self.checkpoint.path}', {cfg.layers} × {cfg.hidden} {cfg.cell.upper()}, "
            f"{len(self.vocab.chars)} characters, step {self.step})"
        )

    def _options(self, **values: Any) -> Any:
        from charnn.sample import SampleOptions

        values["clamps"] = _clamps(values.pop("clamp"))
        options = SampleOptions(**values)
        options.validate(self.network)
        return options

    def generate(
        self,
        prime: str = "",
        length: int = 500,
        temperature: float = 0.8,
        top_k: int | None = None,
        top_p: float | None = None,
        num_samples: int = 1,
        seed: int | None = None,
        stop: str | None = None,
        clamp: str | Sequence[Any] | None = None,
        echo: bool = True,
        unknown: str = "error",
        precision: str = "fp32",
    ) -> str | list[str]:
        """Sample text: a string, or a list of num_samples strings generated together.

        prime: text to warm the state on (included in the result unless echo=False); temperature 0 is greedy;
        top_k/top_p restrict the choice; the same seed gives the same text; stop ends a sample when it
        produces that string; clamp holds units ("2:117=1.0", "-1:5:c=-2", or a list of them) inside every
        step; unknown="replace" maps priming characters outside the vocabulary to the unknown id; precision="bf16"
        computes each step's matrix products in bf16 (faster on hardware with bf16 units; close to, not equal to, fp32).
        """
        from charnn.device import memory_guard
        from charnn.sample import generate

        options = self._options(
            prime=prime,
            length=length,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            num_samples=num_samples,
            seed=seed,
            stop=stop,
            clamp=clamp,
            echo=echo,
            unknown=unknown,
            precision=precision,
        )
        with memory_guard(self.device, "sampling", f"--num-samples (now {num_samples})"):
            texts = generate(self.network, self.vocab, options)
        return texts[0] if num_samples == 1 else texts

    def stream(
        self,
        prime: str = "",
        length: int = 500,
        temperature: float = 0.8,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        stop: str | None = None,
        clamp: str | Sequence[Any] | None = None,
        echo: bool = True,
        unknown: str = "error",
        precision: str = "fp32",
    ) -> Iterator[str]:
        """The text of one sample as it is produced: the prime (with echo), then a character at a time.
        The same seed gives the same text as generate(). Options are checked when stream() is called."""
        from charnn.device import memory_guard
        from charnn.sample import stream

        options = self._options(
            prime=prime,
            length=length,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            num_samples=1,
            seed=seed,
            stop=stop,
            clamp=clamp,
            echo=echo,
            unknown=unknown,
            precision=precision,
        )

        def pieces() -> Iterator[str]:
            with memory_guard(self.device, "sampling", "the model's size: sample on --device cpu"):
                yield from (piece for _, piece in stream(self.network, self.vocab, options))

        return pieces()

    def evaluate(self, text: str, unknown: str = "error", progress: bool = False, name: str = "the text") -> dict:
        """Bits and nats per character of the model on a text read as one stream from a zero state:
        {"bits_per_char", "nats_per_char", "chars", "unknown_chars"}. unknown="replace" maps characters
        outside the vocabulary to the unknown id instead of stopping; name is how errors call the text."""
        import torch

        from charnn.device import memory_guard
        from charnn.evaluate import evaluate_ids

        if not isinstance(text, str):
            raise UsageError(
                f"evaluate() takes the text itself (a str), not {type(text).__name__}; read a file with "
                "open(path).read()"
            )
        if len(text) < 2:
            raise CharnnError(f"{name} has {len(text)} character(s); evaluation needs at least 2")
        if unknown not in ("error", "replace"):
            raise UsageError(f"--unknown must be error or replace, not {unknown!r}")
        ids = self.vocab.encode(text, unknown=unknown, source=name)
        with memory_guard(self.device, "evaluating", "the model's size: evaluate on --device cpu"):
            result = evaluate_ids(self.network, torch.from_numpy(ids.astype("int64")), self.device, progress=progress)
        result["unknown_chars"] = int((ids == self.vocab.unknown_id).sum())
        return result

    def probe(
        self,
        text: str,
        features: str = "code",
        *,
        task: str | None = None,
        language: str = "auto",
        top: int = 5,
        heldout_fraction: float = 0.5,
        random_units: int = 100,
        ablate: str = "zero",
        precision: str = "fp32",
        ablation: bool = True,
        control: bool = True,
        seed: int = 0,
        max_chars: int | None = 100_000,
        unknown: str = "replace",
        threads: int | None = None,
        progress: bool = False,
        text_path: str | None = None,
        patterns: dict[str, str] | Sequence[tuple[str, str]] | None = None,
        labels: str | Path | Sequence[str | Path] | None = None,
    ) -> ProbeResult:
        """Find the units that track the features of a text, as `charnn probe` does: record every state, label
        the text (features: "code", "tweets" or "task"), rank units on the held-out part against an untrained
        control, and ablate the best. language: the code's syntax ("auto" guesses it, from text_path's name when
        given). patterns: hypotheses of your own, {name: regex}, each a binary feature True on its matches
        (features="none" probes only these and `labels`); labels: --labels files of your own per-character labels
        (JSON {name: [...]} with null undefined, or .npy). precision="bf16" computes the ablation's matrix products
        in bf16 (faster on hardware with bf16 units; deltas a little off fp32's). threads: the ablation's CPU
        threads (None: torch's, all cores; 1 on a machine other jobs share). Returns a ProbeResult: .table(),
        .to_json(), .to_html(); in a
        notebook it shows the explorer."""
        from charnn.device import memory_guard
        from charnn.probe.pipeline import ProbeOptions, probe_text

        if not isinstance(text, str):
            raise UsageError(
                f"probe() takes the text itself (a str), not {type(text).__name__}; read a file with open(path).read()"
            )
        options = ProbeOptions(
            feature_set=features,
            task=task,
            language=language,
            top=top,
            heldout_fraction=heldout_fraction,
            random_units=random_units,
            ablate=ablate,
            precision=precision,
            ablation=ablation,
            control=control,
            seed=seed,
            threads=threads,
            progress=progress,
            patterns=tuple(patterns.items()) if isinstance(patterns, dict) else tuple(map(tuple, patterns or ())),
            label_files=tuple(str(p) for p in ([labels] if isinstance(labels, (str, Path)) else labels or ())),
        )
        # the recording grows with the text, the ablation's copies with the random units
        with memory_guard(
            self.device,
            "probing",
            f"--max-chars (now {max_chars or len(text):,}) or --random-units (now {random_units})",
        ):
            return probe_text(
                self.network,
                self.vocab,
                text,
                options,
                self.checkpoint,
                text_path=text_path,
                unknown=unknown,
                max_chars=max_chars,
            )
