"""Truncated-BPTT streams: contiguity across steps, targets shifted by one, clear errors."""

import numpy as np
import pytest

from charnn.batches import StreamBatches
from charnn.errors import CharnnError


def test_consecutive_steps_continue_each_stream():
    ids = np.arange(1000, dtype=np.uint16)
    batches = StreamBatches(ids, streams=4, seq_len=10)
    assert batches.stream_length == 249 and batches.steps_per_epoch == 24
    x0, y0 = batches.batch(0)
    x1, _ = batches.batch(1)
    assert x0.shape == (4, 10)
    assert (y0[:, :-1] == x0[:, 1:]).all() and (y0[:, -1] == x1[:, 0]).all()  # next char, across the step
    assert x0[:, 0].tolist() == [0, 249, 498, 747]  # stream s starts at s × stream length
    assert (x1[:, 0] - x0[:, -1]).tolist() == [1, 1, 1, 1]


def test_ranks_read_disjoint_streams():
    ids = np.arange(2001, dtype=np.uint16)
    rank0 = StreamBatches(ids, 2, 10, first_stream=0, total_streams=4)
    rank1 = StreamBatches(ids, 2, 10, first_stream=2, total_streams=4)
    firsts = rank0.batch(0)[0][:, 0].tolist() + rank1.batch(0)[0][:, 0].tolist()
    assert firsts == [0, 500, 1000, 1500]


def test_too_short_a_split_names_the_numbers():
    with pytest.raises(CharnnError, match=r"100 characters.*64 × 10 \+ 1"):
        StreamBatches(np.zeros(100, dtype=np.uint8), 64, 10)
