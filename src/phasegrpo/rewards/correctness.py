"""`check_answer`: is the last `<answer>` block right for its row? One checker per domain.

`CHECKERS` maps a domain to a batch checker `(cases, values) -> list[float]` (in
`rewards/checkers/`); adding a domain is one entry. Checkers read only the answer block: a
right number that appears only in the reasoning earns nothing, so the model cannot score by
thinking out loud.
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


@safe_reward
def check_answer(
    completions: list[str], reward_values: RewardValues = DEFAULT_REWARD_VALUES, **kwargs: Any
) -> list[float]:
    """`correct_reward` (or a share of it) when the last `<answer>` block is right for the
    row's `domain`; 0.0 when it is wrong, missing, or the row cannot be checked."""
    scores = [0.0] * len(completions)
    cases_by_domain: dict[str, list[Case]] = {}
    for index, text in enumerate(completions):
        domain = str(column(kwargs, "domain", index, "") or "").strip().casefold()
        answer = extract_answer(text) if domain in CHECKERS else None
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
            domain_scores = CHECKERS[domain](cases, reward_values)
        except Exception as error:  # noqa: BLE001 - one domain failing must not zero the others
            if domain not in _logged_domains:
                _logged_domains.add(domain)
                logger.exception("check_answer: the %s checker failed (scoring those rows 0.0; logged once): %s", domain, error)
            continue
        for case, score in zip(cases, domain_scores, strict=False):
            scores[case.index] = score
    return scores
