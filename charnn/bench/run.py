"""charnn bench's whole run: the sections asked for, one after another, each watched for other processes."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import torch
from rich.console import Console

from charnn.bench.encoding import measure_encoding
from charnn.bench.quality import measure_quality
from charnn.bench.sampling import measure_sampling
from charnn.bench.settings import SECTIONS, BenchSettings
from charnn.bench.table import table_rows
from charnn.bench.timing import CpuWatch, machine_info, measure_matmul, spread
from charnn.bench.training import measure_training
from charnn.errors import CharnnError, UsageError


# ----- the whole benchmark -----------------------------------------------------------------------
def run_bench(
    settings: BenchSettings,
    sections: Sequence[str] = ("train", "sample", "encode"),
    progress: bool = False,
    console: Console | None = None,
) -> dict:
    """Run the chosen sections; one JSON-able dict with machine info, every measurement, and the goals."""
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        raise UsageError(f"--only takes {', '.join(SECTIONS)}, not {', '.join(sorted(unknown))}")
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    console = console or Console(stderr=True)
    started = time.monotonic()
    report: dict[str, Any] = {"machine": machine_info(), "settings": settings_json(settings), "sections": {}}
    status_display = console.status("charnn bench") if progress else None

    def status(text: str) -> None:
        if status_display is not None:
            status_display.update(f"charnn bench: {text}")

    def watched(measure: Callable[[], dict]) -> dict:
        watch = CpuWatch()
        result = measure()
        result["others_cpu_share"] = watch.others_share()
        return result

    if status_display is not None:
        status_display.start()
    whole_run = CpuWatch()
    try:
        if "train" in sections:
            # a ceiling is what the machine can do: noise only lowers it, so take the best of the repeats
            # before and after the training runs (the fractions are then conservative)
            status("matmul ceiling")
            before = watched(
                lambda: measure_matmul(
                    settings.matmul_shape, settings.matmul_calls, settings.repeats, settings.wait_quiet
                )
            )
            trained = [
                watched(lambda: measure_training(shape, steps, settings, status))
                for shape, steps in zip(settings.train_shapes, settings.train_steps)
            ]
            status("matmul ceiling, again")
            after = watched(
                lambda: measure_matmul(
                    settings.matmul_shape, settings.matmul_calls, settings.repeats, settings.wait_quiet
                )
            )
            matmul = {
                "shape": before["shape"],
                "others_cpu_share_per_repeat": [before["others_cpu_share"], after["others_cpu_share"]],
                "gflops": {
                    kind: spread(before["gflops"][kind]["values"] + after["gflops"][kind]["values"])
                    for kind in before["gflops"]
                },
            }
            matmul["ceiling_gflops"] = max(
                matmul["gflops"][kind]["max"] for kind in ("mkl", "onednn") if kind in matmul["gflops"]
            )
            matmul["bf16_ceiling_gflops"] = matmul["gflops"]["bf16"]["max"] if "bf16" in matmul["gflops"] else None
            for result in trained:
                # both against the ceiling of the precision they compute in
                ceiling = (
                    matmul["bf16_ceiling_gflops"] if result["charnn_precision"] == "bf16" else matmul["ceiling_gflops"]
                )
                result["charnn_fraction_of_ceiling"] = result["charnn_gflops"] / ceiling if ceiling else None
                result["bare_fraction_of_ceiling"] = result["bare_gflops"] / ceiling if ceiling else None
            report["sections"]["matmul"] = matmul
            report["sections"]["train"] = trained
        if "sample" in sections:
            report["sections"]["sample"] = watched(lambda: measure_sampling(settings, status))
        if "encode" in sections:
            report["sections"]["encode"] = watched(lambda: measure_encoding(settings, status))
        if "cuda" in sections:
            report["sections"]["cuda"] = watched(lambda: measure_cuda(settings, status))
        if "quality" in sections:
            if status_display is not None:
                status_display.stop()  # the trainer shows its own progress bar
            report["sections"]["quality"] = watched(lambda: measure_quality(settings, status, progress))
    finally:
        if status_display is not None:
            status_display.stop()
    report["machine"]["load_average_end"] = list(os.getloadavg())
    report["machine"]["others_cpu_share"] = whole_run.others_share()
    report["seconds"] = time.monotonic() - started
    report["rows"] = table_rows(report["sections"])
    return report


def measure_cuda(settings: BenchSettings, status: Callable[[str], None], device: torch.device | None = None) -> dict:
    """The train and sample measurements on a GPU (the first, unless device names one), with GPU shapes."""
    if device is None:
        if not torch.cuda.is_available():
            raise CharnnError("--only cuda: no CUDA GPU is available here")
        device = torch.device("cuda", torch.cuda.current_device())
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
    trained = [
        measure_training(shape, steps, settings, status, device)
        for shape, steps in zip(settings.cuda_train_shapes, settings.cuda_train_steps)
    ]
    return {"device": name, "train": trained, "sample": measure_sampling(settings, status, device)}


def settings_json(settings: BenchSettings) -> dict:
    """The settings as plain JSON."""
    data = asdict(settings)
    data["train_shapes"] = [asdict(s) for s in settings.train_shapes]
    data["cuda_train_shapes"] = [asdict(s) for s in settings.cuda_train_shapes]
    return data
