"""Helpers of the label tests: a mask as a string of '1' and '.', its runs of True, a feature's target positions."""

import numpy as np

from charnn.probe.labels import Feature


def marks(mask: np.ndarray) -> str:
    return "".join("1" if value else "." for value in mask)


def spans_of(mask: np.ndarray) -> tuple[list[int], list[int]]:
    """Starts and stops of the runs of True in mask."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()


def target_positions(feature: Feature) -> list[int]:
    return np.flatnonzero(feature.targets).tolist()
