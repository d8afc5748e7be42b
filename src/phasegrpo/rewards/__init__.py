"""The five reference reward functions (TRL signature `f(completions, **kwargs) -> list[float]`).

Values are raw: the router scales and gates them. Every number they use lives in one table,
`RewardValues` (see docs/rewards.md); apply a config's overrides with
`set_reward_values(reward_values_from(config.reward_values))`.
"""

from phasegrpo.rewards.correctness import CHECKERS, check_answer
from phasegrpo.rewards.format import match_format_approximately, match_format_exactly
from phasegrpo.rewards.length import penalize_length_and_rambling
from phasegrpo.rewards.refusal import punish_refusal
from phasegrpo.rewards.values import (
    DEFAULT_REWARD_VALUES,
    RewardValues,
    reward_values,
    reward_values_from,
    set_reward_values,
    use_reward_values,
)

REWARD_FUNCTIONS = {
    function.__name__: function
    for function in (
        punish_refusal,
        match_format_exactly,
        match_format_approximately,
        check_answer,
        penalize_length_and_rambling,
    )
}

__all__ = [
    "punish_refusal",
    "match_format_exactly",
    "match_format_approximately",
    "check_answer",
    "penalize_length_and_rambling",
    "REWARD_FUNCTIONS",
    "CHECKERS",
    "RewardValues",
    "DEFAULT_REWARD_VALUES",
    "reward_values",
    "reward_values_from",
    "set_reward_values",
    "use_reward_values",
]
