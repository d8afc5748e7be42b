"""PhaseGRPOTrainer: TRL's GRPOTrainer with sampling-time domain mixing, fast CPU rollouts, the
`</answer>` stop ending every completion with the end of turn (phasegrpo.stop_rule),
per-domain KL coefficients, and the curriculum's schedule fed and checkpointed.

It implements the hooks of `trl_compat.TRLSeams`; nothing here touches TRL's internals. The
trainer owns the domain-mix sampler and the phase schedule, and feeds both at every
generation step with the metrics TRL has just averaged across processes.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from pathlib import Path

import torch

from phasegrpo import metric_keys, run_folder
from phasegrpo.config import Config
from phasegrpo.data import DomainMixSampler, MixSchedule
from phasegrpo.generation import sample_completions
from phasegrpo.model_card import set_portable_base
from phasegrpo.models import end_of_turn_id
from phasegrpo.rollout_copy import ROLLOUT_DTYPES, RolloutCopy
from phasegrpo.router import RewardRouter
from phasegrpo.stop_rule import STOP_TEXT, end_completions, without_forced_end_tokens
from phasegrpo.training import distributed, domain_kl
from phasegrpo.training.trl_compat import TRLSeams

logger = logging.getLogger(__name__)


class PhaseGRPOTrainer(TRLSeams):
    """GRPO with the phase curriculum; see the module docstring."""

    def __init__(
        self, *args, router: RewardRouter, row_domains: list[str], mix_schedule: MixSchedule, config: Config,
        sampler_state: dict | None = None, **kwargs,
    ):
        self.router = router
        self.row_domains = row_domains
        self.mix_schedule = mix_schedule
        self.config = config
        self.mix_sampler: DomainMixSampler | None = None
        self.sampler_state = sampler_state  # a checkpoint's sampler, restored when the sampler is built
        self.rollout_copy = RolloutCopy(ROLLOUT_DTYPES[config.rollout_dtype]) if config.rollout_dtype != "model" else None
        super().__init__(*args, **kwargs)
        # The router's per-domain means are over every rank's completions (a no-op on one process).
        self.router.totals_across_processes = distributed.sum_across_processes
        if config.stop_at_answer_end:
            self.stop_generate_at([STOP_TEXT])

    @property
    def kl_domains(self) -> tuple[str, ...]:
        """The domains the KL is logged for (each registered one; anything else is "other")."""
        from phasegrpo.domains import domain_names

        return tuple(domain_names())

    # --- sampling ------------------------------------------------------------------------------
    def build_train_sampler(self) -> DomainMixSampler:
        # Same repeat structure as TRL's RepeatSampler, domain-mixed draws.
        self.mix_sampler = DomainMixSampler(
            self.row_domains,
            self.mix_schedule,
            mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            seed=self.args.seed,
            progress_of_chunk=self.chunk_progress,
            # A chunk is drawn while the one before it is being trained on, before it is scored.
            reward_lag=1,
        )
        if self.sampler_state is not None:
            # The Trainer replays the skipped batches of the resumed epoch unless told not to.
            self.mix_sampler.load_state_dict(self.sampler_state, trainer_skips_batches=not self.args.ignore_data_skip)
            self.sampler_state = None
        return self.mix_sampler

    # --- chunks (generation batches) and optimizer steps ------------------------------------------
    @property
    def batches_per_chunk(self) -> int:
        """Dataloader batches per sampler chunk: TRL repeats a generation batch this often."""
        return self.num_iterations * self.args.steps_per_generation

    def chunk_at_step(self, global_step: int) -> int:
        """The number of the chunk the optimizer step after `global_step` trains on."""
        return global_step * self.args.gradient_accumulation_steps // self.batches_per_chunk

    def chunk_progress(self, chunk: int) -> float:
        """Training progress when chunk `chunk` starts being trained on, as the phase schedule counts it."""
        step = chunk * self.batches_per_chunk // self.args.gradient_accumulation_steps  # the step it is generated in
        return self.router.schedule.fraction(step, self.args.max_steps)

    def generate_rollouts(self, prompt_ids):
        if not self.config.fast_cpu_generation or self.use_vllm:
            return None
        from trl.models import unwrap_model_for_generation

        # Seeded by step, so a resumed run draws the same rollouts it would have drawn.
        generator = torch.Generator(device=self.accelerator.device).manual_seed(
            self.args.seed * 1_000_003 + self.state.global_step * 101 + self.accelerator.process_index
        )
        with unwrap_model_for_generation(self.model_wrapped, self.accelerator) as unwrapped_model:
            return sample_completions(
                self.rollout_copy.model_for(unwrapped_model) if self.rollout_copy is not None else unwrapped_model,
                prompt_ids,
                max_new_tokens=self.max_completion_length,
                temperature=self.temperature,
                top_p=self.top_p,
                end_token_ids=self.eos_token_ids,
                pad_token_id=self.tokenizer.pad_token_id,
                tokenizer=self.tokenizer if self.config.stop_at_answer_end else None,
                stop_token_id=end_of_turn_id(self.tokenizer),
                generator=generator,
            )

    def finish_rollouts(self, completion_ids, logprobs):
        # TRL's generate / vLLM stop at `</answer>` without an end token (stop_rule): add it here.
        if not self.config.stop_at_answer_end:
            return completion_ids, logprobs
        return end_completions(
            completion_ids, logprobs, tokenizer=self.tokenizer, end_token_ids=self.eos_token_ids,
            stop_token_id=end_of_turn_id(self.tokenizer),
        )

    def share_prompts_in(self, model) -> bool:
        if not self.config.share_prompt_prefix or self.args.gradient_checkpointing:
            return False  # a checkpointed layer would update the shared cache again when it recomputes
        if self.is_deepspeed_enabled or self.is_fsdp_enabled:
            return False  # their wrappers expect one forward per backward
        # DDP's wrapper too: the reference pass gets the bare model, the policy pass the wrapped one.
        return self.accelerator.unwrap_model(model) is model

    def log_prob_precision(self):
        if self.config.training_autocast == "bfloat16" and self.accelerator.device.type == "cpu":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return nullcontext()

    # --- curriculum: the sampler and the schedule see every step ---------------------------------
    def after_scoring(self, inputs, output, step_metrics) -> None:
        if self.config.stop_at_answer_end:
            scored = without_forced_end_tokens(
                output["completion_ids"], output["completion_mask"], tokenizer=self.tokenizer,
                stop_token_id=end_of_turn_id(self.tokenizer),
            )
            # The loss divides by the scored tokens of all processes' batches: drop the unscored ones there too.
            unscored = (output["completion_mask"] - scored).sum()
            output["num_items_in_batch"] = output["num_items_in_batch"] - self.accelerator.gather(unscored).sum()
            output["completion_mask"] = scored
        if self.beta != 0.0:
            domains = [row.get("domain") for row in inputs]
            device = output["advantages"].device
            output["kl_beta"] = domain_kl.kl_betas_for(domains, self.config.domain_betas, self.beta).to(device)
            output["kl_domain_index"] = torch.tensor([domain_kl.domain_index(d, self.kl_domains) for d in domains], device=device)
        if not self.model.training:
            return
        # Every rank takes the same transition at the same step: the metrics are already global.
        self.router.schedule.observe(self.state.global_step, step_metrics)
        if self.mix_sampler is not None:
            # The weights this batch was drawn with (the sampler has drawn further ahead by now).
            weights = self.mix_sampler.weights_of_chunk(self.chunk_at_step(self.state.global_step))
            for domain, weight in weights.items():
                self.record_metric(metric_keys.mix_weight(domain), weight)
            self.mix_sampler.observe_rewards(unscaled_domain_rewards(step_metrics, self.router))

    # --- per-domain KL -----------------------------------------------------------------------------
    def kl_betas(self, inputs):
        return inputs.get("kl_beta")

    def kl_computed(self, per_token_kl, inputs) -> None:
        mask = inputs["completion_mask"] if "tool_mask" not in inputs else inputs["completion_mask"] * inputs["tool_mask"]
        local = domain_kl.kl_sums_by_domain(per_token_kl, mask, inputs["kl_domain_index"], len(self.kl_domains))
        totals = self.accelerator.reduce(local, reduction="sum")  # every rank calls this: same shape everywhere
        for name, value in domain_kl.domain_kl_metrics(totals, self.kl_domains).items():
            self.record_metric(name, value)

    # --- checkpoints -------------------------------------------------------------------------------
    def checkpoint_saved(self, folder: Path) -> None:
        # TRLSeams calls this after every rank has written its part (RNG state, shards).
        self.router.schedule.save(folder)
        self.save_sampler_state(folder)
        set_portable_base(folder, self.config)  # the checkpoint's adapter names the base as the final one does
        run_folder.mark_complete(folder)  # last: only a fully written checkpoint is resumable

    def save_sampler_state(self, folder: Path) -> None:
        """The mix sampler as it stands before the next step's chunk, so a resume draws on from there."""
        if self.mix_sampler is None:
            return
        try:
            state = self.mix_sampler.state_dict(self.chunk_at_step(self.state.global_step))
        except ValueError as error:  # drawn too far ahead: the checkpoint is still good, its resume less exact
            logger.warning("Checkpoint %s has no sampler state, a resume will restart the domain mix: %s", folder, error)
            return
        run_folder.write_json_atomic(Path(folder) / run_folder.SAMPLER_STATE_FILE, state)


def unscaled_domain_rewards(step_metrics: dict[str, float], router: RewardRouter) -> dict[str, float]:
    """Each domain's mean reward before the domain scale: the weighted raw rewards of the phase.

    The adaptive mix compares domains by these; the scaled totals would make it chase the
    domain scales instead of the difficulty (docs/data.md).
    """
    phase = int(round(step_metrics.get(metric_keys.PHASE, 0)))
    totals: dict[str, float] = {}
    for name, value in step_metrics.items():
        key = metric_keys.parse(name)
        if key is not None and key.kind == "reward_by_domain" and key.part == "raw":
            totals[key.domain] = totals.get(key.domain, 0.0) + router.weight(key.name, phase) * value
    return totals
