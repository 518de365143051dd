"""Set-up shared by every test module.

The suite is written for a CPU and must give the same answers on a machine that has a GPU: every test
runs with CUDA (and MPS) hidden, in this process and in the processes it starts, except the tests
marked `gpu`, which run only where a CUDA GPU is present and are skipped elsewhere.
"""

import pytest
import torch

GPU_PRESENT = torch.cuda.is_available()  # read before any test hides it


@pytest.fixture(autouse=True)
def cpu_unless_marked_gpu(request, monkeypatch):
    if request.node.get_closest_marker("gpu"):
        if not GPU_PRESENT:
            pytest.skip("needs a CUDA GPU")
        return
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # for the CLI processes a test starts
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def fake_gpu(monkeypatch):
    """A device that is not the CPU, for the GPU bugs a CPU cannot show: "meta" stands in for a GPU.

    Tensors on "meta" have shapes and no data, and an operation that mixes one with a CPU tensor fails as
    it would on a GPU, so code that makes a tensor on the CPU (by default or by name) instead of on the
    model's device fails here. Reading one back (.cpu(), .tolist(), .item(), ...) gives zeros (True for
    booleans), where a GPU would give numbers: the numbers mean nothing, the devices do. A generator asked
    for on "meta" is a CPU one, since torch makes generators only for real devices.
    """
    real = {name: getattr(torch.Tensor, name) for name in ("cpu", "to", "tolist", "item", "numpy", "__int__", "__float__", "__bool__", "__index__")}
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

    class Generator:
        def __new__(cls, device="cpu"):
            return real_generator("cpu" if torch.device(device).type == "meta" else device)

    monkeypatch.setattr(torch.Tensor, "cpu", cpu)
    monkeypatch.setattr(torch.Tensor, "to", to)
    for name in ("tolist", "item", "numpy", "__int__", "__float__", "__bool__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, reader(name))
    monkeypatch.setattr(torch, "Generator", Generator)
    return torch.device("meta")
