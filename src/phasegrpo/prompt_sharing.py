"""Completion log-probs for a batch whose rows share prompts, each distinct prompt run once.

GRPO scores `num_generations` completions of every prompt, and TRL runs each row's whole
prompt + completion through the model in every log-prob pass (reference, policy forward and
so the backward). With worked-example prompts of ~200-340 tokens and completions of ~40-128,
most of what those passes compute is the same prompt four times over. Here each distinct
prompt (all but its last token) runs through the backbone once with a KV cache, the cache is
copied to the rows that share it, and each row's last prompt token and completion run on top.
Token positions and attention masks are those of the full forward, so the log-probs are the
same up to floating-point summation order; gradients reach the prompt through the shared cache.
On a CPU the LM head's log-probs come from `phasegrpo.token_log_probs` (the same function as
TRL's fused head, computed for a CPU); elsewhere from TRL's fused head.
"""

from __future__ import annotations

import torch

from phasegrpo.token_log_probs import token_log_probs


def prompt_groups(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first row of each distinct prompt, the distinct prompt of each row): rows share a prompt
    when their prompt ids and padding are identical."""
    keys = torch.cat([prompt_ids, prompt_mask.to(prompt_ids.dtype)], dim=1)
    _, group_of_row = torch.unique(keys, dim=0, return_inverse=True)
    rows = torch.arange(len(group_of_row), device=group_of_row.device)
    first_row = torch.full((int(group_of_row.max()) + 1,), len(group_of_row), device=group_of_row.device)
    first_row = first_row.scatter_reduce(0, group_of_row, rows, reduce="amin")
    return first_row, group_of_row


def cache_of(outputs):
    """The KV cache a model's forward returned, or None."""
    cache = getattr(outputs, "cache", None)  # transformers 5 name; `past_key_values` before
    return cache if cache is not None else getattr(outputs, "past_key_values", None)


def shares_prompts(input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int) -> bool:
    """Whether at least two rows share a prompt of two or more tokens (else there is nothing to save)."""
    prompt_length = input_ids.size(1) - logits_to_keep
    if prompt_length < 2 or input_ids.size(0) < 2:
        return False
    first_row, _ = prompt_groups(input_ids[:, :prompt_length], attention_mask[:, :prompt_length])
    return len(first_row) < input_ids.size(0)


def completion_log_probs(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, logits_to_keep: int,
                         compute_entropy: bool, *, temperature: float,
                         head_in_float32: bool = False) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """Per-token log-probs (and entropies) of the last `logits_to_keep` tokens of each row, as
    `model(input_ids, attention_mask, labels=..., fused_lm_head=True)` gives them (TRL's fused LM
    head, added by `trl.trainer.utils.add_fused_lm_head` with `temperature` and
    `cast_lm_head_to_fp32=head_in_float32`), with each distinct prompt computed once; zero where a row is padding.

    `model` is a causal LM (or a PEFT model around one) whose backbone takes a KV cache; None
    when its backbone returns none.
    """
    prompt_length = input_ids.size(1) - logits_to_keep
    first_row, group_of_row = prompt_groups(input_ids[:, :prompt_length], attention_mask[:, :prompt_length])
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    # The prompt up to its last token: the last one's hidden state predicts the first completion token.
    shared = inner.base_model(
        input_ids=input_ids[first_row, : prompt_length - 1],
        attention_mask=attention_mask[first_row, : prompt_length - 1],
        use_cache=True,
    )
    cache = cache_of(shared)
    if cache is None:
        return None  # a backbone without a KV cache: the caller runs the full forward
    cache.batch_select_indices(group_of_row)  # each row gets its prompt's keys and values (autograd follows)
    rest = input_ids[:, prompt_length - 1 :]
    # TRL's labels: padding and the prompt token are not scored (the fused head shifts by one).
    labels = rest.masked_fill(attention_mask[:, prompt_length - 1 :] == 0, -100)
    labels[:, 0] = -100
    # The full forward numbers positions 0..L-1, padding included (no position_ids given): the same here.
    positions = torch.arange(prompt_length - 1, input_ids.size(1), device=input_ids.device).unsqueeze(0)
    head = inner.get_output_embeddings()
    if not _scores_on_cpu(inner, head):
        outputs = model(
            input_ids=rest, attention_mask=attention_mask, position_ids=positions, cache=cache, labels=labels,
            fused_lm_head=True,
        )
        log_probs = outputs.log_probs[:, -logits_to_keep:]
        entropy = outputs.entropy[:, -logits_to_keep:] if compute_entropy else None
        return log_probs, entropy
    hidden = inner.base_model(input_ids=rest, attention_mask=attention_mask, position_ids=positions, cache=cache).last_hidden_state
    # Hidden state j predicts token j + 1 (TRL's shift); only real completion tokens are scored.
    targets, is_scored = labels[:, 1:], labels[:, 1:] != -100
    scored_log_probs, scored_entropy = token_log_probs(
        hidden[:, :-1][is_scored], head, targets[is_scored], temperature=temperature,
        softcap=getattr(inner.config.get_text_config(), "final_logit_softcapping", None),
        with_entropy=compute_entropy, head_in_float32=head_in_float32,
    )
    # masked_scatter keeps an all-padding chunk connected to the graph (TRL does the same).
    log_probs = scored_log_probs.new_zeros(is_scored.shape).masked_scatter(is_scored, scored_log_probs)
    entropy = scored_entropy.new_zeros(is_scored.shape).masked_scatter(is_scored, scored_entropy) if compute_entropy else None
    return log_probs[:, -logits_to_keep:], (entropy[:, -logits_to_keep:] if compute_entropy else None)


# Config attributes by which some model families scale their logits (TRL's fused head applies them).
LOGIT_SCALING_ATTRIBUTES = ("logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")


def _scores_on_cpu(inner, head) -> bool:
    """Whether `token_log_probs` reproduces TRL's fused head for this model: a CPU model with a
    plain Linear head and no logit multiplier (TRL's fused head knows a few model families' ones)."""
    config = inner.config.get_text_config()
    return (
        type(head) is torch.nn.Linear
        and head.weight.device.type == "cpu"
        and not any(getattr(config, name, None) not in (None, 1.0) for name in LOGIT_SCALING_ATTRIBUTES)
    )
