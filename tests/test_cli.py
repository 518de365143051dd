"""charnn.cli on its own: how the train flags combine with defaults and a saved run, run names, and the
one-line errors of the parser (the commands themselves are tested with their stages)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import (
    cli,
    one_clear_line,
    small_code_file,
    tiny_config,
)

from charnn.cli import build_parser, main
from charnn.config import TrainConfig
from charnn.errors import CharnnError, UsageError
from charnn.train_command import train_config_from_args
from charnn.trainer import run_training


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


@pytest.fixture
def code_file(tmp_path: Path) -> Path:
    return small_code_file(tmp_path)


# ================================================================ 7. every CLI flag


def run_main(argv: list[str], capsys) -> tuple[int, str]:
    """charnn's main() in this process: the exit status and stderr (an escaping exception fails the test)."""
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse
        status = exit_.code
    return status, capsys.readouterr().err


CORPUS_FLAGS = [
    (["task:nope"], "unknown task"),
    (["task:count", "--task-sequences", "0"], "--task-sequences"),
    (["task:count", "--task-sequences", "100000000000"], "--task-sequences"),
    (["task:count", "--task-seed", "x"], "--task-seed"),
    (["code.py", "--errors", "ignore"], "--errors"),
    (["code.py", "--tweet-format", "xml"], "--tweet-format"),
    ([".", "--tweet-format", "jsonl"], "--tweet-format"),
    ([".", "--ext", ","], "--ext"),
    (["code.py", "--split", "0.5"], "--split"),
    (["code.py", "--split", "nan,0.5"], "--split"),
    (["code.py", "--split", "0.5,0.6"], "--split"),
    (["code.py", "--write-split", "dev"], "--write-split"),
    (["code.py", "--shuffle-files", "0"], "--shuffle-files"),
    (["task:count", "--shuffle-files", "1"], "--shuffle-files"),
    ([".", "--shuffle-files", "-1"], "--shuffle-files"),
    ([".", "--shuffle-files", "x"], "--shuffle-files"),
]
TRAIN_FLAGS = [
    ("--cell", "lstmm"),
    ("--layers", "0"),
    ("--layers", "two"),
    ("--layers", "100000000000"),
    ("--hidden", "0"),
    ("--hidden", "10000000"),
    ("--embed", "-3"),
    ("--dropout", "1"),
    ("--dropout", "nan"),
    ("--seq-len", "0"),
    ("--batch-size", "0"),
    ("--lr", "0"),
    ("--lr", "inf"),
    ("--lr", "nan"),
    ("--min-lr-ratio", "1.5"),
    ("--warmup-steps", "-1"),
    ("--weight-decay", "-0.1"),
    ("--weight-decay", "nan"),
    ("--weight-decay", "inf"),
    ("--grad-clip", "0"),
    ("--grad-clip", "nan"),
    ("--max-steps", "0"),
    ("--max-steps", "1.5"),
    ("--decay-steps", "0"),
    ("--max-minutes", "0"),
    ("--max-minutes", "inf"),
    ("--epochs", "-1"),
    ("--epochs", "inf"),
    ("--eval-every", "0"),
    ("--eval-chars", "-1"),
    ("--sample-chars", "-1"),
    ("--sample-chars", "10000000000"),
    ("--log-every", "0"),
    ("--seed", "-1"),
    ("--seed", "99999999999999999999999"),
    ("--seed", "x"),
    ("--device", "gpu"),
    ("--device", "cuda:x"),
    ("--ext", ","),
    ("--errors", "x"),
    ("--tweet-format", "x"),
    ("--task-sequences", "0"),
    ("--task-seed", "1.5"),
    ("--split", "1,1"),
    ("--corpus", "task:nope"),
    ("--shuffle-files", "-2"),
    ("--shuffle-files", "0"),
]
GENERATE_FLAGS = [
    ("--which", "worst"),
    ("--length", "-1"),
    ("--length", "ten"),
    ("--temperature", "-0.5"),
    ("--temperature", "nan"),
    ("--temperature", "inf"),
    ("--top-k", "0"),
    ("--top-p", "0"),
    ("--top-p", "1.5"),
    ("--top-p", "nan"),
    ("--seed", "-1"),
    ("--seed", "18446744073709551616"),
    ("--num-samples", "0"),
    ("--stop", ""),
    ("--unknown", "skip"),
    ("--clamp", "1:0"),
    ("--clamp", "0:0=1"),
    ("--clamp", "1:9999=1"),
    ("--clamp", "1:0=nan"),
    ("--clamp", "1:0=inf"),
    ("--clamp", "1:0:x=1"),
    ("--clamp", "1:0=1e38"),
    ("--device", "tpu"),
]
EVAL_FLAGS = [("--which", "worst"), ("--unknown", "skip"), ("--device", "tpu")]
PROBE_FLAGS = [
    ("--max-chars", "0"),
    ("--top", "0"),
    ("--heldout-fraction", "1.5"),
    ("--features", "nope"),
    ("--random-units", "0"),
    ("--ablate", "half"),
    ("--threads", "0"),
    ("--seed", "x"),
    ("--seed", "-1"),
    ("--seed", "18446744073709551616"),
    ("--which", "worst"),
    ("--json", ""),
    ("--html", ""),
    ("--checkpoint", "run/best.pt"),
]
BENCH_FLAGS = [("--budget-minutes", "-1"), ("--only", "nope"), ("--repeats", "0"), ("--threads", "0")]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny trained run and its corpus, for generate and eval."""
    import json.decoder

    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "code.py").write_text(Path(json.decoder.__file__).read_text())
    run_training(tiny_config(tmp, tmp / "code.py", max_steps=4, eval_every=4), progress=False)
    return tmp


def subcommands() -> set[str]:
    return set(build_parser()._subparsers._group_actions[0].choices)


def check_usage_error(argv: list[str], flag: str, capsys) -> None:
    status, stderr = run_main(argv, capsys)
    assert status == 2, (argv, status, stderr)
    line = one_clear_line(stderr)
    assert flag in line, (argv, line)


@pytest.mark.parametrize("args, flag", CORPUS_FLAGS)
def test_bad_corpus_flags_exit_2_naming_the_flag(trained_run, monkeypatch, capsys, args, flag):
    monkeypatch.chdir(trained_run)
    check_usage_error(["corpus", *args, "--quiet", "--cache-dir", "cache"], flag, capsys)


@pytest.mark.parametrize("flag, value", TRAIN_FLAGS)
def test_bad_train_flags_exit_2_naming_the_flag(trained_run, tmp_path, monkeypatch, capsys, flag, value):
    monkeypatch.chdir(trained_run)
    corpus = "." if flag == "--ext" else "code.py"  # --ext applies to a directory
    small = [
        "--layers",
        "1",
        "--hidden",
        "8",
        "--embed",
        "4",
        "--batch-size",
        "2",
        "--seq-len",
        "8",
        "--max-steps",
        "1",
        "--sample-chars",
        "0",
        "--quiet",
    ]  # should a bad value slip through, the run is a second, not a default run
    check_usage_error(
        ["train", "--corpus", corpus, "--out", str(tmp_path / "run"), "--cache-dir", "cache", *small, flag, value],
        flag if flag != "--corpus" else "unknown task",
        capsys,
    )
    assert not (tmp_path / "run" / "config.json").exists()


@pytest.mark.parametrize("flag, value", GENERATE_FLAGS)
def test_bad_generate_flags_exit_2_naming_the_flag(trained_run, monkeypatch, capsys, flag, value):
    monkeypatch.chdir(trained_run)
    check_usage_error(["generate", "--run", "run", "--length", "5", flag, value], flag, capsys)


@pytest.mark.parametrize("flag, value", EVAL_FLAGS)
def test_bad_eval_flags_exit_2_naming_the_flag(trained_run, monkeypatch, capsys, flag, value):
    monkeypatch.chdir(trained_run)
    check_usage_error(["eval", "--run", "run", "--text", "code.py", flag, value], flag, capsys)


@pytest.mark.parametrize(
    "command, flag, value", [("probe", *f) for f in PROBE_FLAGS] + [("bench", *f) for f in BENCH_FLAGS]
)
def test_bad_probe_and_bench_flags_exit_2_naming_the_flag(trained_run, monkeypatch, capsys, command, flag, value):
    if command not in subcommands():
        pytest.skip(f"charnn {command} is not built yet")
    monkeypatch.chdir(trained_run)
    required = ["--run", "run", "--text", "code.py", "--features", "code"] if command == "probe" else []
    check_usage_error([command, *required, flag, value], flag, capsys)


DATA_PROBLEMS = [  # well-formed values the data or the machine cannot honour: exit 1, still one line
    (
        [
            "train",
            "--corpus",
            "code.py",
            "--out",
            "big-batch",
            "--batch-size",
            "5000",
            "--quiet",
            "--cache-dir",
            "cache",
        ],
        "lower --batch-size",
    ),
    (["train", "--corpus", "missing.txt", "--out", "missing", "--quiet", "--cache-dir", "cache"], "does not exist"),
    (
        ["train", "--corpus", "code.py", "--out", "code.py", "--quiet", "--cache-dir", "cache"],
        "cannot create run directory",
    ),
    (["train", "--corpus", "code.py", "--out", "x", "--quiet", "--cache-dir", "code.py"], "--cache-dir"),
    (["train", "--out", "nowhere", "--resume", "--quiet"], "no run to resume"),
    (["generate", "--run", "nowhere"], "does not exist"),
    (["generate", "--checkpoint", "code.py"], "not a readable charnn checkpoint"),
    (["generate", "--run", "run", "--prime", "\u0416"], "--unknown replace"),
    (["generate", "--run", "run", "--prime-file", "missing.txt"], "--prime-file"),
    (["eval", "--run", "run", "--text", "missing.txt"], "does not exist"),
    (["corpus", "code.py", "--cache-dir", "code.py", "--quiet"], "--cache-dir"),
    (["corpus", "code.py", "--write-text", ".", "--quiet", "--cache-dir", "cache"], "cannot write"),
]


@pytest.mark.parametrize("argv, message", DATA_PROBLEMS)
def test_data_problems_exit_1_with_one_line(trained_run, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(trained_run)
    status, stderr = run_main(argv, capsys)
    assert status == 1, (argv, stderr)
    assert message in one_clear_line(stderr)


def test_the_real_processes_print_no_traceback(trained_run):
    """The same checks through real processes, one per subcommand (the in-process tests cover every flag)."""
    for argv in (
        ["corpus", "task:count", "--task-sequences", "0"],
        ["train", "--corpus", "code.py", "--weight-decay", "nan"],
        ["generate", "--run", "run", "--temperature", "inf"],
        ["eval", "--run", "run", "--text", "code.py", "--device", "tpu"],
        ["nonsense"],
        [],
    ):
        result = cli(*argv, cwd=trained_run)
        assert result.returncode == 2, (argv, result.stderr)
        one_clear_line(result.stderr)
