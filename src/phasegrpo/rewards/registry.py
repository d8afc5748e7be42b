"""The five reward functions by name: as defined (default values) or bound to a run's table."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from phasegrpo.rewards._common import RewardFunction
from phasegrpo.rewards.correctness import check_answer
from phasegrpo.rewards.format import match_format_approximately, match_format_exactly
from phasegrpo.rewards.length import penalize_length_and_rambling
from phasegrpo.rewards.refusal import punish_refusal
from phasegrpo.rewards.values import DEFAULT_REWARD_VALUES, RewardValues, as_reward_values

REWARD_FUNCTIONS: dict[str, RewardFunction] = {
    function.__name__: function
    for function in (
        punish_refusal,
        match_format_exactly,
        match_format_approximately,
        check_answer,
        penalize_length_and_rambling,
    )
}


def reward_functions(values: RewardValues | Mapping[str, Any] | None = None) -> dict[str, RewardFunction]:
    """The five reward functions by name, scoring with `values`: a `RewardValues`, a mapping of
    overrides of the defaults (as `config.reward_values`), or None for the defaults.

    Each is `functools.partial(function, reward_values=table)` carrying the function's name and
    docstring (TRL and the router log rewards by `__name__`); it pickles as a reference to the
    module-level function plus the table, so it survives multiprocessing. With the default
    table the module functions themselves are returned.
    """
    table = as_reward_values(values)
    if table == DEFAULT_REWARD_VALUES:
        return dict(REWARD_FUNCTIONS)
    return {name: _bind(function, table) for name, function in REWARD_FUNCTIONS.items()}


def _bind(function: RewardFunction, table: RewardValues) -> RewardFunction:
    bound = functools.partial(function, reward_values=table)
    functools.update_wrapper(bound, function)
    return bound
