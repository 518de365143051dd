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

    def batch(self, step_in_epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and next-character targets for a step of the epoch, each (streams, seq_len) int64."""
        if not 0 <= step_in_epoch < self.steps_per_epoch:
            raise IndexError(f"step {step_in_epoch} outside an epoch of {self.steps_per_epoch} steps")
        chunk = torch.from_numpy(self.ids[self._window + step_in_epoch * self.seq_len].astype(np.int64))
        return chunk[:, :-1], chunk[:, 1:]

    @property
    def chars_per_step(self) -> int:
        """Characters this reader feeds per step."""
        return self.streams * self.seq_len
