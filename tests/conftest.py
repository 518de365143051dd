"""Set-up shared by every test module.

The suite is written for a CPU and must give the same answers on a machine that has a GPU: every test
runs with CUDA (and MPS) hidden, in this process and in the processes it starts, except the tests
marked `gpu`, which run only where a CUDA GPU is present and are skipped elsewhere.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

GPU_PRESENT = torch.cuda.is_available()  # read before any test hides it (and before CUDA_VISIBLE_DEVICES changes)
REAL = {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}


@pytest.fixture(scope="session", autouse=True)
def cuda_hidden():
    """CUDA and MPS are not there, for the whole session: module-wide fixtures that train a model train on the CPU."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CUDA_VISIBLE_DEVICES", "")  # for the CLI processes a test starts
        patch.setattr(torch.cuda, "is_available", lambda: False)
        patch.setattr(torch.backends.mps, "is_available", lambda: False)
        yield


@pytest.fixture(autouse=True)
def gpu_tests_see_the_gpu(request, monkeypatch):
    """A test marked gpu runs with the real GPU, and only where there is one."""
    if not request.node.get_closest_marker("gpu"):
        return
    if not GPU_PRESENT:
        pytest.skip("needs a CUDA GPU")
    monkeypatch.setattr(torch.cuda, "is_available", REAL["cuda"])
    monkeypatch.setattr(torch.backends.mps, "is_available", REAL["mps"])
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


@pytest.fixture
def code_file(tmp_path: Path) -> Path:
    """About 36,000 characters of real Python (a stdlib module, three times)."""
    import json.decoder

    path = tmp_path / "code.py"
    path.write_text(Path(json.decoder.__file__).read_text() * 3)
    return path


@pytest.fixture
def charnn_cli():
    """Run `python -m charnn.cli ARGS` as a user would, in a fresh process: charnn_cli(*args, cwd=, timeout=, env=)."""

    def run(
        *args: str, cwd: Path | None = None, timeout: float = 300, env: dict | None = None
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "charnn.cli", *args],
            capture_output=True,
            text=True,
            cwd=cwd or ROOT,
            timeout=timeout,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        )

    return run


@pytest.fixture
def one_thread():
    """Tiny matrices: a second thread only adds waiting (badly so when other jobs share the cores)."""
    from charnn.probe.record import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture
def strong_model():
    """strong_model(cell, layers, hidden, vocab_size, seed, scaled): a small CharRNN in eval mode whose weights
    (all of them, or only the recurrent ones with scaled="rnn") are three times the default initialisation,
    so that gates leave their linear range and every unit matters a little."""
    from charnn.model import ModelConfig, new_model

    def make(
        cell: str = "lstm", layers: int = 2, hidden: int = 20, vocab_size: int = 11, seed: int = 0, scaled: str = "all"
    ):
        torch.manual_seed(seed)
        model = new_model(ModelConfig(vocab_size=vocab_size, cell=cell, layers=layers, hidden=hidden, embed=8)).eval()
        with torch.no_grad():
            for param in model.parameters() if scaled == "all" else model.rnn.parameters():
                param.mul_(3.0)
        return model

    return make


@pytest.fixture
def fake_gpu(monkeypatch):
    """A device that is not the CPU, for the GPU bugs a CPU cannot show: "meta" stands in for a GPU.

    Tensors on "meta" have shapes and no data, and an operation that mixes one with a CPU tensor fails as
    it would on a GPU, so code that makes a tensor on the CPU (by default or by name) instead of on the
    model's device fails here. Reading one back (.cpu(), .tolist(), .item(), ...) gives zeros (True for
    booleans), where a GPU would give numbers: the numbers mean nothing, the devices do. A generator asked
    for on "meta" is a CPU one, since torch makes generators only for real devices, and torch.multinomial
    refuses a generator of the other device, as CUDA does.
    """
    real = {
        name: getattr(torch.Tensor, name)
        for name in ("cpu", "to", "tolist", "item", "numpy", "__int__", "__float__", "__bool__", "__index__")
    }
    real_generator = torch.Generator

    def host_copy(tensor):
        fill = torch.ones if tensor.dtype == torch.bool else torch.zeros
        return fill(tensor.shape, dtype=tensor.dtype, device="cpu")

    def cpu(self, *args, **kwargs):
        return host_copy(self) if self.is_meta else real["cpu"](self, *args, **kwargs)

    def to(self, *args, **kwargs):
        target = kwargs.get("device", args[0] if args and isinstance(args[0], (str, torch.device)) else None)
        if self.is_meta and target is not None and torch.device(target).type == "cpu":
            rest = [a for a in args if not isinstance(a, (str, torch.device))]
            kwargs = {k: v for k, v in kwargs.items() if k not in ("device", "non_blocking")}
            return real["to"](host_copy(self), *rest, **kwargs) if rest or kwargs else host_copy(self)
        return real["to"](self, *args, **kwargs)

    def reader(name):
        return lambda self, *args, **kwargs: real[name](host_copy(self) if self.is_meta else self, *args, **kwargs)

    made_for_meta = []  # the CPU generators handed out for "meta" (kept alive, so that their ids stay theirs)
    real_multinomial = torch.multinomial

    class Generator:
        def __new__(cls, device="cpu"):
            if torch.device(device).type != "meta":
                return real_generator(device)
            made_for_meta.append(real_generator("cpu"))
            return made_for_meta[-1]

    def multinomial(input, *args, generator=None, **kwargs):
        # as on a GPU: a generator of another device than the probabilities' is an error
        if generator is not None and input.is_meta != any(generator is g for g in made_for_meta):
            found = "cpu" if input.is_meta else "meta"
            raise RuntimeError(f"Expected a '{input.device.type}' device type for generator but found '{found}'")
        return real_multinomial(input, *args, generator=generator, **kwargs)

    monkeypatch.setattr(torch.Tensor, "cpu", cpu)
    monkeypatch.setattr(torch.Tensor, "to", to)
    for name in ("tolist", "item", "numpy", "__int__", "__float__", "__bool__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, reader(name))
    monkeypatch.setattr(torch, "Generator", Generator)
    monkeypatch.setattr(torch, "multinomial", multinomial)
    return torch.device("meta")


@pytest.fixture
def chromium() -> str:
    """The Chromium executable; skips (or fails, when CI sets CHARNN_REQUIRE_BROWSER=1) without playwright or
    chromium."""
    required = os.environ.get("CHARNN_REQUIRE_BROWSER") == "1"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        (pytest.fail if required else pytest.skip)("the playwright package is not installed (pip install playwright)")
    from browser_tools import find_chromium

    executable = find_chromium()
    if executable is None:
        (pytest.fail if required else pytest.skip)(
            "no chromium executable (apt-get install chromium, or set CHARNN_CHROMIUM)"
        )
    return executable
