"""Trackers: report_to names checked, a missing package caught before any work, and what a
tracker receives: TensorBoard for real (event files), wandb and trackio through stand-in modules."""

import json
import sys
import types
from unittest import mock

import pytest
from test_training import completion_length_reward, tiny_config
from transformers import TrainerControl, TrainerState, TrainingArguments

from phasegrpo.config import Config
from phasegrpo.training import train
from phasegrpo.training.callbacks import ConfigToTrackers


@pytest.mark.parametrize("report_to, message", [
    ("wandbb", r"unknown tracker\(s\) \['wandbb'\]; supported: none, tensorboard, trackio, wandb"),
    ("tensorboard,mlflow", r"unknown tracker\(s\) \['mlflow'\]"),
    ("none,wandb", "mixes 'none' with trackers"),
])
def test_config_refuses_unknown_trackers(report_to, message):
    with pytest.raises(ValueError, match=message):
        Config(report_to=report_to)


@pytest.mark.parametrize("report_to", ["none", "", "tensorboard", "wandb,trackio", "tensorboard, wandb"])
def test_config_accepts_supported_trackers_installed_or_not(report_to):
    assert Config(report_to=report_to).report_to == report_to


@pytest.mark.parametrize("tracker", ["wandb", "trackio", "tensorboard"])
def test_a_missing_tracker_package_fails_before_the_run_folder_with_the_pip_command(tmp_path, monkeypatch, tracker):
    monkeypatch.setitem(sys.modules, tracker, None)  # import machinery's "not installed"
    config = tiny_config(tmp_path, report_to=tracker)
    with pytest.raises(ImportError, match=rf"report_to '{tracker}' needs the {tracker} package: pip install 'phasegrpo\[{tracker}\]'"):
        train(config, model=object(), tokenizer=object(), show_progress=False)
    assert not (tmp_path / "run").exists()


def call_train_begin(callback, report_to):
    args = TrainingArguments(output_dir="unused", report_to=report_to, use_cpu=True)
    callback.on_train_begin(args, TrainerState(), TrainerControl())


@pytest.mark.parametrize("tracker", ["wandb", "trackio"])
def test_the_config_reaches_the_run_config_of_wandb_and_trackio(monkeypatch, tracker):
    module = types.SimpleNamespace(run=object(), config=mock.MagicMock())
    monkeypatch.setitem(sys.modules, tracker, module)
    config = Config(report_to=tracker, domain_weights={"math": 0.5, "code": 0.5}, phase_boundaries=[0.1, 0.6])
    call_train_begin(ConfigToTrackers(config, []), [tracker])
    module.config.update.assert_called_once_with({"phasegrpo": config.to_dict()}, allow_val_change=True)
    assert module.config.update.call_args.args[0]["phasegrpo"]["phase_boundaries"] == [0.1, 0.6]


def test_trackers_not_in_report_to_are_left_alone(monkeypatch):
    module = types.SimpleNamespace(run=object(), config=mock.MagicMock())
    monkeypatch.setitem(sys.modules, "wandb", module)
    call_train_begin(ConfigToTrackers(Config(report_to="trackio"), []), [])
    module.config.update.assert_not_called()


def test_tensorboard_event_files_carry_the_curves_the_phase_and_the_config(tmp_path, tiny):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model, tokenizer = tiny
    config = tiny_config(tmp_path, report_to="tensorboard")
    result = train(config, model=model, tokenizer=tokenizer,
                   reward_functions={"completion_length_reward": completion_length_reward}, show_progress=False)

    # transformers' TensorBoardCallback writes under the Trainer's output_dir: <run>/checkpoints/runs/<date_host>/
    event_dirs = {path.parent for path in (result.run_dir / "checkpoints" / "runs").glob("*/events.out.tfevents.*")}
    assert len(event_dirs) == 1
    events = EventAccumulator(str(event_dirs.pop()), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    # transformers prefixes training logs with "train/"
    assert {"train/phase", "train/reward", "train/rewards/punish_refusal/raw", "train/rewards/completion_length_reward/contribution"} <= scalars
    domains = {tag.split("/")[2] for tag in scalars if tag.startswith("train/domain/") and tag.endswith("/reward")}
    assert domains and domains <= {"math", "code", "science", "logic"}
    assert any(tag.startswith("train/rewards/punish_refusal/") and tag.endswith("/raw") and tag.count("/") == 4 for tag in scalars)
    assert [(event.step, event.value) for event in events.Scalars("train/phase")] == [(1, 0.0), (2, 1.0)]

    text_tags = events.Tags()["tensors"]
    assert "phasegrpo/config/text_summary" in text_tags
    text = events.Tensors("phasegrpo/config/text_summary")[0].tensor_proto.string_val[0].decode()
    saved = json.loads("\n".join(line.removeprefix("    ") for line in text.splitlines()))
    assert saved == json.loads((result.run_dir / "config.json").read_text())
    assert saved["phase_rewards"][0] == ["punish_refusal", "completion_length_reward"] and saved["report_to"] == "tensorboard"
