"""The probe stage as one library call: record → label → score (held-out, control) → ablate → report.

`run_probe` returns a `ProbeResult` that keeps the recording, the text and the labels beside the
JSON report, so an HTML explorer can draw any unit's per-character values
(`result.recording.unit_values(layer, unit, state)`) next to the features it was ranked on.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from charnn.checkpoint import Checkpoint
from charnn.corpus import Vocab
from charnn.errors import CharnnError, UsageError
from charnn.model import CharRNN, new_model
from charnn.probe.ablate import ablate_layers, check_ablation_precision
from charnn.probe.labels import Feature, features_for
from charnn.probe.labels.custom import pattern_feature, read_label_file
from charnn.probe.languages import resolve_language
from charnn.probe.options import MAX_CHARS, ProbeOptions
from charnn.probe.record import Recording, record, torch_threads
from charnn.probe.result import ProbeResult, build_report
from charnn.probe.score import Split, gate_saturation, score_recording, split_text

RECORDING_MEMORY_LIMIT = 1 << 30  # recordings larger than this are memory-mapped files in a temporary directory
MIN_CHARS = 20


def why_unscorable(feature: Feature, split: Split, part: str = "selection") -> str | None:
    """A reason a feature cannot be scored on a part of the text ("selection" or "heldout"), or None."""
    start, stop = getattr(split, part)
    where = "in the selection part" if part == "selection" else "in the held-out part"
    everywhere = feature.values[feature.defined_mask]
    if len(everywhere) >= 2 and (everywhere == everywhere[0]).all():  # not a matter of where the text is cut
        where = "in the whole text"
    values = feature.values[start:stop][feature.defined_mask[start:stop]]
    if len(values) < 2:
        return f"fewer than 2 labelled characters {where}"
    if feature.kind == "binary" and (values.all() or not values.any()):
        return f"always {bool(values[0])} {where}"
    if feature.kind == "ordinal" and (values == values[0]).all():
        return f"constant ({int(values[0])}) {where}"
    return None


def untrained_copy(model: CharRNN, seed: int) -> CharRNN:
    """A model of the same shape with fresh (seeded) initial weights: the control."""
    with torch.random.fork_rng(devices=[]):  # the CPU's generator only: new_model draws there whatever the device
        torch.random.default_generator.manual_seed(seed)  # torch.manual_seed would reseed every GPU's too, unrestored
        control = new_model(model.config, next(model.parameters()).device)
    return control.eval()


def resolve_task(requested: str | None, feature_set: str, meta: dict) -> str | None:
    """The task whose ground truth labels the text: --task, else the checkpoint's task:NAME corpus."""
    from charnn.tasks import TASK_NAMES

    if feature_set != "task":
        if requested:
            raise UsageError("--task only applies to --features task")
        return None
    if requested:
        task = requested.removeprefix("task:")
    else:
        corpus = str((meta.get("train") or {}).get("corpus") or "")
        if not corpus.startswith("task:"):
            trained_on = f" (the checkpoint was trained on '{corpus}')" if corpus else ""
            raise CharnnError(f"--features task needs --task NAME: one of {', '.join(TASK_NAMES)}{trained_on}")
        task = corpus.removeprefix("task:")
    if task not in TASK_NAMES:
        error = UsageError if requested else CharnnError  # a flag value, or what the checkpoint says
        raise error(f"unknown task '{task}'; known tasks: {', '.join(TASK_NAMES)}")
    return task


