"""charnn.cli on its own: how the train flags combine with defaults and a saved run, run names, and the
one-line errors of the parser (the commands themselves are tested with their stages)."""

import json
from pathlib import Path

import pytest

from charnn.cli import build_parser, main
from charnn.config import TrainConfig
from charnn.errors import CharnnError, UsageError
from charnn.train_command import train_config_from_args


def parse(*argv: str):
    return build_parser().parse_args(["train", *argv])


def test_defaults_then_the_saved_config_then_the_flags_given(tmp_path):
    fresh = train_config_from_args(parse("--corpus", "x.txt", "--hidden", "32"))
    assert fresh.model.hidden == 32 and fresh.model.layers == TrainConfig().model.layers and fresh.run_dir == "runs/x"
    run = tmp_path / "run"
    run.mkdir()
    saved = TrainConfig.of(corpus="x.txt", out=str(run), hidden=32, lr=0.01, max_steps=50).to_json()
    del saved["precision"]  # a run from before --precision existed trained in fp32
    (run / "config.json").write_text(json.dumps({"train": saved}))
    resumed = train_config_from_args(parse("--out", str(run), "--resume", "--max-steps", "80"))
    assert (resumed.model.hidden, resumed.lr, resumed.max_steps, resumed.precision) == (32, 0.01, 80, "fp32")


def test_resume_refuses_what_cannot_be_resumed(tmp_path):
    with pytest.raises(UsageError, match="--resume needs --out"):
        train_config_from_args(parse("--resume"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"train": TrainConfig.of(out=str(run), hidden=32).to_json()}))
    with pytest.raises(CharnnError, match=r"flags contradict the saved model.*--hidden 64 \(saved: 32\)"):
        train_config_from_args(parse("--out", str(run), "--resume", "--hidden", "64"))
    (run / "config.json").write_text("{not json")
    with pytest.raises(CharnnError, match="is damaged; it is not the config.json charnn writes"):
        train_config_from_args(parse("--out", str(run), "--resume"))


@pytest.mark.parametrize(
    "corpus, name",
    [
        ("stdlib", "runs/stdlib"),
        ("task:ab-memory", "runs/task-ab-memory"),
        ("../data/my tweets.jsonl", "runs/my_tweets"),
        ("/", "runs/run"),
    ],
)
def test_a_run_is_named_after_its_corpus(corpus, name):
    assert TrainConfig(corpus=corpus).run_dir == name


def test_the_parser_says_what_is_wrong_in_one_line_and_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--layers", "two"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--layers" in err and "(see --help)" in err
    with pytest.raises(SystemExit) as exit_:
        main(["nosuch"])
    assert exit_.value.code == 2


def test_values_that_start_with_a_dash_are_joined_to_their_flag():
    from charnn.cli import join_dash_values

    assert join_dash_values(["generate", "--clamp", "-1:0=1", "--prime", "-x", "--length", "5"]) == [
        "generate",
        "--clamp=-1:0=1",
        "--prime=-x",
        "--length",
        "5",
    ]
    assert join_dash_values(["generate", "--prime", "--no-echo"]) == [
        "generate",
        "--prime",
        "--no-echo",
    ]  # may be a flag
    assert join_dash_values(["generate", "--stop"]) == ["generate", "--stop"]  # argparse says what is missing
    args = build_parser().parse_args(join_dash_values(["generate", "--clamp", "-2:3:c=-1.5"]))
    assert args.clamp == ["-2:3:c=-1.5"]


def test_a_mistyped_flag_gets_the_nearest_flag_of_its_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--max-minuts", "3"])
    assert exit_.value.code == 2
    assert "did you mean --max-minutes?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate", "--temprature", "3"])
    assert "did you mean --temperature?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--xyzzy"])
    assert "did you mean" not in capsys.readouterr().err


def test_version(capsys):
    from charnn import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"charnn {__version__}"


def test_a_quiet_corpus_prints_only_the_cache_it_wrote(tmp_path, charnn_cli):
    text = tmp_path / "t.txt"
    text.write_text("hello world\n" * 100)
    first = charnn_cli("corpus", str(text), "--quiet", "--cache-dir", str(tmp_path / "c"))
    assert first.returncode == 0, first.stderr
    cache = first.stdout.strip()
    assert cache.endswith(".npy") and Path(cache).is_file() and first.stderr == ""
    second = charnn_cli("corpus", str(text), "--quiet", "--cache-dir", str(tmp_path / "c"))
    assert second.returncode == 0 and second.stdout == "" and second.stderr == ""
    loud = charnn_cli("corpus", str(text), "--cache-dir", str(tmp_path / "c"))
    assert "vocabulary" in loud.stdout


def test_every_subcommand_is_there():
    # a failing import must not drop a subcommand silently
    commands = build_parser()._subparsers._group_actions[0].choices
    assert set(commands) == {"corpus", "train", "generate", "eval", "probe", "bench"}


def test_building_the_parser_imports_no_torch():
    # `charnn --help` and a typo in a flag answer at once, without loading torch or numpy
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, charnn.cli; charnn.cli.build_parser(); print('torch' in sys.modules, 'numpy' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "PATH": ""},
    )
    assert result.stdout.split() == ["False", "False"]


def ruled_flags():
    from dataclasses import fields

    from charnn.probe.options import ProbeOptions
    from charnn.sample_options import SampleOptions

    commands = {TrainConfig: "train", SampleOptions: "generate", ProbeOptions: "probe"}
    return [
        (config, command, item.name)
        for config, command in commands.items()
        for item in fields(config)
        if "rule" in item.metadata
    ]


@pytest.mark.parametrize("config, command, name", ruled_flags())
def test_each_range_is_said_once_for_the_flag_and_the_python_keyword(config, command, name, capsys):
    # one rule per setting: `charnn train --layers -1` and TrainConfig.of(layers=-1).validate() say the same sentence
    with pytest.raises(UsageError) as from_python:
        config(**{name: -1}).validate()
    with pytest.raises(SystemExit) as exit_:
        main([command, f"--{name.replace('_', '-')}", "-1"])
    assert exit_.value.code == 2
    said = capsys.readouterr().err
    assert str(from_python.value) in said, (str(from_python.value), said)
