"""The study: does the phase curriculum train a better model than the alternatives, at equal
steps, seeds and everything else? One command, resumable, with intervals over seeds and rows.

    from phasegrpo import study
    result = study()                                   # demo preset, 3 arms x 3 seeds x 8 steps, runs/study
    result = study(preset("demo", max_steps=12), arms=["curriculum", "static", "metric"], seeds=5)
    result.html, result.summary["arms"]["static"]["overall"]["accuracy"]

    phasegrpo study --arms curriculum,static,no-scale,metric --seeds 3 --max-steps 8 --output-dir runs/study

Writes into the study folder: `study.json` (settings, per-arm numbers with 95 % intervals,
differences to the reference arm, curves, every run), `plots/*.png` (one per metric),
`study.html` (self-contained) and `study.md`, `eval_before.json` (the base model, shared) and
`runs/<arm>-seed<seed>/` (ordinary run folders, each with its own report). Run the same command
again after a kill: finished runs are kept, a half-trained run resumes from its checkpoint.

Modules: `arms` (what each arm changes), `runner` (plan, run state, resume), `evaluate` (the
shared held-out rows), `summary` (numbers and intervals), `plots`, `pages`.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from phasegrpo import run_folder
from phasegrpo.config import Config, preset
from phasegrpo.studies.arms import ARMS, DEFAULT_ARMS, arm_config, config_differences

STUDY_JSON = "study.json"
STUDY_HTML = "study.html"
STUDY_MARKDOWN = "study.md"
PLOTS_DIR = "plots"
DEFAULT_OUTPUT_DIR = "runs/study"
DEFAULT_SEEDS = 3
DEFAULT_EVAL_ROWS_PER_DOMAIN = 32
STUDY_OVERRIDES = {"save_steps": 1}
"""What the study changes in the preset by default: a checkpoint every step, so a killed run loses
at most one step. Everything else is the preset's own (the demo's 8 steps, learning rate, group),
so the default study speaks about the demo a newcomer runs. The budget is 60 minutes on 2 CPU
cores: 3 arms x 3 seeds x (8 steps + 128 held-out rows) + the shared "before" evaluation
(`runner.estimate_seconds`; measured in docs/study.md). Bigger studies (a GPU): --max-steps, --seeds."""


@dataclass
class StudyResult:
    """What a study left: its folder, files, and the summary that study.json holds."""

    study_dir: Path
    summary: dict
    html: Path
    markdown: Path
    json: Path
    plots: dict[str, Path]
    was_interrupted: bool


def default_config(preset_name: str = "demo", **overrides) -> Config:
    """The study's base Config: the preset, the study's defaults (`STUDY_OVERRIDES`), then `overrides`."""
    return preset(preset_name, **{**STUDY_OVERRIDES, **overrides})


def study(
    config: Config | None = None,
    *,
    arms=DEFAULT_ARMS,
    seeds: int | list[int] = DEFAULT_SEEDS,
    output_dir: str | Path = DEFAULT_OUTPUT_DIR,
    eval_rows_per_domain: int = DEFAULT_EVAL_ROWS_PER_DOMAIN,
    eval_seed: int = 0,
    eval_batch_size: int = 8,
    overwrite: bool = False,
    show_progress: bool = True,
    load_model_and_tokenizer=None,
    reward_functions: dict | None = None,
) -> StudyResult:
    """Train every arm x seed from `config` (default: `default_config()`), evaluate each run before
    and after on the same held-out rows, and write study.json, plots, study.html and study.md.

    `seeds` is a count (from config.seed on) or a list. `load_model_and_tokenizer(config)` returns
    a fresh (model, tokenizer) for a run (tests pass tiny models); default: `config.model`.
    `reward_functions` registers rewards by name, as in `train()`. `overwrite` deletes the study
    folder first; otherwise a study folder is continued (finished runs are not redone).
    """
    from phasegrpo.studies.runner import make_plan, run_plan

    started = time.perf_counter()
    config = config if config is not None else default_config()
    study_dir = Path(output_dir)
    if overwrite and study_dir.exists():
        shutil.rmtree(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    plan = make_plan(config, arms=arms, seeds=seeds, study_dir=study_dir, eval_rows_per_domain=eval_rows_per_domain,
                     eval_seed=eval_seed, eval_batch_size=eval_batch_size)
    _, was_interrupted = run_plan(plan, load_model_and_tokenizer=load_model_and_tokenizer,
                                  reward_functions=reward_functions, show_progress=show_progress)
    return write_study(plan, time.perf_counter() - started, was_interrupted)


def write_study(plan, wall_seconds: float, was_interrupted: bool = False) -> StudyResult:
    """study.json, the plots and both pages from what the study folder holds now (finished runs only)."""
    from phasegrpo.report.reading import phase_spans, read_run
    from phasegrpo.studies.pages import render_html, render_markdown
    from phasegrpo.studies.plots import write_study_plots
    from phasegrpo.studies.runner import SHARED_EVAL_BEFORE_FILE
    from phasegrpo.studies.summary import INTERVAL_METHOD, compare, curves, describe

    before = json.loads((plan.study_dir / SHARED_EVAL_BEFORE_FILE).read_text())
    finished, runs, records, notes = {}, [], {}, []
    for run in plan.runs:
        after_path = run.run_dir / run_folder.EVAL_AFTER_FILE
        after = json.loads(after_path.read_text()) if after_path.exists() else None
        if after is not None and after.get("study_fingerprint") != before.get("study_fingerprint"):
            after = None
        runs.append({"name": run.name, "arm": run.arm, "seed": run.seed, "run_dir": str(run.run_dir),
                     "overall": (after or {}).get("summary", {}).get("overall"), "seconds": (after or {}).get("study_run_seconds")})
        if after is None:
            notes.append(f"{run.name} has not finished: it is left out of the numbers.")
            continue
        finished.setdefault(run.arm, []).append(after)
        records.setdefault(run.arm, []).append(read_run(run.run_dir).records)
    reference_arm = "curriculum" if "curriculum" in finished else next(iter(finished), None)
    groups = list(before["summary"])
    summary = {
        "study_dir": str(plan.study_dir),
        "arm_names": plan.arms,
        "reference_arm": reference_arm,
        "groups": groups,
        "interval_method": INTERVAL_METHOD,
        "settings": {
            "base_config": plan.base.to_dict(), "seeds": plan.seeds, "eval_rows_per_domain": plan.eval_rows_per_domain,
            "eval_seed": plan.eval_seed, "eval_rows": len(before["samples"]), "scoring": "the curriculum arm's router, last phase",
        },
        "differences": plan.differences,
        # group → metric → {mean, low, high}; "versus": group → metric → {difference, low, high, verdict}
        "before": describe([before]),
        "arms_finished": {arm: len(results) for arm, results in finished.items()},
        "arms": {arm: describe(results) for arm, results in finished.items()},
        "versus": {arm: compare(finished[reference_arm], results) for arm, results in finished.items() if arm != reference_arm},
        "curves": {arm: curves(by_seed) for arm, by_seed in records.items()},
        "runs": runs,
        "runs_planned": len(plan.runs),
        "runs_finished": sum(len(results) for results in finished.values()),
        "wall_seconds": wall_seconds,
        "was_interrupted": was_interrupted,
        "notes": notes,
    }
    if reference_arm is not None:
        summary["phases"] = phase_spans(records[reference_arm][0])
        summary["phases_arm"] = reference_arm
    plots = write_study_plots(summary, plan.study_dir / PLOTS_DIR)
    paths = {name: plan.study_dir / name for name in (STUDY_JSON, STUDY_HTML, STUDY_MARKDOWN)}
    run_folder.write_json_atomic(paths[STUDY_JSON], summary)
    for name, text in ((STUDY_HTML, render_html(summary, plots)), (STUDY_MARKDOWN, render_markdown(summary, plots, plan.study_dir))):
        temp = paths[name].with_name(f".{name}.tmp")
        temp.write_text(text, encoding="utf-8")
        temp.replace(paths[name])
    return StudyResult(plan.study_dir, summary, paths[STUDY_HTML], paths[STUDY_MARKDOWN], paths[STUDY_JSON], plots, was_interrupted)


__all__ = ["study", "default_config", "StudyResult", "ARMS", "DEFAULT_ARMS", "arm_config", "config_differences", "STUDY_OVERRIDES"]
