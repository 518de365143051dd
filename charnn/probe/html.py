"""The one-file HTML neuron explorer: the probed text coloured by any unit, beside the features it was ranked on.

`write_html` turns a `ProbeResult` into one self-contained page (inline CSS, JS and data; no server,
no network; it opens from disk). What the page holds, in one JSON block, binary parts deflated and
base64-encoded (the page inflates them with the browser's DecompressionStream):

- the text and the vocabulary; a text too long for the budget is cut, and the page says so;
- per position, the model's top-5 next characters and their probabilities (uint8, p·255), and the
  probability of the character that actually came next: one forward pass, chunked;
- every feature's labels (binary: one bit a character; ordinal: the smallest integer type that holds them);
- unit tracks, one signed byte per character: q = round(v·L) for h and g (tanh), round((2v − 1)·L)
  for the sigmoid gates, round(c / scale·L) for c, scale = the unit's max |c| over the shown text.
  Every state of every flagged unit is always there at L = 127. The other units are added while the
  file stays under the budget, most coverage first, then most precision: every state of every unit,
  else h and c, else h; each at L = 127, 15 or 7 (255, 31 or 15 levels); else none. c is stored as
  differences from the previous character (it moves slowly, so they deflate well).

What a budget holds, for texts and models of a few sizes: docs/explorer.md.

The page itself is charnn/probe/assets/explorer.html and .css, and its script in parts, explorer-*.js
(package data, read with importlib.resources); this module prepares the data and fills it in.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import math
import re
from pathlib import Path

import numpy as np
import torch

from charnn.atomic import atomic_write_bytes
from charnn.cells import SIGMOID_GATES
from charnn.corpus import UNKNOWN_DISPLAY, Vocab
from charnn.device import exact_fp32
from charnn.errors import CharnnError
from charnn.model import CharRNN
from charnn.probe.page_data import (
    FULL_LEVELS,
    Coverage,
    coverages_for,
    estimate_bytes,
    feature_blob,
    flagged_units,
    packed,
    track_group,
)
from charnn.probe.record import torch_threads
from charnn.probe.result import ProbeResult

HTML_FORMAT = 1
MB = 1_000_000
TOP_K = 5
MIN_SHOWN_CHARS = 100  # a budget that cannot hold this many characters is refused
FORWARD_CHUNK = 4096
LIVE_PRECISIONS = ("float16", "int8")  # the live model's weights, best first
LIVE_MIN_CHARS = 10_000  # the live model goes in where it leaves at least this many characters of the text
LIVE_MAX_CHARS = 5000  # the longest text the page's own model runs (every state of every unit is kept)


def next_char_predictions(model: CharRNN, ids: np.ndarray, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per position: the top-k next ids (chars, k), their probabilities (chars, k) and that of the actual next id
    (chars,)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    k = min(k, model.config.vocab_size)
    top_ids = np.zeros((len(ids), k), dtype=np.int64)
    top_probs = np.zeros((len(ids), k), dtype=np.float32)
    actual = np.zeros(len(ids), dtype=np.float32)  # the last position has no next character: 0
    tensor = torch.from_numpy(np.asarray(ids).astype(np.int64))
    state = None
    try:
        with torch.no_grad(), torch_threads(1), exact_fp32():  # one stream: a second thread mostly waits
            for start in range(0, len(ids), FORWARD_CHUNK):
                stop = min(start + FORWARD_CHUNK, len(ids))
                logits, state = model(tensor[start:stop].unsqueeze(0).to(device), state)
                probs = torch.softmax(logits[0].float(), dim=-1)  # (T, V)
                values, indices = torch.topk(probs, k, dim=-1)
                top_ids[start:stop] = indices.cpu().numpy()
                top_probs[start:stop] = values.cpu().numpy()
                following = tensor[start + 1 : stop + 1].to(device)  # the character each position predicts
                actual[start : start + len(following)] = (
                    probs[: len(following)].gather(1, following[:, None])[:, 0].cpu().numpy()
                )
    finally:
        model.train(was_training)
    return top_ids, top_probs, actual


def display_text(text: str) -> str:
    """The text with lone surrogates (which a browser string cannot keep one-to-one) shown as U+FFFD."""
    return re.sub("[\ud800-\udfff]", UNKNOWN_DISPLAY, text)


def script_json(data: dict) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' outside escapes, so the text cannot close the tag."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text


def base_data(
    result: ProbeResult,
    vocab: Vocab,
    predictions: tuple,
    chars: int,
    notes: list[str],
    budget: int,
    beside_model: bool = False,
) -> dict:
    """Everything the page shows except the unit tracks."""
    recording = result.recording
    report = result.report
    top_ids, top_probs, actual = predictions
    id_dtype = "uint8" if vocab.size <= 256 else "uint16"
    total = len(result.text)
    page_notes = list(notes)
    if chars < total:
        page_notes.insert(
            0,
            f"the page shows the first {chars:,} of the {total:,} probed characters: more do not fit "
            f"--html-max-mb {budget / MB:g}"
            + (" beside the live model (--html-no-model leaves it out)" if beside_model else ""),
        )
    return {
        "charnn_explorer": HTML_FORMAT,
        "text": display_text(result.text[:chars]),
        "chars": chars,
        "probed_chars": total,
        "vocab": [display_text(c) for c in vocab.chars] + [UNKNOWN_DISPLAY],
        "cell": recording.cell,
        "layers": recording.layers,
        "hidden": recording.hidden,
        "states": list(recording.state_names),
        "gates": list(SIGMOID_GATES[recording.cell]),  # the states in [0, 1]; the rest are in [-1, 1] (c unbounded)
        "predictions": {
            "k": top_ids.shape[1],
            "id_dtype": id_dtype,
            "ids": packed(top_ids[:chars].astype(id_dtype).tobytes()),
            "probs": packed(np.rint(top_probs[:chars] * 255).astype(np.uint8).tobytes()),
            "actual": packed(np.rint(actual[:chars] * 255).astype(np.uint8).tobytes()),
        },
        "features": [
            {
                "name": name,
                "kind": feature.kind,
                "description": feature.description,
                "scored": name in report["features"],
                "skipped": report.get("skipped_features", {}).get(name),
                **feature_blob(feature, chars),
            }
            for name, feature in result.features.items()
        ],
        "unit_scores": unit_scores(result),
        "report": report,
        "notes": page_notes,
    }


def unit_scores(result: ProbeResult) -> dict:
    """Per scored feature, every unit's held-out score in its selected direction, (states, layers, hidden) as
    uint8 (score · 250; 255 where undefined): the layer overview orders its rows by it."""
    out = {}
    for name, scores in result.scores.items():
        if name not in result.report["features"]:
            continue
        heldout = scores.oriented[2]
        coded = np.where(np.isnan(heldout), 255, np.rint(np.clip(np.nan_to_num(heldout), 0, 1) * 250)).astype(np.uint8)
        out[name] = packed(coded.tobytes())
    return out


SCRIPT_PARTS = (  # the page's script, in the order it runs: each part uses the names of the parts before it
    "explorer-common.js",
    "explorer-data.js",
    "explorer-colours.js",
    "explorer-text.js",
    "explorer-plots.js",
    "explorer-controls.js",
    "explorer-views.js",
    "explorer-live.js",
    "explorer-main.js",
)


@functools.cache
def asset(name: str) -> str:
    """One of the page's files in charnn/probe/assets."""
    return importlib.resources.files("charnn.probe").joinpath("assets", name).read_text(encoding="utf-8")


