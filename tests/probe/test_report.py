"""charnn.probe.report on its own: the tables a person reads and the --json file (the report's contents are
tested in test_probe_score.py and test_probe_cli.py)."""

import json

import pytest
from rich.console import Console

from charnn.corpus import Vocab
from charnn.errors import CharnnError
from charnn.model import ModelConfig, new_model
from charnn.probe.pipeline import ProbeOptions, run_probe
from charnn.probe.report import print_report, write_json
from charnn.tasks import make_task_text


@pytest.fixture(scope="module")
def report():
    text = make_task_text("count", 60, seed=1)
    vocab = Vocab(tuple(sorted(set(text))))
    model = new_model(ModelConfig(vocab_size=vocab.size, layers=1, hidden=8, embed=4))
    return run_probe(
        model, vocab.encode(text), text, ProbeOptions(feature_set="task", task="count", random_units=4)
    ).report


def test_one_table_per_feature_then_the_notes(report):
    console = Console(record=True, width=200)
    print_report(report, console, notes=["a note for the reader"])
    shown = console.export_text()
    assert "LSTM 1×8" in shown and "layers count from 1" in shown
    for name in report["features"]:
        assert f"{name}: " in shown
    assert "gate saturation" in shown and "note: a note for the reader" in shown


def test_the_json_is_one_object_and_a_bad_path_is_one_sentence(report, tmp_path):
    write_json(report, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["features"].keys() == report["features"].keys()
    with pytest.raises(CharnnError, match="cannot write --json .*nowhere"):
        write_json(report, tmp_path / "nowhere" / "r.json")


def test_the_quote_tracking_target_is_met_by_one_unit_or_one_per_kind_of_string():
    from charnn.probe.report import strings_line
    from charnn.probe.result import strings_summary

    def feature(*scores):
        return {"pass_threshold": 0.9, "units": [{"heldout_score": score} for score in scores]}

    one = strings_summary({"inside_string": feature(0.95, 0.7)})
    assert one["met_by"] == "one unit" and not one["both_kinds"] and one["inside_multiline_string"] is None
    kinds = strings_summary(
        {
            "inside_string": feature(0.85),
            "inside_multiline_string": feature(0.97),
            "inside_oneline_string": feature(0.6, 0.93),
        }
    )
    assert kinds["met_by"] == "one unit for each kind" and kinds["inside_oneline_string"] == 0.93
    assert "met by one unit for each kind" in strings_line(kinds) and "multiline 0.970" in strings_line(kinds)
    short = strings_summary(
        {
            "inside_string": feature(0.85),
            "inside_multiline_string": feature(0.97),
            "inside_oneline_string": feature(0.6),
        }
    )
    assert short["met_by"] is None and "not met" in strings_line(short)
    assert strings_summary({"count": feature(0.99)}) is None  # a text without string features
