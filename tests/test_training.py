"""End to end through `phasegrpo.train` (the CLI's code path) on a tiny Gemma-3 model."""

import json
import os
import signal

import pytest
import torch
from transformers import TrainerCallback

from phasegrpo import run_folder
from phasegrpo.config import preset
from phasegrpo.training import load_training_rows, train


def completion_length_reward(completions, **kwargs):
    """Varies within every group, so GRPO always has a learning signal (unlike a random tiny model's
    format rewards, which are all equal)."""
    return [len(str(c)) / 10.0 for c in completions]


def tiny_config(tmp_path, **overrides):
    values = dict(
        model="tiny", output_dir=str(tmp_path / "run"), max_steps=2, max_completion_length=16,
        rows_per_domain=40, save_steps=1, eval_before_after=False, learning_rate=1e-2,
        phase_rewards=[["punish_refusal", "completion_length_reward"]] * 2 + [["completion_length_reward", "check_answer"]],
    )
    values.update(overrides)
    return preset("demo", **values)


def base_weights(model):
    return {name.replace(".base_layer", "").replace("base_model.model.", ""): p.detach().clone()
            for name, p in model.named_parameters() if "lora_" not in name}


def test_two_steps_write_metrics_change_lora_and_keep_base(tmp_path, tiny):
    model, tokenizer = tiny
    before = base_weights(model)
    result = train(tiny_config(tmp_path), model=model, tokenizer=tokenizer,
                   reward_functions={"completion_length_reward": completion_length_reward}, show_progress=False)

    assert result.global_step == 2 and not result.was_interrupted
    records, malformed = run_folder.read_jsonl(result.run_dir / "metrics.jsonl")
    assert malformed == 0
    assert [r["step"] for r in records] == [1, 2]
    assert [r["phase"] for r in records] == [0, 1]  # 0/2 → phase 0, 1/2 → phase 1
    for record in records:
        for key in ("reward", "kl", "completion_length", "step_time"):
            assert isinstance(record[key], float), key
        assert set(record["reward_raw"]) == {"punish_refusal", "completion_length_reward"}
        assert set(record["domain_reward"]) <= {"math", "code", "science", "logic"} and record["domain_reward"]
        assert sum(record["domain_count"].values()) == 8  # 2 prompts x 4 generations
    saved = json.loads((result.run_dir / "config.json").read_text())
    assert saved["max_steps"] == 2 and saved["phase_rewards"][0] == ["punish_refusal", "completion_length_reward"]

    from safetensors.torch import load_file

    adapter = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    lora_b = [tensor for name, tensor in adapter.items() if "lora_B" in name]
    assert lora_b and any(tensor.abs().sum() > 0 for tensor in lora_b)  # B starts at zero: it learned
    after = base_weights(model)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[name], after[name]) for name in before)  # the reference stays frozen
    assert (result.run_dir / "checkpoints" / "checkpoint-2" / ".complete").exists()
    assert (result.run_dir / "plots" / "reward.png").exists()
    # The adapter and the checkpoints name the run's model, not a folder of this machine, and the
    # adapter's card (not TRL's "fine-tuned version of [None]") describes the run.
    for folder in (result.adapter_dir, result.run_dir / "checkpoints" / "checkpoint-2"):
        assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == "tiny"
    card = (result.adapter_dir / "README.md").read_text()
    assert "## Curriculum" in card and "completion_length_reward" in card and "[None]" not in card


