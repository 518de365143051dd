"""What a run saves and restores: at each evaluation, validation, the metrics and a sample, then best.pt (when
better) and last.pt, written atomically on rank 0 with every rank's generators and carried state; on --resume,
everything a run needs to continue exactly where last.pt left it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from charnn.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from charnn.config import MODEL_SETTINGS, flag
from charnn.device import memory_guard, restore_rng, rng_snapshot
from charnn.errors import CharnnError
from charnn.evaluate import LN2, evaluate, preview_sample
from charnn.run_record import checkpoint_meta

if TYPE_CHECKING:
    from charnn.trainer import Trainer


def resume_from_last(trainer: Trainer) -> None:
    """Restore weights, optimizer, step, carried state, RNG and metrics from last.pt."""
    checkpoint = load_checkpoint(checkpoint_path(trainer.run_dir, "last"))
    if checkpoint.vocab != trainer.vocab:
        raise CharnnError(
            f"--resume: the corpus '{trainer.config.corpus}' gives a different vocabulary from the one "
            f"'{trainer.run_dir}' was trained on"
        )
    if checkpoint.model_config != trainer.model_config:
        saved, now = checkpoint.model_config, trainer.model_config
        diff = [
            f"--{flag(n)} {getattr(saved, n)} (saved) vs {getattr(now, n)}"
            for n in MODEL_SETTINGS
            if getattr(saved, n) != getattr(now, n)
        ]
        raise CharnnError(f"--resume: flags contradict the saved model: {'; '.join(diff)}")
    try:  # shapes of the weights were checked on loading; the rest of a damaged file must not crash later
        restore(trainer, checkpoint.model_state, checkpoint.extra, checkpoint.meta)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise CharnnError(f"--resume: '{checkpoint.path}' is damaged and cannot be resumed ({first})") from None
    trainer.saved_step = trainer.step
    trainer.best_val_bpc = trainer.directory.best_score()
    trainer.dist.on_main(lambda: trainer.directory.rewrite_metrics(trainer.history))


def restore(trainer: Trainer, weights: dict, extra: dict, meta: dict) -> None:
    """resume_from_last's work: weights, optimizer and scaler, step, history, generators, carried state."""
    trainer.model.load_state_dict(weights)
    trainer.optimizer.load_state_dict(extra["optimizer"])
    if trainer.scaler is not None and "grad_scaler" in extra:
        trainer.scaler.load_state_dict(extra["grad_scaler"])
    for param in trainer.model.parameters():
        for moment in trainer.optimizer.state.get(param, {}).values():
            if isinstance(moment, torch.Tensor) and moment.dim() and moment.shape != param.shape:
                raise ValueError("optimizer state does not fit the weights")
    trainer.step = int(meta["step"])
    if trainer.step < 0:
        raise ValueError(f"step {trainer.step}")
    trainer.train_seconds = float(meta.get("train_seconds", 0.0))
    trainer.history = [dict(record) for record in meta.get("history", [])]
    rngs = extra.get("rng_per_rank", [])
    if trainer.dist.rank < len(rngs):
        saved = rngs[trainer.dist.rank]  # {"cpu": ..., "cuda": ...}; runs before the GPU work saved the CPU's alone
        restore_rng(saved if isinstance(saved, dict) else {"cpu": saved}, trainer.device)
    states = extra.get("state_per_rank", [])
    saved_world = int(meta.get("data_position", {}).get("world", len(states) or 1))
    if saved_world != trainer.dist.world:  # rank r's streams are not the streams rank r carried then
        if trainer.dist.is_main:
            trainer.console.print(
                f"[yellow]note:[/] '{trainer.run_dir}' was trained by {saved_world} process(es), this run has "
                f"{trainer.dist.world}: the streams are cut differently, so they start from a zero state"
            )
    elif trainer.dist.rank < len(states) and states[trainer.dist.rank]:
        state = tuple(s.to(trainer.device) for s in states[trainer.dist.rank])
        expected = (trainer.model_config.layers, trainer.config.batch_size, trainer.model_config.hidden)
        if len(state) == len(trainer.model.init_state(1)) and all(tuple(s.shape) == expected for s in state):
            trainer.state = state
        elif trainer.dist.is_main:  # e.g. --batch-size changed: the streams are cut differently now
            trainer.console.print(
                "[yellow]note:[/] the saved carried state does not fit this --batch-size; the streams start "
                "from a zero state"
            )


