"""The time budget's decisions (charnn.budget), driven by a simulated clock: a step and an evaluation cost
what the simulation says, so the plan is checked exactly, never the wall clock of this noisy machine."""

import math

import pytest

from charnn.budget import CALIBRATION_SKIP, CALIBRATION_STEPS, TimeBudget
from charnn.config import PLAN_MARGIN, TrainConfig, evaluations_between, learning_rate, steps_within


def test_evaluations_are_counted_at_each_interval_and_at_the_end():
    assert evaluations_between(0, 1000, 200) == 5
    assert evaluations_between(0, 1001, 200) == 6  # the last step evaluates too
    assert evaluations_between(150, 450, 200) == 3  # 200, 400 and 450
    assert evaluations_between(450, 450, 200) == 0


def test_steps_within_fit_the_seconds_with_their_evaluations():
    # 0.1 s a step, 2 s an evaluation every 100 steps: 100 steps + 1 evaluation = 12 s
    assert steps_within(120.0, 0, 0.1, 2.0, 100) == 1000
    assert steps_within(119.9, 0, 0.1, 2.0, 100) == 999  # one step less and the last evaluation still fits
    assert steps_within(0.0, 40, 0.1, 2.0, 100) == 41  # always at least one more step


def simulate(
    budget_seconds: float,
    step_costs,
    eval_seconds: float,
    eval_every: int = 100,
    estimate: float | None = None,
    cap: int | None = None,
    start: int = 0,
):
    """Run a TimeBudget as the trainer does, on a clock that advances by step_costs(step) per step and
    eval_seconds per evaluation. Returns (budget, last step, clock at the end)."""
    clock = 1000.0
    budget = TimeBudget(start, clock, clock + budget_seconds, eval_every, cap=cap)
    target, step = cap, start
    while (target is None or step < target) and clock < budget.deadline:
        clock += step_costs(step)
        step += 1
        if budget.wants_reading(step):
            plan = budget.reading(step, clock, lambda: eval_seconds if estimate is None else estimate)
            target = plan.target if plan else target
        if step % eval_every == 0 or step == target:
            clock += eval_seconds
            plan = budget.evaluated(step, clock, eval_seconds)
            target = plan.target if plan else target
    return budget, step, clock


def test_a_steady_run_ends_within_a_few_percent_of_its_budget_with_the_rate_at_its_floor():
    budget, step, clock = simulate(120.0, lambda step: 0.05, eval_seconds=1.5)
    assert [plan.reason for plan in budget.plans] == ["plan", "settled", "refined"]
    assert step == budget.plan.target
    used = (clock - budget.began) / 120.0
    assert 1 - PLAN_MARGIN - 0.01 <= used <= 1.0
    config = TrainConfig.of(lr=2e-3, min_lr_ratio=0.1)
    assert learning_rate(config, step - 1, budget.plan.target) == pytest.approx(2e-4, rel=1e-3)


def test_a_wrong_evaluation_estimate_is_corrected_at_the_first_evaluation():
    # estimated at 0.1 s, an evaluation really takes 3 s: without the refinement the run would overrun by ~60 s
    budget, step, clock = simulate(120.0, lambda step: 0.05, eval_seconds=3.0, estimate=0.1)
    assert budget.plans[0].target > budget.plans[-1].target
    assert step == budget.plan.target and clock <= budget.deadline


def test_a_slowdown_is_re_planned_once():
    # a second job halves the speed after 40 s, then halves it again: one re-plan, then the deadline stops it
    speed = lambda step: 0.05 if step < 800 else (0.1 if step < 1200 else 0.2)  # noqa: E731
    budget, step, clock = simulate(120.0, speed, eval_seconds=1.0)
    assert [plan.reason for plan in budget.plans] == ["plan", "settled", "refined", "re-planned"]
    assert budget.plans[3].target < budget.plans[2].target
    assert clock == pytest.approx(budget.deadline, abs=0.3) and step < budget.plan.target  # stopped by the deadline


