"""The one-file HTML explorer: what the page holds (decoded back in Python), its size budget, the CLI, and
(marker `browser`) the page itself in headless Chromium from disk: no console errors, a click recolours,
a hover shows the tooltip, the values the page shows are the recorded ones."""

import base64
import json
import re
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from charnn.checkpoint import save_checkpoint
from charnn.cli import main
from charnn.corpus import Vocab
from charnn.model import CharRNN, ModelConfig
from charnn.probe.html import build_html, write_html
from charnn.probe.pipeline import ProbeOptions, run_probe

DATA_BLOCK = re.compile(r'<script type="application/json" id="charnn-data">(.*?)</script>', re.S)


def probe_text() -> str:
    """About 3,000 characters of real Python (strings, comments, brackets, indentation), no URLs, and a line
    that could break a page that embeds text carelessly: a closing script tag, a comment opener, an emoji, a tab."""
    import json.decoder

    code = Path(json.decoder.__file__).read_text()
    code = "\n".join(line for line in code.splitlines() if "http" not in line)
    return code[:3000] + '\nclosing = "</script><!-- \U0001f600 &amp;"\t# tab\n'


@pytest.fixture(scope="module")
def probed():
    """An untrained 2 × 16 LSTM probed on real code (tiny ablation), its vocabulary and the text."""
    text = probe_text()
    vocab = Vocab(tuple(sorted(set(text))))
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=vocab.size, layers=2, hidden=16, embed=8)).eval()
    result = run_probe(
        model, vocab.encode(text), text, ProbeOptions(top=3, random_units=5, threads=1), {"text_path": "decoder.py"}
    )
    yield result, model, vocab, text
    result.close()


def page_data(html: str) -> dict:
    """The JSON block of a page."""
    match = DATA_BLOCK.search(html)
    assert match, "no data block"
    return json.loads(match.group(1))


def unpack(blob: dict) -> bytes:
    assert blob["enc"] == "deflate"
    return zlib.decompress(base64.b64decode(blob["b64"]))


def decoded_tracks(data: dict) -> dict[tuple[int, int, str], tuple[np.ndarray, int, float]]:
    """(layer, unit, state) -> (steps, levels, scale), as the page's JS decodes them."""
    tracks = {}
    chars = data["chars"]
    for group in data["tracks"]:
        values = np.frombuffer(unpack(group["data"]), dtype=np.int8).reshape(len(group["units"]), chars)
        if group["delta"]:
            values = np.cumsum(values.astype(np.int64), axis=1).astype(np.int8)  # wraps like the page's int8 sums
        for k, (layer, unit) in enumerate(group["units"]):
            scale = group["scales"][k] if group["scales"] else 1.0
            tracks[(layer, unit, group["state"])] = (values[k], group["levels"], scale)
    return tracks


def as_values(steps: np.ndarray, levels: int, scale: float, state: str) -> np.ndarray:
    v = steps.astype(np.float64) / levels
    if state in ("i", "f", "o"):
        return 0.5 + 0.5 * v
    return v * scale if state == "c" else v


def test_page_is_one_file_with_no_outside_references(probed):
    result, model, vocab, text = probed
    html, summary = build_html(result, model, vocab, max_mb=5.0)
    assert html.startswith("<!DOCTYPE html>")
    code = DATA_BLOCK.sub("", html)  # the page without its data (base64 may spell anything)
    assert "http" not in code  # no URL at all: no CDN, no font, no namespace
    for pattern in (
        r"<script[^>]+src=",
        r"<link\b",
        r"@import",
        r"(?<![.\w])url\(",
        r"<iframe",
        r"<img\b",
        r"fetch\(",
        r"XMLHttpRequest",
        r"href=",
    ):
        assert not re.search(pattern, code, re.I), pattern
    assert (
        html.count("<script") == 3 and html.count("</script>") == 3
    )  # the data block, the live model's worker and the code, all inline
    assert page_data(html)["text"] == text  # the text's own "</script>" is escaped inside the data
    assert summary["chars"] == len(text) and summary["states"] == ("h", "c", "i", "f", "g", "o")


