"""The training loss of a block of steps, summed on the device: the loop reads it once per --log-every
steps instead of waiting for the device after every step, and finds there the first step that was not finite.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from charnn.device import sum_dtype


@dataclass
class TallyReading:
    """What a block of training steps left in the tally, read on the host."""

    steps: int
    mean_loss: float
    grad_norm: float  # the last step's
    failed_step: int | None  # the first step (from 1) whose loss or gradient norm was not finite
    failed_loss: float
    failed_norm: float
    skipped: int = 0  # steps a loss scaler skipped because their gradients overflowed (fp16)

    @property
    def failed(self) -> bool:
        return self.failed_step is not None

    def failure_text(self) -> str:
        loss, norm = self.failed_loss, self.failed_norm
        if math.isfinite(loss):
            return (
                f"the gradient norm became {'NaN' if math.isnan(norm) else 'infinite'} at step {self.failed_step:,} "
                f"(loss {loss:.4g})"
            )
        return (
            f"the loss became {'NaN' if math.isnan(loss) else 'infinite'} at step {self.failed_step:,} (gradient norm "
            f"{norm})"
        )


class StepTally:
    """Running sums of the training loss kept on the device, so that a step never waits for it; `read`
    (one copy to the host) gives the block's mean and the first step that was not finite."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        zero = lambda: torch.zeros((), device=self.device)  # noqa: E731
        self.loss_sum, self.last_norm = zero(), zero()
        self.failed_step = torch.zeros((), dtype=torch.int64, device=self.device)  # 0: none yet
        self.failed_values = torch.zeros(2, device=self.device)
        self.skipped = torch.zeros((), dtype=torch.int64, device=self.device)
        self.steps = 0

    def add(self, loss: torch.Tensor, grad_norm: torch.Tensor, step: int, overflow_skips: bool = False) -> None:
        """Count one step (numbered from 1): its loss and gradient norm, 0-dim tensors on the device.
        overflow_skips: a loss scaler skips a step whose gradients overflowed, so a non-finite norm is counted as
        skipped, not as a failure (its weights are untouched; a non-finite loss still fails)."""
        grad_norm = grad_norm.float()
        self.loss_sum += loss
        self.last_norm = grad_norm
        finite_norm = torch.isfinite(grad_norm)
        if overflow_skips:
            self.skipped += (~finite_norm).long()
            finite_norm = torch.ones_like(finite_norm)
        first_failure = ~(torch.isfinite(loss) & finite_norm) & (self.failed_step == 0)
        self.failed_step = torch.where(first_failure, step, self.failed_step)
        self.failed_values = torch.where(first_failure, torch.stack([loss, grad_norm]), self.failed_values)
        self.steps += 1

    def read(self) -> TallyReading:
        """The block so far (one copy from the device), then a fresh block."""
        exact = sum_dtype(self.device)  # float64 holds any step number exactly
        values = torch.cat([torch.stack([self.loss_sum, self.last_norm]), self.failed_values]).to(exact)
        counts = torch.stack([self.failed_step, self.skipped]).to(exact)
        loss_sum, norm, failed_loss, failed_norm, failed_step, skipped = torch.cat([values, counts]).tolist()
        reading = TallyReading(
            self.steps,
            loss_sum / max(self.steps, 1),
            norm,
            int(failed_step) or None,
            failed_loss,
            failed_norm,
            int(skipped),
        )
        self.reset()
        return reading
