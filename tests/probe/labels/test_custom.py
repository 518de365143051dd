"""The user's own labels: regex patterns and label files."""

import json.decoder

import numpy as np
import pytest

from charnn.errors import CharnnError


def test_a_pattern_feature_follows_the_position_convention():
    from charnn.probe.labels.custom import pattern_feature

    text = "x # TODO: y\n# FIXME\n"
    feature = pattern_feature("todo", "TODO|FIXME", text)
    assert "".join("T" if v else "." for v in feature.values) == "....TTTT......TTTTT."
    assert [i for i, t in enumerate(feature.targets) if t] == [7, 18]  # each match's last character
    assert not pattern_feature("none", "ZZZ", text).values.any()


def test_a_label_file_is_read_and_checked(tmp_path):
    import re

    from charnn.probe.labels.custom import read_label_file

    good = tmp_path / "mine.json"
    good.write_text(
        json.dumps(
            {
                "flag": [True, True, False, None, False],
                "level": [0, 1, None, 1, 2],
                "score": [0.5, 0.25, 1.0, None, 2.0],
            }
        )
    )
    features = read_label_file(str(good), 5)
    assert features["flag"].kind == "binary" and features["flag"].defined.tolist() == [True, True, True, False, True]
    assert features["flag"].targets.tolist() == [False, True, False, False, False]  # the last True before a False
    assert features["level"].kind == "ordinal" and features["level"].values.dtype == np.int64
    assert features["score"].values.dtype == np.float64 and features["score"].defined.sum() == 4
    array = tmp_path / "quote.npy"
    np.save(array, np.array([0, 1, -1, 2, 2]))
    ((name, feature),) = read_label_file(str(array), 5).items()
    assert name == "quote" and feature.defined.tolist() == [True, True, False, True, True]
    cases = {
        '{"a": [1, 2]}': "has 2 labels for a probe text of 5 characters",
        '{"a": [1, true, 0, 0, 0]}': "mixes label types",
        '{"a": [1.0, NaN, 0, 0, 0]}': "NaN or infinite labels",
        '{"a": [null, null, null, null, null]}': "has no defined label",
        '{"inside_string": [1, 1, 1, 1, 1]}': "built-in feature's name",
        '{"a": "11111"}': "must map to a list",
        "[1, 2, 3, 4, 5]": "must hold a JSON object",
        '{"a": [1, 2': "is not JSON",
    }
    for content, message in cases.items():
        bad = tmp_path / "bad.json"
        bad.write_text(content)
        with pytest.raises(CharnnError, match=re.escape(message)):
            read_label_file(str(bad), 5)
    np.save(tmp_path / "two.npy", np.zeros((5, 2)))
    with pytest.raises(CharnnError, match="give one label per character"):
        read_label_file(str(tmp_path / "two.npy"), 5)
    np.save(tmp_path / "objects.npy", np.array([{}, {}], dtype=object), allow_pickle=True)
    with pytest.raises(CharnnError, match="without pickles"):
        read_label_file(str(tmp_path / "objects.npy"), 2)
