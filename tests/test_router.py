"""RewardRouter: phases, gating, weights, domain scaling, per-domain metrics, explain, and the
advantage proof (the domain scale survives TRL's advantage normalisation with scale_rewards="batch")."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from phasegrpo import RewardRouter
from phasegrpo.curriculum import ProgressSchedule
from phasegrpo.domains import reference_scales
from phasegrpo.router import register_reward

CORRECT = "<reasoning>\n6 * 7 = 42\n</reasoning>\n<answer>\n42\n</answer>"
WRONG = "<reasoning>\n6 * 7 = 41\n</reasoning>\n<answer>\n41\n</answer>"
RAMBLING_CORRECT = "<reasoning>\n" + "Hmm, wait, let me re-check. 6 * 7 = 42. " * 80 + "\n</reasoning>\n<answer>\n42\n</answer>"
MATH_ROW = {"domain": "math", "answer": "42", "tests": [], "setup_code": ""}


def state(step: int, max_steps: int = 100):
    return SimpleNamespace(global_step=step, max_steps=max_steps)


def score(router, completions, step, max_steps=100, domain="math", answer="42"):
    count = len(completions)
    return router(prompts=[None] * count, completions=completions, trainer_state=state(step, max_steps),
                  domain=[domain] * count, answer=[answer] * count, tests=[[]] * count, setup_code=[""] * count)


# --- phases ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "step, max_steps, phase",
    [
        (0, 100, 0), (24, 100, 0), (25, 100, 1), (74, 100, 1), (75, 100, 2), (100, 100, 2),
        (1, 8, 0), (2, 8, 1), (5, 8, 1), (6, 8, 2),
        (1, 7, 0), (2, 7, 1), (5, 7, 1), (6, 7, 2),
        (249, 1000, 0), (250, 1000, 1), (749, 1000, 1), (750, 1000, 2),
    ],
)
def test_reference_phase_boundaries(step, max_steps, phase):
    router = RewardRouter()
    score(router, [CORRECT], step, max_steps)
    assert router.last_phase == phase
    assert router.last_metrics["phase"] == phase


def test_phase_boundaries_are_configurable():
    router = RewardRouter(schedule=ProgressSchedule(boundaries=(0.1, 0.5)))
    assert [router.schedule.phase(step, 100) for step in (9, 10, 49, 50)] == [0, 1, 1, 2]


def test_pinned_max_steps_wins_over_trainer_state():
    """transformers resets state.max_steps on resume; the schedule's own copy times the phases."""
    router = RewardRouter(schedule=ProgressSchedule(max_steps=100))
    score(router, [CORRECT], step=30, max_steps=1000)
    assert router.last_phase == 1


# --- gating ------------------------------------------------------------------------------
def test_correctness_counts_from_phase_1_only():
    router = RewardRouter()
    phase0 = score(router, [CORRECT, WRONG], step=10)
    phase1 = score(router, [CORRECT, WRONG], step=30)
    assert phase0[0] == phase0[1]
    assert phase1[0] > phase1[1]


def test_length_counts_in_phase_2_only():
    router = RewardRouter()
    for step in (10, 30):
        short, rambling = score(router, [CORRECT, RAMBLING_CORRECT], step=step)
        assert short == rambling, step
    short, rambling = score(router, [CORRECT, RAMBLING_CORRECT], step=80)
    assert short > rambling


def test_phase_rewards_are_configurable():
    router = RewardRouter(phase_rewards=[["check_answer"], ["check_answer"], ["check_answer"]])
    correct, wrong = score(router, [CORRECT, WRONG], step=0)
    assert correct > wrong and wrong == 0.0


def test_weight_per_reward_per_phase():
    weights = {"match_format_exactly": [4.0, 2.0, 1.0]}
    plain, weighted = RewardRouter(), RewardRouter(reward_weights=weights)
    for step, weight in ((0, 4.0), (30, 2.0), (80, 1.0)):
        difference = score(weighted, [CORRECT], step)[0] - score(plain, [CORRECT], step)[0]
        assert difference == pytest.approx((weight - 1.0) * 3.0)  # exact format raw = 3


