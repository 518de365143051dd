"""The explorer's views and its live model, in headless Chromium from disk (marker `browser`): unit internals,
layer overview, value at an event, search; the in-page model against charnn's own recording and predictions,
for an LSTM on code, a GRU on tweets and the copy task."""

from pathlib import Path

import numpy as np
import pytest
import torch

from charnn.corpus import Vocab
from charnn.model import CharRNN, ModelConfig
from charnn.probe.html import next_char_predictions, write_html
from charnn.probe.pipeline import ProbeOptions, run_probe
from charnn.probe.record import record
from charnn.tasks import make_task_text

pytestmark = pytest.mark.browser

TWEETS = (
    "\n".join(
        [
            "RT @WhiteHouse: The President will be in Ohio today. #MAGA https://t.co/abc123",
            'Great meeting with Prime Minister Abe! "Trade is good" @AbeShinzo',
            "The Fake News Media has never been so dishonest. SAD! #FakeNews",
            "I will be interviewed on @FoxNews tonight at 9:00 P.M. Enjoy!",
            "Thank you Arizona! Together, we will MAKE AMERICA GREAT AGAIN! https://t.co/xyz",
        ]
        * 8
    )
    + "\n"
)


def code_text() -> str:
    import json.decoder

    code = Path(json.decoder.__file__).read_text()
    return "\n".join(line for line in code.splitlines() if "http" not in line)[:2500] + "\n"


def probed_page(
    tmp_path: Path, cell: str, text: str, features: str, task: str | None = None, max_mb: float = 5.0, hidden: int = 16
):
    """An untrained tiny model probed on text, its page written: (path, result, model, vocab)."""
    vocab = Vocab(tuple(sorted(set(text) - {"\u00e9"})))
    torch.manual_seed(3)
    model = CharRNN(ModelConfig(cell=cell, vocab_size=vocab.size, layers=2, hidden=hidden, embed=8)).eval()
    with (
        torch.no_grad()
    ):  # an untrained model guesses almost uniformly; a sharper decoder gives the top-5 an order to check
        model.decoder.weight.mul_(12)
    options = ProbeOptions(feature_set=features, task=task, top=3, random_units=3, threads=1)
    result = run_probe(model, vocab.encode(text), text, options, {"text_path": f"{features}.txt"})
    path = tmp_path / f"{cell}-{features}.html"
    write_html(result, path, model, vocab, max_mb=max_mb)
    return path, result, model, vocab


def live_states(page, layers: int, hidden: int, states: list[str]) -> dict[str, np.ndarray]:
    """Every state of every unit the page's live model recorded: name -> (chars, layers, hidden)."""
    data = page.evaluate(f"""() => {{
        const S = charnnExplorer.state, out = {{}};
        for (const s of {states!r}) {{
            out[s] = [];
            for (let l = 1; l <= {layers}; l++) for (let u = 0; u < {hidden}; u++)
            out[s].push(Array.from(S.tracks.get(`${{l}}:${{u}}:${{s}}`).real));
        }}
        return out;
    }}""")
    return {
        s: np.array(rows, dtype=np.float64).reshape(layers, hidden, -1).transpose(2, 0, 1) for s, rows in data.items()
    }