def page_script() -> str:
    """The page's script: its parts joined in one function scope, so that no name of theirs is a global."""
    return '"use strict";\n(function () {\n' + "\n".join(asset(name) for name in SCRIPT_PARTS) + "})();\n"


def render(data: dict) -> str:
    """The whole page."""
    model = data["report"]["model"]
    title = f"charnn explorer: {model['cell'].upper()} {model['layers']}×{model['hidden']}"
    path = data["report"]["text"].get("path")
    if path:
        title += f" on {Path(path).name}"
    escaped_title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    page = asset("explorer.html").replace("__TITLE__", escaped_title)
    for placeholder, text in (
        ("__STYLE__", asset("explorer.css")),
        ("__WORKER__", asset("explorer-worker.js")),
        ("__SCRIPT__", page_script()),
    ):
        page = page.replace(placeholder, text)
    return page.replace("__DATA__", script_json(data))  # the data last: nothing inside it is taken for a placeholder


def model_tensors(model: CharRNN) -> list[tuple[str, torch.Tensor]]:
    """The weights the page's own forward pass reads, by the names torch gives them."""
    named = [("embedding", model.embedding.weight)]
    for layer in range(model.config.layers):
        named += [
            (f"{name}_l{layer}", weight)
            for name, weight in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), model.layer_weights(layer))
        ]
    return named + [("decoder.weight", model.decoder.weight), ("decoder.bias", model.decoder.bias)]