def test_slow_first_steps_are_timed_again_once_warm():
    # the first 30 steps take twice as long (kernels, caches); with no evaluation before the end, only the
    # second timing can correct the first plan, which would otherwise end the run a third early
    budget, step, clock = simulate(60.0, lambda step: 0.1 if step < 30 else 0.05, eval_seconds=0.5, eval_every=100_000)
    assert [plan.reason for plan in budget.plans] == ["plan", "settled"]
    assert budget.plans[1].target > 1.5 * budget.plans[0].target
    assert step == budget.plan.target and 0.97 <= (clock - budget.began) / 60.0 <= 1.0


def test_no_drift_no_re_plan_and_epochs_cap_the_plan():
    budget, step, _ = simulate(60.0, lambda step: 0.01, eval_seconds=0.2, cap=500)
    assert step == 500 and all(plan.target <= 500 for plan in budget.plans)
    assert "re-planned" not in [plan.reason for plan in budget.plans]


def test_a_resumed_process_calibrates_from_where_it_starts():
    budget, step, _ = simulate(30.0, lambda step: 0.02, eval_seconds=0.5, start=700)
    assert budget.plans[0].at_step == 700 + CALIBRATION_SKIP + CALIBRATION_STEPS
    assert step == budget.plan.target > 700


def test_the_plan_line_names_the_steps_and_the_speed():
    budget, _, _ = simulate(120.0, lambda step: 0.05, eval_seconds=1.5)
    line = budget.plans[0].describe(chars_per_step=8192, minutes=2)
    assert line.startswith(f"plan at step {CALIBRATION_SKIP + CALIBRATION_STEPS}: ")
    assert f"{budget.plans[0].target:,} steps in 2 min" in line and f"{math.floor(8192 / 0.05):,} chars/s" in line


# ----- a time budget's recipe --------------------------------------------------------------------
@pytest.fixture
def three_recipes(monkeypatch):
    """Recipes of 5, 10 and 30 minutes that differ in every setting they change."""
    from charnn import config

    table = tuple(
        config.Recipe(f"{m}min", m, dict(layers=layers, hidden=hidden, lr=lr))
        for m, layers, hidden, lr in ((5, 1, 96, 5e-3), (10, 2, 160, 4e-3), (30, 3, 224, 3e-3))
    )
    monkeypatch.setattr(config, "RECIPES", table)
    return table


def test_a_budget_takes_the_recipe_of_the_largest_budget_within_it(three_recipes):
    from charnn.config import merge_train_config

    for minutes, expected in ((5, 0), (7.5, 0), (10, 1), (29, 1), (30, 2), (600, 2), (1, 0)):
        config = merge_train_config({"max_minutes": minutes})
        recipe = three_recipes[expected]
        assert (config.model.layers, config.model.hidden, config.lr, config.recipe) == (
            recipe.changes["layers"],
            recipe.changes["hidden"],
            recipe.changes["lr"],
            recipe.name,
        )
        assert config.max_minutes == minutes and config.max_steps is None


def test_a_run_given_no_length_trains_the_default_budget_with_its_recipe(three_recipes):
    from charnn.config import DEFAULT_MINUTES, merge_train_config, recipe_for

    config = merge_train_config({"corpus": "stdlib"})
    assert config.max_minutes is None and config.minutes == DEFAULT_MINUTES  # as asked: no length
    assert config.recipe == recipe_for(DEFAULT_MINUTES).name
    assert config.model.hidden == recipe_for(DEFAULT_MINUTES).changes["hidden"]


def test_the_defaults_are_what_a_bare_run_trains():
    # one default per setting: the dataclass's, --help's and a bare run's are the same (the real recipes)
    from charnn.config import DEFAULT_MINUTES, TrainConfig, merge_train_config, recipe_for

    assert recipe_for(DEFAULT_MINUTES).changes == {}
    assert merge_train_config({}).flat() == {**TrainConfig().flat(), "recipe": recipe_for(DEFAULT_MINUTES).name}