@pytest.mark.parametrize("cell, features", [("lstm", "code"), ("gru", "tweets")])
def test_the_live_model_in_the_page_agrees_with_charnn(chromium, tmp_path, cell, features):
    from browser_tools import open_page

    text = code_text() if features == "code" else TWEETS
    path, result, model, vocab = probed_page(tmp_path, cell, text, features)
    typed = (
        "def f(x):\n    return 'é' + str(x)  # café\n"
        if features == "code"
        else "Will be #great, @you: never been better! é\n"
    ) * 3
    with open_page(chromium, path) as (page, problems):
        assert page.locator("#live-on").is_visible()
        page.fill("#live-text", typed)
        page.click("#live-run")
        page.wait_for_function("() => charnnExplorer.state.source === 'your text'", timeout=30_000)
        status = page.locator("#live-status").inner_text()
        last = page.evaluate(
            "() => ({chars: charnnExplorer.live.last.chars, unknown: charnnExplorer.live.last.unknown, "
            "ids: Array.from(charnnExplorer.live.last.topIds), probs: Array.from(charnnExplorer.live.last.topProbs)})"
        )
        states = live_states(page, 2, 16, list(result.recording.state_names))
        shown = page.evaluate(
            "() => Array.from(document.querySelectorAll('#text > span'), s => s.textContent).join('')"
        )
        assert page.locator("#text > span").count() == len(typed)
        page.click("#live-back")
        assert page.evaluate("() => charnnExplorer.state.source") == "probed"
        assert page.locator("#text > span").count() == len(text)
    assert problems == [], problems
    # the characters outside the vocabulary are read as the unknown id, shown as such, and counted
    assert last["chars"] == len(typed) and last["unknown"] == typed.count("é") > 0
    assert "outside the vocabulary" in status and "characters/s" in status
    assert shown.replace("↵\n", "\n") == typed.replace("é", "\ufffd")

    ids = vocab.encode(typed, unknown="replace")
    expected = record(model, ids, dtype=np.float32)
    for name, values in expected.states.items():
        scale = np.maximum(1.0, np.abs(values)) if name == "c" else 1.0
        error = np.abs(states[name] - values) / scale
        assert error.max() <= 1e-2, (name, error.max())  # float16 weights
    top_ids, top_probs, _ = next_char_predictions(model, ids)
    page_ids = np.array(last["ids"]).reshape(len(typed), -1)
    page_probs = np.array(last["probs"]).reshape(len(typed), -1)
    assert np.abs(page_probs - top_probs).max() <= 1e-2
    # the same guess at each rank wherever its neighbours' probabilities are not within the weights' rounding of it
    gaps = np.abs(np.diff(top_probs, axis=1))
    apart = np.ones_like(top_probs, dtype=bool)
    apart[:, 1:] &= gaps > 5e-3
    apart[:, :-1] &= gaps > 5e-3
    assert apart.mean() > 0.25 and (page_ids[apart] == top_ids[apart]).all(), apart.mean()


def test_the_views_internals_layer_overview_event_and_search(chromium, tmp_path):
    from browser_tools import open_page

    text = code_text()
    path, result, model, vocab = probed_page(tmp_path, "lstm", text, "code", max_mb=0.3, hidden=24)
    with open_page(chromium, path, height=1000) as (page, problems):
        S = "charnnExplorer.state"
        unit = page.evaluate(f"() => [{S}.layer, {S}.unit, {S}.state]")

        # unit internals: one row per state over the same characters, coloured as the main text is
        page.click("#view-tabs button[data-view='internals']")
        rows = page.locator("#internals .row")
        assert rows.count() == len(result.recording.state_names) == 6
        main_state = unit[2]
        row_colours = page.evaluate(
            f"() => Array.from(document.querySelectorAll('#internals .row-text[data-state=\"{main_state}\"] span'), s "
            "=> s.style.backgroundColor)"
        )
        first = page.evaluate("() => +document.querySelector('#internals .row-text span').title.split(' at ')[1]")
        text_colours = page.evaluate(
            f"() => Array.from(document.querySelectorAll('#text > span')).slice({first}, {first} + "
            f"{len(row_colours)}).map(s => s.style.backgroundColor)"
        )
        assert row_colours == text_colours and len(row_colours) >= 20
        other = "f" if main_state != "f" else "i"
        page.click(f"#internals .row-label[data-state='{other}']")
        assert page.evaluate(f"() => {S}.state") == other

        # layer overview: rows ordered by a feature's held-out score; a click selects the row's unit
        page.click("#view-tabs button[data-view='layer']")
        page.select_option("#layer-order", "inside_string")
        page.evaluate(f"() => charnnExplorer.select({unit[0]}, {unit[1]}, 'h')")
        # drawn for this state and order (the map drawn before it, for another state, may still be there)
        page.wait_for_function(
            f"() => {S}.layerMap && {S}.layerMap.state === 'h' && {S}.layerMap.by === 'inside_string'"
        )
        order = page.evaluate(f"() => {S}.layerMap.order")
        heldout = result.scores["inside_string"].oriented[2][0, unit[0] - 1]  # state h of the layer
        expected = sorted(range(24), key=lambda u: (-(np.nan_to_num(heldout[u], nan=-1) * 250).round(), u))
        assert order[:5] == expected[:5]
        box = page.locator("#layer-map").bounding_box()
        row_height = box["height"] / 24
        page.mouse.click(box["x"] + 10, box["y"] + row_height * 2.5)
        assert page.evaluate(f"() => {S}.unit") == order[2]
        assert "not in this file" in page.locator("#layer-note").inner_text()  # a 0.3 MB page lacks some units

        # value at an event: every newline, grouped by the first character of its line; hovering a dot goes there
        page.evaluate(f"() => charnnExplorer.select({unit[0]}, {unit[1]}, 'h')")
        page.click("#view-tabs button[data-view='event']")
        page.select_option("#event-group", "line")
        page.wait_for_function(f"() => ({S}.eventDots || []).length === {text.count(chr(10))}")
        dot = page.evaluate(f"() => {S}.eventDots[7]")
        box = page.locator("#event-plot").bounding_box()
        page.mouse.move(box["x"] + dot["x"], box["y"] + dot["y"])
        page.wait_for_function(f"() => {S}.pos === {dot['i']}")
        assert text[dot["i"]] == "\n"

        # search: each Enter steps to the next hit
        hits = [i for i in range(len(text)) if text.startswith("def ", i)]
        page.fill("#search", "def ")
        page.press("#search", "Enter")
        assert page.evaluate(f"() => {S}.pos") == hits[0]
        page.press("#search", "Enter")
        assert page.evaluate(f"() => {S}.pos") == hits[1]
        assert page.locator("#search-count").inner_text() == f"2 of {len(hits)}"
        page.press("#search", "Shift+Enter")
        assert page.evaluate(f"() => {S}.pos") == hits[0]
        assert page.locator("#text span.hit").count() == 4 * len(hits)
        page.fill("#search", "no such text here")
        page.press("#search", "Enter")
        assert page.locator("#search-count").inner_text() == "no match"
        page.screenshot(path=str(tmp_path / "views.png"))
    assert problems == [], problems


