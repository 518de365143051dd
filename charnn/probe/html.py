"""The one-file HTML neuron explorer: the probed text coloured by any unit, beside the features it was ranked on.

`write_html` turns a `ProbeFindings` into one self-contained page (inline CSS, JS and data; no server,
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

Sizes for 20,000 characters of Python probed with a 2 × 64 LSTM (20 flagged units): text,
predictions and labels 0.2 MB; the flagged units 1.9 MB; with h and c of every unit at 31 levels
3.8 MB (what the default 5 MB holds); every state of every unit at 31 levels 7.4 MB, at 255 levels 12.8 MB.

Over 500 lines because the page's HTML, CSS and JavaScript are still string constants here; issue 19 moves
them into asset files of the package, which leaves this module the data preparation.
"""

from __future__ import annotations

import base64
import json
import os
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from charnn.atomic import atomic_write_bytes
from charnn.corpus import UNKNOWN_DISPLAY, Vocab
from charnn.device import exact_fp32
from charnn.errors import CharnnError
from charnn.model import CharRNN
from charnn.probe.labels import Feature
from charnn.probe.result import ProbeFindings
from charnn.probe.record import Recording, torch_threads

HTML_FORMAT = 1
MB = 1_000_000
TOP_K = 5
FULL_LEVELS = 127  # int8: the flagged units, and the other units when they fit
COARSE_LEVELS = (15, 7)  # coarser steps for the other units when int8 does not fit
MIN_SHOWN_CHARS = 100  # a budget that cannot hold this many characters is refused
FORWARD_CHUNK = 4096
UNIT_BLOCK = 64  # units quantised at once (bounds memory on long texts)
SAMPLE_TRACKS = 16  # tracks per state deflated to estimate the size of a coverage before building it
SIGMOID_STATES = {"i", "f", "o", "r", "z"}  # in [0, 1]: stored as 2v - 1; h, g, n are in [-1, 1]
DELTA_STATES = {"c"}
Unit = tuple[int, int]  # (layer counted from 1, unit)


@dataclass(frozen=True)
class Coverage:
    """Which tracks of the units that are not flagged go into the page, and at what precision."""

    states: tuple[str, ...]  # states of every unit; () = flagged units only
    levels: int  # steps on each side of 0

    def describe(self, recording: Recording, flagged: int) -> str:
        """One sentence for the page and the console."""
        units = recording.layers * recording.hidden
        if not self.states:
            return f"only the {flagged} flagged units (every state); the other units are not in this file"
        every = self.states == recording.state_names
        which = "every state" if every else " and ".join(self.states)
        if self.levels == FULL_LEVELS:
            text = f"{which} of all {units} units at 255 levels"
        else:
            text = (f"{which} of all {units} units at {2 * self.levels + 1} levels (steps of {1 / self.levels:.2f}); "
                    f"the {flagged} flagged units at 255")
        return text if every else f"{text}; the other states only for the {flagged} flagged units"


def coverages_for(recording: Recording) -> list[Coverage]:
    """The coverage options, best first: more states before more precision."""
    names = recording.state_names
    sets = [names] + [subset for subset in (("h", "c"), ("h",)) if set(subset) <= set(names) and subset != names]
    options = [Coverage(states, levels) for states in sets for levels in (FULL_LEVELS, *COARSE_LEVELS)]
    return options + [Coverage((), FULL_LEVELS)]


def flagged_units(report: dict) -> list[Unit]:
    """(layer, unit) of every unit the report lists under some feature."""
    return sorted({(unit["layer"], unit["unit"]) for feature in report["features"].values() for unit in feature["units"]})


def packed(data: bytes) -> dict:
    """A deflated, base64-encoded binary blob as the page reads it."""
    return {"enc": "deflate", "b64": base64.b64encode(zlib.compress(data, 6)).decode("ascii")}


def quantise(values: np.ndarray, state: str, levels: int, scale: np.ndarray | None = None) -> np.ndarray:
    """Values (chars, k) of one state as int8 steps in -levels..levels (see the module docstring)."""
    values = values.astype(np.float32)
    if state in SIGMOID_STATES:
        values = 2.0 * values - 1.0
    elif state == "c":
        values = values / scale
    return np.clip(np.rint(values * levels), -levels, levels).astype(np.int8)


def encode_tracks(recording: Recording, state: str, units: list[Unit], chars: int, levels: int) -> tuple[bytes, list[float]]:
    """One state of some units over the first chars characters: (k tracks of chars bytes each, scale per track)."""
    parts, scales = [], []
    for start in range(0, len(units), UNIT_BLOCK):
        block = units[start : start + UNIT_BLOCK]
        layers = np.array([layer - 1 for layer, _ in block], dtype=np.int64)
        columns = np.array([unit for _, unit in block], dtype=np.int64)
        values = np.asarray(recording.states[state][:chars])[:, layers, columns].astype(np.float32)  # (chars, k)
        scale = np.ones(len(block), dtype=np.float32)
        if state == "c":
            scale = np.maximum(np.abs(values).max(axis=0), 1e-6) if chars else scale
        steps = quantise(values, state, levels, scale).T  # (k, chars)
        if state in DELTA_STATES:  # mod 256; the page adds them up again in int8 arithmetic
            steps = np.diff(steps.astype(np.int16), axis=1, prepend=0).astype(np.int8)
        parts.append(np.ascontiguousarray(steps).tobytes())
        scales += [float(value) for value in scale]
    return b"".join(parts), scales


def track_group(recording: Recording, state: str, units: list[Unit], chars: int, levels: int) -> dict:
    """A block of tracks of one state as the page reads it."""
    data, scales = encode_tracks(recording, state, units, chars, levels)
    return {"state": state, "levels": levels, "delta": state in DELTA_STATES, "units": [list(unit) for unit in units],
            "scales": scales if state == "c" else None, "data": packed(data)}


def estimate_bytes(recording: Recording, coverage: Coverage, others: list[Unit], chars: int, samples: dict) -> int:
    """Page bytes the other units' tracks would take, from deflating a sample of them (cached in samples)."""
    total = 0
    if not others:
        return 0
    for state in coverage.states:
        cached = (state, coverage.levels)
        if cached not in samples:
            picks = [others[i] for i in np.linspace(0, len(others) - 1, min(SAMPLE_TRACKS, len(others))).astype(int)]
            data, _ = encode_tracks(recording, state, picks, chars, coverage.levels)
            samples[cached] = len(zlib.compress(data, 6)) / max(len(data), 1)
        total += int(samples[cached] * len(others) * chars * 4 / 3) + 16 * len(others)
    return total


