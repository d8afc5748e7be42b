"""The `</answer>` stop rule, the same on every generation path.

A reply is complete once it closes `</answer>`: anything after it is only penalised, so every
path stops there, and the completion then ends with the model's end-of-turn token. Without that
token TRL counts a well-formed answer as truncated (`completions/clipped_ratio`, and
`mask_truncated_completions` would drop it from the loss) and the model is never trained to end
its turn after answering. The appended token is the rule's, not the model's: it carries no loss
(`without_forced_end_tokens`), so the log-prob passes and the KL see only sampled tokens.

| path                                   | how it stops at `</answer>`                            |
| -------------------------------------- | ------------------------------------------------------ |
| CPU rollout loop (`generation.py`)     | decodes each row's tail; appends the end-of-turn token |
| TRL + transformers `generate`          | `stop_strings` in the trainer's generation config, `generate` lent the tokenizer (`trl_compat`), then `end_completions` |
| TRL + vLLM                             | SamplingParams `stop` via GRPOConfig.generation_kwargs, then `end_completions` |
| evaluation with vLLM (`vllm_eval.py`)  | SamplingParams `stop`, then `end_completions`          |
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from phasegrpo.formats import ANSWER_END

STOP_TEXT = ANSWER_END


def generation_kwargs(*, use_vllm: bool) -> dict:
    """The stop rule as GRPOConfig.generation_kwargs: TRL hands them to vLLM's SamplingParams or
    to transformers' GenerationConfig, whose option names differ."""
    if use_vllm:
        return {"stop": [STOP_TEXT], "include_stop_str_in_output": True}
    return {"stop_strings": [STOP_TEXT]}


def stop_index(completion_ids: Sequence[int], tokenizer, stop_text: str = STOP_TEXT) -> int | None:
    """Index of the token that completes the first `stop_text` in the completion's text, or None."""
    if stop_text not in tokenizer.decode(completion_ids):  # most rows: one decode, not one per token
        return None
    for index in range(len(completion_ids)):
        # Every token decodes to at least one character, so this tail holds a fresh stop_text.
        if stop_text in tokenizer.decode(completion_ids[max(0, index + 1 - len(stop_text)) : index + 1]):
            return index
    return None


def end_completions(
    completion_ids: list[list[int]],
    logprobs: list[list[float]] | None,
    *,
    tokenizer,
    end_token_ids: Sequence[int],
    stop_token_id: int,
    stop_text: str = STOP_TEXT,
) -> tuple[list[list[int]], list[list[float]] | None]:
    """Completions that closed `stop_text` without an end token: cut right after it (generate pads
    finished rows) and end with `stop_token_id`. Its sampling log-prob is 0: the token is forced.

    Completions that already end with an end token, or never close `stop_text`, are unchanged,
    so a completion counts as truncated only when it really ran out of tokens.
    """
    end_token_ids = set(end_token_ids)
    ended_ids, ended_logprobs = [], [] if logprobs is not None else None
    for row, ids in enumerate(completion_ids):
        ids = list(ids)
        row_logprobs = list(logprobs[row]) if logprobs is not None else None
        if not ids or ids[-1] not in end_token_ids:
            index = stop_index(ids, tokenizer, stop_text)
            if index is not None:
                ids = [*ids[: index + 1], stop_token_id]
                if row_logprobs is not None:
                    row_logprobs = [*row_logprobs[: index + 1], 0.0]
        ended_ids.append(ids)
        if ended_logprobs is not None:
            ended_logprobs.append(row_logprobs)
    return ended_ids, ended_logprobs


def without_forced_end_tokens(
    completion_ids: torch.Tensor, completion_mask: torch.Tensor, *, tokenizer, stop_token_id: int, stop_text: str = STOP_TEXT
) -> torch.Tensor:
    """`completion_mask` with the end tokens that `end_completions` forced after `stop_text` unscored.

    The model did not sample that token, and it may find it very unlikely (the embedded 270M model
    gives `<end_of_turn>` after `</answer>` a log-prob near -17): scored, it would be off-policy, and
    its k3 KL term exp(ref - policy) reached 10^4-10^5 per token after a few steps and wrecked the
    update. Unscored, a stopped completion still counts as terminated (TRL looks at the ids).
    """
    mask = completion_mask.clone()
    for row in range(completion_ids.size(0)):
        scored = mask[row].nonzero()
        if scored.numel() == 0:
            continue
        last = int(scored[-1])
        ids = completion_ids[row, :last].tolist()
        # The stop rule appends exactly one token right after the token that completes stop_text.
        if int(completion_ids[row, last]) == stop_token_id and ids and stop_index(ids, tokenizer, stop_text) == len(ids) - 1:
            mask[row, last] = 0
    return mask


__all__ = ["STOP_TEXT", "generation_kwargs", "stop_index", "end_completions", "without_forced_end_tokens"]
