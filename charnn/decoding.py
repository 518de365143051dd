"""Text from files as UTF-8, a block or a line at a time: a BOM dropped, \r\n read as \n, and invalid bytes either
an error that names the file and the byte offset, or U+FFFD (--errors replace). Peak memory stays flat whatever
the file's size.
"""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from pathlib import Path

from charnn.errors import CharnnError

CHUNK_BYTES = (
    1024 * 1024
    # bytes read per block (1 MiB keeps peak memory flat: larger blocks fragment the heap); a chunk holds at most this
    # many characters (+1)
)

_BOM = "\ufeff"


class InvalidUtf8Error(CharnnError):
    """A file holds bytes that are not UTF-8; byte_offset is where the first bad sequence starts."""

    def __init__(self, display: str, byte_offset: int) -> None:
        super().__init__(
            f"'{display}' is not valid UTF-8 at byte {byte_offset}; pass --errors replace to substitute U+FFFD"
        )
        self.byte_offset = byte_offset


def decode_bytes(data: bytes, display: str, errors: str, offset: int = 0) -> str:
    """UTF-8 bytes (a whole file) as text with a leading BOM dropped and \\r\\n turned into \\n."""
    try:
        text = data.decode("utf-8", errors)
    except UnicodeDecodeError as error:
        raise InvalidUtf8Error(display, offset + error.start) from None
    if text.startswith(_BOM):
        text = text[1:]
    return text.replace("\r\n", "\n") if "\r" in text else text


def decoded_blocks(path: Path, display: str, errors: str) -> Iterator[str]:
    """A file's text in non-empty blocks of at most CHUNK_BYTES chars: BOM dropped, \\r\\n → \\n even across blocks."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors)
    bytes_read = 0
    at_start = True
    held_cr = False  # a block ending in \r keeps it back: the next block may start with \n
    try:
        with open(path, "rb") as handle:
            while True:
                data = handle.read(CHUNK_BYTES)
                final = not data
                buffered = len(decoder.getstate()[0])  # bytes of a split character from the last block
                try:
                    text = decoder.decode(data, final)
                except UnicodeDecodeError as error:
                    raise InvalidUtf8Error(display, bytes_read - buffered + error.start) from None
                bytes_read += len(data)
                if at_start and text:
                    at_start = False
                    if text.startswith(_BOM):
                        text = text[1:]
                if held_cr:
                    text = "\r" + text
                    held_cr = False
                if not final and text.endswith("\r"):
                    text = text[:-1]
                    held_cr = True
                if "\r" in text:
                    text = text.replace("\r\n", "\n")
                if text:
                    yield text
                if final:
                    return
    except OSError as error:
        raise CharnnError(f"cannot read '{display}': {error.strerror or error}") from None


def decoded_lines(path: Path, display: str, errors: str) -> Iterator[tuple[int, str]]:
    """(line number from 1, text with its line ending) of a UTF-8 file, split at \\n only; BOM dropped."""
    bytes_read = 0
    try:
        with open(path, "rb") as handle:
            for line_number, raw in enumerate(handle, 1):
                try:
                    line = raw.decode("utf-8", errors)
                except UnicodeDecodeError as error:
                    raise InvalidUtf8Error(display, bytes_read + error.start) from None
                if line_number == 1 and line.startswith(_BOM):
                    line = line[1:]
                bytes_read += len(raw)
                yield line_number, line
    except OSError as error:
        raise CharnnError(f"cannot read '{display}': {error.strerror or error}") from None
