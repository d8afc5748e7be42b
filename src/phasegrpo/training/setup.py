"""What a run is built from: the training rows (the config's data or the user's own), TRL's
GRPOConfig and PEFT's LoraConfig, all derived from a phasegrpo Config."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from trl import GRPOConfig

from phasegrpo import run_folder, stop_rule
from phasegrpo.config import Config
from phasegrpo.data import COLUMNS, concat_domains, load_mixture
from phasegrpo.data.prompts import add_worked_examples
from phasegrpo.models import resolve_dtype
from phasegrpo.trackers import parse_report_to

logger = logging.getLogger(__name__)


def trained_domains(config: Config) -> list[str]:
    """The domains the mix draws from: a positive weight in domain_weights, in the config's order,
    then (linear mix) the domains it anneals towards from a weight of 0."""
    domains = [domain for domain, weight in config.domain_weights.items() if float(weight) > 0]
    if config.mix_schedule == "linear":
        domains += [domain for domain, weight in config.mix_end_weights.items() if float(weight) > 0 and domain not in domains]
    return domains


def load_training_rows(config: Config):
    """The training dataset and the domain of each of its rows (for the mix sampler)."""
    by_domain = load_mixture(
        trained_domains(config),
        source="synthetic" if config.data_source == "synthetic" else None,
        split="train",
        data_dir=config.data_dir or None,
        limit=config.rows_per_domain or None,
        seed=config.seed,
    )
    if config.worked_example:
        by_domain = {domain: add_worked_examples(rows) for domain, rows in by_domain.items()}
    return concat_domains(by_domain)


# phasegrpo's choices among the GRPOConfig settings it does not own: Config.trl_args may change them.
ADJUSTABLE_DEFAULTS = {"save_total_limit": 3, "log_completions": False}


def user_training_rows(dataset, config: Config):
    """The user's own `datasets.Dataset` of contract rows as training rows, and each row's domain.

    Checked before anything is built: every contract column present, every domain registered,
    and rows for every domain that `domain_weights` draws from (the mix sampler needs them).
    """
    import datasets

    from phasegrpo.domains import domain_names

    if not isinstance(dataset, datasets.Dataset):
        hint = " Pass one split, e.g. dataset['train']." if isinstance(dataset, datasets.DatasetDict) else ""
        raise TypeError(f"dataset must be a datasets.Dataset of contract rows, got {type(dataset).__name__}.{hint}")
    missing = [column for column in COLUMNS if column not in dataset.column_names]
    if missing:
        raise ValueError(
            f"dataset lacks column(s) {missing}; rows need {', '.join(COLUMNS)} (CONTRACT.md: 'A row'). "
            "Add them with dataset.map (tests [] and setup_code '' outside code; source and id say where a row is from)."
        )
    if len(dataset) == 0:
        raise ValueError("dataset has no rows.")
    row_domains = list(dataset["domain"])
    present = sorted(set(row_domains))
    known = domain_names()
    unknown = [domain for domain in present if domain not in known]
    if unknown:
        raise ValueError(
            f"dataset has rows of unknown domain(s) {unknown}; known: {', '.join(known)} "
            "(register your own with phasegrpo.register_domain)."
        )
    drawn = trained_domains(config)
    without_rows = [domain for domain in drawn if domain not in present]
    if without_rows:
        weights = {domain: config.domain_weights[domain] for domain in drawn if domain in present}
        raise ValueError(
            f"domain_weights draws from {without_rows} but dataset has no rows of them (it has {present}). "
            f"Give only the dataset's domains a weight, e.g. domain_weights={weights or dict.fromkeys(present, 1.0)}."
        )
    never_drawn = [domain for domain in present if domain not in drawn]
    if never_drawn:
        logger.warning("dataset rows of %s are never drawn: domain_weights gives them no weight.", never_drawn)
    if config.worked_example:
        dataset = add_worked_examples(dataset)
    return dataset, row_domains


def grpo_args(config: Config, run_dir: Path) -> GRPOConfig:
    """TRL's GRPOConfig for a run of `config` into `run_dir`; `config.trl_args` applied last."""
    settings = {**grpo_settings(config, run_dir), **ADJUSTABLE_DEFAULTS, **config.trl_args}
    settings["generation_kwargs"] = generation_kwargs(config)
    try:
        return GRPOConfig(**settings)
    except (TypeError, ValueError) as error:
        if not config.trl_args:
            raise
        raise ValueError(f"TRL's GRPOConfig refused the settings with trl_args {config.trl_args}: {error}") from error


def generation_kwargs(config: Config) -> dict | str | None:
    """GRPOConfig.generation_kwargs: the `</answer>` stop for vLLM (phasegrpo.stop_rule), with the
    user's trl_args ones on top. transformers' `stop_strings` are not set here: `generate` needs
    the tokenizer for them, which TRL does not pass, so PhaseGRPOTrainer adds them itself and
    this GRPOConfig stays usable with a plain GRPOTrainer."""
    own = stop_rule.generation_kwargs(use_vllm=True) if config.stop_at_answer_end and config.use_vllm else {}
    users = config.trl_args.get("generation_kwargs")
    if isinstance(users, str):  # GRPOConfig also takes them as a JSON string: the user's, as given
        return users
    return {**own, **(users or {})} or None


def grpo_settings(config: Config, run_dir: Path) -> dict:
    """The GRPOConfig settings phasegrpo makes from its own Config fields (phasegrpo.trl_args names them)."""
    on_gpu = torch.cuda.is_available()
    dtype = resolve_dtype(config.dtype)
    per_device_batch = config.prompts_per_step * config.num_generations // config.gradient_accumulation_steps
    return dict(
        output_dir=str(run_dir / run_folder.CHECKPOINTS_DIR),
        max_steps=config.max_steps,
        per_device_train_batch_size=per_device_batch,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_generations=config.num_generations,
        learning_rate=config.learning_rate,
        beta=config.beta,
        epsilon=config.epsilon,
        temperature=config.temperature,
        top_p=config.top_p,
        max_completion_length=config.max_completion_length,
        scale_rewards=config.scale_rewards,
        loss_type=config.loss_type,
        seed=config.seed,
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        report_to=parse_report_to(config.report_to),
        use_cpu=not on_gpu,
        bf16=on_gpu and dtype == torch.bfloat16,
        fp16=on_gpu and dtype == torch.float16,
        gradient_checkpointing=config.gradient_checkpointing,
        use_vllm=config.use_vllm,
        vllm_mode=config.vllm_mode,
        disable_tqdm=True,
        shuffle_dataset=True,
    )


def lora_config(config: Config):
    """PEFT's LoraConfig of the policy adapter."""
    from peft import LoraConfig

    target_modules = config.lora_target_modules
    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=target_modules if target_modules == "all-linear" else target_modules.split(","),
        task_type="CAUSAL_LM",
    )