def test_page_holds_the_recorded_values_labels_and_predictions(probed):
    result, model, vocab, text = probed
    html, summary = build_html(result, model, vocab, max_mb=5.0)
    data = page_data(html)
    assert data["text"] == text and data["chars"] == len(text)
    assert data["vocab"][:-1] == list(vocab.chars)

    # every state of every unit, at 255 levels: each stored value is the recorded one to within half a step
    tracks = decoded_tracks(data)
    recording = result.recording
    assert len(tracks) == 2 * 16 * 6
    for (layer, unit, state), (steps, levels, scale) in tracks.items():
        assert levels == 127
        recorded = recording.unit_values(layer, unit, state)
        step = (scale if state == "c" else 0.5 if state in ("i", "f", "o") else 1.0) / levels
        assert np.abs(as_values(steps, levels, scale, state) - recorded).max() <= step / 2 + 1e-3, (layer, unit, state)

    # labels: bits for binary features, integers for ordinal ones
    for feature in data["features"]:
        raw = unpack(feature["data"])
        expected = result.features[feature["name"]].values
        if feature["dtype"] == "bits":
            labels = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")[: len(text)].astype(bool)
        else:
            labels = np.frombuffer(raw, dtype=feature["dtype"])
        assert np.array_equal(labels, expected), feature["name"]
    assert {f["name"] for f in data["features"]} == set(result.features)

    # top-5 next characters: the model's own softmax, best first
    k = data["predictions"]["k"]
    ids = np.frombuffer(unpack(data["predictions"]["ids"]), dtype=np.uint8).reshape(-1, k)
    probs = np.frombuffer(unpack(data["predictions"]["probs"]), dtype=np.uint8).reshape(-1, k) / 255
    actual = np.frombuffer(unpack(data["predictions"]["actual"]), dtype=np.uint8) / 255
    with torch.no_grad():
        expected = torch.softmax(model(torch.from_numpy(vocab.encode(text).astype(np.int64))[None])[0][0], -1).numpy()
    assert k == 5 and ids.shape == (len(text), 5)
    assert np.array_equal(ids[:, 0], expected.argmax(1))
    assert np.all(np.diff(probs, axis=1) <= 1 / 255)
    assert np.abs(probs[:, 0] - expected.max(1)).max() <= 1 / 255
    following = vocab.encode(text)[1:]
    assert np.abs(actual[:-1] - expected[np.arange(len(text) - 1), following]).max() <= 1 / 255

    # the flagged units and their scores come with the report
    flagged = {(u["layer"], u["unit"]) for f in data["report"]["features"].values() for u in f["units"]}
    assert flagged and {tuple(u) for u in data["coverage"]["flagged"]} == flagged


def test_budget_drops_precision_then_states_then_characters(probed):
    result, model, vocab, text = probed
    full, _ = build_html(result, model, vocab, max_mb=5.0)
    flagged = {tuple(u) for u in page_data(full)["coverage"]["flagged"]}
    sizes = {}
    for max_mb in (0.45, 0.35, 0.20, 0.15):
        html, summary = build_html(result, model, vocab, max_mb=max_mb)
        size = len(html.encode("utf-8"))
        assert size == summary["bytes"] <= max_mb * 1e6
        data = page_data(html)
        tracks = decoded_tracks(data)
        # the flagged units always keep every state at full precision
        for layer, unit in flagged:
            for state in ("h", "c", "i", "f", "g", "o"):
                assert tracks[(layer, unit, state)][1] == 127
        sizes[max_mb] = (summary["states"], summary["levels"], summary["chars"], data["coverage"]["description"])
    # a smaller budget never holds more
    ranked = [(len(states), levels if states else 0, chars) for states, levels, chars, _ in sizes.values()]
    assert ranked == sorted(ranked, reverse=True) and len(set(ranked)) > 1, sizes

    # too small even for the flagged units over the whole text: the text is cut, and the page says so
    html, summary = build_html(result, model, vocab, max_mb=0.12)
    data = page_data(html)
    assert summary["chars"] < len(text) and len(html.encode()) <= 0.12e6
    assert data["chars"] == summary["chars"] and data["text"] == text[: summary["chars"]]
    assert any("shows the first" in note for note in data["notes"])
    assert summary["states"] == ()
    assert "only the" in data["coverage"]["description"]