def live_model(model: CharRNN, vocab: Vocab, precision: str) -> dict:
    """The model for the page to run itself: float16 weights, or int8 with a float32 scale per row (biases float16)."""
    tensors = []
    for name, weight in model_tensors(model):
        values = weight.detach().float().cpu().numpy()
        entry = {"name": name, "shape": list(values.shape)}
        if precision == "int8" and values.ndim == 2:
            scales = np.abs(values).max(axis=1) / 127
            scales = np.where(scales > 0, scales, 1).astype(np.float32)
            entry.update(
                dtype="int8",
                data=packed(np.rint(values / scales[:, None]).astype(np.int8).tobytes()),
                scales=packed(scales.astype("<f4").tobytes()),
            )
        else:
            entry.update(dtype="float16", data=packed(values.astype("<f2").tobytes()))
        tensors.append(entry)
    config = model.config
    return {
        "precision": precision,
        "cell": config.cell,
        "layers": config.layers,
        "hidden": config.hidden,
        "embed": config.embed,
        "vocab_size": config.vocab_size,
        "unknown_id": vocab.unknown_id,
        "tensors": tensors,
        "max_chars": LIVE_MAX_CHARS,
    }


def fit_page(
    result: ProbeResult,
    vocab: Vocab,
    predictions: tuple,
    chars: int,
    notes: list[str],
    budget: int,
    coverages: list[Coverage],
    lives: list[dict | None],
    live_note: str | None = None,
) -> tuple[str | None, dict]:
    """The first (live model, coverage) pair, in that order of preference, whose page of the first chars
    characters fits budget bytes (None if none does). lives are all models, or [None] with live_note saying why."""
    recording = result.recording
    flagged = flagged_units(result.report)
    flagged_set = set(flagged)
    others = [
        (layer, unit)
        for layer in range(1, recording.layers + 1)
        for unit in range(recording.hidden)
        if (layer, unit) not in flagged_set
    ]
    data = base_data(result, vocab, predictions, chars, notes, budget, beside_model=lives[0] is not None)
    groups = [track_group(recording, state, flagged, chars, FULL_LEVELS) for state in recording.state_names if flagged]
    samples: dict = {}
    built: dict[tuple[str, int], dict] = {}  # (state, levels) -> the other units' track group, shared by coverages
    size = 0
    for live in lives:
        live_data = {"live": live, "live_note": None if live else live_note}
        fixed = len(
            render({**data, **live_data, "tracks": groups, "coverage": {"description": "x" * 300}}).encode("utf-8")
        )
        size = fixed
        for coverage in coverages:
            rest = []
            if coverage.states and others:
                if fixed + estimate_bytes(recording, coverage, others, chars, samples) > budget * 1.1:
                    continue  # clearly too large: not worth quantising and deflating
                for state in coverage.states:
                    if (state, coverage.levels) not in built:
                        built[(state, coverage.levels)] = track_group(recording, state, others, chars, coverage.levels)
                    rest.append(built[(state, coverage.levels)])
            description = coverage.describe(recording, len(flagged))
            page = render(
                {
                    **data,
                    **live_data,
                    "tracks": groups + rest,
                    "coverage": {
                        "description": description,
                        "everyone": list(coverage.states),
                        "levels": coverage.levels,
                        "flagged": [list(unit) for unit in flagged],
                        "budget_mb": budget / MB,
                    },
                }
            )
            size = len(page.encode("utf-8"))
            if size <= budget:
                return page, {
                    "chars": chars,
                    "probed_chars": len(result.text),
                    "bytes": size,
                    "coverage": description,
                    "states": coverage.states,
                    "levels": coverage.levels,
                    "live": live["precision"] if live else None,
                    "live_note": live_data["live_note"],
                }
    return None, {"bytes": size}


