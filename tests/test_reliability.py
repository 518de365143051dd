"""Reliability: a user kills runs, fills disks, feeds odd files and shares checkpoints; charnn keeps working.

1. SIGKILL at random moments (inside saves too) never costs a loadable last.pt/best.pt or the resume.
2. Hostile or broken checkpoints are refused with one clear line, and never run code.
3. Fuzzed corpora through every source kind and probe labeller: a result or a CharnnError, no hang.
4. A full or read-only disk: a clear error and the previous checkpoint intact.
5. Two runs into one directory: the second is refused, the first is unharmed.
6. An exploding learning rate: the run stops, says why, and last.pt stays finite and resumable.
7. Every CLI flag's bad values: one line naming the flag, exit 2, no traceback.
8. Vocabulary edges: one character, 1,000+ characters, \\r\\n, a BOM, zero-width joiners.
"""

import errno
import io
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import charnn.atomic
import charnn.checkpoint
from charnn.checkpoint import FORMAT_NAME, FORMAT_VERSION, load_checkpoint, save_checkpoint
from charnn.cli import build_parser, main
from charnn.corpus_cache import load_corpus
from charnn.errors import CharnnError
from charnn.probe.labels import code_features, features_for, task_features, tweet_features
from charnn.run_state import evaluate_and_save
from charnn.tasks import TASK_NAMES
from charnn.trainer import TrainConfig, Trainer, run_training

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}  # one thread: tiny models, a shared 2-core box
TINY = [
    "--layers",
    "1",
    "--hidden",
    "16",
    "--embed",
    "8",
    "--batch-size",
    "4",
    "--seq-len",
    "16",
    "--eval-chars",
    "512",
    "--sample-chars",
    "10",
    "--quiet",
]


def cli(*args: str, cwd: Path, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "charnn.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**ENV, **(env or {})},
    )


def start(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "charnn.cli", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**ENV, **(env or {})},
    )


# charnn.cli with every checkpoint save paused after its temporary file is written, before it is synced and
# renamed: a kill in the pause is a kill mid-save
PAUSED_SAVES = r"""
import sys, time
import charnn.checkpoint
from charnn.atomic import atomic_file

def paused_write(path, data):
    with atomic_file(path) as handle:
        handle.write(data)
        handle.flush()
        time.sleep(float(sys.argv[1]))

charnn.checkpoint.atomic_write_bytes = paused_write
from charnn.cli import main
sys.exit(main(sys.argv[2:]))
"""


