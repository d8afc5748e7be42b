"""Running a study: every (arm, seed) run trained and evaluated on the same held-out rows, and
a killed study picked up where it stopped.

A run's state is read from its folder, so nothing else needs saving:
- finished: `adapter/` and an `eval_after.json` made with this study's evaluation settings;
- trained, not evaluated: `adapter/` only, so it is evaluated;
- half trained: a complete checkpoint, so training resumes from it (`train(resume=True)`);
- anything else: the run starts over cleanly (`train(overwrite=True)`).
A run folder whose config.json differs from the planned one is refused, not silently redone.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from phasegrpo import run_folder
from phasegrpo.config import Config, from_dict, override
from phasegrpo.studies.arms import arm_config, check_arms, config_differences

RUNS_DIR = "runs"
SHARED_EVAL_BEFORE_FILE = "eval_before.json"
"""The base model's evaluation, shared by every run: the same model on the same rows."""
ASSUMED_STEP_SECONDS = 28.0
"""Seconds per demo training step on 2 CPU cores, for the estimate printed before a study
(measured 23–46 s, docs/study.md)."""
ASSUMED_EVAL_ROW_SECONDS = 1.3
"""Seconds per greedy held-out completion of the embedded model on 2 CPU cores (batch 8, up to 96
tokens, worked example in the prompt; measured 0.9–1.6 s); the study measures its own after the
shared evaluation."""


@dataclass(frozen=True)
class PlannedRun:
    """One run of the study: its arm, seed, folder and resolved Config."""

    arm: str
    seed: int
    run_dir: Path
    config: Config

    @property
    def name(self) -> str:
        return self.run_dir.name


@dataclass
class StudyPlan:
    """Everything a study will do, decided before anything runs."""

    study_dir: Path
    base: Config
    arms: list[str]
    seeds: list[int]
    runs: list[PlannedRun]
    eval_rows_per_domain: int
    eval_seed: int
    eval_batch_size: int
    differences: dict[str, dict[str, list]] = field(default_factory=dict)  # arm → field → [curriculum, arm]