def test_unknown_reward_names_fail_with_the_known_ones():
    with pytest.raises(ValueError, match=r"Phase 0 enables unknown reward\(s\) \['nope'\].*register"):
        RewardRouter(phase_rewards=[["nope"], [], []])


def brevity(completions, **kwargs):
    return [1.0 if len(str(completion)) < 60 else 0.0 for completion in completions]


def test_user_rewards_by_name():
    router = RewardRouter(phase_rewards=[["brevity"]] * 3, reward_functions={"brevity": brevity})
    assert score(router, [CORRECT, RAMBLING_CORRECT], step=0) == [1.0, 0.0]
    register_reward("brevity_registered", brevity)
    registered = RewardRouter(phase_rewards=[["brevity_registered"]] * 3)  # e.g. from a config's phase_rewards
    assert score(registered, [CORRECT], step=0) == [1.0]


# --- domain scaling ----------------------------------------------------------------------
@pytest.mark.parametrize("step", [0, 30, 80])
def test_domain_scale_multiplies_every_reward(step):
    router = RewardRouter()
    unscaled = RewardRouter(domain_scales=dict.fromkeys(reference_scales(), 1.0))
    for domain, scale in reference_scales().items():
        answer = "yes" if domain == "logic" else "42"
        completion = CORRECT.replace("42", answer) if domain != "math" else CORRECT
        scaled = score(router, [completion], step, domain=domain, answer=answer)[0]
        base = score(unscaled, [completion], step, domain=domain, answer=answer)[0]
        assert base != 0
        assert scaled == pytest.approx(scale * base)


def test_mixed_domain_batch_scores_each_completion_with_its_own_domain():
    router = RewardRouter(domain_scales={"math": 1.0, "logic": 0.5, "science": 2.0})
    completions = [CORRECT, CORRECT, WRONG, CORRECT]
    domains = ["math", "logic", "science", "math"]
    logged = {}
    scores = router(completions=completions, trainer_state=state(0), domain=domains, answer=["42"] * 4,
                    tests=[[]] * 4, setup_code=[""] * 4, log_metric=logged.__setitem__)
    assert scores == pytest.approx([5.0, 2.5, 10.0, 5.0])  # phase 0: exact 3 + approx 2, times the scale
    assert logged["domain/math/reward"] == pytest.approx(5.0)
    assert logged["domain/logic/reward"] == pytest.approx(2.5)
    assert logged["domain/math/count"] == 2


# --- reward values -----------------------------------------------------------------------
def test_reward_values_are_the_routers_own():
    """Overrides reach this router's rewards only: another router and the module functions keep the defaults."""
    from phasegrpo import rewards

    tuned = RewardRouter(reward_values={"exact_format_reward": 1.0})
    assert score(tuned, [CORRECT], step=0) == [pytest.approx(1.0 + 2.0)]  # exact 1 + approx 4 x 0.5
    assert score(RewardRouter(), [CORRECT], step=0) == [pytest.approx(3.0 + 2.0)]
    assert rewards.match_format_exactly([CORRECT]) == [3.0]
    assert tuned.reward_values.exact_format_reward == 1.0 and RewardRouter().reward_values == rewards.DEFAULT_REWARD_VALUES


def test_from_config_carries_the_configs_reward_values():
    from phasegrpo.config import preset

    router = RewardRouter.from_config(preset("demo", reward_values={"correct_reward": 2.0}))
    assert router.reward_values.correct_reward == 2.0
    lines = {line.name: line for line in router.explain(CORRECT, MATH_ROW, phase=1).lines}
    assert lines["check_answer"].raw == 2.0


def test_bad_reward_values_fail_when_the_router_is_built():
    with pytest.raises(ValueError, match="Unknown reward value"):
        RewardRouter(reward_values={"refusal_penalti": -1.0})


