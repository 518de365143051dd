"""charnn in a real Jupyter kernel (nbclient runs a notebook in ipykernel): a run, a model and a probe are shown
the way a notebook shows them, and the explorer that the probe's output carries comes up in a browser."""

import tempfile
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Each cell's outputs, after the notebook ran in a fresh kernel from the checkout."""
    work = tmp_path_factory.mktemp("notebook")
    cells = [
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\nimport json.decoder, pathlib\nimport charnn",
        "text = pathlib.Path(json.decoder.__file__).read_text()\n"
        "pathlib.Path('code.py').write_text(text * 2)\n"
        "run = charnn.train(corpus='code.py', out='runs/nb', layers=1, hidden=16, embed=8, batch_size=4, seq_len=16,\n"
        "                   max_steps=4, eval_every=4, sample_chars=0, device='cpu', progress=False)\n"
        "run",
        "model = run.load()\nprobe = model.probe(text[:3000], features='code', random_units=4, ablation=False)\nprobe",
        "print(model.generate(prime='def ', length=20, seed=1))",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    client.execute()
    return [cell.outputs for cell in notebook.cells]


def data_of(outputs: list, mime: str) -> str:
    """What a cell's value shows as mime (its execute_result; the run's own tables come before it as displays)."""
    return next(output["data"][mime] for output in outputs if output["output_type"] == "execute_result")


def test_a_run_a_model_and_a_probe_show_themselves_in_a_notebook(outputs):
    assert all(output["output_type"] != "error" for cell in outputs for output in cell), outputs
    assert data_of(outputs[1], "text/plain").startswith("Run('runs/nb', steps=4")
    shown = [output for output in outputs[1] if output["output_type"] == "display_data"]
    assert any("charnn train" in output["data"].get("text/plain", "") for output in shown)  # the run's rich tables
    page = data_of(outputs[2], "text/html")  # the explorer, inline, self-contained
    assert page.startswith('<iframe srcdoc="&lt;!DOCTYPE html&gt;') and len(page) > 10_000
    assert data_of(outputs[2], "text/plain").startswith("ProbeResult(")
    printed = "".join(output.get("text", "") for output in outputs[3] if output["output_type"] == "stream")
    assert printed.startswith("def ") and len(printed.strip()) >= 4


@pytest.mark.browser
def test_the_explorer_the_kernel_showed_comes_up_in_a_browser(outputs, chromium, tmp_path):
    # what a notebook's front end does with the cell's text/html: put it in the page
    from browser_tools import CHROMIUM_ARGS
    from playwright.sync_api import sync_playwright

    cell = tmp_path / "notebook.html"
    cell.write_text(f"<!DOCTYPE html><html><body>{data_of(outputs[2], 'text/html')}</body></html>", encoding="utf-8")
    problems = []
    with tempfile.TemporaryDirectory(prefix="charnn-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = context.new_page()
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(cell.as_uri())
            frame = page.frame_locator("iframe")
            frame.locator("body[data-ready='true']").wait_for(timeout=30_000)
            assert frame.locator("#text > span").count() == 3000
        finally:
            context.close()
    assert problems == []