class InterruptAtStep(TrainerCallback):
    """Sends the process a real SIGINT when a given step begins, as Ctrl-C would."""

    def __init__(self, step):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_saves_a_checkpoint_and_resume_continues_at_the_next_step(tmp_path, tiny):
    model, tokenizer = tiny
    config = tiny_config(tmp_path, max_steps=4, save_steps=100)
    rewards = {"completion_length_reward": completion_length_reward}
    first = train(config, model=model, tokenizer=tokenizer, reward_functions=rewards,
                  callbacks=[InterruptAtStep(1)], show_progress=False)
    assert first.was_interrupted and first.global_step == 2
    assert run_folder.latest_complete_checkpoint(first.run_dir).name == "checkpoint-2"
    assert not (first.run_dir / "adapter").exists()  # no final adapter for an unfinished run

    from tiny import tiny_model

    second = train(config, resume=True, model=tiny_model(tokenizer), tokenizer=tokenizer, reward_functions=rewards, show_progress=False)
    assert second.global_step == 4 and not second.was_interrupted
    records, _ = run_folder.read_jsonl(second.run_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert [r["phase"] for r in records] == [0, 1, 1, 2]  # steps begin at 0, 1/4, 2/4, 3/4 of training
    assert (second.run_dir / "adapter" / "adapter_model.safetensors").exists()


def test_resume_refuses_a_changed_max_steps(tmp_path, tiny):
    model, tokenizer = tiny
    rewards = {"completion_length_reward": completion_length_reward}
    train(tiny_config(tmp_path), model=model, tokenizer=tokenizer, reward_functions=rewards, show_progress=False)
    with pytest.raises(ValueError, match="max_steps changed from 2 to 6"):
        train(tiny_config(tmp_path, max_steps=6), resume=True, model=model, tokenizer=tokenizer, reward_functions=rewards, show_progress=False)


def test_existing_run_folder_is_not_silently_overwritten(tmp_path, tiny):
    model, tokenizer = tiny
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(FileExistsError, match="--resume"):  # the config's own reward given: only the folder is wrong
        train(tiny_config(tmp_path), model=model, tokenizer=tokenizer, show_progress=False,
              reward_functions={"completion_length_reward": completion_length_reward})


def test_a_runs_reward_values_score_its_run_and_do_not_outlive_it(tmp_path, tiny):
    from phasegrpo.rewards import penalize_length_and_rambling

    model, tokenizer = tiny
    # Any non-empty reply costs the capped -7 with these values; the default table's worst is -3.5.
    harsh = {"soft_length_chars": 0, "length_penalty_per_100_chars": -1000.0, "length_penalty_max": -7.0}
    config = tiny_config(tmp_path, max_steps=1, reward_values=harsh,
                         phase_rewards=[["penalize_length_and_rambling", "completion_length_reward"]] * 3)
    result = train(config, model=model, tokenizer=tokenizer, reward_functions={"completion_length_reward": completion_length_reward},
                   show_progress=False)
    records, _ = run_folder.read_jsonl(result.run_dir / "metrics.jsonl")
    assert records[0]["reward_raw"]["penalize_length_and_rambling"] < -3.5
    assert penalize_length_and_rambling(["A short reply."]) == [0.0]  # the module function keeps the defaults


@pytest.mark.parametrize("worked_example, roles", [(True, ["system", "user", "assistant", "user"]), (False, ["system", "user"])])
def test_training_rows_carry_the_worked_example_when_configured(worked_example, roles):
    from phasegrpo.training import load_training_rows

    rows, domains = load_training_rows(preset("demo", rows_per_domain=3, worked_example=worked_example))
    assert len(rows) == 12 and sorted(set(domains)) == ["code", "logic", "math", "science"]
    assert all([m["role"] for m in prompt] == roles for prompt in rows["prompt"])


class SourceRecorder:
    """A reward that remembers the `source` column of every training row it scores (the held-out
    evaluation scores without a trainer_state), and varies as above."""

    __name__ = "source_recorder"

    def __init__(self):
        self.sources = set()

    def __call__(self, completions, source, trainer_state=None, **kwargs):
        if trainer_state is not None:
            self.sources.update(source)
        return completion_length_reward(completions)


def my_rows(domains=("math", "logic"), rows_each=6):
    """The user's own rows: contract rows from the generators, relabelled as theirs."""
    import datasets

    from phasegrpo.data import load_domain

    parts = [load_domain(domain, source="synthetic", limit=rows_each) for domain in domains]
    return datasets.concatenate_datasets(parts).map(lambda row: {"source": "my-notebook"})


def test_train_on_the_users_own_dataset_returns_evals_and_paths(tmp_path, tiny):
    model, tokenizer = tiny
    recorder = SourceRecorder()
    config = tiny_config(tmp_path, domain_weights={"math": 0.5, "logic": 0.5}, eval_before_after=True, eval_rows_per_domain=1,
                         phase_rewards=[["source_recorder"]] * 3)
    result = train(config, dataset=my_rows(), model=model, tokenizer=tokenizer,
                   reward_functions={"source_recorder": recorder}, show_progress=False)

    assert recorder.sources == {"my-notebook"}  # trained on the given rows, not the config's data
    records, _ = run_folder.read_jsonl(result.metrics_path)
    assert [r["step"] for r in records] == [1, 2] and set().union(*(r["domain_count"] for r in records)) <= {"math", "logic"}
    # eval before/after read the config's held-out rows: one per trained domain
    for summary, path in ((result.eval_before, "eval_before.json"), (result.eval_after, "eval_after.json")):
        assert set(summary) >= {"math", "logic"} and "science" not in summary
        assert summary == json.loads((result.run_dir / path).read_text())["summary"]
    assert result.report_html == result.run_dir / "report.html" and result.report_html.exists()
    assert result.report_markdown.exists() and result.metrics_path == result.run_dir / "metrics.jsonl"
    assert (result.adapter_dir / "adapter_model.safetensors").exists()


def test_a_run_without_eval_returns_none_for_the_evals(tmp_path, tiny):
    model, tokenizer = tiny
    result = train(tiny_config(tmp_path, max_steps=1), model=model, tokenizer=tokenizer,
                   reward_functions={"completion_length_reward": completion_length_reward}, show_progress=False)
    assert result.eval_before is None and result.eval_after is None and result.report_html.exists()


@pytest.mark.parametrize("change, weights, error, message", [
    (lambda rows: rows.remove_columns(["tests", "id"]), None, ValueError, r"lacks column\(s\) \['tests', 'id'\]"),
    (lambda rows: rows.map(lambda row: {"domain": "poetry"}), None, ValueError, r"unknown domain\(s\) \['poetry'\]; known: "),
    (lambda rows: rows, {"math": 0.5, "code": 0.5}, ValueError, r"draws from \['code'\] but dataset has no rows of them"),
    (lambda rows: {"train": rows}, None, TypeError, "must be a datasets.Dataset"),
])
def test_a_users_dataset_is_checked_before_the_run_folder(tmp_path, change, weights, error, message):
    config = tiny_config(tmp_path, domain_weights=weights or {"math": 0.5, "logic": 0.5})
    with pytest.raises(error, match=message):
        train(config, dataset=change(my_rows()), model=object(), tokenizer=object(), show_progress=False)
    assert not (tmp_path / "run").exists()


def test_the_notebook_api_imports_from_the_package():
    import phasegrpo
    from phasegrpo import RewardRouter, preset, register_domain, register_reward
    from phasegrpo import train as package_train

    assert {"RewardRouter", "preset", "register_domain", "register_reward", "train"} <= set(phasegrpo.__all__)
    assert callable(register_domain) and callable(package_train) and RewardRouter()
    assert preset("demo").max_steps == 8
    from phasegrpo.router import register_reward as router_register_reward

    assert register_reward is router_register_reward


def test_the_adaptive_mix_is_fed_rewards_without_the_domain_scale():
    from phasegrpo.router import RewardRouter
    from phasegrpo.training.trainer import unscaled_domain_rewards

    router = RewardRouter(domain_scales={"math": 1.0, "code": 2.0}, reward_weights={"check_answer": 2.0})
    step_metrics = {  # the same raw rewards; code's total is doubled by its scale
        "phase": 1.0, "domain/math/reward": 1.5, "domain/code/reward": 3.0,
        "rewards/check_answer/math/raw": 0.5, "rewards/check_answer/code/raw": 0.5,
        "rewards/punish_refusal/math/raw": 0.5, "rewards/punish_refusal/code/raw": 0.5,
        "rewards/check_answer/math/contribution": 1.0, "rewards/check_answer/code/contribution": 2.0,
    }
    assert unscaled_domain_rewards(step_metrics, router) == {"math": 1.5, "code": 1.5}


def test_a_domain_of_weight_0_is_dropped_and_a_linear_mix_anneals_towards_one(tmp_path, tiny):
    # Code starts at 0 and the mix anneals towards it; logic stays at 0 and is never loaded.
    model, tokenizer = tiny
    config = tiny_config(tmp_path, max_steps=2, domain_weights={"math": 1, "code": 0, "logic": 0},
                         mix_schedule="linear", mix_end_weights={"code": 1})
    rows, row_domains = load_training_rows(config)
    assert set(row_domains) == {"math", "code"}
    result = train(config, model=model, tokenizer=tokenizer, show_progress=False,
                   reward_functions={"completion_length_reward": completion_length_reward})
    records, _ = run_folder.read_jsonl(result.run_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    assert records[0]["domain_count"] == {"math": 8}  # progress 0: all math
