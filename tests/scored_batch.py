"""A PhaseGRPOTrainer on the tiny model with one scored batch (2 prompts x 4 rollouts) and a LoRA
moved off the reference (small random B, so KL > 0): the fixture of the log-prob pass tests."""

from __future__ import annotations

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