def next_char_predictions(model: CharRNN, ids: np.ndarray, k: int = TOP_K) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per position: the top-k next ids (chars, k), their probabilities (chars, k) and that of the actual next id (chars,)."""
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
                actual[start : start + len(following)] = probs[: len(following)].gather(1, following[:, None])[:, 0].cpu().numpy()
    finally:
        model.train(was_training)
    return top_ids, top_probs, actual


def feature_blob(feature: Feature, chars: int) -> dict:
    """One feature's labels over the first chars characters, as the page reads them."""
    values = np.asarray(feature.values[:chars])
    defined = None  # where the label is undefined, the page neither underlines, plots nor lists it
    if feature.defined is not None:
        defined = packed(np.packbits(feature.defined[:chars].astype(bool), bitorder="little").tobytes())
        if len(values) and feature.defined[:chars].any():
            values = np.where(feature.defined[:chars], values, values[feature.defined[:chars]].min())
    if feature.kind == "binary":
        data = np.packbits(values.astype(bool), bitorder="little").tobytes()
        return {"dtype": "bits", "min": 0, "max": 1, "data": packed(data), "defined": defined}
    if values.dtype.kind == "f":  # a user's float labels: the page plots their ranks (what Spearman scores)
        values = np.unique(values, return_inverse=True)[1]
    values = values.astype(np.int64)
    low, high = (int(values.min()), int(values.max())) if len(values) else (0, 0)
    for name, dtype in (("uint8", np.uint8), ("int16", np.int16), ("int32", np.int32)):
        if np.iinfo(dtype).min <= low and high <= np.iinfo(dtype).max:
            break
    values = np.clip(values, np.iinfo(np.int32).min, np.iinfo(np.int32).max)
    return {"dtype": name, "min": low, "max": high, "data": packed(values.astype(dtype).tobytes()), "defined": defined}


def display_text(text: str) -> str:
    """The text with lone surrogates (which a browser string cannot keep one-to-one) shown as U+FFFD."""
    return re.sub("[\ud800-\udfff]", UNKNOWN_DISPLAY, text)


def script_json(data: dict) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' outside escapes, so the text cannot close the tag."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def base_data(result: ProbeFindings, vocab: Vocab, predictions: tuple, chars: int, notes: list[str], budget: int) -> dict:
    """Everything the page shows except the unit tracks."""
    recording = result.recording
    report = result.report
    top_ids, top_probs, actual = predictions
    id_dtype = "uint8" if vocab.size <= 256 else "uint16"
    total = len(result.text)
    page_notes = list(notes)
    if chars < total:
        page_notes.insert(0, f"the page shows the first {chars:,} of the {total:,} probed characters: more do not fit "
                             f"--html-max-mb {budget / MB:g}")
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
        "predictions": {
            "k": top_ids.shape[1],
            "id_dtype": id_dtype,
            "ids": packed(top_ids[:chars].astype(id_dtype).tobytes()),
            "probs": packed(np.rint(top_probs[:chars] * 255).astype(np.uint8).tobytes()),
            "actual": packed(np.rint(actual[:chars] * 255).astype(np.uint8).tobytes()),
        },
        "features": [
            {"name": name, "kind": feature.kind, "description": feature.description,
             "scored": name in report["features"], "skipped": report.get("skipped_features", {}).get(name),
             **feature_blob(feature, chars)}
            for name, feature in result.features.items()
        ],
        "report": report,
        "notes": page_notes,
    }


def render(data: dict) -> str:
    """The whole page."""
    model = data["report"]["model"]
    title = f"charnn explorer: {model['cell'].upper()} {model['layers']}×{model['hidden']}"
    path = data["report"]["text"].get("path")
    if path:
        title += f" on {Path(path).name}"
    escaped_title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    # the data last: nothing inside it is taken for a placeholder
    return PAGE.replace("__TITLE__", escaped_title).replace("__STYLE__", STYLE).replace("__SCRIPT__", SCRIPT).replace("__DATA__", script_json(data))


def fit_page(result: ProbeFindings, vocab: Vocab, predictions: tuple, chars: int, notes: list[str], budget: int,
             coverages: list[Coverage]) -> tuple[str | None, dict]:
    """The first of coverages whose page of the first chars characters fits budget bytes (None if none does)."""
    recording = result.recording
    flagged = flagged_units(result.report)
    flagged_set = set(flagged)
    others = [(layer, unit) for layer in range(1, recording.layers + 1) for unit in range(recording.hidden)
              if (layer, unit) not in flagged_set]
    data = base_data(result, vocab, predictions, chars, notes, budget)
    groups = [track_group(recording, state, flagged, chars, FULL_LEVELS) for state in recording.state_names if flagged]
    fixed = len(render({**data, "tracks": groups, "coverage": {"description": "x" * 300}}).encode("utf-8"))
    samples: dict = {}
    built: dict[tuple[str, int], dict] = {}  # (state, levels) -> the other units' track group, shared by coverages
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
        page = render({**data, "tracks": groups + rest, "coverage": {
            "description": description, "everyone": list(coverage.states), "levels": coverage.levels,
            "flagged": [list(unit) for unit in flagged], "budget_mb": budget / MB}})
        size = len(page.encode("utf-8"))
        if size <= budget:
            return page, {"chars": chars, "probed_chars": len(result.text), "bytes": size, "coverage": description,
                          "states": coverage.states, "levels": coverage.levels}
    return None, {"bytes": size}


def build_html(result: ProbeFindings, model: CharRNN, vocab: Vocab, max_mb: float = 5.0, notes: list[str] | None = None) -> tuple[str, dict]:
    """The page and a summary (chars shown, bytes, coverage), fitted to max_mb megabytes (10^6 bytes)."""
    if not max_mb > 0:
        raise CharnnError(f"--html-max-mb must be above 0, not {max_mb!r}")
    budget = int(max_mb * MB)
    text = result.text
    predictions = next_char_predictions(model, vocab.encode(text, unknown="replace"))
    notes = list(notes or []) + list(result.notes)
    coverages = coverages_for(result.recording)
    chars = len(text)
    least = min(MIN_SHOWN_CHARS, len(text))
    while True:
        page, summary = fit_page(result, vocab, predictions, chars, notes, budget, coverages)
        if page is not None:
            return page, summary
        if chars <= least:
            raise CharnnError(f"--html-max-mb {max_mb:g} cannot hold even {least} characters with the flagged units "
                              f"({summary['bytes'] / MB:.2f} MB); raise it")
        # even the flagged units alone do not fit: show fewer characters, with the flagged units only
        chars = max(least, int(chars * min(0.9, budget / summary["bytes"] * 0.95)))
        coverages = coverages[-1:]


def write_html(result: ProbeFindings, path: str | Path, model: CharRNN, vocab: Vocab, max_mb: float = 5.0,
               notes: list[str] | None = None) -> dict:
    """Write the explorer page to path atomically (temp file + rename); returns the summary of build_html."""
    html, summary = build_html(result, model, vocab, max_mb, notes)
    try:
        atomic_write_bytes(Path(path), html.encode("utf-8"))
    except OSError as err:
        raise CharnnError(f"cannot write --html '{path}': {err.strerror or err}") from None
    return summary