def test_the_copy_task_explorer_groups_the_separator_by_the_first_letter_and_samples(chromium, tmp_path):
    from browser_tools import open_page

    text = make_task_text("copy", 300, seed=5)
    path, result, model, vocab = probed_page(tmp_path, "lstm", text, "task", task="copy")
    with open_page(chromium, path) as (page, problems):
        S = "charnnExplorer.state"
        page.click("#view-tabs button[data-view='event']")
        page.fill("#event-char", "X")
        page.select_option("#event-group", "line")
        page.wait_for_function(f"() => ({S}.eventDots || []).length === {text.count('X')}")
        groups = page.evaluate(f"() => {S}.eventDots.map(d => {S}.chars[{S}.lineStart[d.i]])")
        assert sorted(set(groups)) == ["a", "b", "c"]
        # the sample button continues the text in the page, and the views follow the new text
        page.fill("#live-text", "abcX")
        page.fill("#live-count", "40")
        page.click("#live-sample")
        page.wait_for_function(f"() => {S}.source === 'your text' && {S}.chars.length === 44", timeout=30_000)
        sampled = page.input_value("#live-text")
        assert sampled.startswith("abcX") and len(sampled) == 44 and set(sampled) <= set(vocab.chars)
        assert page.locator("#text > span").count() == 44
    assert problems == [], problems


def test_the_views_of_a_gru_on_tweets(chromium, tmp_path):
    from browser_tools import open_page

    path, result, model, vocab = probed_page(tmp_path, "gru", TWEETS, "tweets")
    with open_page(chromium, path) as (page, problems):
        S = "charnnExplorer.state"
        page.click("#view-tabs button[data-view='internals']")
        assert page.locator("#internals .row-label").all_inner_texts() == ["h", "r", "z", "n"]
        page.click("#internals .row-label[data-state='z']")
        assert page.evaluate(f"() => {S}.state") == "z"
        page.click("#view-tabs button[data-view='layer']")
        page.select_option("#layer-order", "inside_hashtag")
        page.wait_for_function(f"() => {S}.layerMap && {S}.layerMap.order.length === 16")
        assert "o=inside_hashtag" in page.evaluate("() => location.hash") and "v=layer" in page.evaluate(
            "() => location.hash"
        )
        page.click("#view-tabs button[data-view='event']")
        page.fill("#event-char", "#")
        page.wait_for_function(f"() => ({S}.eventDots || []).length === {TWEETS.count('#')}")
        page.fill("#search", "@FoxNews")
        page.press("#search", "Enter")
        assert page.evaluate(f"() => {S}.pos") == TWEETS.index("@FoxNews")
    assert problems == [], problems