def probe_text(
    model: CharRNN,
    vocab: Vocab,
    text: str,
    options: ProbeOptions,
    checkpoint: Checkpoint | None = None,
    text_path: str | None = None,
    unknown: str = "replace",
    max_chars: int | None = None,
) -> ProbeResult:
    """Probe a model on a text as `charnn probe` does: cut it to max_chars, encode it with the model's vocabulary
    (`unknown`: error or replace), take the task from the checkpoint's task:NAME corpus when options.task is not
    given, and the code language from text_path or the text when options.language is "auto".
    The result holds the model and vocabulary (it can write the page), and the notes about the input first."""
    meta = checkpoint.meta if checkpoint is not None else {}
    options.validate()
    if max_chars is not None:
        MAX_CHARS.check("max-chars", max_chars)
    if options.feature_set != "code" and options.language not in (None, "auto"):
        raise UsageError("--language only applies to --features code")
    task = resolve_task(options.task, options.feature_set, meta)
    named = f"--text '{text_path}'" if text_path else "the probe text"
    notes = []
    truncated_from = None
    if max_chars is not None and len(text) > max_chars:
        truncated_from = len(text)
        text = text[:max_chars]
        notes.append(
            f"{named.removeprefix('--text ')} has {truncated_from:,} characters; probing the first {max_chars:,} "
            "(--max-chars)"
        )
    ids = vocab.encode(text, unknown=unknown, source=named)
    unknown_chars = int((ids == vocab.unknown_id).sum())
    if unknown_chars:
        shown = "".join(sorted(set(text) - set(vocab.chars)))[:20]
        notes.append(
            f"{unknown_chars:,} character(s) of {named.removeprefix('--text ')} are outside the model's vocabulary "
            f"({shown!r}); probed as its unknown id (--unknown error refuses such a text instead)"
        )
    language = resolve_language(options.language, text, text_path) if options.feature_set == "code" else None
    options = replace(options, task=task, language=language)
    info = {
        "checkpoint": str(checkpoint.path) if checkpoint is not None else None,
        "step": meta.get("step"),
        "corpus": (meta.get("train") or {}).get("corpus"),
        "text_path": text_path,
        "truncated_from": truncated_from,
        "unknown_chars": unknown_chars,
    }
    result = run_probe(model, ids, text, options, info)
    result.notes[:0] = notes
    result.model, result.vocab = model, vocab
    return result


def run_probe(
    model: CharRNN, ids: np.ndarray, text: str, options: ProbeOptions, meta: dict | None = None
) -> ProbeResult:
    """Probe a model on a text (ids = the text encoded with the model's vocabulary)."""
    options.validate()
    with torch_threads(options.threads):
        return _run_probe(model, ids, text, options, meta)


