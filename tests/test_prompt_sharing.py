"""Prompt sharing in the log-prob passes (Config.share_prompt_prefix): each distinct prompt runs once,
and the reference log-probs, policy log-probs, entropies, loss and LoRA gradient are the full
forward's within float rounding, on prompts longer than the tiny model's sliding window."""


import pytest
import torch
from scored_batch import log_prob_passes, trainer_and_scored_batch

from phasegrpo import prompt_sharing

# fp32 on the tiny model: only the order of float additions differs between the two paths.
MAX_LOGP_DIFF = 1e-4
LOSS_ABS = 1e-6
GRADIENT_RELATIVE = 1e-3


def test_prompt_groups_finds_rows_with_identical_prompt_and_padding():
    ids = torch.tensor([[0, 5, 6], [0, 5, 6], [7, 8, 9], [0, 5, 6], [7, 8, 9]])
    mask = torch.tensor([[0, 1, 1], [0, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]])  # row 3: same ids, no padding
    first_row, group_of_row = prompt_groups = prompt_sharing.prompt_groups(ids, mask)
    assert len(first_row) == 3
    assert torch.equal(ids[first_row][group_of_row], ids) and torch.equal(mask[first_row][group_of_row], mask)
    assert group_of_row[0] == group_of_row[1] == group_of_row[first_row[group_of_row[0]]]
    assert len({int(g) for g in group_of_row[[0, 2, 3]]}) == 3, prompt_groups


def test_shares_prompts_only_when_two_rows_share_a_prompt_of_two_tokens():
    ids = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 5]])
    mask = torch.ones_like(ids)
    assert prompt_sharing.shares_prompts(ids, mask, logits_to_keep=1)
    assert not prompt_sharing.shares_prompts(ids, mask, logits_to_keep=3)  # one-token prompt: nothing to save
    assert not prompt_sharing.shares_prompts(torch.tensor([[1, 2, 3, 4], [9, 2, 3, 5]]), mask, logits_to_keep=1)


def count_backbone_tokens(trainer):
    """A list that collects the number of token positions each backbone forward embeds."""
    seen = []
    embeddings = trainer.model.get_base_model().get_input_embeddings()
    embeddings.register_forward_hook(lambda module, args, output: seen.append(args[0].numel()))
    return seen


def test_sharing_prompts_gives_the_full_forward_log_probs_loss_and_gradient(tmp_path, tiny):
    trainer, inputs = trainer_and_scored_batch(tmp_path, tiny, training_autocast="none")
    prompt_length = inputs["prompt_ids"].size(1)
    assert prompt_length > trainer.model.config.sliding_window  # the sliding-window layers see a cut cache
    seen = count_backbone_tokens(trainer)
    full = log_prob_passes(trainer, inputs, share_prompt_prefix=False)
    tokens_full, seen[:] = sum(seen), []
    shared = log_prob_passes(trainer, inputs, share_prompt_prefix=True)
    tokens_shared = sum(seen)

    # 8 rows of 2 prompts: each pass embeds 2 prompts + 8 completions instead of 8 whole rows.
    rows, completion_length = inputs["completion_ids"].shape
    assert tokens_full == 3 * rows * (prompt_length + completion_length)
    assert tokens_shared == 3 * (2 * (prompt_length - 1) + rows * (completion_length + 1))
    assert not torch.equal(full["policy"], shared["policy"]) or not torch.equal(full["reference"], shared["reference"])  # another path
    for name in ("reference", "policy", "entropy"):
        assert (full[name] - shared[name]).abs().max() < MAX_LOGP_DIFF, name
    # The LoRA moved the policy: the check can tell the two apart.
    assert (full["policy"] - full["reference"]).abs().max() > 10 * MAX_LOGP_DIFF
    assert shared["loss"] == pytest.approx(full["loss"], abs=LOSS_ABS)
    assert shared["kl"] == pytest.approx(full["kl"], rel=1e-4)
    assert (full["gradient"] - shared["gradient"]).norm() < GRADIENT_RELATIVE * full["gradient"].norm()


def test_no_sharing_with_gradient_checkpointing(tmp_path, tiny):
    trainer, _ = trainer_and_scored_batch(tmp_path, tiny, training_autocast="none")
    assert trainer.share_prompts_in(trainer.model)
    trainer.args.gradient_checkpointing = True
    assert not trainer.share_prompts_in(trainer.model)


def test_a_backbone_that_keeps_no_cache_gets_the_full_forward(tmp_path, tiny):
    trainer, inputs = trainer_and_scored_batch(tmp_path, tiny, training_autocast="none")
    expected = log_prob_passes(trainer, inputs, share_prompt_prefix=False)
    backbone = trainer.model.get_base_model().base_model
    original = backbone.forward

    def without_cache(*args, **kwargs):
        output = original(*args, **kwargs)
        output.cache = None
        return output

    backbone.forward = without_cache
    fallen_back = log_prob_passes(trainer, inputs, share_prompt_prefix=True)
    for name, want in expected.items():
        assert fallen_back[name] == want if isinstance(want, float) else torch.equal(fallen_back[name], want), name
