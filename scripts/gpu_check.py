"""The GPU check: run charnn's GPU path end to end on a machine with a GPU and no network, in minutes.

    python scripts/gpu_check.py --out DIR            # on the GPU machine, from a checkout (no install step)
    python scripts/gpu_check.py --out DIR --device cpu   # the same steps, small, on a CPU (the test suite runs it)

It needs torch (2.2 or newer), numpy, rich, tqdm, tensorboard and pytest, as a cluster node has them; nothing is
installed or downloaded. Each step runs in a process of its own with its own time limit inside an overall budget
(8 minutes by default), in order of value, so a cut loses the least useful; a step that fails or hangs is recorded
and the check goes on. It writes two files: DIR/summary.txt (a line per step: ok or FAIL, its time, its key
figures) and DIR/logs.tgz (every step's output and JSON). docs/gpu.md says what the lines mean.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = (
    "fp32",
    "bf16-head",
    "bf16",
    "fp16",
)  # charnn.precision's names, fp32 first: the others are compared with it
LOSS_TOLERANCE = 0.01  # a candidate may be the default if its val loss is within 1% of fp32's


@dataclass(frozen=True)
class Sizes:
    """How much each step does: the real check on a GPU, a smoke run of the same steps on a CPU."""

    precision_model: tuple[int, int]  # layers, hidden
    precision_steps: int
    train_minutes: float
    resume_steps: int
    probe_chars: int
    probe_random_units: int
    ddp_steps: int
    bench: tuple[str, ...]  # charnn bench's flags
    budget_minutes: float


GPU = Sizes((2, 256), 300, 1.5, 50, 20_000, 32, 20, ("--only", "cuda", "--quick"), 8.0)
CPU = Sizes((2, 64), 40, 0.1, 5, 3_000, 8, 4, ("--only", "sample", "--quick", "--repeats", "1"), 15.0)


# ----- running a step ----------------------------------------------------------------------------------
class Step:
    """One step's commands, run in processes of their own under the step's deadline, their output in its log."""

    def __init__(self, name: str, deadline: float, logs: Path, device: str):
        self.name, self.deadline, self.device = name, deadline, device
        self.log = (logs / f"{name}.log").open("w", encoding="utf-8")

    def run(self, *args: str, cwd: Path = ROOT, env: dict | None = None) -> subprocess.CompletedProcess:
        """A command (python -m charnn.cli ..., etc.) until it ends or the step's time is up (then it and its children
        are killed and TimeoutError is raised)."""
        left = self.deadline - time.monotonic()
        if left <= 1:
            raise TimeoutError(f"no time left for: {' '.join(args)}")
        self.log.write(f"\n$ {' '.join(args)}\n")
        self.log.flush()
        environment = {
            **os.environ,
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            **(env or {}),
        }
        if self.device == "cpu":
            environment["CUDA_VISIBLE_DEVICES"] = ""
        process = subprocess.Popen(
            args,
            cwd=cwd,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )  # its own group: a hang is killed with all of its children
        try:
            stdout, stderr = process.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            self.log.write(stdout + stderr + f"\n[killed after {left:.0f} s: the step's time was up]\n")
            raise TimeoutError(f"'{' '.join(args[:6])} ...' was still running when the step's time was up") from None
        self.log.write(stdout + stderr + f"\n[exit {process.returncode}]\n")
        self.log.flush()
        return subprocess.CompletedProcess(args, process.returncode, stdout, stderr)

    def charnn(self, *args: str, ok: bool = True, **kwargs) -> subprocess.CompletedProcess:
        """python -m charnn.cli ARGS; with ok, a non-zero exit fails the step with the command's last line."""
        result = self.run(sys.executable, "-m", "charnn.cli", *args, **kwargs)
        if ok and result.returncode != 0:
            raise RuntimeError(f"charnn {args[0]} exited {result.returncode}: {last_line(result.stderr)}")
        return result

    def child(self, what: str, *args: str) -> dict:
        """This script's own --child WHAT in a process of its own; its last stdout line is JSON."""
        result = self.run(
            sys.executable, str(Path(__file__).resolve()), "--child", what, "--device", self.device, *args
        )
        if result.returncode != 0:
            raise RuntimeError(f"{what} exited {result.returncode}: {last_line(result.stderr)}")
        return json.loads(result.stdout.strip().splitlines()[-1])


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "(no output)"