def test_the_live_model_goes_in_after_the_flagged_units_float16_then_int8_else_a_note_with_the_budget_it_needs():
    from charnn.probe.html import fit_page, live_model, next_char_predictions, script_json
    from charnn.probe.page_data import Coverage

    text = probe_text()[:400]
    vocab = Vocab(tuple(sorted(set(text))))
    torch.manual_seed(1)
    model = CharRNN(ModelConfig(vocab_size=vocab.size, layers=2, hidden=64, embed=8)).eval()
    result = run_probe(
        model,
        vocab.encode(text),
        text,
        ProbeOptions(top=1, random_units=2, ablation=False, control=False, threads=1),
        {},
    )
    try:
        sizes = {
            precision: len(script_json(live_model(model, vocab, precision)).encode())
            for precision in ("float16", "int8")
        }
        predictions = next_char_predictions(model, vocab.encode(text))
        _, bare = fit_page(result, vocab, predictions, len(text), [], 10**9, [Coverage((), 127)], [None])
        flagged_only = bare["bytes"]

        html, summary = build_html(result, model, vocab, max_mb=(flagged_only + sizes["float16"] + 2000) / 1e6)
        live = page_data(html)["live"]
        assert summary["live"] == live["precision"] == "float16" and summary["chars"] == len(text)
        weights = dict(model_tensors_of(model))
        for tensor in live["tensors"]:  # float16 weights, as torch names them, to float16's precision
            stored = np.frombuffer(unpack(tensor["data"]), dtype="<f2").reshape(tensor["shape"])
            assert np.allclose(stored, weights[tensor["name"]], atol=1e-3, rtol=1e-3), tensor["name"]
        assert live["unknown_id"] == vocab.unknown_id and live["cell"] == "lstm"

        html, summary = build_html(
            result, model, vocab, max_mb=(flagged_only + (sizes["float16"] + sizes["int8"]) // 2) / 1e6
        )
        live = page_data(html)["live"]
        assert summary["live"] == "int8"
        decoder = next(t for t in live["tensors"] if t["name"] == "decoder.weight")
        q = np.frombuffer(unpack(decoder["data"]), dtype=np.int8).reshape(decoder["shape"]).astype(np.float32)
        scales = np.frombuffer(unpack(decoder["scales"]), dtype="<f4")
        assert np.abs(q * scales[:, None] - weights["decoder.weight"]).max() <= scales.max() / 2 + 1e-6

        budget = (flagged_only + sizes["int8"] // 2) / 1e6
        html, summary = build_html(result, model, vocab, max_mb=budget)
        data = page_data(html)
        assert data["live"] is None and summary["live"] is None and summary["chars"] == len(text)
        needed = float(re.search(r"--html-max-mb ([0-9.]+)", data["live_note"]).group(1))
        assert needed > budget
        assert build_html(result, model, vocab, max_mb=needed)[1]["live"] is not None  # the note's budget is enough
        assert page_data(build_html(result, model, vocab, max_mb=5, live=False)[0])["live"] is None
    finally:
        result.close()


def model_tensors_of(model):
    from charnn.probe.html import model_tensors

    return [(name, weight.detach().numpy()) for name, weight in model_tensors(model)]


def test_write_html_is_atomic_and_reports_its_size(probed, tmp_path):
    result, model, vocab, _ = probed
    out = tmp_path / "explorer.html"
    out.write_text("old")
    summary = write_html(result, out, model, vocab, max_mb=1.0)
    assert out.stat().st_size == summary["bytes"]
    assert [p.name for p in tmp_path.iterdir()] == ["explorer.html"]  # no temporary file left behind


@pytest.fixture(scope="module")
def checkpoint(probed, tmp_path_factory):
    result, model, vocab, text = probed
    tmp = tmp_path_factory.mktemp("html-cli")
    path = tmp / "tiny.pt"
    save_checkpoint(path, {"model": model.config.to_json(), "vocab": vocab.to_json(), "step": 0}, model.state_dict())
    text_path = tmp / "probe.py"
    text_path.write_text(text)
    return tmp, path, text_path


def test_probe_html_from_the_command_line(checkpoint, capsys):
    tmp, path, text = checkpoint
    out = tmp / "page.html"
    status = main(
        [
            "probe",
            "--checkpoint",
            str(path),
            "--text",
            str(text),
            "--features",
            "code",
            "--no-ablation",
            "--no-control",
            "--threads",
            "1",
            "--html",
            str(out),
            "--html-max-mb",
            "0.5",
        ]
    )
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert "wrote" in printed.out and "MB" in printed.out
    assert 0 < out.stat().st_size <= 500_000
    data = page_data(out.read_text(encoding="utf-8"))
    assert data["report"]["text"]["path"] == str(text)
    assert data["live"]["precision"] == "float16" and "live model: float16 weights" in printed.out

    assert (
        main(
            [
                "probe",
                "--checkpoint",
                str(path),
                "--text",
                str(text),
                "--features",
                "code",
                "--no-ablation",
                "--no-control",
                "--threads",
                "1",
                "--html",
                str(out),
                "--html-no-model",
            ]
        )
        == 0
    )
    assert page_data(out.read_text(encoding="utf-8"))["live"] is None
    assert "left out of this page (--html-no-model)" in capsys.readouterr().out

    with pytest.raises(SystemExit):
        main(["probe", "--help"])
    helped = " ".join(capsys.readouterr().out.split())
    assert "--html-max-mb" in helped and "docs/explorer.md" in helped  # what a budget holds: a pointer, not figures


def test_probe_html_refusals(checkpoint, capsys):
    tmp, path, text = checkpoint
    common = ["probe", "--checkpoint", str(path), "--text", str(text), "--features", "code"]
    # a directory that does not exist: refused before the probe runs
    assert main([*common, "--html", str(tmp / "no" / "such" / "page.html")]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main([*common, "--html", str(tmp / "page.html"), "--html-max-mb", "0.1"])
    assert exit_info.value.code == 2 and "--html-max-mb" in capsys.readouterr().err


# ---------------------------------------------------------------- in a real browser


def palette(value: float) -> np.ndarray:
    """The page's colour for a value in [-1, 1]: dark red (-1) to white (0) to dark blue (+1)."""
    end = np.array([160, 18, 28]) if value < 0 else np.array([18, 52, 150])
    return np.rint(255 + (end - 255) * min(abs(value), 1.0)).astype(int)


@pytest.mark.browser
def test_explorer_in_headless_chromium(chromium, probed, tmp_path):
    import tempfile

    from browser_tools import CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    result, model, vocab, text = probed
    page_path = tmp_path / "explorer.html"
    write_html(result, page_path, model, vocab)
    report = result.report
    feature, units = next((name, f["units"]) for name, f in report["features"].items() if len(f["units"]) >= 2)

    problems, requests = [], []
    with tempfile.TemporaryDirectory(prefix="charnn-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1200, "height": 800},
        )
        try:
            context.route(
                "**/*",
                lambda route: (
                    (requests.append(route.request.url), route.abort())
                    if not route.request.url.startswith("file:")
                    else route.continue_()
                ),
            )
            page = context.new_page()
            page.on(
                "console",
                lambda message: problems.append(message.text) if message.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(page_path.as_uri())
            page.wait_for_selector("body[data-ready='true']", timeout=30_000)

            spans = page.locator("#text > span")
            assert spans.count() == len(text)
            colours = "() => Array.from(document.querySelectorAll('#text > span'), s => s.style.backgroundColor)"
            before = page.evaluate(colours)

            # clicking another flagged unit recolours the text
            second = units[1]
            page.click(
                f"button.unit[data-feature='{feature}'][data-unit='{second['layer']}:{second['unit']}:{second['state']}']"
            )
            after = page.evaluate(colours)
            assert after != before and len(set(after)) > 5
            assert (
                page.locator("#unit-name").inner_text().startswith(f"layer {second['layer']} · unit {second['unit']}")
            )

            # the state switch: every state of a flagged unit is there; another state recolours again
            gate = "f" if second["state"] != "f" else "i"
            page.click(f"#state-switch button[data-state='{gate}']")
            assert page.evaluate(colours) != after
            assert page.locator("#state-switch button:disabled").count() == 0

            # the page's values are the recorded ones, and the colours follow them: white at 0.5, blue when open
            values = result.recording.unit_values(second["layer"], second["unit"], gate)
            shown = page.evaluate(
                f"() => Array.from({{length: {len(text)}}}, "
                f"(_, i) => charnnExplorer.value({second['layer']}, {second['unit']}, '{gate}', i))"
            )
            assert np.abs(np.array(shown) - values).max() <= 0.5 / 127 * 0.5 + 1e-3
            for position in (int(np.argmax(values)), int(np.argmin(values)), 0):
                colour = page.evaluate(
                    f"() => document.querySelectorAll('#text > span')[{position}].style.backgroundColor"
                )
                expected = palette(float(2 * values[position] - 1))
                assert np.abs(np.array(re.findall(r"\d+", colour), dtype=int) - expected).max() <= 3, (colour, expected)

            # any unit by number
            page.select_option("#pick-layer", "2")
            page.fill("#pick-unit", "5")
            page.select_option("#pick-state", "g")
            page.click("#number-form button")
            assert page.locator("#unit-name").inner_text().startswith("layer 2 · unit 5")

            # the underline follows the chosen feature only where its label is defined
            page.select_option("#overlay", "indent_remaining")
            underlined = page.evaluate(
                "() => Array.from(document.querySelectorAll('#text > span'), s => s.classList.contains('ov'))"
            )
            remaining = result.features["indent_remaining"]
            assert underlined == ((remaining.values > 0) & remaining.defined_mask).tolist() and any(underlined)

            # hovering a character shows its value, its labels and the next-character guesses
            position = text.index('"')  # the first string
            target = spans.nth(position)
            target.scroll_into_view_if_needed()
            target.hover()
            tip = page.locator("#tip.show")
            tip.wait_for(timeout=5_000)
            words = tip.inner_text()
            assert f"position {position}" in words and "unit 2:5 g =" in words
            assert "inside_string" in words and "next character" in words and "%" in words
            guesses = page.locator("#tip tr").count()
            assert guesses == 5

            # the feature overlay underlines where the label holds
            page.select_option("#overlay", "inside_string")
            underlined = page.evaluate(
                "() => Array.from(document.querySelectorAll('#text > span'), s => s.classList.contains('ov'))"
            )
            assert np.array_equal(np.array(underlined), result.features["inside_string"].values)

            # the saturation scatter: one canvas per layer; clicking a dot shows that unit's gate
            scatter = page.locator("#scatters canvas").nth(1)
            assert page.locator("#scatters canvas").count() == 2
            scatter.scroll_into_view_if_needed()
            box = scatter.bounding_box()
            dot = page.evaluate(
                "() => charnnExplorer.state.scatters[1].points.find(p => p.gate === 'o' && p.unit === 7)"
            )
            page.mouse.click(box["x"] + dot["x"], box["y"] + dot["y"])
            chosen = page.evaluate(
                "() => [charnnExplorer.state.layer, charnnExplorer.state.unit, charnnExplorer.state.state]"
            )
            assert chosen[0] == 2 and chosen[2] in ("i", "f", "o")
            assert page.evaluate(
                f"() => charnnExplorer.state.scatters[1].points.some(p => p.unit === {chosen[1]} && "
                f"p.gate === '{chosen[2]}' && Math.abs(p.x - {dot['x']}) < 7 && Math.abs(p.y - {dot['y']}) < 7)"
            )

            page.screenshot(path=str(tmp_path / "explorer.png"))
            load_ms = page.evaluate("charnnExplorer.loadMs")
        finally:
            context.close()
    assert problems == [], problems
    assert requests == [], requests
    assert (tmp_path / "explorer.png").stat().st_size > 10_000
    assert load_ms < 20_000


def test_a_feature_with_undefined_positions_carries_where_it_is_defined():
    from charnn.probe.labels import code_features
    from charnn.probe.page_data import feature_blob

    text = "a\n    b\n\n  c\n"
    remaining = code_features(text, language="python")["indent_remaining"]
    blob = feature_blob(remaining, len(text))
    defined = np.unpackbits(np.frombuffer(unpack(blob["defined"]), dtype=np.uint8), bitorder="little")[: len(text)]
    assert defined.astype(bool).tolist() == remaining.defined_mask.tolist()
    # the page's scale spans the defined labels only (the undefined ones are not 0 columns still to write)
    assert (blob["min"], blob["max"]) == (0, 4)
    assert feature_blob(code_features(text)["column"], len(text))["defined"] is None


def test_the_page_assets_are_in_the_built_wheel(tmp_path):
    """`pip install .` must carry the page's HTML, CSS and JavaScript (package data), not only the editable checkout."""
    import shutil
    import subprocess
    import sys
    import zipfile

    root = Path(__file__).resolve().parents[2]
    source = tmp_path / "src"
    shutil.copytree(root / "charnn", source / "charnn", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, source / name)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "wheel"),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    if built.returncode and "No module named" in built.stderr:
        pytest.skip(f"cannot build a wheel here: {built.stderr.strip().splitlines()[-1]}")
    assert built.returncode == 0, built.stderr
    names = zipfile.ZipFile(next((tmp_path / "wheel").glob("charnn-*.whl"))).namelist()
    assets = sorted(p.name for p in (root / "charnn" / "probe" / "assets").iterdir())
    from charnn.probe.html import SCRIPT_PARTS

    assert assets == sorted(["explorer-worker.js", "explorer.css", "explorer.html", *SCRIPT_PARTS])
    for name in assets:
        assert f"charnn/probe/assets/{name}" in names


@pytest.mark.parametrize("name", ["explorer.js", "explorer-worker.js"])
def test_the_page_scripts_parse(name, tmp_path):
    """A syntax error in the page's JavaScript fails here, without a browser (node --check), where node is installed:
    the script as the page holds it (its parts joined), and the worker."""
    import shutil
    import subprocess

    from charnn.probe.html import asset, page_script

    node = shutil.which("node")
    if node is None:
        pytest.skip("no node executable: the browser tests still load the scripts")
    path = tmp_path / name
    path.write_text(page_script() if name == "explorer.js" else asset(name), encoding="utf-8")
    checked = subprocess.run([node, "--check", str(path)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
