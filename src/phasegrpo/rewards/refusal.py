"""`punish_refusal`: the hard negative for replies that decline to answer."""

from __future__ import annotations

import re

from phasegrpo.formats import TAGS, extract_answer, has_empty_answer
from phasegrpo.rewards._common import normalize_phrase_text, phrase_matches, phrase_pattern, safe_reward
from phasegrpo.rewards.values import DEFAULT_REWARD_VALUES, RewardValues

# Markdown and quotes around a placeholder answer: "**N/A**", "'unknown'.".
_EDGE_PUNCTUATION = re.compile(r"^[\s*_`\"'.(\[]+|[\s*_`\"'.!)\]]+$")


def _is_placeholder(answer: str, values: RewardValues) -> bool:
    if len(answer) > 64:
        return False
    bare = normalize_phrase_text(answer).strip()
    # Test before stripping punctuation too: "?", "..." and "-" are nothing but punctuation.
    return bare in values.refusal_placeholder_answers or _EDGE_PUNCTUATION.sub("", bare) in values.refusal_placeholder_answers


def is_refusal(text: str, values: RewardValues) -> bool:
    """Empty output, an empty or placeholder `<answer>` ('N/A', 'unknown'), or a stock refusal
    where the answer should be.

    The phrase must open the answer block (or, with no answer block, the reply): a real answer
    whose reasoning says "I can't be sure, but 40 + 32 = 72" is not a refusal.
    """
    if not text.strip() or has_empty_answer(text):
        return True
    answer = extract_answer(text)
    if answer is not None and _is_placeholder(answer, values):
        return True
    window = values.refusal_window_chars
    if answer is None:
        head = text[: window + 64]
        for tag in TAGS:
            head = head.replace(tag, " ")
        answer = head.strip()
    opening = normalize_phrase_text(answer[: window + 64])
    return next(phrase_matches(phrase_pattern(values.refusal_phrases), opening, end=window), None) is not None


@safe_reward
def punish_refusal(
    completions: list[str], reward_values: RewardValues = DEFAULT_REWARD_VALUES, **kwargs
) -> list[float]:
    """`refusal_penalty` for a refusal or an empty reply or answer, 0.0 otherwise."""
    return [reward_values.refusal_penalty if is_refusal(text, reward_values) else 0.0 for text in completions]
