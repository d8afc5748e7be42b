"""Fast batched sampling for CPU rollouts.

Plain `model.generate` spends most of a CPU decode step outside the model: it samples with
`torch.multinomial` over Gemma's 262k-token vocabulary (~75 ms per step for 8 sequences here)
and keeps decoding rows that already finished. This loop samples exactly from the same
distribution, softmax(logits / temperature) (optionally nucleus-filtered), by inverse-CDF
sampling with one random number per row, stops each row at an end token or once
its text closes `</answer>` (then ending it with the end-of-turn token: phasegrpo.stop_rule),
and stops the batch when every row is done. A prompt repeated in the batch (a GRPO group) is
prefilled once and its KV cache copied to its rows. It also projects the
last hidden state onto the vocabulary as `W @ h.T` rather than `h @ W.T`: the same fp32
product, which MKL computes about 4x faster for a 262k x 640 head and a handful of rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from phasegrpo.formats import ANSWER_END
from phasegrpo.prompt_sharing import cache_of, prompt_groups


def _left_pad(prompt_ids: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids in prompt_ids)
    input_ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)
    for row, ids in enumerate(prompt_ids):
        if ids:
            input_ids[row, width - len(ids) :] = torch.tensor(list(ids), dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
    return input_ids, attention_mask


def _sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    """One exact draw per row from softmax(logits / temperature), nucleus-filtered if top_p < 1.

    Inverse-CDF sampling needs one uniform number per row; `torch.multinomial` and the
    Gumbel/exponential tricks draw one per vocabulary entry, which dominates a CPU decode step
    at 262k entries. The cumulative sum is taken in float64 so its rounding cannot move a draw.
    """
    if temperature <= 0:
        return logits.argmax(dim=-1)
    # The loop's logits are a transposed view (see `_NextTokenLogits`); every pass below runs ~1.5x
    # faster on contiguous rows, and gives bit-identical draws.
    scaled = logits.contiguous().float() / temperature
    weights = torch.exp(scaled - scaled.amax(dim=-1, keepdim=True)).double()
    order = None
    if top_p < 1.0:
        weights, order = weights.sort(dim=-1, descending=True)
        mass_before = weights.cumsum(dim=-1) - weights
        weights = weights.masked_fill(mass_before > top_p * weights.sum(dim=-1, keepdim=True), 0.0)
    cumulative = weights.cumsum(dim=-1)
    uniform = torch.rand((logits.size(0), 1), generator=generator, dtype=torch.float64, device=logits.device)
    index = torch.searchsorted(cumulative, uniform * cumulative[:, -1:], right=True).clamp(max=logits.size(-1) - 1)
    # A zero-weight entry can never be chosen: searchsorted(right=True) skips flat stretches.
    return (order.gather(-1, index) if order is not None else index).squeeze(-1)


class _NextTokenLogits:
    """Last-position logits from the backbone plus a hand-rolled head projection, when the model is
    a plain `backbone → Linear head (→ soft-capping)` causal LM; otherwise the model's own forward."""

    _SCALING_ATTRIBUTES = ("logit_scale", "output_multiplier", "lm_head_multiplier", "logits_scaling")

    def __init__(self, model):
        self.model = model
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        config = getattr(base, "config", None)
        config = config.get_text_config() if hasattr(config, "get_text_config") else config
        head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
        backbone = getattr(base, getattr(base, "base_model_prefix", ""), None)
        is_plain = (
            type(head) is torch.nn.Linear
            and backbone is not None
            and backbone is not base
            and config is not None
            and not any(getattr(config, name, None) not in (None, 1.0) for name in self._SCALING_ATTRIBUTES)
        )
        self.backbone, self.head = (backbone, head) if is_plain else (None, None)
        self.softcap = getattr(config, "final_logit_softcapping", None)

    def __call__(self, **inputs):
        """(logits of the last position [batch, vocab], cache)."""
        if self.backbone is None:
            outputs = self.model(**inputs, logits_to_keep=1)
            return outputs.logits[:, -1, :], cache_of(outputs)
        outputs = self.backbone(**inputs)
        hidden = outputs.last_hidden_state[:, -1, :].to(self.head.weight.dtype)
        logits = (self.head.weight @ hidden.T).T
        if self.head.bias is not None:
            logits = logits + self.head.bias
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits, cache_of(outputs)


@torch.no_grad()
def sample_completions(
    model,
    prompt_ids: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    temperature: float,
    top_p: float = 1.0,
    end_token_ids: Sequence[int],
    pad_token_id: int,
    tokenizer=None,
    stop_text: str | None = ANSWER_END,
    stop_token_id: int | None = None,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Sample one completion per prompt; each ends at (and includes) its end token, or right
    after `stop_text` appears in its decoded text, or at `max_new_tokens`.

    A completion stopped at `stop_text` gets `stop_token_id` (the end of turn) appended, so it
    reads as finished, not truncated; it may then be `max_new_tokens + 1` long."""
    device = next(model.parameters()).device
    input_ids, attention_mask = _left_pad(prompt_ids, pad_token_id)
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    # Left padding: positions count real tokens only, as `generate` does.
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    batch_size = input_ids.size(0)
    end_ids = torch.tensor(list(end_token_ids), device=device)
    completions: list[list[int]] = [[] for _ in range(batch_size)]
    is_done = torch.zeros(batch_size, dtype=torch.bool, device=device)
    check_stop_text = stop_text is not None and tokenizer is not None

    next_token_logits = _NextTokenLogits(model)
    # A group's generations share one prompt: prefill each distinct prompt once and copy its cache.
    first_row, group_of_row = prompt_groups(input_ids, attention_mask)
    shared = len(first_row) < batch_size
    prefill_rows = first_row if shared else slice(None)
    logits, cache = next_token_logits(
        input_ids=input_ids[prefill_rows], attention_mask=attention_mask[prefill_rows],
        position_ids=position_ids[prefill_rows], use_cache=True,
    )
    if shared:
        logits = logits[group_of_row]
        cache.batch_select_indices(group_of_row)
    next_position = position_ids[:, -1:] + 1
    for step in range(max_new_tokens):
        next_tokens = _sample(logits, temperature, top_p, generator)
        next_tokens = torch.where(is_done, torch.full_like(next_tokens, pad_token_id), next_tokens)
        for row in (~is_done).nonzero().flatten().tolist():
            completions[row].append(int(next_tokens[row]))
        now_done = torch.isin(next_tokens, end_ids)
        if check_stop_text:
            for row in (~is_done & ~now_done).nonzero().flatten().tolist():
                # Every token decodes to at least one character, so this tail holds a fresh stop_text.
                if stop_text in tokenizer.decode(completions[row][-len(stop_text):]):
                    now_done[row] = True
                    if stop_token_id is not None:
                        completions[row].append(stop_token_id)
        is_done |= now_done
        if bool(is_done.all()) or step == max_new_tokens - 1:  # no forward for a token never sampled
            break
        attention_mask = torch.cat([attention_mask, (~is_done).long().unsqueeze(1)], dim=1)
        logits, cache = next_token_logits(
            input_ids=next_tokens.unsqueeze(1), attention_mask=attention_mask, position_ids=next_position, cache=cache, use_cache=True
        )
        next_position = next_position + 1
    return completions
