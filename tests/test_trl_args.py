"""Config.trl_args: every TRL GRPOConfig setting reachable, checked when the Config is made."""

import dataclasses
import json

import pytest
from transformers import TrainerCallback
from trl import GRPOConfig

from phasegrpo.cli import main
from phasegrpo.config import Config, preset
from phasegrpo.training import train
from phasegrpo.training.setup import ADJUSTABLE_DEFAULTS, grpo_args, grpo_settings
from phasegrpo.trl_args import DECIDED_BY_PHASEGRPO, FROM_CONFIG_FIELDS

GRPO_FIELDS = {field.name for field in dataclasses.fields(GRPOConfig)}


def test_trl_args_reach_grpo_config_and_override_phasegrpos_defaults(tmp_path):
    trl_args = {"lr_scheduler_type": "cosine", "warmup_steps": 0.1, "max_grad_norm": 0.5, "save_total_limit": 1,
                "log_completions": True, "generation_kwargs": {"top_k": 20}}
    args = grpo_args(preset("demo", trl_args=trl_args), tmp_path)
    assert args.lr_scheduler_type == "cosine" and args.warmup_steps == 0.1 and args.max_grad_norm == 0.5
    assert args.save_total_limit == 1 and args.log_completions is True and args.generation_kwargs == {"top_k": 20}
    default = grpo_args(preset("demo"), tmp_path)
    assert default.save_total_limit == 3 and default.log_completions is False and default.max_grad_norm == 1.0


@pytest.mark.parametrize(
    "trl_args, message",
    [
        ({"warmup_ratio": 0.1}, r"'warmup_ratio', which is not a field of TRL's GRPOConfig\. Did you mean warmup_steps=<fraction>"),
        ({"max_grad_nrom": 0.5}, r"'max_grad_nrom', which is not a field .* Did you mean max_grad_norm"),
        ({"learning_rate": 1e-5}, r"'learning_rate', which phasegrpo sets from its own config: use --learning-rate \(Config\.learning_rate\)"),
        ({"per_device_train_batch_size": 8}, r"use --prompts-per-step / --num-generations / --gradient-accumulation-steps"),
        ({"bf16": True}, r"use --dtype"),
        ({"shuffle_dataset": False}, r"'shuffle_dataset', which phasegrpo decides: rows are drawn by the domain-mix sampler"),
        ({"max_grad_norm": "big"}, r"max_grad_norm='big' \(str\) does not fit GRPOConfig\.max_grad_norm, which takes float"),
        ({"log_completions": 1}, r"log_completions=1 \(int\) does not fit .* takes bool"),
        ({"save_total_limit": 1.5}, r"save_total_limit=1\.5 \(float\) does not fit"),
    ],
)
def test_bad_trl_args_cannot_make_a_config(trl_args, message):
    with pytest.raises(ValueError, match=message):
        preset("demo", trl_args=trl_args)


def test_the_owned_settings_tables_match_what_phasegrpo_sets(tmp_path):
    config_fields = {field.name for field in dataclasses.fields(Config)}
    for trl_name, own in FROM_CONFIG_FIELDS.items():
        assert trl_name in GRPO_FIELDS and set(own) <= config_fields, trl_name
    assert set(DECIDED_BY_PHASEGRPO) <= GRPO_FIELDS
    # Everything phasegrpo sets is either owned (refused in trl_args, with the reason) or adjustable.
    owned = set(FROM_CONFIG_FIELDS) | set(DECIDED_BY_PHASEGRPO)
    assert set(grpo_settings(preset("demo"), tmp_path)) <= owned
    assert not set(ADJUSTABLE_DEFAULTS) & owned
    preset("demo", trl_args=dict(ADJUSTABLE_DEFAULTS))  # each adjustable default may be set


def test_a_value_trl_refuses_stops_train_before_the_run_folder_or_model(tmp_path):
    config = preset("demo", model="no/such-model", output_dir=str(tmp_path / "run"), trl_args={"lr_scheduler_type": "cosinee"})
    with pytest.raises(ValueError, match=r"GRPOConfig refused .*'lr_scheduler_type': 'cosinee'.*cosinee is not a valid SchedulerType"):
        train(config, show_progress=False)
    assert not (tmp_path / "run").exists()


def test_cli_trl_flag_fills_trl_args(capsys):
    assert main(["train", "--trl", "warmup_steps=0.1,lr_scheduler_type=cosine,max_grad_norm=0.5", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["trl_args"] == {"warmup_steps": 0.1, "lr_scheduler_type": "cosine", "max_grad_norm": 0.5}
    assert main(["train", "--trl-args", '{"generation_kwargs": {"top_k": 20}}', "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out)["trl_args"] == {"generation_kwargs": {"top_k": 20}}


def test_cli_bad_trl_flag_is_a_clear_error(capsys):
    assert main(["train", "--trl", "learning_rate=1e-5", "--print-config"]) == 2
    assert "use --learning-rate" in capsys.readouterr().err


class RecordArgs(TrainerCallback):
    """Keeps the TrainingArguments the trainer really runs with."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.args = args


def completion_length_reward(completions, **kwargs):
    return [len(str(c)) / 10.0 for c in completions]


def test_trl_args_reach_the_trainer_of_a_real_run(tmp_path, tiny):
    model, tokenizer = tiny
    config = preset(
        "demo", model="tiny", output_dir=str(tmp_path / "run"), max_steps=2, max_completion_length=16, rows_per_domain=40,
        save_steps=1, eval_before_after=False, phase_rewards=[["completion_length_reward"]] * 3,
        trl_args={"save_total_limit": 1, "lr_scheduler_type": "constant", "max_grad_norm": 0.25},
    )
    recorder = RecordArgs()
    result = train(config, model=model, tokenizer=tokenizer, reward_functions={"completion_length_reward": completion_length_reward},
                   callbacks=[recorder], show_progress=False)
    assert recorder.args.lr_scheduler_type == "constant" and recorder.args.max_grad_norm == 0.25
    # save_total_limit=1 (phasegrpo's default keeps 3): of the checkpoints at steps 1 and 2, only the last is left.
    checkpoints = sorted(path.name for path in (result.run_dir / "checkpoints").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-2"]
