"""The synthetic tasks' ground truth as probe labels."""

import importlib

import pytest
from label_marks import target_positions

from charnn.probe.labels import features_for, task_features


def tasks_importable() -> bool:
    try:
        importlib.import_module("charnn.tasks")
    except Exception:  # not written yet, or half-written by its author right now
        return False
    return True


needs_tasks = pytest.mark.skipif(not tasks_importable(), reason="charnn.tasks is not importable yet")


@needs_tasks
def test_count_task_features_target_the_bs_and_the_final_newline():
    text = "aaXbb\naX\n"  # the second line breaks the format (no b)
    features = features_for("task", text, task="task:count")
    count = features["count"]
    assert count.kind == "ordinal" and features["phase"].kind == "binary"
    assert count.values.tolist()[:6] == [1, 2, 2, 1, 0, 0]
    assert target_positions(count) == [2, 3, 4]  # before each b and before the newline after the last b
    assert features["phase"].values.tolist()[:6] == [False, False, True, True, True, False]


@needs_tasks
def test_ab_memory_targets_the_answer():
    from charnn.tasks import make_task_text

    text = "BxxYb\n" + make_task_text("ab-memory", num_sequences=50, seed=1)
    ab_state = task_features(text, "ab-memory")["ab_state"]
    assert ab_state.kind == "binary"
    assert ab_state.values[:5].all()
    assert all(text[i] == "Y" and text[i + 1] in "ab" for i in target_positions(ab_state))
    assert ab_state.targets.sum() == 51