def _run_probe(model: CharRNN, ids: np.ndarray, text: str, options: ProbeOptions, meta: dict | None) -> ProbeResult:
    if len(text) != len(ids):
        raise CharnnError("the probe text and its ids differ in length")
    if options.ablation:  # before any work: bf16 where it is only emulated would be slower, not faster
        check_ablation_precision(options.precision, next(model.parameters()).device)
    named = f"--text '{meta['text_path']}'" if meta and meta.get("text_path") else "the probe text"
    if len(text) < MIN_CHARS:
        cut = f" (cut by --max-chars from {meta['truncated_from']:,})" if meta and meta.get("truncated_from") else ""
        raise CharnnError(f"{named} has {len(text)} character(s){cut}; probing needs at least {MIN_CHARS}")
    timings: dict[str, float] = {}
    notes: list[str] = []
    language = resolve_language(options.language, text) if options.feature_set == "code" else None
    features = {} if options.feature_set == "none" else features_for(options.feature_set, text, options.task, language)
    for name, pattern in options.patterns:
        features[name] = pattern_feature(name, pattern, text)
    for path in options.label_files:  # before any model work: a wrong file costs nothing
        for name, feature in read_label_file(path, len(text)).items():
            if name in features:
                raise CharnnError(f"--labels '{path}': the name '{name}' is already a feature of this probe; rename it")
            features[name] = feature
    split = split_text(text, options.heldout_fraction)
    skipped = {name: reason for name, feature in features.items() if (reason := why_unscorable(feature, split))}
    scoreable = [feature for name, feature in features.items() if name not in skipped]
    if not scoreable:
        reasons = "; ".join(f"{name}: {reason}" for name, reason in skipped.items())
        hint = (
            f"is it a {options.task} text, one sequence per line as the task writes them?"
            if options.feature_set == "task"
            else "probe on a text that has them"
        )
        which = "--feature pattern" if options.feature_set == "none" else f"{options.feature_set} feature"
        raise CharnnError(f"no {which} of {named} varies in the selection part ({reasons}); {hint}")
    for item in scoreable:  # chosen on the selection part, but with nothing to score them on after it
        if reason := why_unscorable(item, split, "heldout"):
            notes.append(
                f"{item.name} has no held-out score: {reason}; a longer text or another --heldout-fraction gives it one"
            )

    cfg = model.config
    # a recording too large for memory lives in memory-mapped files, removed when the result is closed
    workdir = None
    if Recording.nbytes(cfg.cell, len(ids), cfg.layers, cfg.hidden) > RECORDING_MEMORY_LIMIT:
        workdir = tempfile.TemporaryDirectory(prefix="charnn-probe-")

    def scratch(name: str) -> Path | None:
        if workdir is None:
            return None
        directory = Path(workdir.name) / name
        directory.mkdir()
        return directory

    control_scores = None  # first, so that its recording is gone before the trained one is made
    if options.control and scoreable:
        started = time.perf_counter()
        control_dir = scratch("control")
        control_recording = record(
            untrained_copy(model, options.seed),
            ids,
            directory=control_dir,
            progress=options.progress,
            description="recording control",
        )
        control_scores = score_recording(
            control_recording, scoreable, split, progress=options.progress, description="scoring control"
        )
        del control_recording
        if control_dir is not None:
            shutil.rmtree(control_dir, ignore_errors=True)
        timings["control"] = time.perf_counter() - started

    started = time.perf_counter()
    recording = record(model, ids, directory=scratch("trained"), progress=options.progress, description="recording")
    timings["record"] = time.perf_counter() - started

    started = time.perf_counter()
    scores = score_recording(recording, scoreable, split, progress=options.progress)
    timings["score"] = time.perf_counter() - started

    top_units = {name: feature_scores.top_units(options.top) for name, feature_scores in scores.items()}
    ablation = None
    mask_rows: dict[tuple[str, str], int] = {}
    if options.ablation and scoreable:
        started = time.perf_counter()
        flagged: dict[int, set[int]] = {}
        for units in top_units.values():
            for unit in units:
                flagged.setdefault(unit["ref"].layer, set()).add(unit["ref"].unit)
        masks = []
        for item in scoreable:
            targets = features[item.name].target_mask
            mask_rows[(item.name, "target")] = len(masks)
            masks.append(targets)
            mask_rows[(item.name, "other")] = len(masks)
            masks.append(~targets)
        means = None
        if options.ablate == "mean":
            means = (recording.unit_means("h"), recording.unit_means("c") if cfg.cell == "lstm" else None)
        ablation = ablate_layers(
            model,
            ids,
            {layer: sorted(units) for layer, units in flagged.items()},
            np.stack(masks),
            options.random_units,
            options.ablate,
            means,
            options.seed,
            options.progress,
            options.precision,
        )
        timings["ablate"] = time.perf_counter() - started
        if options.random_units > cfg.hidden - 1:
            notes.append(
                f"the random-unit band has at most {cfg.hidden - 1} units (a layer has {cfg.hidden}), "
                f"not the {options.random_units} asked for"
            )
        elif options.random_units < 100:
            notes.append(
                f"only {options.random_units} random units: percentiles move in steps of "
                f"{100 / options.random_units:.0f}; "
                f"a claim beyond the 99th percentile needs at least 100"
            )

    saturation = gate_saturation(recording)
    report = build_report(
        meta=meta or {},
        model=model,
        text=text,
        split=split,
        features=features,
        scores=scores,
        control_scores=control_scores,
        top_units=top_units,
        ablation=ablation,
        mask_rows=mask_rows,
        options=options,
        language=language,
        saturation=saturation,
        skipped=skipped,
        timings=timings,
    )
    report["notes"] = list(notes)
    return ProbeResult(report, text, features, recording, split, scores, notes, workdir)