def test_flags_given_win_and_a_shape_flag_turns_the_recipe_off(three_recipes):
    from charnn.config import RECIPE_SHAPE, TrainConfig, merge_train_config

    changed = merge_train_config({"max_minutes": 30, "lr": 1e-3})
    assert (changed.model.layers, changed.lr, changed.recipe) == (3, 1e-3, "30min, --lr 0.001")
    defaults = TrainConfig()
    for name in RECIPE_SHAPE:
        given = {"max_minutes": 30, name: defaults.flat()[name]}
        config = merge_train_config(given)
        assert config.recipe is None and config.flat() == {**defaults.flat(), "max_minutes": 30}


def test_a_length_in_steps_or_epochs_takes_no_recipe(three_recipes):
    from charnn.config import TrainConfig, merge_train_config

    for given in (
        {"max_steps": 300},
        {"epochs": 2.0},
        {"max_steps": 300, "max_minutes": 30},
        {"epochs": 1.0, "max_minutes": 30},
    ):
        config = merge_train_config(given)
        assert config.recipe is None and config.model.hidden == TrainConfig().model.hidden
        assert config.max_minutes == given.get("max_minutes")


def test_resuming_keeps_the_saved_settings_and_takes_no_new_recipe(three_recipes, tmp_path):
    from charnn.config import merge_train_config

    saved_run(tmp_path, hidden=48, layers=1, max_minutes=30.0)
    resumed = merge_train_config({"out": str(tmp_path), "max_minutes": 60.0}, resume=True)
    assert (resumed.model.hidden, resumed.model.layers, resumed.recipe, resumed.max_minutes) == (48, 1, None, 60.0)


def saved_run(directory, steps=None, **settings):
    """A run directory's config.json: its settings, and the steps it resolved ({"target": N, "from": ...})."""
    import json

    from charnn.config import TrainConfig

    record = {"train": TrainConfig.of(out=str(directory), **settings).to_json(), "resolved": {"steps": steps}}
    (directory / "config.json").write_text(json.dumps(record))


def test_resuming_a_planned_budget_keeps_its_settings_and_steps_given_replace_the_budget(three_recipes, tmp_path):
    from charnn.config import merge_train_config

    saved_run(tmp_path, {"target": 1400, "from": "max-minutes"}, max_minutes=10.0, recipe="10min")
    same = merge_train_config({"out": str(tmp_path)}, resume=True)
    assert (same.max_minutes, same.max_steps, same.recipe) == (10.0, None, "10min")  # the plan is the run's record
    longer = merge_train_config({"out": str(tmp_path), "max_steps": 5000}, resume=True)
    assert (longer.max_minutes, longer.max_steps) == (None, 5000)  # not cut at 10 minutes again
    capped = merge_train_config({"out": str(tmp_path), "max_steps": 5000, "max_minutes": 20.0}, resume=True)
    assert (capped.max_minutes, capped.max_steps) == (20.0, 5000)
    saved_run(tmp_path, {"target": 5200, "from": "max-steps"}, max_minutes=15.0, max_steps=5200)
    assert merge_train_config({"out": str(tmp_path), "max_steps": 6000}, resume=True).max_minutes == 15.0


def test_a_run_saved_before_its_plan_was_kept_apart_resumes_the_same(tmp_path):
    # config.json's settings used to hold the planned steps and the resolved precision
    import json

    from charnn.config import merge_train_config, saved_plan

    legacy = {
        "corpus": "stdlib",
        "out": str(tmp_path),
        "hidden": 48,
        "max_minutes": 10.0,
        "max_steps": 1400,
        "step_plan": "max-minutes",
        "precision": "bf16",
        "recipe": "10 min",
    }
    (tmp_path / "config.json").write_text(json.dumps({"train": legacy, "model": {}, "vocab_size": 90}))
    resumed = merge_train_config({"out": str(tmp_path)}, resume=True)
    assert (resumed.model.hidden, resumed.max_steps, resumed.max_minutes, resumed.recipe) == (48, None, 10.0, "10min")
    plan = saved_plan(tmp_path)
    assert plan["steps"] == {"target": 1400, "from": "max-minutes"} and plan["precision"]["name"] == "bf16"


