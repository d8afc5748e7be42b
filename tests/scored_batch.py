"""A PhaseGRPOTrainer on the tiny model with one scored batch (2 prompts x 4 rollouts) and a LoRA
moved off the reference (small random B, so KL > 0): the fixture of the log-prob pass tests."""

from __future__ import annotations

import dataclasses

import torch

from phasegrpo.config import preset
from phasegrpo.data import make_mix_schedule
from phasegrpo.models import declare_end_of_turn
from phasegrpo.router import RewardRouter
from phasegrpo.training.setup import grpo_args, load_training_rows, lora_config
from phasegrpo.training.trainer import PhaseGRPOTrainer


def trainer_and_scored_batch(tmp_path, tiny, **config_overrides):
    """(trainer in train mode, TRL's scored batch of rows 0 and 1, four rollouts each)."""
    model, tokenizer = tiny
    config = preset("demo", model="tiny", output_dir=str(tmp_path), max_completion_length=24, rows_per_domain=8,
                    rollout_dtype="float32", **config_overrides)
    declare_end_of_turn(model, tokenizer)
    rows, row_domains = load_training_rows(config)
    router = RewardRouter.from_config(config)
    trainer = PhaseGRPOTrainer(
        model=model, processing_class=tokenizer, reward_funcs=[router], args=grpo_args(config, tmp_path),
        train_dataset=rows, peft_config=lora_config(config), router=router, row_domains=row_domains,
        mix_schedule=make_mix_schedule("constant", config.domain_weights), config=config,
    )
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in trainer.model.named_parameters():
            if "lora_B" in name:  # a policy that has moved away from the reference: KL > 0
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.002)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    return trainer, trainer._generate_and_score_completions([rows[i] for i in (0, 0, 0, 0, 1, 1, 1, 1)])


def log_prob_passes(trainer, inputs, **config_overrides) -> dict:
    """With `config_overrides`: the reference (in chunks of 4 rows) and policy log-probs, the policy's
    entropies (scored tokens only), the GRPO loss, the logged KL and the LoRA gradient."""
    trainer.config = dataclasses.replace(trainer.config, **config_overrides)
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    keep, scored = inputs["completion_ids"].size(1), inputs["completion_mask"].bool()
    with torch.no_grad():
        with trainer.model.disable_adapter():
            reference, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, keep, batch_size=4)
        policy, entropy, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, keep, compute_entropy=True)
    trainer.model.zero_grad()
    loss = trainer._compute_loss(trainer.model, {**inputs, "ref_per_token_logps": reference})
    loss.backward()
    return {
        "reference": reference[scored], "policy": policy[scored], "entropy": entropy[scored], "loss": float(loss.detach()),
        "kl": trainer._metrics["train"]["kl"][-1],
        "gradient": torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None]),
    }
