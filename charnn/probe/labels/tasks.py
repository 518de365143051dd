"""Task labels: the ground truth of the synthetic sequences of charnn.tasks (a count, the A/B state, ...)."""

import numpy as np

from charnn.probe.labels.base import Feature, code_points_of, just_before
from charnn.tasks import label_task_text

_COUNT_LIKE_TASK_LABELS = frozenset({"count", "a_seen", "b_remaining"})
_ORDINAL_TASK_LABELS = frozenset({"count", "a_seen", "b_remaining", "x_count", "copy_position"})


def _task_label_kind(name: str, values: np.ndarray) -> str:
    if name in _ORDINAL_TASK_LABELS:  # a count stays ordinal even on a text where it never passes 1
        return "ordinal"
    defined = values[values != -1]
    return "binary" if np.isin(defined, [0, 1]).all() else "ordinal"


def _task_label_targets(name: str, values: np.ndarray, code_points: np.ndarray) -> np.ndarray:
    is_b = code_points == ord("b")
    if name in _COUNT_LIKE_TASK_LABELS:  # the b's, and the newline after the last b
        newline_after_b = code_points == ord("\n")
        newline_after_b[0:1] = False
        newline_after_b[1:] &= is_b[:-1]
        next_char_decided = just_before(is_b | newline_after_b)
    elif name == "ab_state":  # the answer letter after Y
        next_char_decided = just_before(is_b | (code_points == ord("a")))
    elif name == "next_char_id":  # the letters of the copy, which are -1 nowhere else
        return values >= 0
    else:
        next_char_decided = np.ones(len(values), dtype=bool)
    return next_char_decided & (values != -1)


def task_features(text: str, task: str) -> dict[str, Feature]:
    """Label a synthetic task's text from its ground truth (charnn.tasks.label_task_text)."""

    task_name = task.removeprefix("task:")
    code_points = code_points_of(text)
    features = {}
    for name, labels in label_task_text(task_name, text).items():
        kind = _task_label_kind(name, labels)
        values = labels == 1 if kind == "binary" else labels.astype(np.int64)
        description = f"{task_name} ground truth '{name}' after reading each character (undefined on a malformed line)"
        targets = _task_label_targets(name, labels, code_points)
        features[name] = Feature(name, kind, values, targets, description, defined=labels != -1)
    return features
