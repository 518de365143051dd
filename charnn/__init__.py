"""charnn: character-level RNN text generation that explains its own neurons.

    import charnn
    run = charnn.train(corpus="stdlib", out="runs/x", max_minutes=5)
    model = charnn.load("runs/x")
    print(model.generate(prime="def ", length=200))

See charnn.api for the whole API. The names are loaded when first used, so `import charnn` stays light.
"""

from charnn.errors import CharnnError, UsageError

__version__ = "0.1.0"
__all__ = ["train", "load", "Run", "Model", "ProbeResult", "CharnnError", "UsageError", "__version__"]

_API = ("train", "load", "Run", "Model", "ProbeResult")


def __getattr__(name: str):
    if name in _API:
        from charnn import api

        return getattr(api, name)
    raise AttributeError(f"module 'charnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
