"""The one exception type a user sees: a sentence that names the input and what is wrong."""


class CharnnError(Exception):
    """Bad input or a state charnn cannot continue from; the CLI prints it as one line and exits 1."""

    exit_code = 1
    every_rank = False  # under torchrun: every process raised it at the same point (charnn.device.Distributed)


class UsageError(CharnnError):
    """A flag with a value outside what is allowed; the CLI exits 2, like argparse."""

    exit_code = 2


def is_out_of_memory(error: BaseException) -> bool:
    """Whether error is an allocation that failed: MemoryError, torch's OutOfMemoryError (a GPU), or the
    RuntimeError that MPS and the CPU allocator raise (told by its message: torch gives it no class)."""
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
