"""TRL GRPOConfig settings passed through `Config.trl_args`: which names phasegrpo owns, and
checking the rest when a Config is made.

Every GRPOConfig field is reachable (`--trl lr_scheduler_type=cosine,max_grad_norm=0.5`) except
the few phasegrpo sets from its own Config fields (one name, one flag) or decides itself because
the method depends on it. The values phasegrpo only picks as defaults (`save_total_limit`,
`log_completions`) are not owned: trl_args overrides them (training/setup.py applies it last).
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import types
import typing
from typing import Any

# GRPOConfig field -> the Config field(s) it is built from (training/setup.py `grpo_args`).
FROM_CONFIG_FIELDS: dict[str, tuple[str, ...]] = {
    "output_dir": ("output_dir",),  # checkpoints go to <output_dir>/checkpoints
    "max_steps": ("max_steps",),
    "per_device_train_batch_size": ("prompts_per_step", "num_generations", "gradient_accumulation_steps"),
    "gradient_accumulation_steps": ("gradient_accumulation_steps",),
    "num_generations": ("num_generations",),
    "learning_rate": ("learning_rate",),
    "beta": ("beta",),
    "epsilon": ("epsilon",),
    "temperature": ("temperature",),
    "top_p": ("top_p",),
    "max_completion_length": ("max_completion_length",),
    "scale_rewards": ("scale_rewards",),
    "loss_type": ("loss_type",),
    "seed": ("seed",),
    "logging_steps": ("logging_steps",),
    "save_steps": ("save_steps",),
    "report_to": ("report_to",),
    "bf16": ("dtype",),
    "fp16": ("dtype",),
    "gradient_checkpointing": ("gradient_checkpointing",),
    "use_vllm": ("use_vllm",),
    "vllm_mode": ("vllm_mode",),
    "reward_weights": ("reward_weights",),  # TRL sees one reward function, the router
}

# GRPOConfig fields phasegrpo decides because the method relies on them -> why.
DECIDED_BY_PHASEGRPO: dict[str, str] = {
    "use_cpu": "it follows whether torch sees a GPU; hide the GPUs (CUDA_VISIBLE_DEVICES=) to train on the CPU",
    "save_strategy": "checkpoints are written every save_steps (--save-steps), on Ctrl-C and at the end, for --resume",
    "shuffle_dataset": "rows are drawn by the domain-mix sampler (--domain-weights, --mix-schedule, --seed)",
    "remove_unused_columns": "the router reads each row's domain, answer, tests and setup_code columns",
    "disable_tqdm": "phasegrpo draws its own progress bar",
}


# The values TRL 1.16 accepts for the GRPOConfig settings phasegrpo passes on by name
# (`GRPOConfig.loss_type`'s help, `GRPOTrainer._compute_loss`; `vllm_mode`'s help). TRL itself
# checks loss_type only at the first loss, minutes into a run; Config checks these on construction.
LOSS_TYPES = ("dapo", "grpo", "dr_grpo", "bnpo", "cispo", "sapo", "luspo", "vespo")
VLLM_MODES = ("colocate", "server")


# Names users carry over from older transformers versions -> what to write now.
RENAMED: dict[str, str] = {
    "warmup_ratio": "warmup_steps=<fraction> (transformers 5: a warmup_steps below 1 is a fraction of max_steps)",
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def trl_args_problems(trl_args: dict) -> list[str]:
    """What is wrong with `trl_args`: unknown names (with close ones), names phasegrpo owns
    (with the flag to use instead), values of the wrong type. Empty when all is well."""
    if not trl_args:
        return []
    # Imported only here: TRL is heavy, and a Config without trl_args does not need it.
    from trl import GRPOConfig

    fields = {field.name: field for field in dataclasses.fields(GRPOConfig) if field.init}
    try:  # the annotations as types, also where a module writes them as strings
        types_by_name = typing.get_type_hints(GRPOConfig)
    except Exception:  # an annotation that cannot be resolved: check only the ones that are types
        types_by_name = {name: field.type for name, field in fields.items()}
    problems = []
    for name, value in trl_args.items():
        if name in FROM_CONFIG_FIELDS:
            own = FROM_CONFIG_FIELDS[name]
            problems.append(
                f"trl_args sets {name!r}, which phasegrpo sets from its own config: use "
                f"{' / '.join(_flag(field) for field in own)} (Config.{', Config.'.join(own)}) instead."
            )
        elif name in DECIDED_BY_PHASEGRPO:
            problems.append(f"trl_args sets {name!r}, which phasegrpo decides: {DECIDED_BY_PHASEGRPO[name]}.")
        elif name not in fields:
            close = [RENAMED[name]] if name in RENAMED else difflib.get_close_matches(name, list(fields), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            problems.append(f"trl_args has {name!r}, which is not a field of TRL's GRPOConfig.{hint}")
        elif not _accepts(types_by_name.get(name), value):
            problems.append(
                f"trl_args {name}={value!r} ({type(value).__name__}) does not fit GRPOConfig.{name}, "
                f"which takes {_type_name(types_by_name[name])}."
            )
    return problems


def _accepts(annotation: Any, value: Any) -> bool:
    """Whether `value` fits a dataclass field annotation (unions, Optional, Literal, enums, builtins);
    annotations it cannot read are accepted, and GRPOConfig itself checks the value at train()."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(arm, value) for arm in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if origin is not None:  # list[float] -> list, dict[str, Any] -> dict
        annotation = origin
    if not isinstance(annotation, type):
        return True
    if annotation is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):  # a bool is an int to Python, never a number to a config
        return False
    if annotation is float:
        return isinstance(value, (int, float))
    if issubclass(annotation, enum.Enum):
        return isinstance(value, annotation) or value in {member.value for member in annotation}
    return isinstance(value, annotation)


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")
