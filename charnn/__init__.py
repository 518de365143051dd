"""charnn: character-level RNN text generation that explains its own neurons."""

__version__ = "0.1.0"
