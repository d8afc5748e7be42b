"""The five reference reward functions (TRL signature `f(completions, **kwargs) -> list[float]`).

Values are raw: the router scales and gates them. Every number they use lives in one table,
`RewardValues` (see docs/rewards.md). The module-level functions use the defaults; a run with
other values builds its own with `reward_functions(config.reward_values)` (a dict by name,
each bound to that table), so nothing process-wide changes.
"""

from phasegrpo.rewards.correctness import CHECKERS, check_answer
from phasegrpo.rewards.format import match_format_approximately, match_format_exactly
from phasegrpo.rewards.length import penalize_length_and_rambling
from phasegrpo.rewards.refusal import punish_refusal
from phasegrpo.rewards.registry import REWARD_FUNCTIONS, reward_functions
from phasegrpo.rewards.values import (
    DEFAULT_REWARD_VALUES,
    RewardValues,
    as_reward_values,
    markdown_table,
    reward_values_from,
)

__all__ = [
    "punish_refusal",
    "match_format_exactly",
    "match_format_approximately",
    "check_answer",
    "penalize_length_and_rambling",
    "REWARD_FUNCTIONS",
    "reward_functions",
    "CHECKERS",
    "RewardValues",
    "DEFAULT_REWARD_VALUES",
    "as_reward_values",
    "reward_values_from",
    "markdown_table",
]
