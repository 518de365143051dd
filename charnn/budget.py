"""A time budget that means it: with --max-minutes and no --max-steps, how many steps the run makes.

The trainer times its first steps, estimates what an evaluation (with its checkpoints and sample) costs,
and sets the step count so that the learning-rate schedule ends when the budget does. It refines the
plan SETTLE_STEPS steps later (the first steps of a CPU run are slower than the rest) and at the first
evaluation, when a real one has been timed, and re-plans once more if the speed
drifts by more than DRIFT (another job on a shared machine). This module holds the decisions and no
torch: the trainer hands it the clock readings, so a test can hand it any clock.
"""

from __future__ import annotations

from dataclasses import dataclass

from charnn.config import PLAN_MARGIN, evaluations_between, steps_within

CALIBRATION_SKIP = 3  # the first steps build kernels and caches: slower than the rest, so not timed
CALIBRATION_STEPS = 10  # steps timed after those, for the first plan
SETTLE_FROM, SETTLE_STEPS = 30, 50  # steps after the first plan: the speed is timed again between these two, once warm
DRIFT = 0.2  # re-plan when the plan's remaining time and the budget's differ by more than this fraction


@dataclass
class Plan:
    """One decision: stop at `target`, from these measured costs."""

    target: int
    step_seconds: float
    eval_seconds: float
    reason: str  # "plan", "settled", "refined" or "re-planned"
    at_step: int = 0

    def describe(self, chars_per_step: int, minutes: float) -> str:
        """The one line a user reads."""
        speed = chars_per_step / self.step_seconds
        said = {
            "plan": f"plan at step {self.at_step:,}",
            "settled": f"plan refined at step {self.at_step:,} (the speed once warm)",
            "refined": f"plan refined at step {self.at_step:,} (the first evaluation)",
            "re-planned": f"re-planned at step {self.at_step:,} (the speed drifted)",
        }[self.reason]
        return (
            f"{said}: {self.target:,} steps in {minutes:g} min "
            f"({speed:,.0f} chars/s, {self.step_seconds * 1000:,.1f} ms per step, {self.eval_seconds:.1f} s per "
            "evaluation)"
        )


class TimeBudget:
    """Decides the step count of a run that has a time budget and no --max-steps.

    `start` is the step the run (or this resumed process) begins at, `began` and `deadline` clock readings
    in seconds, `cap` a step count it must not pass (--epochs), `eval_every` the evaluation interval.
    """

    def __init__(self, start: int, began: float, deadline: float, eval_every: int, cap: int | None = None):
        self.start, self.began, self.deadline = start, began, deadline
        self.eval_every, self.cap = eval_every, cap
        self.timing_from: tuple[int, float] | None = None
        self.plan: Plan | None = None
        self.plans: list[Plan] = []
        self.planned_at: tuple[int, float] = (start, began)
        self.eval_times: list[float] = []
        self.eval_seconds_since_plan = 0.0
        self.replanned = False
        self.settled = False
        self.settle_from: tuple[int, float, float] | None = None

    @property
    def aim(self) -> float:
        """The clock reading the plan aims to end at: a little before the deadline."""
        return self.deadline - PLAN_MARGIN * (self.deadline - self.began)

    def wants_reading(self, step: int) -> bool:
        """Whether the trainer must read the clock (after waiting for the device) at this step."""
        first = self.start + CALIBRATION_SKIP + CALIBRATION_STEPS
        if self.plan is None:
            return step in (self.start + CALIBRATION_SKIP, first)
        return not self.settled and step in (first + SETTLE_FROM, first + SETTLE_STEPS)

    def reading(self, step: int, now: float, estimate_eval_seconds) -> Plan | None:
        """At a calibration step: start the timing, or end it and return the first plan, or (SETTLE_STEPS
        later) the plan timed again. estimate_eval_seconds() is called once, for the first plan."""
        if not self.wants_reading(step):
            return None
        if self.plan is not None:
            if self.settle_from is None:
                self.settle_from = (step, now, sum(self.eval_times))
                return None
            self.settled = True
            from_step, from_time, evals_before = self.settle_from
            if step >= self.plan.target:
                return None
            step_seconds = max(now - from_time - (sum(self.eval_times) - evals_before), 1e-9) / (step - from_step)
            eval_seconds = sum(self.eval_times) / len(self.eval_times) if self.eval_times else self.plan.eval_seconds
            return self.decide(step, now, step_seconds, eval_seconds, "settled")
        if self.timing_from is None:
            self.timing_from = (step, now)
            return None
        first_step, first_time = self.timing_from
        step_seconds = (now - first_time) / max(step - first_step, 1)
        return self.decide(step, now, step_seconds, float(estimate_eval_seconds()), "plan")

    def evaluated(self, step: int, now: float, seconds: float) -> Plan | None:
        """After an evaluation that took `seconds`: the refined plan after the first, a new one after a drift."""
        if self.plan is None:  # an evaluation before the plan (the budget ran out while timing): nothing to do
            return None
        self.eval_times.append(seconds)
        self.eval_seconds_since_plan += seconds
        plan_step, plan_time = self.planned_at
        if step <= plan_step or step >= self.plan.target:  # the last evaluation ends the run: no plan after it
            return None
        step_seconds = max(now - plan_time - self.eval_seconds_since_plan, 1e-9) / (step - plan_step)
        eval_seconds = sum(self.eval_times) / len(self.eval_times)
        if len(self.eval_times) == 1:
            return self.decide(step, now, step_seconds, eval_seconds, "refined")
        left = self.aim - now
        if self.replanned or left < 0.05 * (self.deadline - self.began) or step >= self.plan.target:
            return None
        remaining = (self.plan.target - step) * step_seconds + evaluations_between(
            step, self.plan.target, self.eval_every
        ) * eval_seconds
        if abs(remaining - left) <= DRIFT * left:
            return None
        if self.cap is not None and self.plan.target >= self.cap and remaining < left:
            return None  # --epochs ends the run before the budget does, as planned
        self.replanned = True
        return self.decide(step, now, step_seconds, eval_seconds, "re-planned")

    def decide(self, step: int, now: float, step_seconds: float, eval_seconds: float, reason: str) -> Plan:
        """The step to stop at from here, given what a step and an evaluation cost."""
        target = steps_within(self.aim - now, step, step_seconds, eval_seconds, self.eval_every)
        if self.cap is not None:
            target = min(target, max(self.cap, step + 1))
        self.plan = Plan(target, step_seconds, eval_seconds, reason, step)
        self.plans.append(self.plan)
        self.planned_at = (step, now)
        self.eval_seconds_since_plan = 0.0
        return self.plan
