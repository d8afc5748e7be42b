"""bf16 autocast of the training passes (Config.training_autocast) against fp32 on one fixed batch of
the tiny model: per-token log-probs, loss, KL and gradient stay within stated tolerances, and the
option really switches the passes to bf16."""

import dataclasses

import pytest
import torch
from scored_batch import trainer_and_scored_batch

# Stated tolerances (tiny model, LoRA B ~ N(0, 0.002)); the embedded 270M's figures are in README "Speed".
MAX_LOGP_DIFF = 0.02
KL_RELATIVE = 0.05
LOSS_ABS = 1e-4
MIN_GRADIENT_COSINE = 0.99


def passes(trainer, inputs, autocast):
    """Reference and policy log-probs on the completion tokens, loss, logged KL and LoRA gradient."""
    trainer.config = dataclasses.replace(trainer.config, training_autocast=autocast)
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    keep, scored = inputs["completion_ids"].size(1), inputs["completion_mask"].bool()
    with torch.no_grad():
        with trainer.model.disable_adapter():
            reference, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, keep)
        policy, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, keep)
    trainer.model.zero_grad()
    loss = trainer._compute_loss(trainer.model, {**inputs, "ref_per_token_logps": reference})
    loss.backward()
    gradient = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
    return reference[scored], policy[scored], float(loss.detach()), trainer._metrics["train"]["kl"][-1], gradient


def test_bf16_autocast_keeps_log_probs_loss_kl_and_gradient_within_tolerance(tmp_path, tiny):
    trainer, inputs = trainer_and_scored_batch(tmp_path, tiny)
    ref32, pol32, loss32, kl32, grad32 = passes(trainer, inputs, "none")
    ref16, pol16, loss16, kl16, grad16 = passes(trainer, inputs, "bfloat16")
    assert not torch.equal(pol32, pol16)  # autocast really changed the arithmetic
    assert (pol32 - pol16).abs().max() < MAX_LOGP_DIFF
    assert (ref32 - ref16).abs().max() < MAX_LOGP_DIFF
    assert kl32 > 0 and abs(kl16 - kl32) < KL_RELATIVE * kl32
    assert loss16 == pytest.approx(loss32, abs=LOSS_ABS)
    assert torch.nn.functional.cosine_similarity(grad32, grad16, dim=0) > MIN_GRADIENT_COSINE

