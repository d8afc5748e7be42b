"""`check_answer`: is the last `<answer>` block right for its row? One checker per domain.

`CHECKERS` names the batch checkers `(cases, values) -> list[float]` (in `rewards/checkers/`);
each domain says which one it uses (`Domain.checker`: one of these names, or a checker of its
own). Checkers read only the answer block: a right number that appears only in the reasoning
earns nothing, so the model cannot score by thinking out loud.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from phasegrpo.formats import extract_answer
from phasegrpo.rewards._common import column, safe_reward
from phasegrpo.rewards.checkers.code import check_code
from phasegrpo.rewards.checkers.logic import check_logic
from phasegrpo.rewards.checkers.math import check_math
from phasegrpo.rewards.checkers.science import check_science
from phasegrpo.rewards.values import DEFAULT_REWARD_VALUES, RewardValues

logger = logging.getLogger("phasegrpo.rewards")


@dataclass(frozen=True)
class Case:
    """One completion to check: the text of its answer block and its row's columns."""

    index: int
    answer: str
    reference: Any = ""
    tests: Any = ()
    setup_code: Any = ""
    prompt: Any = None
    choices: Any = None


Checker = Callable[[Sequence[Case], RewardValues], list[float]]

CHECKERS: dict[str, Checker] = {
    "math": check_math,
    "code": check_code,
    "science": check_science,
    "logic": check_logic,
}

_logged_domains: set[str] = set()


def checker_for(domain: str) -> Checker | None:
    """The checker a registered domain uses, or None for a domain nobody registered."""
    from phasegrpo.domains import domain_names, get_domain  # at call time: the registry imports the rewards

    if domain not in domain_names():
        return None
    checker = get_domain(domain).checker
    return CHECKERS[checker] if isinstance(checker, str) else checker


@safe_reward
def check_answer(
    completions: list[str], reward_values: RewardValues = DEFAULT_REWARD_VALUES, **kwargs: Any
) -> list[float]:
    """`correct_reward` (or a share of it) when the last `<answer>` block is right for the
    row's `domain`; 0.0 when it is wrong, missing, or the row cannot be checked."""
    scores = [0.0] * len(completions)
    cases_by_domain: dict[str, list[Case]] = {}
    checkers: dict[str, Checker | None] = {}
    for index, text in enumerate(completions):
        domain = str(column(kwargs, "domain", index, "") or "").strip().casefold()
        if domain not in checkers:
            checkers[domain] = checker_for(domain)
        answer = extract_answer(text) if checkers[domain] is not None else None
        if not answer:
            continue
        cases_by_domain.setdefault(domain, []).append(
            Case(
                index=index,
                answer=answer,
                reference=column(kwargs, "answer", index, ""),
                tests=column(kwargs, "tests", index, ()),
                setup_code=column(kwargs, "setup_code", index, ""),
                prompt=column(kwargs, "prompts", index, None) or column(kwargs, "prompt", index, None),
                choices=column(kwargs, "choices", index, None),
            )
        )
    for domain, cases in cases_by_domain.items():
        try:
            domain_scores = checkers[domain](cases, reward_values)
        except Exception as error:  # noqa: BLE001 - one domain failing must not zero the others
            if domain not in _logged_domains:
                _logged_domains.add(domain)
                logger.exception("check_answer: the %s checker failed (scoring those rows 0.0; logged once): %s", domain, error)
            continue
        for case, score in zip(cases, domain_scores, strict=False):
            scores[case.index] = score
    return scores