def test_none_from_python_is_not_a_length_and_charnn_s_own_fields_are_refused(three_recipes):
    from charnn.config import DEFAULT_MINUTES, merge_train_config
    from charnn.errors import UsageError

    config = merge_train_config({"max_steps": None, "epochs": None, "max_minutes": None})
    assert (config.minutes, config.max_steps, config.recipe) == (DEFAULT_MINUTES, None, "10min")
    for name, value in (("recipe", "31min"), ("step_plan", "epochs")):
        with pytest.raises(UsageError, match=name):
            merge_train_config({name: value})


def test_a_recipe_is_a_name_the_user_can_choose(three_recipes, tmp_path):
    from charnn.config import TrainConfig, merge_train_config
    from charnn.errors import UsageError

    chosen = merge_train_config({"recipe": "30min", "max_steps": 500, "lr": 1e-3})  # whatever the length
    assert (chosen.model.layers, chosen.lr, chosen.recipe, chosen.max_steps) == (3, 1e-3, "30min, --lr 0.001", 500)
    none = merge_train_config({"recipe": "none", "max_minutes": 30})
    assert none.recipe is None and none.flat() == {**TrainConfig().flat(), "max_minutes": 30}
    assert merge_train_config({"recipe": "auto", "max_minutes": 30}).recipe == "30min"
    with pytest.raises(UsageError, match="--recipe must be auto, none or one of 5min, 10min, 30min, not 'fast'"):
        merge_train_config({"recipe": "fast"})
    saved_run(tmp_path, None)
    with pytest.raises(UsageError, match="--resume keeps the run's own"):
        merge_train_config({"out": str(tmp_path), "recipe": "30min"}, resume=True)


def test_the_run_names_its_recipe_and_the_settings_given_that_change_it(three_recipes):
    from charnn.config import merge_train_config

    assert (
        merge_train_config({"max_minutes": 10, "lr": 1e-3, "seq_len": 64}).recipe == "10min, --seq-len 64, --lr 0.001"
    )
    # the recipe's own value changes nothing
    assert merge_train_config({"max_minutes": 10, "lr": 4e-3}).recipe == "10min"


def test_the_quality_bench_trains_the_recipe_of_its_budget_and_names_what_set_changes(three_recipes):
    from charnn.bench.quality import apply_overrides
    from charnn.bench.settings import recommended_cpu_config

    for minutes, recipe in ((5, three_recipes[0]), (12, three_recipes[1]), (45, three_recipes[2])):
        config = recommended_cpu_config("corpus.txt", "out", "cache", minutes)
        assert (config.model.hidden, config.lr, config.recipe) == (
            recipe.changes["hidden"],
            recipe.changes["lr"],
            recipe.name,
        )
        assert config.eval_chars == 0 and config.split == "0.9,0.1"  # the whole val split of a 90/10 cut
    changed = apply_overrides(recommended_cpu_config("corpus.txt", "out", "cache", 30), {"hidden": "320", "lr": "3e-3"})
    assert (changed.model.hidden, changed.recipe) == (320, "30min, --hidden 320")


def test_a_budget_that_is_not_a_number_is_refused_by_its_rule_not_by_the_recipe():
    from charnn.config import merge_train_config
    from charnn.errors import UsageError

    for bad in (-3.0, "ten"):
        config = merge_train_config({"max_minutes": bad})  # no recipe arithmetic on a bad budget
        with pytest.raises(UsageError, match="max.minutes"):
            config.validate()
