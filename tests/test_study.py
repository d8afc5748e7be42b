"""The study on a tiny model: arms differ only in what they test, every run is evaluated on the
same held-out rows, the outputs are written, and a killed study resumes without redoing runs."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from tiny import tiny_model, tiny_tokenizer

import phasegrpo
from phasegrpo import cli, run_folder
from phasegrpo.config import preset
from phasegrpo.studies import arm_config, config_differences
from phasegrpo.studies.runner import make_plan

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def completion_length_reward(completions, **kwargs):
    """Varies within every group, so the tiny model gets a learning signal."""
    return [len(str(c)) / 10.0 for c in completions]


REWARDS = {"completion_length_reward": completion_length_reward}


def tiny_base(**overrides):
    values = dict(
        model="tiny", max_steps=2, max_completion_length=16, rows_per_domain=40, save_steps=1, learning_rate=1e-2,
        worked_example=False, domain_weights={"math": 1.0, "logic": 1.0},
        phase_rewards=[["punish_refusal", "completion_length_reward"]] * 2 + [["completion_length_reward", "check_answer"]],
    )
    values.update(overrides)
    return preset("demo", **values)


def changed(first, second) -> dict:
    """The config fields two runs differ in, besides their folders."""
    return {name: values for name, values in config_differences(first, second).items() if name != "output_dir"}


def load_tiny(config):
    tokenizer = tiny_tokenizer()
    return tiny_model(tokenizer), tokenizer


def test_each_arm_changes_only_what_it_tests(tmp_path):
    base = tiny_base(reward_weights={"completion_length_reward": [2.0, 1.0, 0.5], "check_answer": [0.0, 1.0, 3.0]})
    plan = make_plan(base, arms=["curriculum", "static", "no-scale", "metric", "phase-weights"], seeds=2, study_dir=tmp_path,
                     eval_rows_per_domain=2, eval_seed=0, eval_batch_size=4)
    configs = {(run.arm, run.seed): run.config for run in plan.runs}
    assert sorted(configs) == [(arm, seed) for arm in ("curriculum", "metric", "no-scale", "phase-weights", "static") for seed in (42, 43)]
    curriculum = configs["curriculum", 42]
    assert curriculum.phase_rewards == base.phase_rewards and curriculum.eval_before_after is False
    assert set(changed(curriculum, configs["curriculum", 43])) == {"seed"}
    static = changed(curriculum, configs["static", 42])
    assert set(static) == {"phase_rewards", "reward_weights"}
    assert static["phase_rewards"][1] == [["punish_refusal", "completion_length_reward", "check_answer"]] * 3
    # A per-phase weight keeps its value of the last phase that enabled the reward.
    assert static["reward_weights"][1] == {"completion_length_reward": 0.5, "check_answer": 3.0}
    no_scale = changed(curriculum, configs["no-scale", 42])
    assert set(no_scale) == {"domain_scales"} and set(no_scale["domain_scales"][1].values()) == {1.0}
    assert changed(curriculum, configs["metric", 42]) == {"phase_schedule": ("progress", "metric")}
    assert changed(curriculum, configs["phase-weights", 42]) == {"reward_weights": (base.reward_weights, {
        "completion_length_reward": [2.0, 1.0, 0.5], "check_answer": [0.0, 1.0, 3.0],
        "match_format_exactly": [2.0, 1.0, 1.0], "penalize_length_and_rambling": [1.0, 1.0, 2.0]})}
    assert set(plan.differences["static"]) == {"phase_rewards", "reward_weights"} and plan.differences["curriculum"] == {}
    with pytest.raises(ValueError, match="Unknown arm.*Available: curriculum, static, no-scale, metric, phase-weights"):
        arm_config(base, "random", 1, "x")


def test_cli_prints_the_plan_with_each_arms_changes(tmp_path, capsys):
    assert cli.main(["study", "--print-plan", "--arms", "curriculum,no-scale", "--seeds", "7,9", "--max-steps", "6",
                     "--output-dir", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "curriculum: the base config" in out and 'no-scale: domain_scales = {"math": 1.0' in out
    assert str(tmp_path / "s" / "runs" / "no-scale-seed9") in out and "4 runs x 6 steps" in out
    assert cli.main(["study", "--print-plan", "--arms", "curriculum,bogus"]) == 2
    assert "Unknown arm(s) ['bogus']" in capsys.readouterr().err


def test_tiny_study_writes_its_outputs_and_a_killed_study_resumes_without_redoing_runs(tmp_path, monkeypatch):
    import phasegrpo.studies.evaluate as study_evaluate
    import phasegrpo.training as training

    trainings, evaluations = [], []
    real_train, real_evaluate = training.train, study_evaluate.evaluate_model

    def spy_train(config, **kwargs):
        trainings.append((os.path.basename(config.output_dir), kwargs["resume"]))
        return real_train(config, **kwargs)

    def spy_evaluate(model, tokenizer, rows, plan, router, label, show_progress):
        evaluations.append(label.split(" ")[0])
        return real_evaluate(model, tokenizer, rows, plan, router, label, show_progress)

    monkeypatch.setattr(training, "train", spy_train)
    monkeypatch.setattr(study_evaluate, "evaluate_model", spy_evaluate)
    settings = dict(arms=["curriculum", "static"], seeds=2, output_dir=tmp_path / "study", eval_rows_per_domain=2,
                    eval_batch_size=4, show_progress=False, load_model_and_tokenizer=load_tiny, reward_functions=REWARDS)
    result = phasegrpo.study(tiny_base(), **settings)

    names = ["curriculum-seed42", "curriculum-seed43", "static-seed42", "static-seed43"]
    assert trainings == [(name, False) for name in names]
    assert evaluations == ["base", *names]  # the base model once, shared by every run
    summary = json.loads(result.json.read_text())
    assert summary["runs_finished"] == 4 and not summary["was_interrupted"]
    assert summary["groups"] == ["overall", "logic", "math"] and summary["settings"]["eval_rows"] == 4
    for described in (summary["before"], *summary["arms"].values()):
        for group in summary["groups"]:
            for cell in described[group].values():
                assert cell["low"] - 1e-9 <= cell["mean"] <= cell["high"] + 1e-9
    # A rate that never varied still gets an interval (Wilson with n = rows), not [0, 0].
    assert all(summary["before"]["overall"][rate]["high"] > 0 for rate in ("accuracy", "exact_format_rate", "refusal_rate"))
    assert set(summary["versus"]) == {"static"} and summary["reference_arm"] == "curriculum"
    assert set(summary["curves"]["curriculum"]) == {"exact_format_rate", "reward", "kl", "completion_length"}
    assert summary["curves"]["static"]["reward"]["steps"] == [1, 2]
    # Every run was evaluated on the same rows, and its folder holds the shared "before" too.
    run_dirs = {name: tmp_path / "study" / "runs" / name for name in names}
    row_ids = {json.dumps([(s["domain"], s["id"]) for s in json.loads((d / "eval_after.json").read_text())["samples"]])
               for d in run_dirs.values()}
    assert len(row_ids) == 1
    # The resolved configs on disk differ only in what the arm and the seed change.
    saved = {name: phasegrpo.config.from_dict(json.loads((d / "config.json").read_text())) for name, d in run_dirs.items()}
    assert set(changed(saved["curriculum-seed42"], saved["static-seed42"])) == {"phase_rewards"}
    assert set(changed(saved["static-seed42"], saved["static-seed43"])) == {"seed"}
    page = result.html.read_text()
    assert "crossed percentile bootstrap" in page and 'src="plots/' not in page and page.count("data:image/png;base64,") == len(result.plots)
    assert set(result.plots) >= {"eval_accuracy.png", "eval_exact_format_rate.png", "curve_reward.png", "curve_kl.png"}
    assert all(path.read_bytes().startswith(PNG_MAGIC) for path in result.plots.values())
    assert "| static |" in result.markdown.read_text()

    # A kill: one run lost its completion marker (the eval after), one stopped after its last
    # checkpoint, before the adapter was written, and one was killed before its first checkpoint.
    (run_dirs["curriculum-seed43"] / run_folder.EVAL_AFTER_FILE).unlink()
    for name in ("static-seed42", "static-seed43"):
        shutil.rmtree(run_dirs[name] / run_folder.ADAPTER_DIR)
        (run_dirs[name] / run_folder.EVAL_AFTER_FILE).unlink()
    shutil.rmtree(run_dirs["static-seed43"] / run_folder.CHECKPOINTS_DIR)
    untouched = {"curriculum-seed42": (run_dirs["curriculum-seed42"] / run_folder.EVAL_AFTER_FILE).stat().st_mtime_ns}
    trainings.clear()
    evaluations.clear()
    again = phasegrpo.study(tiny_base(), **settings)

    assert trainings == [("static-seed42", True), ("static-seed43", False)]  # resumed from its checkpoint; started over
    assert evaluations == ["curriculum-seed43", "static-seed42", "static-seed43"]  # no shared "before" again, no finished run
    records, _ = run_folder.read_jsonl(run_dirs["static-seed43"] / run_folder.METRICS_FILE)
    assert [record["step"] for record in records] == [1, 2]  # started over cleanly, not appended to
    assert {name: (run_dirs[name] / run_folder.EVAL_AFTER_FILE).stat().st_mtime_ns for name in untouched} == untouched
    assert (run_dirs["static-seed42"] / run_folder.ADAPTER_DIR / "adapter_config.json").exists()
    assert json.loads(again.json.read_text())["runs_finished"] == 4

    # Other settings in the same study folder are refused, not mixed in.
    with pytest.raises(ValueError, match="learning_rate: 0.01 → 0.02.*--overwrite"):
        phasegrpo.study(tiny_base(learning_rate=2e-2), **settings)