def seed_list(seeds, base_seed: int) -> list[int]:
    """`3` → three seeds from the base config's seed on; a list is taken as given."""
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"seeds must be >= 1 (runs per arm), got {seeds}.")
        return [base_seed + index for index in range(seeds)]
    seeds = [int(seed) for seed in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must list at least one seed, each once; got {seeds}.")
    return seeds


def make_plan(base: Config, *, arms, seeds, study_dir, eval_rows_per_domain: int, eval_seed: int, eval_batch_size: int) -> StudyPlan:
    """The study's runs: every arm x seed, each in `<study_dir>/runs/<arm>-seed<seed>`."""
    if eval_rows_per_domain < 1:
        raise ValueError(f"eval_rows_per_domain must be >= 1, got {eval_rows_per_domain}.")
    study_dir = Path(study_dir)
    arms, seeds = check_arms(arms), seed_list(seeds, base.seed)
    # The study evaluates by itself (once before, shared); the runs only train.
    base = override(base, eval_before_after=False, push_to_hub="")
    runs = [
        PlannedRun(arm, seed, study_dir / RUNS_DIR / f"{arm}-seed{seed}",
                   arm_config(base, arm, seed, str(study_dir / RUNS_DIR / f"{arm}-seed{seed}")))
        for arm in arms for seed in seeds
    ]
    reference = arm_config(base, "curriculum", 0, "")
    differences = {
        arm: {name: list(values) for name, values in config_differences(reference, arm_config(base, arm, 0, "")).items()}
        for arm in arms
    }
    return StudyPlan(study_dir, base, arms, seeds, runs, eval_rows_per_domain, eval_seed, eval_batch_size, differences)


def estimate_seconds(plan: StudyPlan, runs_left: int | None = None, *, step_seconds: float = ASSUMED_STEP_SECONDS,
                     eval_row_seconds: float = ASSUMED_EVAL_ROW_SECONDS, include_before: bool = True) -> float:
    """A rough wall time of the study (or of its `runs_left`): training steps plus evaluations,
    with the shared "before" evaluation unless `include_before` is False."""
    runs_left = len(plan.runs) if runs_left is None else runs_left
    domains = sum(1 for weight in plan.base.domain_weights.values() if float(weight) > 0)
    eval_seconds = domains * plan.eval_rows_per_domain * eval_row_seconds
    return runs_left * (plan.base.max_steps * step_seconds + eval_seconds) + (eval_seconds if include_before else 0.0)


# --- run state --------------------------------------------------------------------------------


def run_state(run: PlannedRun, fingerprint: dict) -> str:
    """'finished', 'evaluate', 'resume' or 'start' (see the module docstring)."""
    has_adapter = (run.run_dir / run_folder.ADAPTER_DIR / "adapter_config.json").exists()
    if has_adapter and _eval_fingerprint(run.run_dir / run_folder.EVAL_AFTER_FILE) == fingerprint:
        return "finished"
    if has_adapter:
        return "evaluate"
    if run_folder.latest_complete_checkpoint(run.run_dir) is not None:
        return "resume"
    return "start"


def check_run_config(run: PlannedRun) -> None:
    """Refuse a run folder made with other settings: its results would not belong to this study."""
    path = run.run_dir / run_folder.CONFIG_FILE
    if not path.exists():
        return
    saved = from_dict(json.loads(path.read_text()))
    changed = config_differences(saved, run.config)
    if changed:
        shown = "; ".join(f"{name}: {old!r} → {new!r}" for name, (old, new) in sorted(changed.items()))
        raise ValueError(
            f"{run.run_dir} was made with other settings ({shown}). Pass the same flags to continue this study, "
            f"--overwrite to start it over, or another --output-dir for a new study."
        )


def _eval_fingerprint(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text()).get("study_fingerprint")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def eval_fingerprint(plan: StudyPlan, rows) -> dict:
    """What makes two evaluations comparable: the rows, the decoding and the scoring router."""
    base = plan.base
    return {
        "model": base.model,
        "row_ids": [f"{domain}/{row_id}" for domain, row_id in zip(rows["domain"], rows["id"], strict=True)],
        "worked_example": base.worked_example,
        "max_new_tokens": base.max_completion_length,
        "scoring": {"phase_rewards": base.phase_rewards[-1], "reward_weights": base.reward_weights,
                    "domain_scales": base.domain_scales, "reward_values": base.reward_values},
    }


# --- the study --------------------------------------------------------------------------------


def run_plan(plan: StudyPlan, *, load_model_and_tokenizer=None, reward_functions=None, show_progress: bool = True) -> tuple[dict, bool]:
    """Train and evaluate every planned run not yet finished. Returns {run name: the state it was
    found in} and whether a run was stopped (Ctrl-C) before the study finished."""
    from phasegrpo.router import RewardRouter
    from phasegrpo.studies.evaluate import evaluate_model, load_study_rows

    for run in plan.runs:
        check_run_config(run)
    rows = load_study_rows(plan)
    fingerprint = eval_fingerprint(plan, rows)
    # One yardstick for every arm: the base config's router in its last phase (a no-scale run's
    # own router would score without domain scales, so its rewards would not compare).
    router = RewardRouter.from_config(plan.base, reward_functions=reward_functions)
    found = {run.name: run_state(run, fingerprint) for run in plan.runs}
    left = [run for run in plan.runs if found[run.name] != "finished"]
    print(f"Study {plan.study_dir}: {len(plan.arms)} arm(s) x {len(plan.seeds)} seed(s) = {len(plan.runs)} runs, "
          f"{plan.base.max_steps} steps each, {len(rows)} held-out rows; {len(plan.runs) - len(left)} finished already. "
          f"Rough estimate for the rest: {estimate_seconds(plan, len(left)) / 60:.0f} min on 2 CPU cores "
          f"(~{ASSUMED_STEP_SECONDS:.0f} s/step, ~{ASSUMED_EVAL_ROW_SECONDS:.0f} s/held-out row).", flush=True)

    before_path = plan.study_dir / SHARED_EVAL_BEFORE_FILE
    before = _read_json(before_path)
    if before is None or before.get("study_fingerprint") != fingerprint:
        model, tokenizer = _load(plan.base, None, load_model_and_tokenizer)
        before = evaluate_model(model, tokenizer, rows, plan, router, "base model (before training)", show_progress)
        before["study_fingerprint"] = fingerprint
        run_folder.write_json_atomic(before_path, before)
        del model
        row_seconds = before["seconds"] / max(len(rows), 1)
        print(f"Measured {row_seconds:.1f} s per held-out completion: the rest of the study needs about "
              f"{estimate_seconds(plan, len(left), eval_row_seconds=row_seconds, include_before=False) / 60:.0f} min at ~{ASSUMED_STEP_SECONDS:.0f} s/step.",
              flush=True)

    progress = _progress_bar(len(plan.runs), len(plan.runs) - len(left), show_progress)
    try:
        for run in left:
            state = run_state(run, fingerprint)
            if progress is not None:
                progress.set_postfix_str(f"{run.name}: {state}")
            if not _advance(run, state, plan, rows, router, before, fingerprint, load_model_and_tokenizer, reward_functions, show_progress):
                return found, True
            if progress is not None:
                progress.set_postfix_str(f"{run.name}: finished")
                progress.update(1)
    except KeyboardInterrupt:  # Ctrl-C outside training (training stops itself after the step)
        print("\nStopped; run the same study command again to continue where it stopped.", flush=True)
        return found, True
    finally:
        if progress is not None:
            progress.close()
    return found, False


def _advance(run, state, plan, rows, router, before, fingerprint, loader, reward_functions, show_progress) -> bool:
    """Bring one run to 'finished' from `state`; False when its training was stopped (Ctrl-C)."""
    from phasegrpo.report import write_report
    from phasegrpo.studies.evaluate import evaluate_model
    from phasegrpo.training import train

    started = time.perf_counter()
    if state in ("start", "resume"):
        print(f"\n=== {run.name}: {'resuming' if state == 'resume' else 'training'} ({run.config.max_steps} steps) ===", flush=True)
        model, tokenizer = _load(run.config, None, loader) if loader is not None else (None, None)
        result = train(run.config, resume=state == "resume", overwrite=state == "start", model=model, tokenizer=tokenizer,
                       reward_functions=reward_functions, show_progress=show_progress)
        if result.was_interrupted or result.adapter_dir is None:
            print(f"{run.name} stopped at step {result.global_step}; run the same study command again to resume.", flush=True)
            return False
    model, tokenizer = _load(run.config, run.run_dir / run_folder.ADAPTER_DIR, loader)
    after = evaluate_model(model, tokenizer, rows, plan, router, f"{run.name} (after training)", show_progress)
    after["study_fingerprint"] = fingerprint
    after["study_run_seconds"] = time.perf_counter() - started
    # The run folder gets the shared "before" too, so its own report shows before → after.
    run_folder.write_json_atomic(run.run_dir / run_folder.EVAL_BEFORE_FILE, before)
    run_folder.write_json_atomic(run.run_dir / run_folder.EVAL_AFTER_FILE, after)  # last: marks the run finished
    write_report(run.run_dir)
    return True


def _load(config: Config, adapter_dir: Path | None, loader):
    """A fresh model and tokenizer for `config` (the caller's `loader`, else config.model), with the adapter applied."""
    from phasegrpo.models import declare_end_of_turn

    if loader is None:
        from phasegrpo.evaluation import load_for_eval

        return load_for_eval(config.model, adapter_dir, config.dtype)
    model, tokenizer = loader(config)
    declare_end_of_turn(model, tokenizer)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    return model, tokenizer


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _progress_bar(total: int, done: int, show: bool):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc="study runs", unit="run", dynamic_ncols=True)