# --- score: one batch in an explicit phase ------------------------------------------------
def test_score_in_a_phase_gives_the_totals_of_a_call_and_each_rewards_raw_values():
    router = RewardRouter()
    completions, domains = [CORRECT, WRONG, "I cannot help with that."], ["math", "logic", "math"]
    columns = dict(domain=domains, answer=["42", "yes", "42"], tests=[[]] * 3, setup_code=[""] * 3)
    scores = router.score(completions, phase=router.last_phase_index, prompts=[None] * 3, **columns)
    assert scores.phase == 2 and set(scores.raw) == set(router.enabled_rewards(2))
    assert scores.totals == router(prompts=[None] * 3, completions=completions, trainer_state=state(99), **columns)
    assert scores.raw["check_answer"] == [3.0, 0.0, 0.0] and scores.raw["punish_refusal"] == [0.0, 0.0, -5.0]
    assert scores.contributions["check_answer"] == [3.0, 0.0, 0.0]
    assert scores.contributions["match_format_exactly"] == [pytest.approx(3.0), pytest.approx(3.0 * 0.7), 0.0]
    assert set(router.score(completions, phase=0, **columns).raw) == set(router.enabled_rewards(0))


def test_score_logs_nothing_and_leaves_the_last_metrics():
    router = RewardRouter()
    score(router, [CORRECT], step=50)
    before = dict(router.last_metrics)
    logged = {}
    router.score([WRONG, WRONG], phase=2, domain=["logic"] * 2, answer=["yes"] * 2, log_metric=logged.__setitem__)
    assert logged == {} and router.last_metrics == before and router.last_phase == 1


# --- logging -----------------------------------------------------------------------------
def test_logged_metrics_per_reward_overall_and_per_domain():
    router = RewardRouter()
    completions = [CORRECT, WRONG, "I cannot help with that.", CORRECT.replace("42", "yes")]
    domains = ["math", "math", "science", "logic"]
    answers = ["42", "42", "B", "yes"]
    logged = {}
    router(completions=completions, trainer_state=state(50), domain=domains, answer=answers,
           tests=[[]] * 4, setup_code=[""] * 4, log_metric=logged.__setitem__)
    assert logged["phase"] == 1
    assert logged["format/exact_rate"] == pytest.approx(0.75)
    assert logged["domain/science/exact_rate"] == 0.0 and logged["domain/math/exact_rate"] == 1.0
    assert logged["rewards/check_answer/math/raw"] == pytest.approx(1.5)  # correct 3 and wrong 0
    assert logged["rewards/check_answer/logic/contribution"] == pytest.approx(3.0 * 0.7)
    assert "rewards/penalize_length_and_rambling/raw" not in logged  # gated off in phase 1
    for name in router.enabled_rewards(1):
        overall_raw = logged[f"rewards/{name}/raw"]
        by_domain = [logged[f"rewards/{name}/{domain}/raw"] * logged[f"domain/{domain}/count"] for domain in ("math", "science", "logic")]
        assert overall_raw == pytest.approx(sum(by_domain) / 4)
    total = sum(logged[f"domain/{domain}/reward"] * logged[f"domain/{domain}/count"] for domain in ("math", "science", "logic"))
    contributions = sum(logged[f"rewards/{name}/contribution"] for name in router.enabled_rewards(1)) * 4
    assert total == pytest.approx(contributions)


# --- explain -----------------------------------------------------------------------------
def test_explain_matches_the_score_and_shows_every_reward():
    router = RewardRouter(reward_weights={"match_format_exactly": [2.0, 1.0, 1.0]})
    row = {"domain": "logic", "answer": "yes", "tests": [], "setup_code": ""}
    completion = CORRECT.replace("42", "yes")
    for step in (0, 30, 80):
        explanation = router.explain(completion, row, step=step, max_steps=100)
        assert explanation.total == pytest.approx(score(router, [completion], step, domain="logic", answer="yes")[0])
    explanation = router.explain(completion, row, step=0, max_steps=100)
    lines = {line.name: line for line in explanation.lines}
    assert set(lines) == set(router.reward_functions) & {name for names in router.phase_rewards for name in names}
    assert lines["check_answer"].is_enabled is False and lines["check_answer"].raw == 3.0
    assert lines["check_answer"].contribution == 0.0
    assert lines["match_format_exactly"].weight == 2.0 and lines["match_format_exactly"].scale == 0.7
    assert lines["match_format_exactly"].contribution == pytest.approx(2.0 * 3.0 * 0.7)
    table = explanation.table()
    assert "phase 0" in table and "check_answer" in table and f"{explanation.total:+.3f}" in table.splitlines()[-1]


