"""The one exception type a user sees: a sentence that names the input and what is wrong."""


class CharnnError(Exception):
    """Bad input or a state charnn cannot continue from; the CLI prints it as one line and exits 1."""

    exit_code = 1
    every_rank = False  # under torchrun: every process raised it at the same point (charnn.device.Distributed)


class UsageError(CharnnError):
    """A flag with a value outside what is allowed; the CLI exits 2, like argparse."""

    exit_code = 2