# ----- the steps, in order of value ---------------------------------------------------------------------
def step_environment(step: Step, work: Path, sizes: Sizes) -> str:
    info = step.child("environment")
    (work / "environment.json").write_text(json.dumps(info, indent=1))
    gpu = info.get("gpu")
    where = (
        f"{gpu['name']} (capability {gpu['capability']}, {gpu['free_gib']:.0f} of {gpu['total_gib']:.0f} GiB free)"
        if gpu
        else "no GPU"
    )
    return f"torch {info['torch']}, CUDA {info['cuda']}, cuDNN {info['cudnn']}, {where}"


def step_precision(step: Step, work: Path, sizes: Sizes) -> str:
    layers, hidden = sizes.precision_model
    found = step.child(
        "precision",
        "--work",
        str(work),
        "--layers",
        str(layers),
        "--hidden",
        str(hidden),
        "--steps",
        str(sizes.precision_steps),
    )
    (work / "precision.json").write_text(json.dumps(found, indent=1))
    if "refused" in found["candidates"]["fp32"]:
        raise RuntimeError(f"fp32, the reference, did not run: {found['candidates']['fp32']['refused']}")
    parts = []
    for name, result in found["candidates"].items():
        if "refused" in result:
            parts.append(f"{name} refused")
        elif name == "fp32":
            parts.append(f"fp32 {result['val_nats']:.4f} nats, {result['ms_per_step']:.1f} ms/step")
        else:
            parts.append(f"{name} {result['loss_change']:+.2%} loss, {result['time_ratio']:.2f}x time")
    return (
        f"{layers}x{hidden}, {sizes.precision_steps} steps: "
        + "; ".join(parts)
        + f". auto takes {found['auto']}; fastest within {LOSS_TOLERANCE:.0%} of fp32: {found['recommended']}"
    )