def missing_model_note(models: list[dict], budget: int) -> str:
    """Why the page has no live model: one line with the budget the smallest of models would need."""
    if not models:
        return "the live model was left out of this page (--html-no-model)"
    weights = len(script_json(models[-1]).encode("utf-8"))
    return (
        f"the model is not in this page: its {models[-1]['precision']} weights take {weights / MB:.2f} MB beside the "
        "data; "
        f"--html-max-mb {math.ceil((budget + weights) / MB * 10) / 10:g} makes room for them"
    )


def build_html(
    result: ProbeResult,
    model: CharRNN,
    vocab: Vocab,
    max_mb: float = 5.0,
    notes: list[str] | None = None,
    live: bool = True,
) -> tuple[str, dict]:
    """The page and a summary (chars shown, bytes, coverage, live model), fitted to max_mb megabytes (10^6 bytes).

    The text and the flagged units come first, then the live model (float16, else int8; for it the text may be
    cut down to LIVE_MIN_CHARS characters, and the page says so), then the other units' tracks. live=False, or a
    budget that cannot hold the model beside LIVE_MIN_CHARS characters, leaves the model out."""
    if not max_mb > 0:
        raise CharnnError(f"--html-max-mb must be above 0, not {max_mb!r}")
    budget = int(max_mb * MB)
    text = result.text
    predictions = next_char_predictions(model, vocab.encode(text, unknown="replace"))
    notes = list(notes or []) + list(result.notes)
    coverages = coverages_for(result.recording)
    models = [live_model(model, vocab, precision) for precision in LIVE_PRECISIONS] if live else []
    if models:
        page, summary = fit_text(
            result, vocab, predictions, notes, budget, coverages, models, min(LIVE_MIN_CHARS, len(text))
        )
        if page is not None:
            return page, summary
    page, summary = fit_text(
        result,
        vocab,
        predictions,
        notes,
        budget,
        coverages,
        [None],
        min(MIN_SHOWN_CHARS, len(text)),
        missing_model_note(models, budget),
    )
    if page is None:
        raise CharnnError(
            f"--html-max-mb {max_mb:g} cannot hold even {min(MIN_SHOWN_CHARS, len(text))} characters with the "
            f"flagged units ({summary['bytes'] / MB:.2f} MB); raise it"
        )
    return page, summary


def fit_text(
    result: ProbeResult,
    vocab: Vocab,
    predictions: tuple,
    notes: list[str],
    budget: int,
    coverages: list[Coverage],
    lives: list[dict | None],
    least: int,
    live_note: str | None = None,
) -> tuple[str | None, dict]:
    """The page of the most characters (at least `least`) that fits with one of lives (None if none does)."""
    chars = len(result.text)
    while True:
        page, summary = fit_page(result, vocab, predictions, chars, notes, budget, coverages, lives, live_note)
        if page is not None or chars <= least:
            return page, summary
        # even the flagged units alone do not fit: show fewer characters, with the flagged units only
        chars = max(least, int(chars * min(0.9, budget / summary["bytes"] * 0.95)))
        coverages = coverages[-1:]


def write_html(
    result: ProbeResult,
    path: str | Path,
    model: CharRNN,
    vocab: Vocab,
    max_mb: float = 5.0,
    notes: list[str] | None = None,
    live: bool = True,
) -> dict:
    """Write the explorer page to path atomically (temp file + rename); returns the summary of build_html."""
    html, summary = build_html(result, model, vocab, max_mb, notes, live)
    try:
        atomic_write_bytes(Path(path), html.encode("utf-8"))
    except OSError as err:
        raise CharnnError(f"cannot write --html '{path}': {err.strerror or err}") from None
    return summary
