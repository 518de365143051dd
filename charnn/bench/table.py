"""The bench's report as rows and as a rich table."""

from __future__ import annotations

import statistics

from rich.markup import escape
from rich.table import Table

from charnn.bench.settings import DISTURBED_SHARE


def fmt(value: dict | float | None, digits: int = 0, unit: str = "") -> str:
    """A spread as 'median [min–max]', or a single number."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return f"{value['median']:,.{digits}f} [{value['min']:,.{digits}f}–{value['max']:,.{digits}f}]{unit}"
    return f"{value:,.{digits}f}{unit}"


def disturbance_note(result: dict) -> str:
    """' (others: 40% of the CPUs)' when other processes took a noticeable share while result was measured."""
    shares = [x for x in result.get("others_cpu_share_per_repeat", []) if x is not None]
    share = statistics.median(shares) if shares else result.get("others_cpu_share")
    return f" (others: {share:.0%} of the CPUs)" if share is not None and share >= DISTURBED_SHARE else ""


def table_rows(sections: dict) -> list[dict]:
    """One row per figure: what, charnn, baseline, ratio (strings, for the table)."""
    rows = []

    def add(what: str, charnn: str, baseline: str, ratio: str = "-", measured: dict | None = None) -> None:
        what += disturbance_note(measured) if measured else ""
        rows.append({"what": what, "charnn": charnn, "baseline": baseline, "ratio": ratio})

    matmul = sections.get("matmul")
    if matmul:
        names = {"mkl": "fp32 torch.mm (MKL)", "onednn": "fp32 oneDNN linear", "bf16": "bf16 torch.mm, for reference"}
        for kind, rates in matmul["gflops"].items():
            add(f"matmul GFLOP/s, {names[kind]} ({matmul['shape']})", fmt(rates), "", measured=matmul)
        add("matmul fp32 ceiling, GFLOP/s: the best fp32 repeat", fmt(matmul["ceiling_gflops"]), "")

    def add_runs(trained: list[dict], sample: dict | None, where: str = "") -> None:
        for r in trained:
            s = r["shape"]
            name = f"{s['layers']}×{s['hidden']}"
            add(
                f"{where}train {name} chars/s (batch {s['batch_size']}, seq {s['seq_len']})",
                fmt(r["charnn_chars_per_s"]),
                fmt(r["bare_chars_per_s"]),
                fmt(r["ratio"], 2) + "×",
                measured=r,
            )
            if where:
                continue  # no ceiling is measured on a GPU
            fraction, bare_fraction = r.get("charnn_fraction_of_ceiling"), r.get("bare_fraction_of_ceiling")
            add(
                f"train {name} GFLOP/s, share of the {r['charnn_precision']} ceiling ({r['mflop_per_char']:.2f} "
                "MFLOP/char)",
                f"{r['charnn_gflops']:.0f}" + (f" ({fraction:.0%})" if fraction is not None else ""),
                f"{r['bare_gflops']:.0f}" + (f" ({bare_fraction:.0%})" if bare_fraction is not None else ""),
                "-",
            )
        if sample:
            single, batched = sample["single"], sample["batched"]
            add(
                f"{where}sample {sample['model']} chars/s, 1 stream",
                fmt(single["charnn_chars_per_s"]),
                fmt(single["naive_chars_per_s"]),
                fmt(single["ratio"], 2) + "×",
                measured=single,
            )
            add(
                f"{where}sample {sample['model']} chars/s, {batched['streams']} streams",
                fmt(batched["charnn_chars_per_s"]),
                fmt(batched["naive_chars_per_s"]),
                fmt(batched["ratio"], 2) + "×",
                measured=batched,
            )
            for run in (single, batched):
                if "host_syncs_per_char" in run:
                    add(
                        f"{where}sample {run['streams']} stream(s): the host waits for the GPU, per character",
                        f"{run['host_syncs_per_char']:.3f}",
                        "",
                    )
                if "bf16" in run:
                    add(
                        f"{where}sample {sample['model']} chars/s, {run['streams']} stream(s): --precision bf16 vs "
                        "fp32",
                        fmt(run["bf16"]["charnn_chars_per_s"]),
                        fmt(run["bf16"]["fp32_chars_per_s"]),
                        fmt(run["bf16"]["ratio"], 2) + "×",
                        measured=run["bf16"],
                    )
            divergence = sample.get("bf16_divergence")
            if divergence:
                add(
                    f"{where}sample bf16 vs fp32: mean (max) KL nats/char, same most likely char, on "
                    f"{divergence.get('model', 'random weights')} ({divergence['streams']} streams "
                    f"× {divergence['steps']} steps)",
                    f"{divergence['mean_kl_nats']:.1e} ({divergence['max_kl_nats']:.1e}), "
                    f"{divergence['same_argmax_share']:.2%}",
                    "",
                )

    add_runs(sections.get("train", []), sections.get("sample"))
    cuda = sections.get("cuda")
    if cuda:
        add_runs(cuda["train"], cuda["sample"], where=f"{cuda['device']}: ")
        for r in cuda["train"]:
            add(
                f"{cuda['device']}: train {r['name']} precision",
                r.get("charnn_precision_describe", r["charnn_precision"]),
                "the same",
            )
    encode = sections.get("encode")
    if encode:
        for size in encode["sizes"]:
            add(
                f"encode MB/s, {size['mb']:,.0f} MB file",
                fmt(size["charnn_mb_per_s"]),
                fmt(size["naive_mb_per_s"]),
                fmt(size["ratio"], 2) + "×",
                measured=encode,
            )
        add(
            "encode peak RSS MB, " + " / ".join(f"{s['mb']:,.0f}" for s in encode["sizes"]) + " MB file",
            " / ".join(f"{s['charnn_peak_rss_mb']:,.0f}" for s in encode["sizes"]),
            " / ".join(f"{s['naive_peak_rss_mb']:,.0f}" for s in encode["sizes"]),
            "-",
        )
        add(
            "encode RSS growth, MB per MB of corpus",
            f"{encode['charnn_rss_growth_per_mb']:.3f}",
            f"{encode['naive_rss_growth_per_mb']:.3f}",
            "-",
        )
    quality = sections.get("quality")
    if quality:
        nats = quality["best_val_nats_per_char"]
        add(
            f"quality val nats (bits)/char, {quality['budget_minutes']:g} min, {quality['steps']:,} steps",
            f"{nats:.3f} ({quality['best_val_bits_per_char']:.3f})" if nats is not None else "-",
            "",
            "-",
        )
        if quality.get("wall_over_budget") is not None:
            floor = quality.get("final_lr_over_floor")
            add(
                f"quality time budget: wall / budget, last lr / floor ({len(quality.get('plans', []))} plans)",
                f"{quality['wall_over_budget']:.3f}, " + (f"{floor:.3f}" if floor is not None else "-"),
                "1, 1",
                "-",
            )
    return rows


def render_table(report: dict) -> Table:
    """The rich table for people."""
    machine = report["machine"]
    others = machine.get("others_cpu_share")
    busy = f"; other processes kept {others:.0%} of the CPUs busy meanwhile" if others is not None else ""
    table = Table(
        title=(
            f"charnn bench: {machine['cpu']}, {machine['cores']} cores, {machine['threads']} threads, torch "
            f"{machine['torch']}{busy}"
        ),
        caption="median \\[min–max] of interleaved repeats; ratio = charnn / baseline, paired per repeat. "
        "Baselines: a bare nn.LSTM training loop, nn.LSTM called once per sampled character, "
        "a whole-file numpy encoder.",
    )
    for column in ("what", "charnn", "baseline", "ratio"):
        table.add_column(column, overflow="fold")
    for row in report["rows"]:
        table.add_row(*(escape(row[key]) for key in ("what", "charnn", "baseline", "ratio")))
    return table
