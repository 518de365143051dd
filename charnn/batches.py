"""Truncated-BPTT batching: a split cut into contiguous streams, read T characters at a time.

Stream s covers ids[s·L, (s+1)·L + 1) of the split (L = stream length). Step k of an epoch feeds
characters [k·T, (k+1)·T) of every stream, and the targets are the next characters, so the
hidden state left by step k is exactly the state step k+1 must start from: the trainer carries it
(detached) and resets it when the streams wrap round to the start.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from charnn.errors import CharnnError


@dataclass
class StreamBatches:
    """Batches of `streams` parallel contiguous streams, `seq_len` characters a step."""

    ids: np.ndarray
    streams: int
    seq_len: int
    first_stream: int = 0  # with DDP each rank reads its own block of streams
    total_streams: int | None = None  # streams across all ranks; None means `streams`
    split_name: str = "train"

    def __post_init__(self) -> None:
        total = self.total_streams or self.streams
        self.stream_length = (len(self.ids) - 1) // total
        self.steps_per_epoch = self.stream_length // self.seq_len
        if self.steps_per_epoch < 1:
            need = total * self.seq_len + 1
            raise CharnnError(
                f"the {self.split_name} split has {len(self.ids):,} characters, fewer than batch size × seq len + 1 "
                f"= {total} × {self.seq_len} + 1 = {need:,}; lower --batch-size or --seq-len, or use a larger corpus"
            )
        starts = (np.arange(self.streams) + self.first_stream) * self.stream_length
        self._window = starts[:, None] + np.arange(self.seq_len + 1)[None, :]  # (B, T+1)

    def block(self, step_in_epoch: int) -> torch.Tensor:
        """The characters a step of the epoch reads, (streams, seq_len + 1) int64: inputs and, one further, targets."""
        if not 0 <= step_in_epoch < self.steps_per_epoch:
            raise IndexError(f"step {step_in_epoch} outside an epoch of {self.steps_per_epoch} steps")
        return torch.from_numpy(self.ids[self._window + step_in_epoch * self.seq_len].astype(np.int64))

    def batch(self, step_in_epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-character targets for a step of the epoch, each (streams, seq_len) int64."""
        chunk = self.block(step_in_epoch)
        return chunk[:, :-1], chunk[:, 1:]

    @property
    def chars_per_step(self) -> int:
        """Characters this reader feeds per step."""
        return self.streams * self.seq_len


RESIDENT_MAX_BYTES = 1 << 30  # a split up to this size (as a GPU holds it) is copied to the device once
RESIDENT_MAX_SHARE = 0.1  # and only while it takes at most this share of the device's free memory


class DeviceBatches:
    """The batches of a StreamBatches, made on the device the model is on.

    On a GPU the characters this reader's streams cover are copied to the device once when they fit
    (uint8 where the vocabulary allows, else int32), and each step's batch is gathered there: no host
    work and no copy per step. A split too large for that is gathered on the CPU and sent from pinned
    memory, so that the copy runs beside the GPU's work (PyTorch's pinned-memory cache keeps a buffer
    until its copy is done). On the CPU it is the StreamBatches itself.
    """

    def __init__(self, source: StreamBatches, device: torch.device, resident: bool | None = None):
        self.source = source
        self.device = device
        self.steps_per_epoch = source.steps_per_epoch
        self.chars_per_step = source.chars_per_step
        self.seq_len = source.seq_len
        low = int(source._window[0, 0])
        high = int(source._window[-1, -1]) + (self.steps_per_epoch - 1) * source.seq_len + 1
        dtype = torch.uint8 if source.ids.dtype == np.uint8 else torch.int32
        if resident is None:
            resident = device.type != "cpu" and fits_on_device((high - low) * dtype.itemsize, device)
        self.resident = resident
        if resident:
            span = np.array(
                source.ids[low:high], dtype=np.uint8 if dtype == torch.uint8 else np.int32
            )  # a copy: the split is read-only
            self.ids_on_device = torch.from_numpy(span).to(device)
            self.window = torch.from_numpy(source._window - low).to(device)  # (B, T+1)

    @property
    def ids(self) -> np.ndarray:
        """The whole split, as StreamBatches holds it."""
        return self.source.ids

    def batch(self, step_in_epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-character targets for a step of the epoch, each (streams, seq_len) int64 on the device."""
        if self.resident:
            if not 0 <= step_in_epoch < self.steps_per_epoch:
                raise IndexError(f"step {step_in_epoch} outside an epoch of {self.steps_per_epoch} steps")
            chunk = self.ids_on_device[self.window + step_in_epoch * self.seq_len].long()
            return chunk[:, :-1], chunk[:, 1:]
        chunk = self.source.block(step_in_epoch)  # one copy for inputs and targets
        if self.device.type == "cuda":
            chunk = chunk.pin_memory().to(self.device, non_blocking=True)
        elif self.device.type != "cpu":
            chunk = chunk.to(self.device)
        return chunk[:, :-1], chunk[:, 1:]


def fits_on_device(nbytes: int, device: torch.device) -> bool:
    """Whether a block of nbytes may stay on device for a whole run (see RESIDENT_MAX_*)."""
    if nbytes > RESIDENT_MAX_BYTES:
        return False
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return nbytes <= RESIDENT_MAX_SHARE * free
    return True