def step_pytest(step: Step, work: Path, sizes: Sizes) -> str:
    result = step.run(sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests/test_gpu.py")
    if result.returncode not in (0, 5):  # 5: nothing ran (every test skipped or deselected)
        raise RuntimeError(f"pytest -m gpu: {last_line(result.stdout)}")
    return last_line(result.stdout)


def step_cli(step: Step, work: Path, sizes: Sizes) -> str:
    run, cache, device = str(work / "run"), str(work / "cache"), step.device
    step.charnn(
        "train",
        "--out",
        run,
        "--cache-dir",
        cache,
        "--max-minutes",
        f"{sizes.train_minutes:g}",
        "--device",
        device,
        "--quiet",
    )
    planned = json.loads((work / "run" / "config.json").read_text())["resolved"]["steps"]["target"]
    step.charnn("train", "--out", run, "--resume", "--max-steps", str(planned + sizes.resume_steps), "--quiet")
    step.charnn("generate", "--run", run, "--length", "200", "--seed", "1", "--device", device)
    many = step.charnn(
        "generate", "--run", run, "--length", "100", "--seed", "1", "--num-samples", "64", "--device", device
    )
    text = work / "held_out.py"
    text.write_text((Path(json.__file__).parent / "decoder.py").read_text() * 8)  # real Python, a few dozen KB
    evaluated = json.loads(
        step.charnn(
            "eval", "--run", run, "--text", str(text), "--unknown", "replace", "--json", "--device", device
        ).stdout
    )
    step.charnn(
        "probe",
        "--run",
        run,
        "--text",
        str(text),
        "--features",
        "code",
        "--max-chars",
        str(sizes.probe_chars),
        "--random-units",
        str(sizes.probe_random_units),
        "--json",
        str(work / "probe.json"),
        "--device",
        device,
    )
    probe = json.loads((work / "probe.json").read_text())
    flagged = sum(len(feature.get("units", [])) for feature in probe["features"].values())
    ablated = sum(
        1 for feature in probe["features"].values() for unit in feature.get("units", []) if unit.get("ablation")
    )
    return (
        f"trained {planned:,} steps in {sizes.train_minutes:g} min and resumed to {planned + sizes.resume_steps:,}; "
        f"{many.stdout.count('--- sample ')} samples; eval {evaluated['bits_per_char']:.3f} bits/char; "
        f"probe flagged {flagged} units, {ablated} ablated"
    )


def step_ddp(step: Step, work: Path, sizes: Sizes) -> str:
    launch = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=1",
        "-m",
        "charnn.cli",
        "train",
        "--cache-dir",
        str(work / "cache"),
        "--layers",
        "1",
        "--hidden",
        "64",
        "--batch-size",
        "16",
        "--seq-len",
        "64",
        "--max-steps",
        str(sizes.ddp_steps),
        "--eval-every",
        str(max(1, sizes.ddp_steps // 2)),
        "--device",
        step.device,
        "--quiet",
        "--dist-timeout",
        "2",
    ]
    trained = step.run(*launch, "--out", str(work / "ddp"))
    if trained.returncode != 0 or "(DDP)" not in trained.stderr:
        raise RuntimeError(f"one-process group: exit {trained.returncode}: {last_line(trained.stderr)}")
    (work / "ddp-broken" / "metrics.jsonl").mkdir(
        parents=True
    )  # rank 0 cannot write its metrics: it must say so and stop
    started = time.monotonic()
    failed = step.run(*launch, "--out", str(work / "ddp-broken"))
    said = [line for line in failed.stderr.splitlines() if line.startswith("charnn train: ")]
    if failed.returncode == 0 or len(said) != 1:
        raise RuntimeError(f"a failure on rank 0 gave exit {failed.returncode} and {len(said)} sentence(s)")
    backend = "NCCL" if step.device == "cuda" else "gloo"
    return (
        f"{backend}, 1 process: {sizes.ddp_steps} steps; a failure on rank 0 stopped in "
        f"{time.monotonic() - started:.0f} s "
        f"with one sentence: {said[0][:100]}"
    )


def step_bench(step: Step, work: Path, sizes: Sizes) -> str:
    report = json.loads(step.charnn("bench", *sizes.bench, "--json").stdout)
    (work / "bench.json").write_text(json.dumps(report, indent=1))
    rows = [row for row in report["rows"] if row["what"].split(": ", 1)[-1].startswith(("train", "sample"))]
    return "; ".join(
        f"{row['what']} {row['charnn']}" + (f" ({row['ratio']})" if row.get("ratio") not in (None, "-") else "")
        for row in rows[:8]
    )


STEPS = (  # (name, at most this share of the budget, the step): in order of value
    ("environment", 0.10, step_environment),
    ("precision", 0.30, step_precision),
    ("pytest-gpu", 0.25, step_pytest),
    ("cli", 0.45, step_cli),
    ("ddp", 0.20, step_ddp),
    ("bench", 0.30, step_bench),
)


# ----- what the children do (in a process of their own, so that a hang in CUDA is killed with them) -----
def child_environment(args: argparse.Namespace) -> dict:
    import importlib.metadata

    import torch

    info = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "gpu": None,
        "packages": {},
    }
    for package in ("numpy", "rich", "tqdm", "tensorboard", "pytest", "playwright"):
        try:
            info["packages"][package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info["packages"][package] = None
    if args.device == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA GPU is visible to torch")
        free, total = torch.cuda.mem_get_info()
        major, minor = torch.cuda.get_device_capability()
        info["gpu"] = {
            "name": torch.cuda.get_device_name(),
            "capability": f"{major}.{minor}",
            "count": torch.cuda.device_count(),
            "free_gib": free / 2**30,
            "total_gib": total / 2**30,
        }
    return info


def child_precision(args: argparse.Namespace) -> dict:
    """Each candidate trains the same model on the same batches from the same seed: its val loss against fp32's, its
    time."""
    import torch
    from rich.console import Console

    from charnn.config import TrainConfig
    from charnn.device import synchronize
    from charnn.errors import CharnnError
    from charnn.evaluate import evaluate
    from charnn.precision import CUDA_AUTO
    from charnn.trainer import Trainer

    work, results = Path(args.work), {}
    for name in CANDIDATES:
        config = TrainConfig.of(
            corpus="stdlib",
            out=str(work / f"precision-{name}"),
            cache_dir=str(work / "cache"),
            layers=args.layers,
            hidden=args.hidden,
            embed=64,
            dropout=0.0,
            batch_size=64,
            seq_len=128,
            lr=3e-3,
            max_steps=args.steps,
            eval_every=10**9,
            sample_chars=0,
            device=args.device,
            precision=name,
            seed=1337,
        )
        try:
            trainer = Trainer(config, progress=False, console=Console(quiet=True))
        except CharnnError as err:
            results[name] = {"refused": str(err)}
            continue
        try:
            warm = min(20, args.steps // 4)
            losses = []
            for index in range(args.steps):
                if index == warm:
                    synchronize(trainer.device)
                    started = time.perf_counter()
                losses.append(trainer.train_step()[0])
            synchronize(trainer.device)
            seconds = time.perf_counter() - started
            val = evaluate(trainer.model, trainer.val_batches, trainer.device, 200_000)["nats_per_char"]
            last = torch.stack(losses[-20:]).float().mean().item()
            results[name] = {
                "describe": trainer.precision.describe(),
                "val_nats": val,
                "train_loss_last_20": last,
                "ms_per_step": 1000 * seconds / (args.steps - warm),
            }
        finally:
            trainer.close()
    exact = results.get("fp32", {})
    within = []
    for name, result in results.items():
        if "val_nats" in result and "val_nats" in exact:
            result["loss_change"] = result["val_nats"] / exact["val_nats"] - 1
            result["time_ratio"] = result["ms_per_step"] / exact["ms_per_step"]
            if abs(result["loss_change"]) <= LOSS_TOLERANCE:
                within.append(name)
    recommended = min(within, key=lambda name: results[name]["ms_per_step"]) if within else None
    return {
        "candidates": results,
        "auto": CUDA_AUTO if args.device == "cuda" else "(the CPU's rule)",
        "recommended": recommended,
        "tolerance": LOSS_TOLERANCE,
        "steps": args.steps,
        "model": f"{args.layers}x{args.hidden}",
    }


CHILDREN = {"environment": child_environment, "precision": child_precision}


# ----- the check ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run charnn's GPU path end to end and write DIR/summary.txt and DIR/logs.tgz."
    )
    parser.add_argument("--out", help="where summary.txt and logs.tgz go (made if missing)")
    parser.add_argument(
        "--device", choices=("cuda", "cpu"), default="cuda", help="cuda (default), or cpu: the same steps, small"
    )
    parser.add_argument(
        "--budget-minutes", type=float, help="the whole check's time (default: 8 on a GPU, 15 on a CPU)"
    )
    parser.add_argument(
        "--only", help="run only these steps, comma-separated: " + ", ".join(name for name, _, _ in STEPS)
    )
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--layers", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hidden", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(CHILDREN[args.child](args)))
        return 0
    if not args.out:
        parser.error("--out DIR is needed")
    sizes = GPU if args.device == "cuda" else CPU
    budget = 60 * (args.budget_minutes or sizes.budget_minutes)
    chosen = [name for name, _, _ in STEPS] if not args.only else args.only.split(",")
    unknown = set(chosen) - {name for name, _, _ in STEPS}
    if unknown:
        parser.error(f"--only: no step {', '.join(sorted(unknown))}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    began, started = datetime.now(timezone.utc), time.monotonic()
    lines = [
        f"charnn GPU check, {began:%Y-%m-%d %H:%M} UTC, --device {args.device}, budget {budget / 60:g} min, "
        f"{' '.join(sys.argv[1:]) or '(no flags)'}"
    ]
    with tempfile.TemporaryDirectory(prefix="charnn-gpu-check-") as scratch:
        work, logs = Path(scratch) / "work", Path(scratch) / "logs"
        work.mkdir()
        logs.mkdir()
        for name, share, function in STEPS:
            if name not in chosen:
                continue
            left = budget - (time.monotonic() - started)
            if left < 15:
                lines.append(f"SKIP {name:12} {0:5.0f} s  not run: the budget ran out")
                continue
            step = Step(name, time.monotonic() + min(share * budget, left), logs, args.device)
            step_started = time.monotonic()
            try:
                status, figure = "ok", function(step, work, sizes)
            except Exception as err:  # noqa: BLE001 - a failing step is recorded and the check goes on
                status, figure = "FAIL", f"{type(err).__name__}: {err}"
            finally:
                step.log.close()
            lines.append(f"{status:4} {name:12} {time.monotonic() - step_started:5.0f} s  {figure}")
            print(lines[-1], flush=True)
        for found in work.glob("*.json"):
            shutil.copy(found, logs / found.name)
        (logs / "summary.txt").write_text("\n".join(lines) + "\n")
        with tarfile.open(out / "logs.tgz", "w:gz") as archive:
            archive.add(logs, arcname="logs")
    lines.append(f"total {time.monotonic() - started:.0f} s")
    (out / "summary.txt").write_text("\n".join(lines) + "\n")
    print(f"{out / 'summary.txt'} and {out / 'logs.tgz'} written")
    return 0 if all(not line.startswith("FAIL") for line in lines) else 1


if __name__ == "__main__":
    sys.exit(main())
