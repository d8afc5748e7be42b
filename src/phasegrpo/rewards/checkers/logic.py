"""The logic checker: a yes/no verdict (true/false, any case or dress) against the reference."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from phasegrpo.rewards.checkers._text import strip_decoration, without_explanation
from phasegrpo.rewards.values import RewardValues

if TYPE_CHECKING:  # only for annotations: correctness imports this module
    from phasegrpo.rewards.correctness import Case

_POLARITY = {"yes": "yes", "true": "yes", "y": "yes", "no": "no", "false": "no", "n": "no"}
_WORD = re.compile(r"[a-z]+")


def logic_polarities(text: str) -> set[str]:
    """{'yes'}, {'no'}, both (a hedge) or neither, from yes/no/true/false in any case or dress.
    Only the verdict counts, not its explanation: 'Yes, because no one ...' is a yes."""
    verdict = without_explanation(strip_decoration(text).casefold())
    words = _WORD.findall(verdict)
    if len(words) == 1 and words[0] in ("y", "n"):
        return {_POLARITY[words[0]]}
    return {_POLARITY[word] for word in words if word in _POLARITY and len(word) > 1}


def _reference_polarity(reference: Any) -> str | None:
    if isinstance(reference, bool):
        return "yes" if reference else "no"
    word = ("" if reference is None else str(reference)).strip().strip(".!").casefold()
    return {"1": "yes", "0": "no"}.get(word) or _POLARITY.get(word)


def score_logic(answer: str, reference: Any, values: RewardValues) -> float:
    """Full credit for the reference yes/no (true/false, any case or punctuation); a reply that
    says both is a hedge."""
    gold = _reference_polarity(reference)
    polarities = logic_polarities(answer)
    if gold is None or gold not in polarities:
        return 0.0
    return values.correct_reward if len(polarities) == 1 else values.correct_reward * values.hedge_fraction


def check_logic(cases: Sequence[Case], values: RewardValues) -> list[float]:
    """`score_logic` for each case."""
    return [score_logic(case.answer, case.reference, values) for case in cases]
