"""How to probe (ProbeOptions) and the rules of the probe's other settings: charnn probe's flags and
Model.probe's keywords, each range said once. Imports no torch, so the command line builds its flags from them.
"""

from __future__ import annotations

from dataclasses import dataclass

from charnn.argtypes import SEED, check_rules, real, ruled, whole
from charnn.errors import UsageError
from charnn.probe.languages import LANGUAGES, SYNTAXES

FEATURE_SETS = ("code", "tweets", "task", "none")  # none: only the user's --feature patterns
MAX_CHARS = whole(1)  # --max-chars
HTML_MAX_MB = real("a number of megabytes >= 0.5", lambda value: value >= 0.5)  # --html-max-mb


@dataclass
class ProbeOptions:
    """How to probe; the CLI flags of charnn probe."""

    feature_set: str = "code"  # code | tweets | task | none
    task: str | None = None
    language: str | None = (
        None  # --features code: a key of languages.SYNTAXES; None or "auto" guesses (languages.guess_language)
    )
    top: int = ruled(5, whole(1))
    heldout_fraction: float = ruled(0.5, real("a number between 0 and 1 (exclusive)", lambda value: 0 < value < 1))
    random_units: int = ruled(100, whole(1))
    ablate: str = "zero"  # zero | mean
    ablation: bool = True
    control: bool = True
    seed: int = ruled(0, SEED)
    threads: int | None = ruled(None, whole(1))  # intra-op threads while probing; None: torch's setting
    precision: str = "fp32"  # of the ablation's matrix products: fp32, or bf16 (an opt-in: faster, deltas a little off)
    progress: bool = False
    patterns: tuple[tuple[str, str], ...] = ()  # the user's features: (name, regex), from --feature NAME=REGEX
    label_files: tuple[
        str, ...
    ] = ()  # the user's labels: --labels FILE (JSON {NAME: [...]} or .npy), read at probe time

    def validate(self) -> None:
        """Reject values outside what is allowed, naming the flag: each field's rule, then the choices."""
        check_rules(self)
        if self.feature_set not in FEATURE_SETS:
            raise UsageError(
                f"--features must be {', '.join(FEATURE_SETS[:-1])} or {FEATURE_SETS[-1]}, not {self.feature_set!r}"
            )
        from charnn.probe.labels.custom import check_pattern

        names = [name for name, _ in self.patterns]
        for name, pattern in self.patterns:
            check_pattern(name, pattern)
        if len(set(names)) < len(names):
            twice = next(name for name in names if names.count(name) > 1)
            raise UsageError(f"--feature {twice}=... is given twice; each feature needs its own name")
        if self.feature_set == "none" and not self.patterns and not self.label_files:
            raise UsageError(
                "--features none probes only your own features: give at least one --feature NAME=REGEX or --labels FILE"
            )
        if self.precision not in ("fp32", "bf16"):
            raise UsageError(f"--precision must be fp32 or bf16, not {self.precision!r}")
        if self.ablate not in ("zero", "mean"):
            raise UsageError(f"--ablate must be zero or mean, not {self.ablate!r}")
        if self.language not in (None, "auto", *SYNTAXES):
            raise UsageError(f"--language must be one of {', '.join(LANGUAGES)}, not {self.language!r}")
