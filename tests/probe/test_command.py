"""charnn probe end to end on a briefly trained model: the JSON report's schema, and one-line errors."""

import json
import os
from pathlib import Path

import pytest

from charnn.cli import main
from charnn.probe.labels import code_features
from charnn.probe.record import torch_threads
from charnn.tasks import make_task_text
from charnn.trainer import TrainConfig, run_training

ROOT = Path(__file__).resolve().parents[2]
STATES = {"h", "c", "i", "f", "g", "o"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2 × 24 LSTM trained for a few dozen steps on real Python code, and a probe text from the same code."""
    import json.decoder

    tmp = tmp_path_factory.mktemp("probe")
    code = Path(json.decoder.__file__).read_text()
    corpus = tmp / "code.py"
    corpus.write_text(code * 3)
    run = tmp / "runs" / "code"
    config = TrainConfig.of(
        corpus=str(corpus),
        out=str(run),
        layers=2,
        hidden=24,
        embed=16,
        batch_size=8,
        seq_len=32,
        max_steps=30,
        eval_every=30,
        sample_chars=0,
        cache_dir=str(tmp / "cache"),
    )
    with torch_threads(1):  # tiny matrices: a second thread only adds waiting, badly so on a busy machine
        run_training(config, progress=False)
    text = tmp / "probe.py"
    text.write_text(code[:3000])
    return tmp, run, text


def test_probe_writes_the_json_report(trained, charnn_cli):
    tmp, run, text = trained
    out = tmp / "report.json"
    result = charnn_cli(
        "probe",
        "--run",
        str(run),
        "--text",
        str(text),
        "--features",
        "code",
        "--json",
        str(out),
        "--random-units",
        "10",
        "--top",
        "3",
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "inside_string" in result.stdout  # the tables

    report = json.loads(out.read_text())
    assert report["layer_numbering"] == "1-based"
    assert report["model"]["cell"] == "lstm" and report["model"]["layers"] == 2 and report["model"]["hidden"] == 24
    assert report["text"] == {"path": str(text), "chars": 3000, "truncated_from": None, "unknown_chars": 0}
    split = report["split"]
    assert split["selection"]["start"] == 0 and split["selection"]["stop"] == split["heldout"]["start"]
    assert split["heldout"]["stop"] == 3000
    names = set(code_features(text.read_text()))
    assert names >= {"inside_string", "inside_multiline_string", "inside_oneline_string", "indent_depth"}
    assert set(report["features"]) | set(report["skipped_features"]) == names
    assert report["features"], "no feature was scored"
    for name, feature in report["features"].items():
        assert feature["kind"] in ("binary", "ordinal")
        assert feature["metric"] == {"binary": "auroc", "ordinal": "spearman"}[feature["kind"]]
        assert isinstance(feature["control_best"], float)
        assert feature["pass_threshold"] in (0.9, 0.7)
        assert 0 <= feature["share_passing"] <= 1
        units = feature["units"]
        assert 1 <= len(units) <= 3
        heldout = [unit["heldout_score"] for unit in units]
        assert heldout == sorted(heldout, reverse=True), name
        for unit in units:
            assert 1 <= unit["layer"] <= 2 and 0 <= unit["unit"] < 24 and unit["state"] in STATES
            assert unit["sign"] in (1, -1)
            low = 0.5 if feature["metric"] == "auroc" else 0.0
            assert low <= unit["score"] <= 1
            ablation = unit["ablation"]
            assert set(ablation) >= {"target_delta", "other_delta", "random_percentile"}
            assert isinstance(ablation["other_delta"], float)
            if ablation["target_delta"] is not None:
                assert 0 <= ablation["random_percentile"] <= 100
                assert ablation["random_units"] in (9, 10)  # the unit itself is left out of its band
    assert [layer["layer"] for layer in report["saturation"]] == [1, 2]
    gates = report["saturation"][0]["gates"]
    assert set(gates) == {"i", "f", "o"} and len(gates["f"]["left"]) == 24
    assert report["ablation"]["method"] == "zero" and report["control"]["seed"] == 0
    assert report["language"] == "python"  # from the .py name of the probe text
    assert "lexed as python" in report["features"]["inside_string"]["description"]


def test_probe_language_flag_relabels_the_text(trained, tmp_path):
    _, run, text = trained
    copy = tmp_path / "probe_text"  # no extension: the language is guessed from the text
    copy.write_text(text.read_text())
    reports = {}
    for language in ("auto", "c"):
        out = tmp_path / f"{language}.json"
        status = main(
            [
                "probe",
                "--run",
                str(run),
                "--text",
                str(copy),
                "--features",
                "code",
                "--language",
                language,
                "--json",
                str(out),
                "--no-ablation",
                "--no-control",
                "--quiet",
            ]
        )
        assert status == 0
        reports[language] = json.loads(out.read_text())
    assert reports["auto"]["language"] == "python" and reports["c"]["language"] == "c"


def test_probe_task_features_and_truncation(trained, tmp_path):
    _, run, _ = trained
    text = tmp_path / "count.txt"
    text.write_text(make_task_text("count", 200, seed=1))
    out = tmp_path / "count.json"
    status = main(
        [
            "probe",
            "--run",
            str(run),
            "--text",
            str(text),
            "--features",
            "task",
            "--task",
            "count",
            "--json",
            str(out),
            "--no-ablation",
            "--max-chars",
            "1500",
            "--quiet",
        ]
    )
    assert status == 0
    report = json.loads(out.read_text())
    assert report["task"] == "count" and report["text"]["chars"] == 1500 and report["text"]["truncated_from"] > 1500
    assert "count" in report["features"] and report["features"]["count"]["metric"] == "spearman"
    assert report["features"]["count"]["units"][0]["ablation"] is None


def test_a_task_run_is_probed_on_fresh_sequences_without_a_text(tmp_path, capsys):
    config = TrainConfig.of(
        corpus="task:count",
        out=str(tmp_path / "count"),
        layers=1,
        hidden=8,
        embed=4,
        batch_size=8,
        seq_len=16,
        max_steps=20,
        eval_every=20,
        sample_chars=0,
        task_sequences=300,
        task_seed=4,
        cache_dir=str(tmp_path / "cache"),
    )
    with torch_threads(1):
        run_training(config, progress=False)
    out = tmp_path / "fresh.json"
    assert (
        main(["probe", "--run", config.out, "--json", str(out), "--no-ablation", "--no-control", "--max-chars", "4000"])
        == 0
    )
    said = capsys.readouterr().out
    assert "freshly generated count sequences, task seed 5 (the run trained on seed 4)" in " ".join(said.split())
    report = json.loads(out.read_text())
    assert report["task"] == "count" and report["text"]["path"] == "task:count seed 5"
    assert report["text"]["chars"] == 4000 and "count" in report["features"]
    other = tmp_path / "copy.json"  # another task's sequences, named: from the seed the config gives
    assert (
        main(
            [
                "probe",
                "--run",
                config.out,
                "--text",
                "task:copy",
                "--json",
                str(other),
                "--no-ablation",
                "--no-control",
                "--quiet",
                "--max-chars",
                "3000",
            ]
        )
        == 0
    )
    assert json.loads(other.read_text())["task"] == "copy"
    assert "--text task:count and --task copy name different tasks" in one_line_error(
        capsys, ["probe", "--run", config.out, "--text", "task:count", "--task", "copy", "--quiet"], exit_code=2
    )


def test_a_feature_absent_from_the_held_out_part_is_reported_with_its_reason(trained, tmp_path, capsys):
    _, run, text = trained
    half = tmp_path / "strings_first.py"
    half.write_text(text.read_text()[:1500] + "\nx = y + 1\n" * 150)  # the held-out half has no string
    out = tmp_path / "half.json"
    assert (
        main(
            [
                "probe",
                "--run",
                str(run),
                "--text",
                str(half),
                "--features",
                "code",
                "--json",
                str(out),
                "--no-ablation",
                "--no-control",
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert report["features"]["inside_string"]["units"][0]["heldout_score"] is None
    note = next(note for note in report["notes"] if note.startswith("inside_string has no held-out score"))
    assert "always False in the held-out part" in note
    assert "inside_string has no held-out score" in " ".join(capsys.readouterr().out.split())  # printed too


def one_line_error(capsys, argv: list[str], exit_code: int = 1) -> str:
    try:
        status = main(argv)
    except SystemExit as exit:  # argparse
        status = exit.code
    captured = capsys.readouterr()
    assert status == exit_code, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_a_hypothesis_of_your_own_is_scored_beside_the_built_in_features(trained, tmp_path):
    _, run, text = trained
    out = tmp_path / "mine.json"
    status = main(
        [
            "probe",
            "--run",
            str(run),
            "--text",
            str(text),
            "--features",
            "code",
            "--feature",
            r"self_attr=self\.\w+",
            "--feature",
            "keyword=(?m)^\\s*(def|return|if)\\b",
            "--json",
            str(out),
            "--random-units",
            "10",
            "--quiet",
        ]
    )
    assert status == 0
    report = json.loads(out.read_text())
    assert {"self_attr", "keyword", "inside_string"} <= set(report["features"])
    mine = report["features"]["self_attr"]
    assert mine["kind"] == "binary" and "self" in mine["description"] and mine["units"][0]["ablation"] is not None
    only = tmp_path / "only.json"
    assert (
        main(
            [
                "probe",
                "--run",
                str(run),
                "--text",
                str(text),
                "--features",
                "none",
                "--feature",
                r"self_attr=self\.\w+",
                "--json",
                str(only),
                "--no-ablation",
                "--no-control",
                "--quiet",
            ]
        )
        == 0
    )
    assert list(json.loads(only.read_text())["features"]) == ["self_attr"]


def test_labels_of_your_own_from_a_file(trained, tmp_path, capsys):
    _, run, text = trained
    probe_text = text.read_text()
    labels = tmp_path / "mine.json"
    depth, level = [], 0
    for char in probe_text:
        level += {"(": 1, ")": -1}.get(char, 0)
        depth.append(None if char == "\n" else max(level, 0))
    labels.write_text(json.dumps({"paren_depth": depth, "in_parens": [d is not None and d > 0 for d in depth]}))
    out = tmp_path / "mine.out.json"
    assert (
        main(
            [
                "probe",
                "--run",
                str(run),
                "--text",
                str(text),
                "--features",
                "none",
                "--labels",
                str(labels),
                "--json",
                str(out),
                "--html",
                str(tmp_path / "mine.html"),
                "--random-units",
                "10",
                "--quiet",
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    assert set(report["features"]) == {"paren_depth", "in_parens"}
    assert report["features"]["paren_depth"]["labelled_chars"] == len(probe_text) - probe_text.count("\n")
    assert report["features"]["in_parens"]["kind"] == "binary" and report["features"]["in_parens"]["units"]
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"a": [1, 2, 3]}))
    message = one_line_error(
        capsys,
        ["probe", "--run", str(run), "--text", str(text), "--features", "code", "--labels", str(short), "--quiet"],
    )
    assert f"--labels '{short}' (a) has 3 labels for a probe text of {len(probe_text):,} characters" in message


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--features", "none"], "give at least one --feature NAME=REGEX"),
        (["--features", "code", "--feature", "todo"], "--feature takes NAME=REGEX"),
        (["--features", "code", "--feature", "x=("], "--feature x=(: not a regular expression"),
        (["--features", "code", "--feature", "x=a*"], "matches the empty string"),
        (["--features", "code", "--feature", "column=x"], "'column' is a built-in feature's name"),
        (["--features", "code", "--feature", "a=x", "--feature", "a=y"], "--feature a=... is given twice"),
    ],
)
def test_a_bad_hypothesis_is_one_sentence_and_exit_2(trained, capsys, flags, message):
    _, run, text = trained
    assert message in one_line_error(
        capsys, ["probe", "--run", str(run), "--text", str(text), "--quiet", *flags], exit_code=2
    )


def test_characters_the_model_never_saw_are_probed_as_unknown_with_a_note(trained, tmp_path, capsys):
    _, run, text = trained
    snowy = tmp_path / "snowy.py"
    snowy.write_text(text.read_text().replace("=", "☃=", 3))
    out = tmp_path / "snowy.json"
    assert (
        main(
            [
                "probe",
                "--run",
                str(run),
                "--text",
                str(snowy),
                "--features",
                "code",
                "--json",
                str(out),
                "--no-ablation",
                "--no-control",
            ]
        )
        == 0
    )
    said = capsys.readouterr().out
    assert "3 character(s) of" in said and "'☃'" in said and "--unknown error" in said
    assert json.loads(out.read_text())["text"]["unknown_chars"] == 3


def test_bad_inputs_are_one_line_errors(trained, capsys):
    tmp, run, text = trained
    base = ["probe", "--run", str(run), "--quiet"]
    assert "does not exist" in one_line_error(capsys, [*base, "--text", str(tmp / "missing.txt"), "--features", "code"])
    message = one_line_error(capsys, [*base, "--text", str(text), "--features", "task"])
    assert "--task" in message and "count" in message
    assert "invalid choice" in one_line_error(capsys, [*base, "--text", str(text), "--features", "poems"], exit_code=2)
    assert "unknown task" in one_line_error(
        capsys, [*base, "--text", str(text), "--features", "task", "--task", "sort"], exit_code=2
    )
    assert "invalid choice" in one_line_error(
        capsys, [*base, "--text", str(text), "--features", "code", "--language", "cobol"], exit_code=2
    )
    assert "--language only applies" in one_line_error(
        capsys, [*base, "--text", str(text), "--features", "tweets", "--language", "go"], exit_code=2
    )
    assert "--task only applies" in one_line_error(
        capsys, [*base, "--text", str(text), "--features", "code", "--task", "count"], exit_code=2
    )
    snowman = tmp / "snow.txt"
    snowman.write_text("x = '\u2603'\n" * 10)
    assert "outside the model's vocabulary" in one_line_error(
        capsys, [*base, "--text", str(snowman), "--features", "code", "--unknown", "error"]
    )
    assert "does not exist" in one_line_error(
        capsys, [*base, "--text", str(text), "--features", "code", "--html", str(tmp / "nowhere" / "x.html")]
    )
    assert "--heldout-fraction" in one_line_error(
        capsys, [*base, "--text", str(text), "--features", "code", "--heldout-fraction", "1"], exit_code=2
    )
    tiny = tmp / "tiny.txt"
    tiny.write_text("x = 1\n")
    assert f"--text '{tiny}' has 6 character(s)" in one_line_error(
        capsys, [*base, "--text", str(tiny), "--features", "code"]
    )
    assert "cut by --max-chars from 3,000" in one_line_error(
        capsys, [*base, "--text", str(text), "--features", "code", "--max-chars", "5"]
    )
    blank = tmp / "blank.txt"
    blank.write_text("\n" * 40)
    message = one_line_error(capsys, [*base, "--text", str(blank), "--features", "code"])
    assert f"no code feature of --text '{blank}' varies" in message and "always False in the whole text" in message
    assert "is it a count text" in one_line_error(
        capsys, [*base, "--text", str(text), "--features", "task", "--task", "count"]
    )
    assert "not both" in one_line_error(
        capsys, [*base, "--checkpoint", str(run / "best.pt"), "--text", str(text), "--features", "code"], exit_code=2
    )
    assert "is a directory; give a .pt file" in one_line_error(
        capsys, ["probe", "--checkpoint", str(run), "--text", str(text), "--features", "code"]
    )
    for flag in ("--json", "--html"):  # checked before any work; a device or a pipe is never replaced by a file
        assert "not a regular file" in one_line_error(
            capsys, [*base, "--text", str(text), "--features", "code", flag, os.devnull]
        )
        assert "does not exist" in one_line_error(
            capsys, [*base, "--text", str(text), "--features", "code", flag, str(tmp / "no" / "x")]
        )
    assert "does not exist" in one_line_error(
        capsys, ["probe", "--run", str(tmp / "nope"), "--text", str(text), "--features", "code"]
    )
    assert "--features is needed" in one_line_error(capsys, [*base, "--text", str(text)], exit_code=2)
    assert "--text is needed: the run was trained on" in one_line_error(
        capsys, [*base, "--features", "code"], exit_code=2
    )


def test_an_error_in_a_real_process_has_no_traceback(trained, charnn_cli):
    tmp, run, _ = trained
    result = charnn_cli("probe", "--run", str(run), "--text", str(tmp / "missing.txt"), "--features", "code")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_failed_json_write_keeps_the_previous_report(tmp_path, monkeypatch):
    from charnn.errors import CharnnError
    from charnn.probe.report import write_json

    target = tmp_path / "report.json"
    write_json({"features": {}}, target)
    monkeypatch.setattr(os, "replace", lambda *args: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(CharnnError, match="No space left on device"):
        write_json({"features": {"x": 1}}, target)
    assert json.loads(target.read_text()) == {"features": {}}
    assert [path.name for path in tmp_path.iterdir()] == ["report.json"]  # no temporary file left behind
