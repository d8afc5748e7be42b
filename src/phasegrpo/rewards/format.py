"""`match_format_exactly` and `match_format_approximately`: the reply format rewards."""

from __future__ import annotations

from phasegrpo.formats import count_tags, is_exact_format
from phasegrpo.rewards._common import safe_reward
from phasegrpo.rewards.values import DEFAULT_REWARD_VALUES, RewardValues


@safe_reward
def match_format_exactly(
    completions: list[str], reward_values: RewardValues = DEFAULT_REWARD_VALUES, **kwargs
) -> list[float]:
    """`exact_format_reward` for exactly one non-empty reasoning block then one non-empty answer
    block with only whitespace around them (`formats.is_exact_format`), 0.0 otherwise."""
    return [reward_values.exact_format_reward if is_exact_format(text) else 0.0 for text in completions]


def approximate_format_score(text: str, values: RewardValues) -> float:
    score = 0.0
    for count in count_tags(text).as_tuple():
        if count == 1:
            score += values.tag_once_reward
        elif count > 1:
            score += values.tag_duplicate_penalty
    return score


@safe_reward
def match_format_approximately(
    completions: list[str], reward_values: RewardValues = DEFAULT_REWARD_VALUES, **kwargs
) -> list[float]:
    """Per format tag: `tag_once_reward` when it appears exactly once, `tag_duplicate_penalty`
    when it appears more than once, nothing when absent. A near miss (all four tags, wrong
    spacing or extra text) earns more than prose (0) and less than the exact format."""
    return [approximate_format_score(text, reward_values) for text in completions]