# ---------------------------------------------------------------- a browser, for tests and the README screenshot

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def find_chromium() -> str | None:
    """A Chromium or Chrome executable from the system ($CHARNN_CHROMIUM first), or None."""
    import shutil

    candidates = [os.environ.get("CHARNN_CHROMIUM"), "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]
    for candidate in candidates:
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


def screenshot(html_path: str | Path, png_path: str | Path, hash_state: str = "", width: int = 1280, height: int = 800,
               hover: int | None = None) -> None:
    """Open a page in headless Chromium from disk and save a PNG (the README's docs/explorer.png)."""
    import tempfile

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise CharnnError("screenshots need the playwright package: pip install playwright "
                          "(its browser download is not needed: the system's chromium is used)") from None
    if not Path(html_path).is_file():
        raise CharnnError(f"'{html_path}' does not exist; write one with charnn probe ... --html {html_path}")
    executable = find_chromium()
    if executable is None:
        raise CharnnError("no chromium found (install Debian's 'chromium' or set CHARNN_CHROMIUM)")
    url = Path(html_path).resolve().as_uri() + (f"#{hash_state}" if hash_state else "")
    with tempfile.TemporaryDirectory(prefix="charnn-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS,
            viewport={"width": width, "height": height})
        problems: list[str] = []
        try:
            page = context.new_page()
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(url)
            try:
                page.wait_for_selector("body[data-ready='true']", timeout=60_000)
            except Exception:  # playwright's timeout: say what the page said instead
                raise CharnnError(f"'{html_path}' did not become ready in 60 s: {'; '.join(problems) or 'no error logged'}") from None
            if hover is not None:
                target = page.locator("#text span").nth(hover)
                target.scroll_into_view_if_needed()
                target.hover()
                page.wait_for_selector("#tip.show")
            page.screenshot(path=str(png_path))
        finally:
            context.close()


def main(argv: list[str] | None = None) -> int:
    """python -m charnn.probe.html REPORT.html OUT.png [--unit 1:23:c] [--feature NAME] [--hover N]."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(prog="python -m charnn.probe.html",
                                     description="Save a PNG of an explorer page in headless Chromium (for docs/explorer.png)")
    parser.add_argument("page", help="a page written by charnn probe --html")
    parser.add_argument("png", help="the PNG to write")
    parser.add_argument("--unit", help="LAYER:UNIT:STATE to show (default: the page's first flagged unit)")
    parser.add_argument("--feature", help="feature to underline and plot")
    parser.add_argument("--c-scale", choices=("centred", "max", "tanh"), help="colour scale of c (default: centred)")
    parser.add_argument("--hover", type=int, help="hover the character at this position, showing the tooltip")
    parser.add_argument("--at", type=int, help="scroll the text to this position")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=800)
    args = parser.parse_args(argv)
    if args.at is None:
        args.at = args.hover
    state = "&".join(f"{key}={value}" for key, value in (("u", args.unit), ("f", args.feature), ("c", args.c_scale), ("at", args.at)) if value is not None)
    try:
        screenshot(args.page, args.png, state, args.width, args.height, args.hover)
    except CharnnError as err:
        print(f"charnn.probe.html: {err}", file=sys.stderr)
        return 1
    print(f"wrote {args.png} ({Path(args.png).stat().st_size / 1000:.0f} kB)")
    return 0


# ---------------------------------------------------------------- the page

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>__STYLE__</style>
</head>
<body>
<header>
  <h1>__TITLE__</h1>
  <div id="summary"></div>
  <ul id="notes"></ul>
</header>
<div id="layout">
  <nav id="side">
    <section id="pick-number">
      <h2>Any unit</h2>
      <form id="number-form" autocomplete="off">
        <label>layer <select id="pick-layer"></select></label>
        <label>unit <input id="pick-unit" type="number" min="0" step="1" value="0"></label>
        <label>state <select id="pick-state"></select></label>
        <button type="submit">show</button>
      </form>
      <div id="coverage" class="small"></div>
    </section>
    <section id="features"><h2>Flagged units by feature</h2></section>
    <section id="saturation"><h2>Gate saturation</h2>
      <div class="small">Each dot is one unit's gate: share of characters where it is &lt; 0.1 (x, shut) and &gt; 0.9 (y, open). Click a dot to show that gate.</div>
      <div id="scatters"></div>
    </section>
  </nav>
  <main>
    <div id="toolbar">
      <span id="unit-name"></span>
      <span id="state-switch"></span>
      <label id="c-scale-box" hidden>c colours <select id="c-scale"></select></label>
      <label>underline <select id="overlay"></select></label>
    </div>
    <div id="legend"><span id="legend-low"></span><span id="legend-bar"></span><span id="legend-high"></span><span id="legend-note" class="small"></span></div>
    <div id="plots">
      <canvas id="plot-all" height="80"></canvas>
      <canvas id="plot-near" height="80"></canvas>
    </div>
    <div id="text" tabindex="0"></div>
    <div id="help" class="small">Background: the unit's value after reading each character, dark red −1 → white 0 → dark blue +1 (gates: red shut, blue open; c: on the scale the legend gives, by default white at its median). Gold underline: where the chosen feature holds (nothing where its label is undefined). Plots: the unit above, the chosen feature (gold) below; the upper plot spans the whole text (dashed: where the held-out part starts; click to jump there), the lower one the 240 characters around the pointer. Hover a character for its values, labels and the model's next-character guesses. Keys <span id="keys"></span> switch state.</div>
  </main>
</div>
<div id="tip" role="tooltip"></div>
<script type="application/json" id="charnn-data">__DATA__</script>
<script>__SCRIPT__</script>
</body>
</html>
"""

STYLE = r"""
:root { --red: 160, 18, 28; --blue: 18, 52, 150; --gold: 232, 160, 0; }
* { box-sizing: border-box; }
body { margin: 0; height: 100vh; display: flex; flex-direction: column; overflow: hidden; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1b1b; background: #fafafa; }
header { flex: none; max-height: 30vh; overflow: auto; padding: 8px 14px 4px; border-bottom: 1px solid #ddd; background: #fff; }
h1 { font-size: 16px; margin: 0 0 2px; }
h2 { font-size: 13px; margin: 10px 0 4px; text-transform: uppercase; letter-spacing: .04em; color: #555; }
h3 { font-size: 13px; margin: 8px 0 2px; }
.small { font-size: 11px; color: #666; }
#notes { margin: 2px 0; padding-left: 18px; color: #8a5a00; font-size: 12px; }
#notes:empty { display: none; }
#layout { flex: 1; min-height: 0; display: grid; grid-template-columns: 330px 1fr; }
#side { overflow-y: auto; padding: 0 10px 10px 14px; border-right: 1px solid #ddd; background: #fff; }
main { display: flex; flex-direction: column; min-width: 0; min-height: 0; padding: 6px 12px 6px; }
#number-form { display: flex; flex-wrap: wrap; gap: 4px 8px; align-items: center; }
#pick-unit { width: 64px; }
.feature .meta { font-size: 11px; color: #666; }
.feature.skipped { color: #888; }
.units { display: flex; flex-direction: column; gap: 1px; margin-top: 2px; }
.unit, .unit-head { display: grid; grid-template-columns: 62px 14px 52px 52px 1fr; gap: 4px; white-space: nowrap; text-align: left; font: 12px/1.3 ui-monospace, "DejaVu Sans Mono", monospace;
        border: 1px solid transparent; background: #f3f3f3; border-radius: 3px; padding: 2px 5px; cursor: pointer; }
.unit:hover { border-color: #999; }
.unit.active { background: #dfe7fb; border-color: rgb(var(--blue)); }
.unit-head { background: none; border: 1px solid transparent; padding: 0 5px; font-size: 10px; color: #777; cursor: default; }
.unit .pass { color: #11772b; font-weight: 600; }
.unit .detail { color: #666; }
#toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 14px; }
#unit-name { font: 600 14px ui-monospace, "DejaVu Sans Mono", monospace; }
#state-switch button { font: 600 12px ui-monospace, monospace; min-width: 26px; padding: 2px 6px; margin-right: 2px; border: 1px solid #aaa; background: #fff; border-radius: 3px; cursor: pointer; }
#state-switch button.active { background: rgb(var(--blue)); color: #fff; border-color: rgb(var(--blue)); }
#state-switch button:disabled { color: #bbb; border-color: #ddd; background: #f4f4f4; cursor: not-allowed; }
#legend { display: flex; align-items: center; gap: 6px; margin: 5px 0 3px; font: 11px ui-monospace, monospace; }
#legend-bar { width: 220px; height: 12px; border: 1px solid #bbb; background: linear-gradient(to right, rgb(var(--red)), #fff, rgb(var(--blue))); }
#plots canvas { display: block; width: 100%; height: 80px; background: #fff; border: 1px solid #e2e2e2; margin-bottom: 3px; cursor: crosshair; }
#text { flex: 1; min-height: 0; overflow: auto; white-space: pre-wrap; overflow-wrap: anywhere; tab-size: 8; -moz-tab-size: 8;
        font: 13px/1.45 ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; background: #fff; border: 1px solid #ddd; padding: 6px 8px; }
#text span.nl { opacity: .75; }
#text span.ov { box-shadow: inset 0 -3px 0 rgb(var(--gold)); }
#text span.at { outline: 2px solid #000; }
#help { margin-top: 4px; }
#tip { position: fixed; z-index: 10; pointer-events: none; display: none; max-width: 420px; background: #fff; border: 1px solid #888; border-radius: 4px;
       box-shadow: 0 2px 8px rgba(0,0,0,.25); padding: 6px 8px; font: 12px/1.4 ui-monospace, "DejaVu Sans Mono", monospace; }
#tip.show { display: block; }
#tip .char { font-weight: 700; }
#tip table { border-collapse: collapse; margin-top: 2px; }
#tip td { padding: 0 6px 0 0; }
#tip .actual { font-weight: 700; color: #11772b; }
#tip .bar { display: inline-block; height: 8px; background: rgb(var(--blue)); vertical-align: middle; }
.missing { color: #999; }
.scatter { display: inline-block; margin: 2px 6px 2px 0; }
.scatter canvas { display: block; border: 1px solid #ddd; background: #fff; cursor: pointer; }
.key span { display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin: 0 2px 0 6px; vertical-align: -1px; }
#fatal { color: #a00; font-weight: 600; padding: 10px 14px; }
"""

SCRIPT = r"""
"use strict";
(function () {
const RED = [160, 18, 28], BLUE = [18, 52, 150], GOLD = "rgb(232,160,0)";
const GATE_COLOURS = { i: "#1b9e77", f: "#d95f02", o: "#7570b3", r: "#1b9e77", z: "#d95f02" };
const SIGMOID = new Set(["i", "f", "o", "r", "z"]);
const STATE_HELP = { h: "hidden state h", c: "cell state c", i: "input gate i", f: "forget gate f", g: "candidate g",
  o: "output gate o", r: "reset gate r", z: "update gate z", n: "candidate n" };
const $ = (id) => document.getElementById(id);
const el = (tag, props, ...children) => {
  const node = document.createElement(tag);
  if (props) for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v); else node.setAttribute(k, v);
  }
  for (const child of children) if (child != null) node.append(child);
  return node;
};

// ------------------------------------------------------------ data
const D = JSON.parse($("charnn-data").textContent);
const R = D.report;
const N = D.chars;

function bytesOf(b64) {
  const bin = atob(b64), out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
async function unpack(blob) {
  const raw = bytesOf(blob.b64);
  if (blob.enc !== "deflate") return raw;
  if (typeof DecompressionStream === "undefined") throw new Error("this browser has no DecompressionStream (Chrome 80+, Firefox 113+, Safari 16.4+ have it)");
  const stream = new Blob([raw]).stream().pipeThrough(new DecompressionStream("deflate"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
function typed(bytes, dtype) {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  return dtype === "uint16" ? new Uint16Array(buffer) : dtype === "int16" ? new Int16Array(buffer)
       : dtype === "int32" ? new Int32Array(buffer) : new Uint8Array(buffer);
}

const S = {
  layer: 1, unit: 0, state: "h", feature: null, pos: null, cScale: "centred",
  tracks: new Map(), features: new Map(),
  predIds: null, predProbs: null, actual: null, spans: [], lineOf: null, colOf: null,
};

async function load() {
  const [ids, probs, actual, ...blobs] = await Promise.all([
    unpack(D.predictions.ids), unpack(D.predictions.probs), unpack(D.predictions.actual),
    ...D.features.map((f) => unpack(f.data)), ...D.features.map((f) => f.defined ? unpack(f.defined) : null),
    ...D.tracks.map((g) => unpack(g.data)),
  ]);
  const count = D.features.length;
  const features = blobs.slice(0, count), defined = blobs.slice(count, 2 * count), groups = blobs.slice(2 * count);
  D.tracks.forEach((group, g) => {
    const bytes = groups[g], values = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (values.length !== group.units.length * N) throw new Error(`track block ${g} holds ${values.length} bytes, not ${group.units.length * N}`);
    group.units.forEach(([layer, unit], k) => {
      const track = values.subarray(k * N, (k + 1) * N);
      if (group.delta) {  // stored as differences: add them up again (int8 arithmetic wraps like the encoder's mod 256)
        let running = 0;
        for (let i = 0; i < N; i++) { running = (running + track[i]) << 24 >> 24; track[i] = running; }
      }
      S.tracks.set(key(layer, unit, group.state), { values: track, levels: group.levels, scale: group.scales ? group.scales[k] : 1, view: null });
    });
  });
  S.predIds = typed(ids, D.predictions.id_dtype);
  S.predProbs = probs;
  S.actual = actual;
  D.features.forEach((f, k) => {
    const labels = f.dtype === "bits" ? bitsOf(features[k]) : typed(features[k], f.dtype);
    S.features.set(f.name, { ...f, labels, defined: defined[k] ? bitsOf(defined[k]) : null });
  });
}

function bitsOf(bytes) {  // one byte a character from bits packed little-endian
  const out = new Uint8Array(N);
  for (let i = 0; i < N; i++) out[i] = (bytes[i >> 3] >> (i & 7)) & 1;
  return out;
}
const holds = (f, i) => !f.defined || f.defined[i] === 1;  // the feature's label is defined at i

// ------------------------------------------------------------ values and colours
function key(layer, unit, state) { return `${layer}:${unit}:${state}`; }
const has = (layer, unit, state) => S.tracks.has(key(layer, unit, state));
const track = (layer, unit, state) => S.tracks.get(key(layer, unit, state)) || null;
function realValue(entry, i, state) {  // the recorded value the stored step at position i stands for
  const v = entry.values[i] / entry.levels;
  if (SIGMOID.has(state)) return 0.5 + 0.5 * v;
  return state === "c" ? v * entry.scale : v;
}
// How a track is drawn: per stored step q (offset by levels), a position t in [-1, 1] on the colour scale.
// c is unbounded and often drifts, so it has three scales: centred on the unit's median (white) and
// spread to its 98th percentile distance from it; symmetric around 0 to its max |c|; or tanh(c), as h sees it.
const C_SCALES = { centred: "centred on its median", max: "0 ± its max |c|", tanh: "tanh(c), as h sees it" };
function trackView(entry, state) {
  const mode = state === "c" ? S.cScale : SIGMOID.has(state) ? "gate" : "plain";
  if (entry.view && entry.view.mode === mode) return entry.view;
  const L = entry.levels, t = new Float32Array(2 * L + 1), real = (q) => q / L * entry.scale;
  let low = "−1", mid = "0", high = "+1", f = (q) => q / L;
  if (mode === "gate") { low = "0 shut"; mid = "0.5"; high = "1 open"; }
  else if (mode === "max") { low = (-entry.scale).toFixed(2); high = "+" + entry.scale.toFixed(2); }
  else if (mode === "tanh") { f = (q) => Math.tanh(real(q)); low = "tanh −1"; high = "tanh +1"; }
  else if (mode === "centred") {  // median and spread from a histogram of the stored steps
    const counts = new Int32Array(2 * L + 1), values = entry.values;
    for (let i = 0; i < N; i++) counts[values[i] + L]++;
    let seen = 0, median = 0;
    for (let q = 0; q <= 2 * L; q++) { seen += counts[q]; if (seen * 2 >= N) { median = q - L; break; } }
    const distance = new Int32Array(2 * L + 1);
    for (let q = 0; q <= 2 * L; q++) distance[Math.abs(q - L - median)] += counts[q];
    let spread = 1;
    for (let d = 0, seenFar = 0; d <= 2 * L; d++) { seenFar += distance[d]; if (seenFar >= 0.98 * N) { spread = Math.max(1, d); break; } }
    f = (q) => Math.max(-1, Math.min(1, (q - median) / spread));
    low = real(median - spread).toFixed(2); mid = real(median).toFixed(2); high = real(median + spread).toFixed(2);
  }
  const colour = new Uint8Array(2 * L + 1);
  for (let q = -L; q <= L; q++) { t[q + L] = f(q); colour[q + L] = Math.round(t[q + L] * 127) + 127; }
  entry.view = { mode, t, colour, low, mid, high };
  return entry.view;
}
const BG = [], FG = [];
for (let q = -127; q <= 127; q++) {
  const t = Math.abs(q) / 127, end = q < 0 ? RED : BLUE;
  const mix = (k) => Math.round(255 + (end[k] - 255) * t);
  BG.push(`rgb(${mix(0)},${mix(1)},${mix(2)})`);
  FG.push(t > 0.55 ? "#fff" : "#111");
}

function recolour() {
  const entry = track(S.layer, S.unit, S.state), spans = S.spans;
  if (!entry) {
    for (let i = 0; i < N; i++) { spans[i].style.backgroundColor = ""; spans[i].style.color = "#999"; }
    return;
  }
  const { values, levels } = entry, colour = trackView(entry, S.state).colour;
  for (let i = 0; i < N; i++) {
    const style = spans[i].style, c = colour[values[i] + levels];
    style.backgroundColor = BG[c];
    style.color = FG[c];
  }
}
function applyOverlay() {
  const feature = S.features.get(S.feature), spans = S.spans;
  for (let i = 0; i < N; i++) spans[i].classList.toggle("ov", !!feature && feature.labels[i] > 0 && holds(feature, i));
}

// ------------------------------------------------------------ text
function charLabel(ch) {
  if (ch === "\n") return "↵"; if (ch === "\t") return "⇥"; if (ch === " ") return "␣";
  const code = ch.codePointAt(0);
  if (code < 32) return String.fromCharCode(0x2400 + code);
  if (code === 127) return "␡";
  return ch;
}
function buildText() {
  const chars = Array.from(D.text);
  if (chars.length !== N) throw new Error(`the text has ${chars.length} characters, the data ${N}`);
  const box = $("text"), fragment = document.createDocumentFragment();
  S.lineOf = new Int32Array(N); S.colOf = new Int32Array(N);
  let line = 1, col = 0;
  for (let i = 0; i < N; i++) {
    const ch = chars[i], span = document.createElement("span");
    span.ci = i;
    S.lineOf[i] = line; S.colOf[i] = col;
    if (ch === "\n") { span.textContent = "↵\n"; span.className = "nl"; line++; col = 0; }
    else {
      const code = ch.codePointAt(0);
      span.textContent = (code < 32 && ch !== "\t") || code === 127 ? charLabel(ch) : ch;
      col++;
    }
    S.spans.push(span);
    fragment.append(span);
  }
  box.append(fragment);
  S.chars = chars;
}

// ------------------------------------------------------------ tooltip
const tip = $("tip");
function fmt(v, digits = 3) { return (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(digits); }
function showTip(i, x, y) {
  S.pos = i;
  const ch = S.chars[i];
  const parts = [];
  parts.push(`<div><span class="char">'${escapeHtml(charLabel(ch))}'</span> position ${i.toLocaleString()} · line ${S.lineOf[i]}, col ${S.colOf[i]}` +
             `${i >= R.split.heldout.start ? " · held-out" : " · selection"}</div>`);
  const entry = track(S.layer, S.unit, S.state);
  if (entry) {
    const coarse = entry.levels < 127 ? ` <span class="small">(±${(0.5 / entry.levels * (S.state === "c" ? entry.scale : SIGMOID.has(S.state) ? 0.5 : 1)).toFixed(2)})</span>` : "";
    parts.push(`<div>unit ${S.layer}:${S.unit} <b>${S.state} = ${fmt(realValue(entry, i, S.state))}</b>${coarse}</div>`);
  } else parts.push(`<div class="missing">unit ${S.layer}:${S.unit} ${S.state}: not in this file</div>`);
  const others = D.states.filter((s) => has(S.layer, S.unit, s))
    .map((s) => `${s} ${fmt(realValue(track(S.layer, S.unit, s), i, s), 2)}`);
  if (others.length > 1) parts.push(`<div class="small">${others.join(" · ")}</div>`);
  const labels = [];
  for (const f of S.features.values()) {
    const value = f.labels[i];
    if (!holds(f, i)) continue;
    if (f.kind === "binary") { if (value) labels.push(`<b>${escapeHtml(f.name)}</b>`); }
    else labels.push(`${escapeHtml(f.name)}=${value}`);
  }
  parts.push(`<div>labels: ${labels.length ? labels.join(", ") : "none"}</div>`);
  const k = D.predictions.k, next = i + 1 < S.chars.length ? S.chars[i + 1] : null;
  const rows = [];
  for (let j = 0; j < k; j++) {
    const id = S.predIds[i * k + j], p = S.predProbs[i * k + j] / 255, guess = D.vocab[id];
    const cls = guess === next ? ' class="actual"' : "";
    rows.push(`<tr${cls}><td>'${escapeHtml(charLabel(guess))}'</td><td>${(100 * p).toFixed(1)}%</td>` +
              `<td><span class="bar" style="width:${Math.round(80 * p)}px"></span></td></tr>`);
  }
  const actual = next === null ? "" :
    `<div class="small">actual next '${escapeHtml(charLabel(next))}': ${(100 * S.actual[i] / 255).toFixed(1)}%</div>`;
  parts.push(`<div>next character:</div><table>${rows.join("")}</table>${actual}`);
  tip.innerHTML = parts.join("");
  tip.classList.add("show");
  placeTip(x, y);
  schedulePlot();
}
function placeTip(x, y) {
  const w = tip.offsetWidth, h = tip.offsetHeight;
  let left = x + 14, top = y + 16;
  if (left + w > innerWidth - 4) left = Math.max(4, x - w - 14);
  if (top + h > innerHeight - 4) top = Math.max(4, y - h - 12);
  tip.style.left = left + "px"; tip.style.top = top + "px";
}
function hideTip() { tip.classList.remove("show"); }
function escapeHtml(s) { return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }

// ------------------------------------------------------------ plots
let plotPending = false;
function schedulePlot() { if (!plotPending) { plotPending = true; requestAnimationFrame(() => { plotPending = false; drawPlots(); }); } }
function sizeCanvas(canvas) {
  const ratio = devicePixelRatio || 1, width = Math.max(50, canvas.clientWidth), height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio)) { canvas.width = Math.round(width * ratio); canvas.height = Math.round(height * ratio); }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return [ctx, width, height];
}
function featureScale(f) { return f.kind === "binary" ? 1 : Math.max(1, f.max); }
function drawRange(canvas, start, stop, bars) {
  // upper part: the unit (bars a character, or per pixel column the range and the mean); lower strip: the feature
  const [ctx, width, height] = sizeCanvas(canvas);
  const entry = track(S.layer, S.unit, S.state), feature = S.features.get(S.feature);
  const count = stop - start, unitHeight = Math.round(height * 0.7), half = unitHeight / 2 - 2, mid = 1 + unitHeight / 2;
  const stripTop = unitHeight + 4, stripHeight = height - stripTop - 1;
  const xOf = (i) => (i - start) / count * width;
  const columns = Math.min(count, Math.floor(width));
  const columnOf = (x) => [start + Math.floor(x / columns * count), start + Math.floor((x + 1) / columns * count)];
  if (feature) {
    const top = featureScale(feature), bottom = Math.min(0, feature.min);
    ctx.fillStyle = "rgba(232,160,0,0.75)";
    for (let x = 0; x < columns; x++) {
      const [a, b] = columnOf(x);
      let peak = bottom;
      for (let i = a; i < Math.max(b, a + 1); i++) if (feature.labels[i] > peak && holds(feature, i)) peak = feature.labels[i];
      const v = (peak - bottom) / (top - bottom || 1);
      if (v > 0) ctx.fillRect(x / columns * width, stripTop + stripHeight * (1 - v), width / columns + 0.4, stripHeight * v);
    }
  }
  ctx.fillStyle = "#f3f3f3"; ctx.fillRect(0, mid, width, 1);
  ctx.fillStyle = "#ddd"; ctx.fillRect(0, unitHeight + 2, width, 1);
  const split = R.split.heldout.start;
  if (split > start && split < stop) {
    ctx.setLineDash([4, 3]); ctx.strokeStyle = "#444"; ctx.beginPath(); ctx.moveTo(xOf(split) + 0.5, 0); ctx.lineTo(xOf(split) + 0.5, height); ctx.stroke(); ctx.setLineDash([]);
  }
  if (entry) {
    const { values, levels } = entry, { t, colour } = trackView(entry, S.state);
    if (bars) {  // one coloured bar a character
      const w = width / count;
      for (let i = start; i < stop; i++) {
        const v = t[values[i] + levels];
        ctx.fillStyle = BG[colour[values[i] + levels]];
        ctx.fillRect(xOf(i), v >= 0 ? mid - v * half : mid, Math.max(1, w - 0.5), Math.max(1, Math.abs(v) * half));
      }
    } else {
      ctx.fillStyle = "rgba(18,52,150,0.18)";
      const means = new Float32Array(columns);
      for (let x = 0; x < columns; x++) {
        const [a, b] = columnOf(x);
        let lo = 1, hi = -1, sum = 0, n = 0;
        for (let i = a; i < Math.max(b, a + 1); i++) { const v = t[values[i] + levels]; if (v < lo) lo = v; if (v > hi) hi = v; sum += v; n++; }
        ctx.fillRect(x / columns * width, mid - hi * half, width / columns + 0.4, Math.max(1, (hi - lo) * half));
        means[x] = sum / n;
      }
      ctx.strokeStyle = "rgb(18,52,150)"; ctx.lineWidth = 1.2; ctx.beginPath();
      for (let x = 0; x < columns; x++) ctx[x ? "lineTo" : "moveTo"]((x + 0.5) / columns * width, mid - means[x] * half);
      ctx.stroke(); ctx.lineWidth = 1;
    }
  }
  if (S.pos !== null && S.pos >= start && S.pos < stop) {
    ctx.fillStyle = "rgba(0,0,0,0.55)"; ctx.fillRect(xOf(S.pos), 0, Math.max(1.5, width / count), height);
  }
  const what = bars ? `characters ${start.toLocaleString()}–${(stop - 1).toLocaleString()}` : `whole text (${N.toLocaleString()} characters)`;
  label(ctx, `${what} · ${entry ? `${S.layer}:${S.unit} ${S.state}` : "unit not in this file"}`, 2);
  if (feature) label(ctx, feature.name, stripTop + 1);
}
function label(ctx, text, top) {  // small text on a white patch, readable over the plot
  ctx.font = "10px ui-monospace, monospace";
  ctx.fillStyle = "rgba(255,255,255,0.8)"; ctx.fillRect(2, top, ctx.measureText(text).width + 4, 11);
  ctx.fillStyle = "#444"; ctx.fillText(text, 4, top + 9);
}
function nearRange() {
  const span = Math.min(N, 240), centre = S.pos === null ? 0 : S.pos;
  const start = Math.max(0, Math.min(N - span, centre - span / 2 | 0));
  return [start, start + span];
}
function drawPlots() {
  drawRange($("plot-all"), 0, N, false);
  const [start, stop] = nearRange();
  drawRange($("plot-near"), start, stop, true);
}
function plotPosition(canvas, event, start, stop) {
  const rect = canvas.getBoundingClientRect();
  return Math.max(0, Math.min(N - 1, start + Math.floor((event.clientX - rect.left) / rect.width * (stop - start))));
}
function jumpTo(i) {
  S.pos = i;
  for (const span of document.querySelectorAll("#text span.at")) span.classList.remove("at");
  const span = S.spans[i];
  span.classList.add("at");
  const box = $("text");
  box.scrollTop += span.getBoundingClientRect().top - box.getBoundingClientRect().top - box.clientHeight / 3;
  schedulePlot();
}

// ------------------------------------------------------------ saturation scatter
function drawScatters() {
  const box = $("scatters");
  box.textContent = "";
  const layers = R.saturation || [];
  const gates = layers.length ? Object.keys(layers[0].gates) : [];
  if (!gates.length) { box.append(el("div", { class: "small", text: `a ${D.cell.toUpperCase()} has no gates` })); return; }
  box.append(el("div", { class: "small key" }, ...gates.flatMap((g) => {
    const dot = el("span"); dot.style.background = GATE_COLOURS[g]; return [dot, g];
  })));
  S.scatters = [];
  for (const layer of layers) {
    const canvas = el("canvas", { width: 146, height: 146, title: `layer ${layer.layer}` });
    const wrap = el("div", { class: "scatter" }, el("div", { class: "small", text: `layer ${layer.layer}` }), canvas);
    box.append(wrap);
    const entry = { layer, canvas, points: [] };
    canvas.addEventListener("click", (event) => {
      const rect = canvas.getBoundingClientRect(), x = event.clientX - rect.left, y = event.clientY - rect.top;
      let best = null, bestDistance = 49;
      for (const p of entry.points) { const d = (p.x - x) ** 2 + (p.y - y) ** 2; if (d < bestDistance) { best = p; bestDistance = d; } }
      if (best) select(layer.layer, best.unit, best.gate);
    });
    S.scatters.push(entry);
  }
  redrawScatters();
}
function redrawScatters() {
  for (const entry of S.scatters || []) {
    const { layer, canvas } = entry, ctx = canvas.getContext("2d"), size = canvas.width, pad = 14, inner = size - 2 * pad;
    ctx.clearRect(0, 0, size, size);
    ctx.strokeStyle = "#bbb"; ctx.strokeRect(pad + 0.5, pad + 0.5, inner, inner);
    ctx.beginPath(); ctx.moveTo(pad, pad); ctx.lineTo(pad + inner, pad + inner); ctx.strokeStyle = "#eee"; ctx.stroke();
    ctx.fillStyle = "#777"; ctx.font = "9px ui-monospace, monospace";
    ctx.fillText("< 0.1 →", size - pad - 38, size - 3); ctx.save(); ctx.translate(9, pad + 40); ctx.rotate(-Math.PI / 2); ctx.fillText("> 0.9 →", 0, 0); ctx.restore();
    entry.points = [];
    let mine = [];
    for (const [gate, values] of Object.entries(layer.gates)) {
      ctx.fillStyle = GATE_COLOURS[gate] || "#333";
      ctx.globalAlpha = 0.6;
      values.left.forEach((left, unit) => {
        const x = pad + (left ?? 0) * inner, y = pad + inner - (values.right[unit] ?? 0) * inner;
        ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
        entry.points.push({ x, y, unit, gate });
        if (layer.layer === S.layer && unit === S.unit) mine.push({ x, y, gate });
      });
      ctx.globalAlpha = 1;
    }
    for (const p of mine) {
      ctx.strokeStyle = p.gate === S.state ? "#000" : "#666"; ctx.lineWidth = p.gate === S.state ? 2 : 1;
      ctx.beginPath(); ctx.arc(p.x, p.y, 5, 0, 2 * Math.PI); ctx.stroke(); ctx.lineWidth = 1;
    }
  }
}

// ------------------------------------------------------------ picker, state switch, legend
function unitButtons() {
  const box = $("features");
  for (const [name, feature] of Object.entries(R.features)) {
    const metric = feature.metric === "auroc" ? "AUROC" : "Spearman";
    const head = el("h3", { text: name, title: feature.description });
    const meta = el("div", { class: "meta", text:
      `${feature.kind}: ${metric} on held-out text, passing at ${feature.pass_threshold}; the untrained control's best: ` +
      `${feature.control_best == null ? "–" : feature.control_best.toFixed(3)}` });
    const list = el("div", { class: "units" }, el("div", { class: "unit-head" },
      ...["unit", "±", "held-out", "select", "ablation"].map((text) => el("span", { text }))));
    for (const unit of feature.units) {
      const held = unit.heldout_score, pass = held !== null && held >= feature.pass_threshold;
      const pct = unit.ablation && unit.ablation.random_percentile !== null ? `pct ${Math.round(unit.ablation.random_percentile)}` : "–";
      const button = el("button", { class: "unit", type: "button", "data-unit": key(unit.layer, unit.unit, unit.state), "data-feature": name,
        title: `selection ${unit.score.toFixed(3)}, held-out ${held === null ? "–" : held.toFixed(3)}; sign ${unit.sign > 0 ? "+" : "−"}` +
               (unit.ablation ? `; ablating it changes the loss by ${unit.ablation.target_delta} on target characters, ` +
                `${unit.ablation.other_delta} elsewhere; percentile among ${unit.ablation.random_units} random units: ${unit.ablation.random_percentile}` : ""),
        onclick: () => { S.feature = name; $("overlay").value = name; select(unit.layer, unit.unit, unit.state); } },
        el("span", { text: `${unit.layer}:${unit.unit} ${unit.state}` }),
        el("span", { text: unit.sign > 0 ? "+" : "−" }),
        el("span", { class: pass ? "pass" : "", text: held === null ? "–" : held.toFixed(3) }),
        el("span", { class: "detail", text: unit.score.toFixed(3) }),
        el("span", { class: "detail", text: pct }));
      list.append(button);
    }
    box.append(el("div", { class: "feature" }, head, meta, list));
  }
  for (const [name, reason] of Object.entries(R.skipped_features || {}))
    box.append(el("div", { class: "feature skipped" }, el("h3", { text: name }), el("div", { class: "meta", text: `not scored: ${reason}` })));
}
function stateButtons() {
  const box = $("state-switch");
  for (const state of D.states)
    box.append(el("button", { type: "button", "data-state": state, text: state, title: STATE_HELP[state] || state,
                              onclick: () => select(S.layer, S.unit, state) }));
}
function numberPicker() {
  const layerSelect = $("pick-layer"), stateSelect = $("pick-state"), unitInput = $("pick-unit");
  for (let l = 1; l <= D.layers; l++) layerSelect.append(el("option", { value: l, text: l }));
  for (const state of D.states) stateSelect.append(el("option", { value: state, text: state }));
  unitInput.max = D.hidden - 1;
  const refresh = () => {
    const layer = +layerSelect.value, unit = +unitInput.value;
    for (const option of stateSelect.options) {
      option.disabled = !has(layer, unit, option.value);
      option.textContent = option.value + (option.disabled ? " (not in file)" : "");
    }
  };
  layerSelect.addEventListener("change", refresh); unitInput.addEventListener("input", refresh);
  $("number-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const layer = +layerSelect.value, unit = Math.round(+unitInput.value);
    if (!(unit >= 0 && unit < D.hidden)) { unitInput.setCustomValidity(`units are 0..${D.hidden - 1}`); unitInput.reportValidity(); return; }
    unitInput.setCustomValidity("");
    select(layer, unit, stateSelect.value);
  });
  S.refreshNumberPicker = refresh;
  const cov = D.coverage;
  $("coverage").textContent = `In this file: ${cov.description} (budget ${cov.budget_mb} MB: --html-max-mb). States not in it are greyed out.`;
}
function cScalePicker() {
  const picker = $("c-scale");
  for (const [value, text] of Object.entries(C_SCALES)) picker.append(el("option", { value, text }));
  picker.value = S.cScale;
  picker.addEventListener("change", () => { S.cScale = picker.value; recolour(); legend(); schedulePlot(); saveHash(); });
}
function overlayPicker() {
  const select_ = $("overlay");
  select_.append(el("option", { value: "", text: "nothing" }));
  for (const f of D.features) select_.append(el("option", { value: f.name, text: f.kind === "ordinal" ? `${f.name} > 0` : f.name }));
  select_.addEventListener("change", () => { S.feature = select_.value || null; applyOverlay(); schedulePlot(); saveHash(); });
}
function legend() {
  const entry = track(S.layer, S.unit, S.state);
  $("c-scale-box").hidden = S.state !== "c";
  if (!entry) { $("legend-low").textContent = $("legend-high").textContent = $("legend-note").textContent = ""; return; }
  const view = trackView(entry, S.state);
  let note = `white = ${view.mid}`;
  if (S.state === "c") note += view.mode === "centred" ? " (the median; ends: 98% of characters lie between)" : "";
  else if (S.state === "h" && D.cell === "lstm") note += "; h = o · tanh(c)";
  if (entry.levels < 127) note += `; stored at ${2 * entry.levels + 1} levels`;
  $("legend-low").textContent = view.low; $("legend-high").textContent = view.high; $("legend-note").textContent = note;
}
function select(layer, unit, state) {
  if (!D.states.includes(state)) state = "h";
  S.layer = layer; S.unit = unit; S.state = state;
  $("unit-name").textContent = `layer ${layer} · unit ${unit} · ${STATE_HELP[state] || state}`;
  for (const button of document.querySelectorAll("#state-switch button")) {
    button.disabled = !has(layer, unit, button.dataset.state);
    button.title = button.disabled ? "not in this file: raise --html-max-mb" : STATE_HELP[button.dataset.state];
    button.classList.toggle("active", button.dataset.state === state);
  }
  for (const button of document.querySelectorAll(".unit"))
    button.classList.toggle("active", button.dataset.unit.startsWith(`${layer}:${unit}:`) && button.dataset.feature === S.feature);
  $("pick-layer").value = layer; $("pick-unit").value = unit; $("pick-state").value = state;
  if (S.refreshNumberPicker) S.refreshNumberPicker();
  if (!has(layer, unit, state)) $("unit-name").textContent += " — not in this file (raise --html-max-mb)";
  recolour(); legend(); redrawScatters(); schedulePlot(); saveHash();
  if (S.pos !== null && tip.classList.contains("show")) showTip(S.pos, parseFloat(tip.style.left) - 14, parseFloat(tip.style.top) - 16);
}

// ------------------------------------------------------------ the URL fragment: #u=LAYER:UNIT:STATE&f=FEATURE&c=SCALE&at=POS
function saveHash() {
  const parts = [`u=${key(S.layer, S.unit, S.state)}`];
  if (S.feature) parts.push(`f=${encodeURIComponent(S.feature)}`);
  if (S.cScale !== "centred") parts.push(`c=${S.cScale}`);
  try { history.replaceState(null, "", "#" + parts.join("&")); } catch (err) { /* some file:// setups refuse; the page works without */ }
}
function readHash() {
  const out = {};
  for (const part of location.hash.replace(/^#/, "").split("&")) {
    const [k, v] = part.split("=");
    if (k && v !== undefined) out[k] = decodeURIComponent(v);
  }
  return out;
}

function summary() {
  const m = R.model, t = R.text;
  const parts = [`${m.cell.toUpperCase()} ${m.layers}×${m.hidden} (${m.parameters.toLocaleString()} parameters)`];
  if (m.checkpoint) parts.push(`${m.checkpoint}${m.step != null ? ` step ${m.step}` : ""}`);
  if (m.corpus) parts.push(`trained on ${m.corpus}`);
  parts.push(`text ${t.path || ""} ${D.chars.toLocaleString()} characters shown` + (D.probed_chars !== D.chars ? ` of ${D.probed_chars.toLocaleString()} probed` : ""));
  parts.push(`units chosen on characters 0–${(R.split.selection.stop - 1).toLocaleString()}, scored on the held-out rest`);
  parts.push("layers count from 1");
  $("summary").textContent = parts.join(" · ");
  for (const note of D.notes) $("notes").append(el("li", { text: note }));
}

async function main() {
  await load();
  const wanted = readHash();
  summary();
  $("keys").textContent = D.states.join(" ");
  buildText();
  unitButtons(); stateButtons(); numberPicker(); overlayPicker(); drawScatters();
  if (C_SCALES[wanted.c]) S.cScale = wanted.c;
  cScalePicker();
  const text = $("text");
  text.addEventListener("mouseover", (event) => { const i = event.target.ci; if (i !== undefined) showTip(i, event.clientX, event.clientY); });
  text.addEventListener("mousemove", (event) => { if (tip.classList.contains("show")) placeTip(event.clientX, event.clientY); });
  text.addEventListener("mouseleave", hideTip);
  text.addEventListener("scroll", hideTip);
  const all = $("plot-all"), near = $("plot-near");
  all.addEventListener("click", (event) => jumpTo(plotPosition(all, event, 0, N)));
  near.addEventListener("click", (event) => { const [a, b] = nearRange(); jumpTo(plotPosition(near, event, a, b)); });
  addEventListener("resize", schedulePlot);
  addEventListener("keydown", (event) => {
    if (event.target.tagName === "INPUT" || event.target.tagName === "SELECT" || event.ctrlKey || event.metaKey || event.altKey) return;
    if (D.states.includes(event.key) && has(S.layer, S.unit, event.key)) select(S.layer, S.unit, event.key);
  });
  // the first unit shown: the URL's, else the best-scoring flagged unit of the first feature that has one
  let first = null;
  for (const [name, feature] of Object.entries(R.features)) if (feature.units.length) { first = { ...feature.units[0], feature: name }; break; }
  let layer = first ? first.layer : 1, unit = first ? first.unit : 0, state = first ? first.state : "h";
  S.feature = first ? first.feature : null;
  if (wanted.u) {
    const [l, u, s] = wanted.u.split(":");
    if (+l >= 1 && +l <= D.layers && +u >= 0 && +u < D.hidden) { layer = +l; unit = +u; state = s || "h"; }
  }
  if (wanted.f !== undefined) S.feature = S.features.has(wanted.f) ? wanted.f : null;
  $("overlay").value = S.feature || "";
  applyOverlay();
  select(layer, unit, state);
  if (wanted.at !== undefined && +wanted.at >= 0 && +wanted.at < N) jumpTo(+wanted.at);
  drawPlots();
  window.charnnExplorer = {  // for tests and the console
    loadMs: performance.now(), state: S, select,
    value: (layer, unit, state, i) => { const entry = track(layer, unit, state); return entry ? realValue(entry, i, state) : null; },
  };
  document.body.dataset.ready = "true";
}

main().catch((err) => {
  document.body.prepend(el("div", { id: "fatal", text: `The explorer could not start: ${err.message}` }));
  console.error(err);
});
})();
"""


if __name__ == "__main__":
    raise SystemExit(main())
