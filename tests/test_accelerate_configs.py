"""The accelerate configs in accelerate_configs/ (DDP, DeepSpeed ZeRO-2 and ZeRO-3, FSDP) load
with accelerate's own classes, turn into the launch environment accelerate would give the
processes, and that environment builds accelerate's DeepSpeed / FSDP plugin with the settings
phasegrpo relies on. The README's multi-GPU commands name these files and parse as written.
(The DDP config also runs for real on 2 CPU processes in tests/test_multiprocess.py.)"""

import os
import re
import shlex
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DistributedType
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

from phasegrpo.training import distributed

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "accelerate_configs"
EXPECTED_TYPES = {
    "ddp.yaml": DistributedType.MULTI_GPU, "zero2.yaml": DistributedType.DEEPSPEED,
    "zero3.yaml": DistributedType.DEEPSPEED, "fsdp.yaml": DistributedType.FSDP,
}


def launch_environment(config_file: Path, *extra: str) -> dict[str, str]:
    """The environment `accelerate launch --config_file ... -m phasegrpo train` gives each process."""
    args = launch_command_parser().parse_args(["--config_file", str(config_file), *extra, "-m", "phasegrpo", "train", "--preset", "seed"])
    args, defaults, _ = _validate_launch_command(args)
    if args.use_deepspeed:
        args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)  # as launch_command does
        return prepare_deepspeed_cmd_env(args)[1]
    return prepare_multi_gpu_env(args)


def test_every_config_is_shipped_and_loads_with_accelerate():
    assert sorted(path.name for path in CONFIGS.glob("*.yaml")) == sorted(EXPECTED_TYPES)
    for name, distributed_type in EXPECTED_TYPES.items():
        config = load_config_from_file(str(CONFIGS / name))  # unknown keys raise here
        assert config.distributed_type == distributed_type, name
        assert config.num_machines == 1 and config.num_processes == 8 and not config.use_cpu


@pytest.mark.parametrize("name, stage, gathers_on_save", [("zero2.yaml", "2", None), ("zero3.yaml", "3", "true")])
def test_deepspeed_configs_build_the_plugin_phasegrpo_needs(monkeypatch, name, stage, gathers_on_save):
    from accelerate.utils import DeepSpeedPlugin

    environment = launch_environment(CONFIGS / name)
    assert environment["ACCELERATE_USE_DEEPSPEED"] == "true" and environment["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == stage
    # every rank loads the whole base model: the evaluation before training generates with it
    assert environment["ACCELERATE_DEEPSPEED_ZERO3_INIT"] == "false"
    assert environment.get("ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL") == gathers_on_save
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    plugin = DeepSpeedPlugin()
    assert plugin.zero_stage == int(stage)
    assert plugin.deepspeed_config["gradient_accumulation_steps"] == "auto"  # taken from --gradient-accumulation-steps
    # and phasegrpo, launched so without deepspeed installed, says how to install it
    monkeypatch.setattr(distributed, "_is_installed", lambda package: False)
    with pytest.raises(ValueError, match=r"pip install -e \"\.\[deepspeed\]\""):
        distributed.check_backend_installed({}, environment)


def test_fsdp_config_builds_a_plugin_that_saves_the_adapter_whole(monkeypatch):
    from accelerate.utils import FullyShardedDataParallelPlugin

    environment = launch_environment(CONFIGS / "fsdp.yaml")
    assert environment["ACCELERATE_USE_FSDP"] == "true" and environment["FSDP_SYNC_MODULE_STATES"] == "true"
    assert environment["FSDP_CPU_RAM_EFFICIENT_LOADING"] == "false"
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FSDP_SYNC_MODULE_STATES", "false")  # the plugin refuses it on a machine without GPUs
    plugin = FullyShardedDataParallelPlugin()
    assert "FULL_STATE_DICT" in str(plugin.state_dict_type)  # transformers' save_model writes the adapter only then
    assert plugin.use_orig_params  # LoRA's trainable and frozen parameters share FSDP units
    assert plugin.auto_wrap_policy is not None


def test_ddp_config_launches_torchrun_processes():
    environment = launch_environment(CONFIGS / "ddp.yaml", "--num_processes", "2")
    assert environment["ACCELERATE_MIXED_PRECISION"] == "bf16"
    assert "ACCELERATE_USE_DEEPSPEED" not in environment and "ACCELERATE_USE_FSDP" not in environment


def readme_launch_commands() -> list[str]:
    section = (ROOT / "README.md").read_text().split("### Multi-GPU", 1)[1].split("\n## ", 1)[0]
    return [line.split("#")[0].strip() for line in section.splitlines() if line.startswith("accelerate launch")]


def test_the_readmes_multi_gpu_commands_name_shipped_files_and_parse():
    from phasegrpo.cli import build_parser

    commands = readme_launch_commands()
    named = set()
    assert len(commands) >= 4
    for command in commands:
        words = shlex.split(command)[2:]  # after "accelerate launch"
        module_at = words.index("-m")
        assert words[module_at + 1] == "phasegrpo", command
        launch_args = launch_command_parser().parse_args([*words[:module_at], "-m", "phasegrpo"])
        if launch_args.config_file:
            assert (ROOT / launch_args.config_file).is_file(), command
            named.add(Path(launch_args.config_file).name)
        train_args = build_parser().parse_args(words[module_at + 2:])
        if train_args.config:
            assert (ROOT / train_args.config).is_file(), command
    assert named == set(EXPECTED_TYPES)
    example = (ROOT / "examples" / "seed_8gpu_deepspeed.py").read_text()
    assert re.search(r"--config_file accelerate_configs/zero2\.yaml", example)
    assert os.path.isfile(CONFIGS / "zero2.yaml")
