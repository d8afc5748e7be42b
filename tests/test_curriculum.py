"""Phase schedules: progress phases, metric-driven transitions on scripted metric streams,
persistence, and exact resume through `train()` with a tiny model."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from phasegrpo.config import Config, preset
from phasegrpo.curriculum import (
    MetricSchedule,
    ProgressSchedule,
    check_resume_max_steps,
    load_schedule,
    make_schedule,
    save_schedule,
)

EXACT = "format/exact_rate"
CORRECT = "rewards/check_answer/raw"


def metric_schedule(**overrides) -> MetricSchedule:
    settings = dict(metric_names=(EXACT, CORRECT), thresholds=(0.8, 1.5), window=3, min_fractions=(0.1, 0.3),
                    max_fractions=(0.5, 0.9), max_steps=100)
    settings.update(overrides)
    return MetricSchedule(**settings)


def run_stream(schedule: MetricSchedule, stream, start: int = 0) -> list[int]:
    """Feed one metrics dict per step from `start`; return the phase each step ran in."""
    phases = []
    for step, metrics in enumerate(stream, start=start):
        phases.append(schedule.phase(step))
        schedule.observe(step, metrics)
    return phases


# --- progress ----------------------------------------------------------------------------
def test_progress_schedule_round_trips(tmp_path):
    schedule = ProgressSchedule((0.2, 0.6), max_steps=50)
    save_schedule(schedule, tmp_path)
    assert load_schedule(tmp_path) == schedule
    assert ProgressSchedule.load(tmp_path) == schedule


def test_make_schedule_from_config():
    assert make_schedule(Config(max_steps=40)) == ProgressSchedule((0.25, 0.75), max_steps=40)
    schedule = make_schedule(Config(max_steps=40, phase_schedule="metric", transition_window=7))
    assert isinstance(schedule, MetricSchedule) and schedule.window == 7 and schedule.max_steps == 40


# --- metric-driven transitions -------------------------------------------------------------
def test_transition_after_a_full_window_above_threshold():
    stream = [{EXACT: 0.5}] * 20 + [{EXACT: 0.9}] * 3 + [{EXACT: 0.9, CORRECT: 0.0}] * 5
    schedule = metric_schedule()
    phases = run_stream(schedule, stream)
    assert phases[:23] == [0] * 23  # steps 20, 21, 22 fill the window
    assert phases[23:] == [1] * 5
    assert schedule.transitions == [{"phase": 1, "step": 23, "reason": "metric", "metric": EXACT, "value": 0.9,
                                     "threshold": 0.8, "window": 3}]


def test_a_dip_restarts_the_window_and_missing_metrics_do_not():
    stream = [{EXACT: 0.9}, {EXACT: 0.9}, {EXACT: 0.1}] + [{EXACT: 0.9}] * 10
    stream[12:12] = [{}]  # a step without the metric neither counts nor breaks the streak
    schedule = metric_schedule(min_fractions=(0.0, 0.3))
    run_stream(schedule, stream)
    assert schedule.phase_starts[0] == 6  # window of 3 restarted at step 3: steps 3, 4, 5


def test_never_before_the_minimum_fraction():
    schedule = metric_schedule(min_fractions=(0.2, 0.3))
    phases = run_stream(schedule, [{EXACT: 1.0}] * 25)
    assert phases.index(1) == 20


def test_always_by_the_maximum_fraction():
    schedule = metric_schedule()
    phases = run_stream(schedule, [{EXACT: 0.0, CORRECT: 0.0}] * 100)
    assert phases.index(1) == 50 and phases.index(2) == 90
    assert [t["reason"] for t in schedule.transitions] == ["max_fraction", "max_fraction"]
    assert schedule.phase_starts == [50, 90]


def test_second_transition_uses_the_second_metric():
    stream = [{EXACT: 0.9, CORRECT: 0.0}] * 20 + [{EXACT: 0.0, CORRECT: 2.0}] * 30
    schedule = metric_schedule(min_fractions=(0.1, 0.2))
    phases = run_stream(schedule, stream)
    assert phases.index(1) == 10  # window done at step 2, but min fraction 0.1
    assert phases.index(2) == 23  # CORRECT holds from step 20: steps 20, 21, 22
    assert "rewards/check_answer/raw >= 1.5 for 3 steps" in schedule.transition_reason(2)


def test_a_step_observed_twice_counts_once():
    schedule = metric_schedule(min_fractions=(0.0, 0.3))
    for _ in range(5):
        schedule.observe(0, {EXACT: 1.0})
    assert schedule.streak == 1 and schedule.phase_starts == []


@pytest.mark.parametrize("cut", [1, 12, 21, 22, 30, 52, 70])
def test_save_and_load_mid_stream_resumes_exactly(tmp_path, cut):
    stream = [{EXACT: 0.5 + 0.4 * (step % 7 != 0), CORRECT: 2.0 * (step % 5 != 0)} for step in range(100)]
    uninterrupted = metric_schedule()
    expected = run_stream(uninterrupted, stream)
    first = metric_schedule()
    phases = run_stream(first, stream[:cut])
    save_schedule(first, tmp_path)
    resumed = load_schedule(tmp_path)
    assert resumed == first
    phases += run_stream(resumed, stream[cut:], start=cut)
    assert phases == expected
    assert resumed == uninterrupted


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(window=0), "window must be >= 1"),
        (dict(min_fractions=(0.6, 0.3)), "transition 0: need 0 <= min_fraction <= max_fraction"),
        (dict(thresholds=(0.5,)), "one entry per transition"),
        (dict(max_fractions=(0.9, 0.5), min_fractions=(0.1, 0.1)), "must not decrease"),
    ],
)
def test_invalid_metric_schedules_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        metric_schedule(**overrides)


def test_config_validation_names_the_schedule_problem():
    with pytest.raises(ValueError, match="window must be >= 1"):
        Config(phase_schedule="metric", transition_window=0)
    with pytest.raises(ValueError, match="phase_schedule must be 'progress' or 'metric'"):
        Config(phase_schedule="sometimes")


def test_unknown_saved_schedule(tmp_path):
    (tmp_path / "phasegrpo_state.json").write_text(json.dumps({"schedule": "lunar"}))
    with pytest.raises(ValueError, match="unknown schedule 'lunar'"):
        load_schedule(tmp_path)


def test_resume_max_steps_message():
    check_resume_max_steps(300, 300, allow_change=False)
    check_resume_max_steps(300, 500, allow_change=True)
    with pytest.raises(ValueError, match=r"max_steps changed from 300 to 500 .* --max-steps 300, or --allow-max-steps-change"):
        check_resume_max_steps(300, 500, allow_change=False)


# --- exact resume through train() -------------------------------------------------------
def tiny_run_config(output_dir, **overrides) -> Config:
    # Threshold 0 on the exact-format rate holds every step, so transitions come from the window
    # and the minimum fractions: phase 1 from step 3, phase 2 from step 5 (0-based) of 6.
    settings = dict(
        model="tiny", output_dir=str(output_dir), max_steps=6, save_steps=1, eval_before_after=False,
        max_completion_length=16, rows_per_domain=8, prompts_per_step=2, num_generations=2,
        phase_schedule="metric", transition_metrics=[EXACT, EXACT], transition_thresholds=[0.0, 0.0],
        transition_window=2, transition_min_fractions=[0.5, 0.8], transition_max_fractions=[1.0, 1.0],
    )
    settings.update(overrides)
    return preset("demo", **settings)


def run_tiny(config, **kwargs):
    from tiny import tiny_model, tiny_tokenizer

    from phasegrpo.training import train

    torch.set_num_threads(1)
    tokenizer = tiny_tokenizer()
    return train(config, model=tiny_model(tokenizer), tokenizer=tokenizer, show_progress=False, **kwargs)


def logged_phases(run_dir) -> dict[int, int]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {record["step"]: record["phase"] for record in map(json.loads, lines)}


def test_train_resumes_phase_state_exactly_and_refuses_a_changed_max_steps(tmp_path):
    run_dir = tmp_path / "run"
    config = tiny_run_config(run_dir)
    assert run_tiny(config).global_step == 6
    # logged step s is the s-th optimizer step; the window (2) closes at 0-based step 4 -> phase 2 at step 6
    assert logged_phases(run_dir) == {1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 2}
    state_after_6 = json.loads((run_dir / "checkpoints/checkpoint-6/phasegrpo_state.json").read_text())

    # Back to checkpoint-4: mid-window (one step of the second streak seen). A resume that lost the
    # streak would start phase 2 one step late.
    shutil.rmtree(run_dir / "checkpoints/checkpoint-5")
    shutil.rmtree(run_dir / "checkpoints/checkpoint-6")
    assert load_schedule(run_dir / "checkpoints/checkpoint-4").streak == 1

    with pytest.raises(ValueError, match="max_steps changed from 6 to 8 since this run started"):
        run_tiny(tiny_run_config(run_dir, max_steps=8), resume=True)

    assert run_tiny(config, resume=True).global_step == 6
    assert logged_phases(run_dir) == {1: 0, 2: 0, 3: 0, 4: 1, 5: 1, 6: 2}
    assert json.loads((run_dir / "checkpoints/checkpoint-6/phasegrpo_state.json").read_text()) == state_after_6

    result = run_tiny(tiny_run_config(run_dir, max_steps=8), resume=True, allow_max_steps_change=True)
    assert result.global_step == 8
    assert load_schedule(run_dir / "checkpoints/checkpoint-8").max_steps == 8


def test_train_resume_with_progress_schedule_keeps_the_pinned_max_steps(tmp_path):
    """transformers overwrites state.max_steps on resume; the checkpointed schedule must not."""
    run_dir = tmp_path / "run"
    config = tiny_run_config(run_dir, phase_schedule="progress", max_steps=2)
    run_tiny(config)
    assert load_schedule(run_dir / "checkpoints/checkpoint-2") == ProgressSchedule((0.25, 0.75), max_steps=2)
    with pytest.raises(ValueError, match="max_steps changed from 2 to 4"):
        run_tiny(tiny_run_config(run_dir, phase_schedule="progress", max_steps=4), resume=True)
    assert run_tiny(tiny_run_config(run_dir, phase_schedule="progress", max_steps=4), resume=True,
                    allow_max_steps_change=True).global_step == 4
    assert logged_phases(run_dir) == {1: 0, 2: 1, 3: 1, 4: 2}
