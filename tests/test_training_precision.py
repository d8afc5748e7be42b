"""bf16 autocast of the training passes (Config.training_autocast) against fp32 on one fixed batch of
the tiny model: per-token log-probs, loss, KL and gradient stay within stated tolerances, and the
option really switches the passes to bf16."""


import pytest
import torch
from scored_batch import log_prob_passes, trainer_and_scored_batch

# Stated tolerances (tiny model, LoRA B ~ N(0, 0.002)); the embedded 270M's figures are in README "Speed".
MAX_LOGP_DIFF = 0.02
KL_RELATIVE = 0.05
LOSS_ABS = 1e-4
MIN_GRADIENT_COSINE = 0.99


def test_bf16_autocast_keeps_log_probs_loss_kl_and_gradient_within_tolerance(tmp_path, tiny):
    trainer, inputs = trainer_and_scored_batch(tmp_path, tiny)
    fp32 = log_prob_passes(trainer, inputs, training_autocast="none")
    bf16 = log_prob_passes(trainer, inputs, training_autocast="bfloat16")
    assert not torch.equal(fp32["policy"], bf16["policy"])  # autocast really changed the arithmetic
    assert (fp32["policy"] - bf16["policy"]).abs().max() < MAX_LOGP_DIFF
    assert (fp32["reference"] - bf16["reference"]).abs().max() < MAX_LOGP_DIFF
    assert fp32["kl"] > 0 and abs(bf16["kl"] - fp32["kl"]) < KL_RELATIVE * fp32["kl"]
    assert bf16["loss"] == pytest.approx(fp32["loss"], abs=LOSS_ABS)
    assert torch.nn.functional.cosine_similarity(fp32["gradient"], bf16["gradient"], dim=0) > MIN_GRADIENT_COSINE