def test_explain_uses_the_given_max_steps():
    router = RewardRouter(schedule=ProgressSchedule(max_steps=300))
    assert router.explain(CORRECT, MATH_ROW, step=30, max_steps=100).phase == 1


def test_cli_rewards_explain(capsys):
    from phasegrpo.cli import main

    code = main(["rewards", "explain", "--completion", WRONG, "--domain", "math", "--answer", "42",
                 "--step", "30", "--max-steps", "100"])
    output = capsys.readouterr().out
    assert code == 0
    assert "phase 1" in output
    check_line = next(line for line in output.splitlines() if line.startswith("check_answer"))
    assert check_line.split()[1] == "yes"
    assert output.strip().splitlines()[-1].split()[-1] == "+5.000"  # format 3 + 2, wrong answer 0, scale 1


def test_cli_rewards_explain_uses_the_runs_reward_values_and_changes_nothing_else(tmp_path, capsys):
    import json

    from phasegrpo import rewards
    from phasegrpo.cli import main
    from phasegrpo.config import preset

    (tmp_path / "config.json").write_text(json.dumps(preset("demo", reward_values={"exact_format_reward": 1.0}).to_dict()))
    code = main(["rewards", "explain", "--run-dir", str(tmp_path), "--completion", WRONG, "--domain", "math",
                 "--answer", "42", "--step", "30", "--max-steps", "100"])
    assert code == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].split()[-1] == "+3.000"  # format 1 + 2
    assert rewards.match_format_exactly([WRONG]) == [3.0]


# --- the advantage proof: TRL's real advantage computation --------------------------------
def position_in_group(completions, **kwargs):
    """Identical raw rewards for every group: 0, 1, 2, 3 by position."""
    return [float(index % 4) for index in range(len(completions))]


@pytest.mark.parametrize("scale_rewards, expected_ratio", [(None, 2.0), ("none", 2.0), ("group", 1.0)])
def test_domain_scale_survives_trl_advantages(tmp_path, scale_rewards, expected_ratio):
    """A math group and a logic group with identical raw rewards, scales 1.0 and 0.5: through
    GRPOTrainer._generate_and_score_completions, math's advantages are twice logic's with
    phasegrpo's default scale_rewards="batch" (and with "none"); "group" normalises the scale away."""
    from datasets import Dataset
    from tiny import tiny_model, tiny_tokenizer
    from trl import GRPOTrainer

    from phasegrpo.config import Config
    from phasegrpo.domains.math import math_prompt
    from phasegrpo.training import grpo_args

    torch.set_num_threads(1)
    tokenizer = tiny_tokenizer()
    router = RewardRouter(phase_rewards=[["position_in_group"]] * 3, domain_scales={"math": 1.0, "logic": 0.5},
                          reward_functions={"position_in_group": position_in_group})
    config = Config(prompts_per_step=2, num_generations=4, max_completion_length=16, beta=0.0, report_to="none",
                    **({"scale_rewards": scale_rewards} if scale_rewards else {}))  # None: phasegrpo's default
    assert config.scale_rewards == (scale_rewards or "batch")
    args = grpo_args(config, tmp_path)
    rows = [{"prompt": math_prompt("1+1?"), "domain": "math", "answer": "2"},
            {"prompt": math_prompt("Is 2 even?"), "domain": "logic", "answer": "yes"}]
    trainer = GRPOTrainer(model=tiny_model(tokenizer), processing_class=tokenizer, reward_funcs=[router], args=args,
                          train_dataset=Dataset.from_list(rows))
    trainer.model.train()
    batch = [rows[0]] * 4 + [rows[1]] * 4  # TRL's layout: each prompt repeated num_generations times
    advantages = trainer._generate_and_score_completions(batch)["advantages"]
    math_advantages, logic_advantages = advantages[:4], advantages[4:]
    assert torch.count_nonzero(logic_advantages) == 4
    assert torch.allclose(math_advantages, expected_ratio * logic_advantages, rtol=1e-3)