def start_pausing_in_saves(seconds: float, *args: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", PAUSED_SAVES, str(seconds), *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def wait_for(condition, process: subprocess.Popen | None = None, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended ({process.returncode}) first: {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.02)


def one_clear_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def final_error_line(stderr: str) -> str:
    """A run that got going prints its start table to stderr first; the error is then the one line at the end."""
    assert "Traceback" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("charnn train: "), stderr
    return last


def assert_usable(path: Path) -> dict:
    """The checkpoint loads, its weights are finite and a model builds from it; returns its meta."""
    checkpoint = load_checkpoint(path)
    assert all(torch.isfinite(t).all() for t in checkpoint.model_state.values())
    checkpoint.build_model()
    return checkpoint.meta


@pytest.fixture
def code_file(tmp_path: Path) -> Path:
    """About 12,000 characters of real Python."""
    import json.decoder

    path = tmp_path / "code.py"
    path.write_text(Path(json.decoder.__file__).read_text(), encoding="utf-8")
    return path


def tiny_config(tmp_path: Path, corpus: Path, **overrides) -> TrainConfig:
    values = dict(
        corpus=str(corpus),
        out=str(tmp_path / "run"),
        layers=1,
        hidden=16,
        embed=8,
        batch_size=4,
        seq_len=16,
        max_steps=10,
        eval_every=5,
        eval_chars=512,
        sample_chars=10,
        cache_dir=str(tmp_path / "cache"),
        seed=3,
    )
    values.update(overrides)
    return TrainConfig.of(**values)


# ================================================================ 1. SIGKILL at any moment


@pytest.mark.slow
def test_sigkill_at_random_moments_never_costs_a_checkpoint(tmp_path, code_file):
    """14 kills: half while a checkpoint is half-written (PAUSED_SAVES pauses there), half at random times."""
    run = tmp_path / "run"
    args = [
        "train",
        "--corpus",
        str(code_file),
        "--out",
        "run",
        "--max-steps",
        "100000",
        "--decay-steps",
        "100000",
        "--eval-every",
        "3",
        "--lr",
        "1e-2",
        "--cache-dir",
        "cache",
        *TINY,
    ]
    rng = random.Random(20240607)
    inside_a_save = 0
    for kill in range(14):
        resume = ["--resume"] if (run / "config.json").exists() else []
        process = start_pausing_in_saves(0.2, *args, *resume, cwd=tmp_path)
        if kill % 2 == 0:
            temps = [run / f".{name}.pt.{process.pid}.tmp" for name in ("best", "last")]
            wait_for(lambda: any(t.exists() for t in temps), process)
            time.sleep(rng.uniform(0, 0.1))
            inside_a_save += any(t.exists() for t in temps)
        else:
            time.sleep(rng.uniform(0.3, 4.0))  # start-up, corpus, training or saving
        process.kill()
        process.wait()
        for name in ("last", "best"):
            if (run / f"{name}.pt").exists():
                assert_usable(run / f"{name}.pt")
    assert inside_a_save >= 5

    # On a slow machine every kill can land before the first last.pt (the even ones inside the first
    # best.pt write, the odd ones during start-up); --resume then starts the run again from step 0.
    step = load_checkpoint(run / "last.pt").meta["step"] if (run / "last.pt").exists() else 0
    finished = cli(*args, "--resume", "--max-steps", str(step + 6), cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr
    last = assert_usable(run / "last.pt")
    best = assert_usable(run / "best.pt")
    assert last["step"] == step + 6
    # best.pt holds the best score of the whole history, and metrics.jsonl is exactly that history
    scores = [record["val_bits_per_char"] for record in last["history"]]
    assert best["best_val_bpc"] == pytest.approx(min(scores), abs=1e-9)
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [r["step"] for r in last["history"]]
    assert not list(run.glob(".*.tmp")), "a killed save's temp file was left behind"


@pytest.mark.slow
def test_a_kill_between_the_best_and_last_writes_loses_no_best_model(tmp_path, code_file):
    run = tmp_path / "run"
    args = [
        "train",
        "--corpus",
        str(code_file),
        "--out",
        "run",
        "--decay-steps",
        "1000",
        "--eval-every",
        "3",
        "--lr",
        "2e-2",
        "--warmup-steps",
        "0",
        "--cache-dir",
        "cache",
        *TINY,
    ]
    assert cli(*args, "--max-steps", "3", cwd=tmp_path).returncode == 0
    process = start_pausing_in_saves(3, *args, "--resume", "--max-steps", "1000", cwd=tmp_path)
    wait_for(lambda: (run / f".last.pt.{process.pid}.tmp").exists(), process)  # best.pt is already renamed
    process.kill()
    process.wait()
    best, last = assert_usable(run / "best.pt"), assert_usable(run / "last.pt")
    assert (best["step"], last["step"]) == (6, 3)  # best is written first: the step-6 model survives

    assert cli(*args, "--resume", "--max-steps", "9", cwd=tmp_path).returncode == 0
    last = assert_usable(run / "last.pt")
    best = assert_usable(run / "best.pt")
    assert [r["step"] for r in last["history"]] == [3, 6, 9]
    assert best["best_val_bpc"] == pytest.approx(min(r["val_bits_per_char"] for r in last["history"]), abs=1e-9)


def test_resume_with_another_batch_size_restarts_the_streams_instead_of_crashing(tmp_path, code_file, capsys):
    run_training(tiny_config(tmp_path, code_file, max_steps=3, eval_every=3), progress=False)
    result = run_training(
        tiny_config(tmp_path, code_file, max_steps=6, eval_every=3, batch_size=8), resume=True, progress=False
    )
    assert result.steps == 6 and "zero state" in capsys.readouterr().err
    assert_usable(tmp_path / "run" / "last.pt")


KILL_CORPUS_WRITE = """
import os, signal, sys
import charnn.corpus_cache as corpus

point = sys.argv[2]
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

if point == "ids":  # the ids temp file is allocated but not yet written
    corpus.reserve_space = die
elif point == "meta":  # the ids are renamed into place, nothing else is written
    corpus.write_cache_meta = die
else:  # the document ends are written, the JSON that validates the entry is not
    write = corpus.atomic_write_bytes
    corpus.atomic_write_bytes = lambda path, data: die() if str(path).endswith(".json") else write(path, data)
corpus.load_corpus(sys.argv[1], cache_dir="cache", progress=False)
"""


@pytest.mark.parametrize("point", ["ids", "meta", "json"])
def test_a_corpus_cache_cut_by_a_kill_is_never_trusted(tmp_path, code_file, point):
    killed = subprocess.run(
        [sys.executable, "-c", KILL_CORPUS_WRITE, str(code_file), point],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL
    corpus = load_corpus(str(code_file), cache_dir=tmp_path / "cache", progress=False)
    assert not corpus.from_cache and corpus.text() == code_file.read_text()
    assert not [p for p in os.listdir(tmp_path / "cache") if ".tmp" in p], (
        "the killed writer's temp file is still there"
    )
    again = load_corpus(str(code_file), cache_dir=tmp_path / "cache", progress=False)
    assert again.from_cache and again.text() == code_file.read_text()


@pytest.mark.parametrize("damage", ["truncate ids", "truncate json", "truncate ends", "drop ends", "wrong length"])
def test_a_damaged_corpus_cache_is_rebuilt(tmp_path, code_file, damage):
    corpus = load_corpus(str(code_file), cache_dir=tmp_path / "cache", progress=False)
    stem = corpus.cache_path.with_suffix("")
    ids, meta, ends = corpus.cache_path, stem.with_suffix(".json"), Path(f"{stem}.ends.npy")
    del corpus
    if damage.startswith("truncate"):
        target = {"ids": ids, "json": meta, "ends": ends}[damage.split()[1]]
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "drop ends":
        ends.unlink()
    else:
        data = json.loads(meta.read_text())
        meta.write_text(json.dumps({**data, "length": data["length"] + 1}))
    rebuilt = load_corpus(str(code_file), cache_dir=tmp_path / "cache", progress=False)
    assert not rebuilt.from_cache and rebuilt.text() == code_file.read_text()


# ================================================================ 2. hostile checkpoints


class RunsCode:
    """Unpickling this calls exec: the marker file appears if a loader ever unpickles it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').close()",))


def small_model():
    from charnn.model import CharRNN, ModelConfig

    return CharRNN(ModelConfig(vocab_size=4, cell="gru", layers=1, hidden=4, embed=2, dropout=0.0))


def good_checkpoint(path, **changes) -> None:
    """A small valid checkpoint (to a path or a buffer), with any top-level field replaced."""
    model = small_model()
    payload = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "meta": json.dumps({"model": model.config.to_json(), "vocab": ["a", "b", "c"], "step": 1}),
        "model": model.state_dict(),
        "extra": {},
    }
    payload.update(changes)
    torch.save(payload, path)


def hostile_files(directory: Path, marker: Path) -> dict[str, Path]:
    files = {}

    def put(name: str, data: bytes | None = None, **changes) -> None:
        files[name] = directory / f"{name}.pt"
        if data is None:
            good_checkpoint(files[name], **changes)
        else:
            files[name].write_bytes(data)

    buffer = io.BytesIO()
    torch.save({"format": FORMAT_NAME, "version": 1, "meta": RunsCode(marker)}, buffer)
    put("code in a torch file", buffer.getvalue())
    put("code in a plain pickle", pickle.dumps(RunsCode(marker)))
    buffer = io.BytesIO()
    good_checkpoint(buffer)
    put("truncated", buffer.getvalue()[: len(buffer.getvalue()) // 2])
    put("random bytes", random.Random(0).randbytes(4096))
    put("empty", b"")
    buffer = io.BytesIO()
    torch.save(torch.zeros(3), buffer)
    put("a tensor", buffer.getvalue())
    buffer = io.BytesIO()
    torch.save({"weights": torch.zeros(3)}, buffer)
    put("someone else's dict", buffer.getvalue())
    put("newer format", version=FORMAT_VERSION + 1)
    put("no version", version=None)
    huge = {"vocab_size": 4, "cell": "lstm", "layers": 4, "hidden": 10**7, "embed": 10**6, "dropout": 0.0}
    put("config asking for petabytes", meta=json.dumps({"model": huge, "vocab": ["a", "b", "c"]}))
    put("weights of the wrong shape", model={"embedding.weight": torch.zeros(4, 3)})
    put("NaN weights", model={k: torch.full_like(v, float("nan")) for k, v in small_model().state_dict().items()})
    put(
        "vocabulary and model disagree",
        meta=json.dumps(
            {
                "model": {"vocab_size": 9, "cell": "gru", "layers": 1, "hidden": 4, "embed": 2, "dropout": 0.0},
                "vocab": ["a", "b", "c"],
            }
        ),
    )
    put(
        "config of the wrong type",
        meta=json.dumps({"model": {"vocab_size": 4, "dropout": "lots"}, "vocab": ["a", "b", "c"]}),
    )
    put("meta not JSON", meta="{not json")
    buffer = io.BytesIO()  # weights of 0.25, one of which gets a flipped bit: 0.25 -> 1.7e38, still a finite number
    good_checkpoint(buffer, model={k: torch.full_like(v, 0.25) for k, v in small_model().state_dict().items()})
    data = bytearray(buffer.getvalue())
    quarter = data.index(torch.tensor([0.25]).numpy().tobytes())
    data[quarter + 3] |= 0x40
    put("a flipped bit in a weight", bytes(data))
    return files


EXPECTED_REASON = {
    "code in a torch file": "could run code",
    "code in a plain pickle": "never unpickles",
    "truncated": "truncated or damaged",
    "random bytes": "not a PyTorch zip archive",
    "empty": "empty",
    "a tensor": "not a charnn checkpoint",
    "someone else's dict": "not a charnn checkpoint",
    "newer format": "newer charnn",
    "no version": "format version is None",
    "config asking for petabytes": "do not fit",
    "weights of the wrong shape": "do not fit",
    "NaN weights": "NaN or infinite",
    "vocabulary and model disagree": "outputs for a vocabulary",
    "config of the wrong type": "cannot build",
    "meta not JSON": "damaged",
    "a flipped bit in a weight": "fails its checksum",
}


def test_hostile_and_broken_checkpoints_are_refused_clearly(tmp_path):
    marker = tmp_path / "PWNED"
    files = hostile_files(tmp_path, marker)
    assert set(files) == set(EXPECTED_REASON)
    for name, path in files.items():
        started = time.monotonic()
        with pytest.raises(CharnnError) as refused:
            load_checkpoint(path)
        assert EXPECTED_REASON[name] in str(refused.value), (name, str(refused.value))
        assert str(path) in str(refused.value)
        assert time.monotonic() - started < 10, name  # the petabyte config allocates nothing
    assert not marker.exists()


@pytest.mark.slow
def test_hostile_checkpoints_through_generate_eval_and_resume(tmp_path, code_file):
    marker = tmp_path / "PWNED"
    files = hostile_files(tmp_path, marker)
    assert (
        cli(
            "train",
            "--corpus",
            str(code_file),
            "--out",
            "run",
            "--max-steps",
            "2",
            "--eval-every",
            "2",
            "--cache-dir",
            "cache",
            *TINY,
            cwd=tmp_path,
        ).returncode
        == 0
    )
    for name in ("code in a torch file", "code in a plain pickle", "config asking for petabytes"):
        for command in (
            ["generate", "--checkpoint", str(files[name]), "--length", "5"],
            ["eval", "--checkpoint", str(files[name]), "--text", str(code_file)],
        ):
            result = cli(*command, cwd=tmp_path)
            assert result.returncode == 1
            assert EXPECTED_REASON[name] in one_clear_line(result.stderr)
        shutil.copy(files[name], tmp_path / "run" / "last.pt")
        resumed = cli("train", "--out", "run", "--resume", "--quiet", cwd=tmp_path)
        assert resumed.returncode == 1 and EXPECTED_REASON[name] in one_clear_line(resumed.stderr)
    assert not marker.exists()


def test_a_checkpoint_with_a_damaged_training_state_refuses_to_resume(tmp_path, code_file):
    run_training(tiny_config(tmp_path, code_file, max_steps=5), progress=False)
    last = tmp_path / "run" / "last.pt"
    payload = torch.load(last, weights_only=True)
    payload["extra"]["optimizer"]["state"][0]["exp_avg"] = torch.zeros(3)
    torch.save(payload, last)
    with pytest.raises(CharnnError, match="damaged and cannot be resumed"):
        Trainer(tiny_config(tmp_path, code_file, max_steps=10), resume=True, progress=False)
    assert_usable(last)  # still fine for sampling


# ================================================================ 3. fuzzed corpora and labellers


@contextmanager
def at_most(seconds: int):
    """A hang becomes a failure: SIGALRM interrupts anything that runs longer."""

    def hung(signum, frame):
        raise AssertionError(f"still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


FILE_KINDS = [  # (file name, --tweet-format, bytes before the fuzzed content)
    ("a.txt", "auto", b""),
    ("a.txt", "lines", b""),
    ("a.jsonl", "auto", b""),
    ("a.json", "auto", b""),
    ("a.csv", "auto", b"text\n"),
    ("a.csv", "auto", b""),
    ("tweets.js", "auto", b"window.YTD.tweets.part0 = "),
    ("a.json", "archive", b""),
    ("a.bin", "text", b"\xef\xbb\xbf"),
]


def read_every_way(data: bytes, kind: tuple[str, str, bytes], errors: str) -> None:
    """Read data as a file of this kind and as a one-file code tree; a Corpus must be sound, anything else a
    CharnnError."""
    name, tweet_format, prefix = kind
    with tempfile.TemporaryDirectory() as scratch, at_most(20):
        root = Path(scratch)
        (root / "tree" / "pkg").mkdir(parents=True)
        (root / name).write_bytes(prefix + data)
        (root / "tree" / "pkg" / "m.py").write_bytes(data)
        for spec, options in ((str(root / name), {"tweet_format": tweet_format}), (str(root / "tree"), {})):
            try:
                corpus = load_corpus(spec, errors=errors, cache_dir=root / "cache", progress=False, **options)
            except CharnnError as error:
                assert str(error) and "\n" not in str(error)
                continue
            text = corpus.text()
            text.encode("utf-8")  # no lone surrogates: everything downstream writes UTF-8
            assert len(text) == len(corpus) > 0 and "\ufeff" not in text[:1]
            assert list(corpus.vocab.chars) == sorted(set(text))
            cached = load_corpus(spec, errors=errors, cache_dir=root / "cache", progress=False, **options)
            assert cached.from_cache and cached.text() == text


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(FILE_KINDS), st.sampled_from(["strict", "replace"]))
def test_random_bytes_through_every_source_kind(data, kind, errors):
    read_every_way(data, kind, errors)


@FUZZ
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300), st.sampled_from(FILE_KINDS))
def test_random_unicode_through_every_source_kind(text, kind):
    read_every_way(text.encode("utf-8"), kind, "strict")


JSON_STRINGS = st.text(max_size=15) | st.sampled_from(["\ud83d", "a\udc00b", "😀", "&amp;", "\r\n", ""])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | JSON_STRINGS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["text", "full_text", "tweet", "data", "tweets", "x"]) | st.text(max_size=4),
            inner,
            max_size=4,
        )
    ),
    max_leaves=15,
)


@FUZZ
@given(
    JSON_VALUES,
    st.sampled_from(
        [("a.json", "auto", b""), ("a.jsonl", "auto", b""), ("tweets.js", "auto", b"window.YTD.tweets.part0 = ")]
    ),
    st.sampled_from(["strict", "replace"]),
)
def test_random_json_documents_as_tweets(value, kind, errors):
    read_every_way(json.dumps(value).encode(), kind, errors)


@pytest.mark.parametrize(
    "name, data",
    [
        ("deep.json", b"[" * 100_000 + b"]" * 100_000),
        ("deep.jsonl", b"[" * 100_000 + b"]" * 100_000 + b"\n"),
        ("digits.json", b"[" + b"7" * 5000 + b"]"),
        ("digits.jsonl", b'{"text": ' + b"7" * 5000 + b"}\n"),
        ("half_emoji.jsonl", b'{"text": "cut \\ud83d"}\n'),
        ("field.csv", b'text\n"' + b"x" * 200_000 + b'"\n'),
        ("nul.csv", b"text\na\x00b\n"),
        ("crlf_only.txt", b"\r\n" * 1000),
        ("bom_only.txt", b"\xef\xbb\xbf"),
        ("invalid.txt", b"ok\xff\xfe\xfd"),
    ],
)
def test_pathological_files_give_a_result_or_a_clear_error(tmp_path, name, data):
    (tmp_path / name).write_bytes(data)
    for errors in ("strict", "replace"):
        with at_most(30):
            try:
                corpus = load_corpus(str(tmp_path / name), errors=errors, cache_dir=tmp_path / "cache", progress=False)
            except CharnnError as error:
                assert "\n" not in str(error)
            else:
                corpus.text().encode("utf-8")


@pytest.mark.parametrize(
    "spec, sequences", [("task:nope", 10), ("task:", 10), ("task:count", 0), ("task:count", 10**12)]
)
def test_bad_task_corpora_are_refused_before_any_work(tmp_path, spec, sequences):
    with at_most(10), pytest.raises(CharnnError):
        load_corpus(spec, task_sequences=sequences, cache_dir=tmp_path, progress=False)


LABEL_TEXT = st.text(
    alphabet=st.characters() | st.sampled_from(list("\"'#/*\\\n\r\t ({[]})@:.&;“”aAbBxXYc")), max_size=300
)


@FUZZ
@given(LABEL_TEXT, st.integers(min_value=-2, max_value=12))
def test_code_and_tweet_labellers_take_any_text(text, tab_width):
    with at_most(20):
        try:
            features = code_features(text, tab_width=tab_width)
        except CharnnError:
            assert tab_width < 1
            features = code_features(text)
        features.update(tweet_features(text))
    for feature in features.values():
        assert feature.values.shape == feature.targets.shape == (len(text),)


@FUZZ
@given(
    LABEL_TEXT,
    st.sampled_from([*TASK_NAMES, "task:count", "nope", ""]),
    st.sampled_from(["task", "code", "tweets", "nope"]),
)
def test_task_labellers_and_the_dispatch_take_any_text(text, task, kind):
    with at_most(20):
        for call in (lambda: task_features(text, task), lambda: features_for(kind, text, task)):
            try:
                features = call()
            except CharnnError:
                continue
            for feature in features.values():
                assert feature.values.shape == feature.targets.shape == (len(text),)


def test_labellers_stay_linear_on_pathological_text():
    for text in [
        '"' * 100_000,
        "/*" * 50_000,
        "#" * 100_000,
        "'''" * 30_000,
        "\\" * 100_000,
        "http://" * 15_000,
        "@#" * 50_000,
        "a" * 100_000,
        "“" * 100_000,
        " \t" * 50_000 + "\n",
    ]:
        with at_most(30):
            code_features(text)
            tweet_features(text)
            for task in TASK_NAMES:
                task_features(text, task)


# ================================================================ 4. disk trouble


class FailingDisk:
    """Makes writes to checkpoints' temp files fail with an errno after `allow` successful saves, part-way through."""

    def __init__(self, error: int, allow: int):
        self.error, self.allow, self.opened = error, allow, 0

    def open(self, path, mode="r", *args, **kwargs):
        handle = open(path, mode, *args, **kwargs)
        if "w" not in mode or not (str(path).endswith(".tmp") and ".pt." in Path(path).name):
            return handle
        self.opened += 1
        if self.opened <= self.allow:
            return handle
        error = self.error

        class Failing(io.BufferedWriter):
            def write(self, data):
                super().write(bytes(data)[: len(data) // 2])  # half of it reaches the disk
                raise OSError(error, os.strerror(error))

        handle.close()
        return Failing(io.FileIO(path, "w"))


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS, errno.EIO])
def test_a_failing_disk_mid_run_keeps_the_previous_checkpoint(tmp_path, code_file, monkeypatch, error):
    disk = FailingDisk(error, allow=2)  # step 5 saves best and last, then the disk fails
    monkeypatch.setattr(charnn.atomic, "open", disk.open, raising=False)  # the one writer of every file
    run = tmp_path / "run"
    with pytest.raises(CharnnError) as stopped:
        run_training(tiny_config(tmp_path, code_file, max_steps=20), progress=False)
    assert os.strerror(error) in str(stopped.value) and "intact" in str(stopped.value)
    assert assert_usable(run / "last.pt")["step"] == 5
    assert assert_usable(run / "best.pt")["step"] == 5
    assert not list(run.glob(".*.tmp"))

    monkeypatch.undo()  # space freed: the run continues where it was
    result = run_training(tiny_config(tmp_path, code_file, max_steps=20), resume=True, progress=False)
    assert result.steps == 20 and assert_usable(run / "last.pt")["step"] == 20


def test_a_full_disk_for_the_metrics_says_the_checkpoint_is_saved(tmp_path, code_file, monkeypatch):
    real_open = open

    def full_for_metrics(path, mode="r", *args, **kwargs):
        if str(path).endswith("metrics.jsonl") and "a" in mode:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", full_for_metrics)
    with pytest.raises(CharnnError, match="No space left on device.*checkpoints of step 5 are saved.*--resume"):
        run_training(tiny_config(tmp_path, code_file), progress=False)
    monkeypatch.undo()
    assert_usable(tmp_path / "run" / "last.pt")


@contextmanager
def tiny_tmpfs(where: Path, size: str):
    """A real small file system, when this process may mount one (root in a container that allows it)."""
    where.mkdir()
    if (
        shutil.which("mount") is None
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a tmpfs here; the injected-error tests cover the same code")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_really_full_disk_stops_training_with_the_last_checkpoint_intact(tmp_path, code_file):
    # a checkpoint of this model is ~60 KB: the disk holds best + last and the logs, not a third copy
    with tiny_tmpfs(tmp_path / "disk", "160k") as disk:
        result = cli(
            "train",
            "--corpus",
            str(code_file),
            "--out",
            str(disk / "run"),
            "--max-steps",
            "40",
            "--eval-every",
            "5",
            "--cache-dir",
            "cache",
            *TINY,
            cwd=tmp_path,
        )
        assert result.returncode == 1
        assert "No space left on device" in final_error_line(result.stderr)
        assert assert_usable(disk / "run" / "last.pt")["step"] >= 5
        assert not list((disk / "run").glob(".*.tmp"))


def test_a_checkpoint_larger_than_the_free_space_is_a_clear_error(tmp_path):
    # torch's zip writer used to report this as "RuntimeError: unexpected pos 832 vs 726", a traceback
    with tiny_tmpfs(tmp_path / "disk", "64k") as disk:
        save_checkpoint(disk / "last.pt", {"step": 1}, {"w": torch.zeros(10)})
        with pytest.raises(CharnnError, match=r"No space left on device.*previous checkpoint there is intact"):
            save_checkpoint(disk / "last.pt", {"step": 2}, {"w": torch.zeros(100_000)})
        assert torch.load(disk / "last.pt", weights_only=True)["model"]["w"].shape == (10,)
        assert os.listdir(disk) == ["last.pt"]


def test_a_really_full_disk_while_caching_a_corpus_is_a_clear_error(tmp_path):
    # the ids are written through a memory map: without reserving the blocks first this was a SIGBUS, no message
    (tmp_path / "big.txt").write_text("".join(f"line {i} of a corpus larger than the disk\n" for i in range(100_000)))
    with tiny_tmpfs(tmp_path / "disk", "1m") as disk:
        result = cli("corpus", "big.txt", "--quiet", "--cache-dir", str(disk / "cache"), cwd=tmp_path)
        assert result.returncode == 1
        assert "No space left on device" in one_clear_line(result.stderr) and "--cache-dir" in result.stderr
        assert os.listdir(disk / "cache") == []


def test_a_read_only_run_directory_refuses_to_train_and_still_samples(tmp_path, code_file):
    with tiny_tmpfs(tmp_path / "disk", "4m") as disk:
        args = [
            "train",
            "--corpus",
            str(code_file),
            "--out",
            str(disk / "run"),
            "--eval-every",
            "5",
            "--cache-dir",
            "cache",
            *TINY,
        ]
        assert cli(*args, "--max-steps", "5", cwd=tmp_path).returncode == 0
        before = (disk / "run" / "last.pt").read_bytes()
        assert subprocess.run(["mount", "-o", "remount,ro", str(disk)], capture_output=True).returncode == 0
        refused = cli(*args, "--max-steps", "10", "--resume", cwd=tmp_path)
        assert refused.returncode == 1 and "Read-only file system" in one_clear_line(refused.stderr)
        assert (disk / "run" / "last.pt").read_bytes() == before
        sampled = cli("generate", "--run", str(disk / "run"), "--length", "20", "--seed", "1", cwd=tmp_path)
        assert sampled.returncode == 0, sampled.stderr


# ================================================================ 5. two runs into one directory


@pytest.mark.slow
def test_a_second_run_into_a_busy_directory_is_refused_and_the_first_is_unharmed(tmp_path, code_file):
    run = tmp_path / "run"
    args = ["train", "--corpus", str(code_file), "--out", "run", "--eval-every", "3", "--cache-dir", "cache", *TINY]
    first = start(*args, "--max-steps", "100000", cwd=tmp_path)
    wait_for(lambda: (run / "last.pt").exists(), first)
    for extra in ([], ["--overwrite"], ["--resume"]):
        second = cli(*args, "--max-steps", "100000", *extra, cwd=tmp_path)
        assert second.returncode == 1
        assert "another charnn process is training into" in one_clear_line(second.stderr)
    assert (run / ".lock").read_text() == str(first.pid)  # the refused runs did not even rewrite the lock file
    assert first.poll() is None
    first.send_signal(signal.SIGTERM)
    _, stderr = first.communicate(timeout=60)
    assert first.returncode == 128 + signal.SIGTERM, stderr
    step = assert_usable(run / "last.pt")["step"]
    assert_usable(run / "best.pt")
    resumed = cli(*args, "--resume", "--max-steps", str(step + 3), cwd=tmp_path)  # the lock went with the first run
    assert resumed.returncode == 0, resumed.stderr
    assert load_checkpoint(run / "last.pt").meta["step"] == step + 3


# ================================================================ 6. numerics


def test_an_exploding_learning_rate_stops_and_last_stays_good_and_resumable(tmp_path, code_file):
    run = tmp_path / "run"
    args = ["train", "--corpus", str(code_file), "--out", "run", "--decay-steps", "1000", "--cache-dir", "cache", *TINY]
    assert cli(*args, "--max-steps", "6", "--eval-every", "3", cwd=tmp_path).returncode == 0
    good = (run / "last.pt").read_bytes()
    exploded = cli(
        *args,
        "--resume",
        "--max-steps",
        "1000",
        "--eval-every",
        "100",
        "--lr",
        "1e30",
        "--warmup-steps",
        "0",
        "--grad-clip",
        "1e30",
        cwd=tmp_path,
    )
    assert exploded.returncode == 1
    message = final_error_line(exploded.stderr)
    assert "became NaN" in message or "infinite" in message
    assert "keeps the last good state (step 6)" in message and "lower --lr" in message and "--resume" in message
    assert (run / "last.pt").read_bytes() == good
    assert_usable(run / "last.pt")
    again = cli(*args, "--resume", "--max-steps", "9", "--eval-every", "3", "--lr", "1e-3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert assert_usable(run / "last.pt")["step"] == 9


def test_an_explosion_before_the_first_checkpoint_can_start_again_with_resume(tmp_path, code_file):
    args = [
        "train",
        "--corpus",
        str(code_file),
        "--out",
        "run",
        "--cache-dir",
        "cache",
        "--max-steps",
        "6",
        "--eval-every",
        "3",
        *TINY,
    ]
    exploded = cli(*args, "--lr", "1e30", "--warmup-steps", "0", "--grad-clip", "1e30", cwd=tmp_path)
    assert exploded.returncode == 1
    assert "no checkpoint had been saved yet" in final_error_line(exploded.stderr)
    assert not (tmp_path / "run" / "last.pt").exists()
    again = cli(*args, "--resume", "--lr", "1e-3", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert assert_usable(tmp_path / "run" / "last.pt")["step"] == 6


def test_weights_that_went_non_finite_are_never_saved(tmp_path, code_file):
    trainer = Trainer(tiny_config(tmp_path, code_file), progress=False)
    try:
        for _ in range(5):
            trainer.train_step()
        evaluate_and_save(trainer, None, trainer_bar())
        good = (tmp_path / "run" / "last.pt").read_bytes()
        with torch.no_grad():
            trainer.model.decoder.bias[0] = float("inf")  # an overflow the loss has not shown yet
        with pytest.raises(CharnnError, match="weights became NaN or infinite.*step 5"):
            evaluate_and_save(trainer, None, trainer_bar())
        assert (tmp_path / "run" / "last.pt").read_bytes() == good
    finally:
        trainer.close()


def trainer_bar():
    from tqdm import tqdm

    return tqdm(disable=True)


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


# ================================================================ 8. vocabulary edges

ZWJ_FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # 👨‍👩‍👧: three people joined by zero-width joiners
WIDE = "".join(chr(0x4E00 + i) for i in range(1000)) + "".join(chr(0x1F600 + i) for i in range(60))
EDGES = {
    "one character": ("a" * 3000).encode(),
    "1,060 characters": ((WIDE + "\n") * 4).encode(),
    "crlf": ("first line\r\nsecond line\r\n" * 150).encode(),
    "bom": b"\xef\xbb\xbf" + ("with a byte order mark\n" * 150).encode(),
    "zwj": ((f"family {ZWJ_FAMILY} and flag \U0001f3f3\ufe0f\u200d\U0001f308\n") * 120).encode(),
}


@pytest.mark.parametrize("name", list(EDGES))
def test_vocabulary_edges_train_sample_and_evaluate(tmp_path, monkeypatch, capsys, name):
    data = EDGES[name]
    (tmp_path / "corpus.txt").write_bytes(data)
    expected_text = data.decode("utf-8-sig").replace("\r\n", "\n")
    result = run_training(tiny_config(tmp_path, tmp_path / "corpus.txt", max_steps=4, eval_every=2), progress=False)
    assert result.steps == 4
    checkpoint = load_checkpoint(tmp_path / "run" / "best.pt")
    vocab = checkpoint.vocab
    assert set(vocab.chars) == set(expected_text) and "\r" not in vocab.chars and "\ufeff" not in vocab.chars
    if name == "1,060 characters":
        assert len(vocab.chars) == 1061
    if name == "zwj":
        assert "\u200d" in vocab.chars

    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["generate", "--run", "run", "--length", "60", "--seed", "1"]) == 0
    sample = capsys.readouterr().out.rstrip("\n")
    assert len(sample) >= 60 and set(sample) <= set(vocab.chars)
    if name == "one character":
        assert sample == "a" * 60  # the only character there is
    (tmp_path / "prime.txt").write_text(
        data.decode("utf-8")[:30], encoding="utf-8", newline=""
    )  # a BOM and \r\n in it too
    assert main(["generate", "--run", "run", "--length", "5", "--seed", "1", "--prime-file", "prime.txt"]) == 0
    capsys.readouterr()

    assert main(["eval", "--run", "run", "--text", "corpus.txt", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["unknown_chars"] == 0 and figures["chars"] == len(expected_text) - 1
    assert np.isfinite(figures["bits_per_char"]) and figures["bits_per_char"] >= 0