def evaluate_and_save(trainer: Trainer, writer: Any, bar: tqdm) -> float | None:
    """Validate, write metrics and samples, save best (if better) then last; returns val bpc (None but on rank 0).
    Every rank joins; a failure on rank 0 (NaN weights, a full disk) stops every rank with its sentence."""
    # every rank must join the gather; only rank 0 evaluates and writes
    rng = rng_snapshot(trainer.device)
    # Put the generators back as saved: on CUDA that also makes cuDNN rebuild its dropout state from them, as a
    # resumed run does after restoring them, so a run and its resume draw the same dropout masks from here on.
    restore_rng(rng, trainer.device)
    ranks = trainer.dist.gather((rng, [s.detach().cpu() for s in trainer.state] if trainer.state is not None else []))
    rngs, states = [r for r, _ in ranks], [s for _, s in ranks]
    val_bpc = trainer.dist.on_main(lambda: save_evaluated(trainer, writer, bar, rngs, states))
    trainer.saved_step = trainer.step  # on every rank: each names it if the run fails later
    return val_bpc


def save_evaluated(
    trainer: Trainer, writer: Any, bar: tqdm, rngs: list[dict], states: list[list[torch.Tensor]]
) -> float | None:
    """evaluate_and_save's work on rank 0."""
    cfg = trainer.config
    # the validation streams are --batch-size wide: evaluation's memory grows with it, not with --eval-chars
    with memory_guard(trainer.device, "validating", f"--batch-size (now {cfg.batch_size})"):
        val = (
            evaluate(trainer.model, trainer.val_batches, trainer.device, cfg.eval_chars)
            if trainer.val_batches
            else None
        )
    val_bpc = val["bits_per_char"] if val else (trainer.last_train_loss or float("nan")) / LN2
    broken = [name for name, param in trainer.model.named_parameters() if not torch.isfinite(param).all()]
    if broken:  # never save weights that cannot be used; last.pt stays the last good state
        raise trainer.numeric_failure(f"the weights became NaN or infinite by step {trainer.step:,} ({broken[0]})")
    if val and not math.isfinite(val_bpc):
        raise trainer.numeric_failure(f"the validation loss became {val_bpc} at step {trainer.step:,}")
    sample = preview_sample(trainer.model, trainer.vocab, cfg.sample_chars, seed=cfg.seed + trainer.step)
    record = {
        "step": trainer.step,
        "time": round(trainer.train_seconds, 2),
        "train_loss_nats": trainer.last_train_loss,
        "val_bits_per_char": val["bits_per_char"] if val else None,
        "val_nats_per_char": val["nats_per_char"] if val else None,
        "lr": trainer.learning_rate(max(trainer.step - 1, 0)),
    }
    trainer.history.append(record)
    best = trainer.best_val_bpc
    improved = best is None or not math.isfinite(best) or (math.isfinite(val_bpc) and val_bpc < best)
    if improved:
        trainer.best_val_bpc = val_bpc
    meta = checkpoint_meta(trainer)
    extra = {"optimizer": trainer.optimizer.state_dict(), "rng_per_rank": rngs, "state_per_rank": states}
    if trainer.scaler is not None:
        extra["grad_scaler"] = trainer.scaler.state_dict()
    # best before last: a crash between the two leaves a best.pt newer than last.pt, which resume
    # accounts for (RunDirectory.best_score), rather than losing the best model
    if improved:
        save_checkpoint(checkpoint_path(trainer.run_dir, "best"), meta, trainer.model.state_dict(), extra)
    save_checkpoint(checkpoint_path(trainer.run_dir, "last"), meta, trainer.model.state_dict(), extra)
    trainer.directory.append_evaluation(record, sample, val_bpc)
    if writer:
        if val:
            writer.add_scalar("val/bits_per_char", val["bits_per_char"], trainer.step)
            writer.add_scalar("val/nats_per_char", val["nats_per_char"], trainer.step)
        writer.add_text("sample", "```\n" + sample + "\n```", trainer.step)
        writer.flush()
    bar.write(f"step {trainer.step:,}: val {val_bpc:.4f} bits/char{' (best)' if improved else ''}")
    return val_bpc
