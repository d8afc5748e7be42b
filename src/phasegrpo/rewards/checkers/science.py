"""The science checker: which multiple-choice label(s) an answer commits to.

The choices come from a Hub-style `choices` column or from the prompt's 'A) text' lines, so an
answer may name a choice by its label in any usual spelling or by its text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from phasegrpo.messages import last_user_message
from phasegrpo.rewards._common import is_list_like
from phasegrpo.rewards.checkers._text import strip_decoration, without_explanation
from phasegrpo.rewards.values import RewardValues

if TYPE_CHECKING:  # only for annotations: correctness imports this module
    from phasegrpo.rewards.correctness import Case

_CHOICE_LINE = re.compile(r"^[ \t]*\(?([A-Z]|\d{1,2})[ \t]*[).:][ \t]*(\S[^\n]*?)[ \t]*$", re.MULTILINE)
_WHOLE_LABEL = re.compile(r"^[\(\[]?([A-Za-z]|\d{1,2})[\)\]]?[.:)]?$")
_LEADING_LABEL = re.compile(r"^(?:\(([A-Za-z]|\d{1,2})\)|([A-Za-z]|\d{1,2})\)|([A-Z]|\d{1,2})[.:\-\u2013])\s*(\S.*)$", re.DOTALL)
_LABEL_TOKEN = re.compile(r"\(([A-Za-z]|\d{1,2})\)|(?<![\w'\u2019-])([A-Z]|\d{1,2})(?![\w'\u2019-])")
# A label written as a label ("(B)", "B)") inside the text after a leading one: "(A) (B)" is two.
_LABEL_MARK = re.compile(r"\(([A-Za-z]|\d{1,2})\)|(?<![\w(])([A-Z]|\d{1,2})\)")
_NON_WORD = re.compile(r"[\W_]+")


def _choices_from_prompt(prompt: Any) -> dict[str, str]:
    """`{label: text}` from the last user message's 'A) text' / 'A. text' lines (letters, or
    numbers when the last choice line is numbered)."""
    lines = _CHOICE_LINE.findall(last_user_message(prompt)[-8000:])
    if not lines:
        return {}
    is_letter = lines[-1][0].isalpha()
    choices = {label: text for label, text in lines if label.isalpha() == is_letter}
    return choices if len(choices) >= 2 else {}


def _choices_from_column(choices: Any) -> dict[str, str]:
    """`{label: text}` from a Hub-style `choices` column ({"text": [...], "label": [...]}) or a list."""
    if isinstance(choices, Mapping) and is_list_like(choices.get("text")):
        labels = choices.get("label")
        labels = list(labels) if is_list_like(labels) else [chr(ord("A") + i) for i in range(len(choices["text"]))]
        return {str(label).strip().upper(): str(text) for label, text in zip(labels, choices["text"], strict=False)}
    if is_list_like(choices):
        return {chr(ord("A") + i): str(text) for i, text in enumerate(choices) if i < 26}
    return {}


def _plain(text: str) -> str:
    return _NON_WORD.sub(" ", text.casefold()).strip()


def _choices_named(text: str, choices: Mapping[str, str]) -> set[str]:
    """Labels whose choice text the answer states (a text contained in another named one is
    dropped: naming 'red blood cells' does not also name 'cells')."""
    plain = f" {_plain(text)} "
    named = {label: _plain(choice) for label, choice in choices.items() if _plain(choice) and f" {_plain(choice)} " in plain}
    return {label for label, choice in named.items() if not any(choice != other and choice in other for other in named.values())}


def science_labels(answer: str, choices: Mapping[str, str], fallback_labels: str = "ABCDEFGH") -> set[str]:
    """The choice labels an answer commits to: one for a clear answer, several for a hedge.

    In order: the answer is a bare label ('B', '(b)', 'B.'); the answer is a choice's text; it
    opens with a label ('B) text', where the text of another choice makes it a hedge); it
    mentions labels ('The answer is B', 'A or B'); it names choice texts ('oxygen or carbon
    dioxide'). `fallback_labels` are the labels to look for when the choices are unknown.
    """
    text = strip_decoration(answer).strip().rstrip(".!")
    if not text:
        return set()
    whole = _WHOLE_LABEL.match(text)
    if whole:
        return {whole[1].upper()}
    if choices:
        exact = {label for label, choice in choices.items() if _plain(choice) == _plain(text)}
        if exact:
            return exact
    known = set(choices) if choices else set(fallback_labels)
    leading = _LEADING_LABEL.match(text)
    if leading:
        label = next(group for group in leading.groups()[:3] if group).upper()
        if label in known:
            rest = leading[4]
            marked = {(lower or upper).upper() for lower, upper in _LABEL_MARK.findall(rest)} & known
            named = _choices_named(rest, choices) if choices else set()
            # "A) <the text of C>" names two choices: a hedge, not a free pass.
            return {label} | marked | (named if named and label not in named else set())
    tokens = {(lower or upper).upper() for lower, upper in _LABEL_TOKEN.findall(without_explanation(text))} & known
    if tokens:
        return tokens
    return _choices_named(text, choices) if choices else set()


def score_science(answer: str, reference: Any, prompt: Any, choices_column: Any, values: RewardValues) -> float:
    """Full credit for the reference label in any usual spelling or the text of that choice;
    `hedge_fraction` when the answer names it among others; 0.0 otherwise."""
    gold = strip_decoration(str(reference or "")).strip().rstrip(".").strip("()").upper()
    if not gold:
        return 0.0
    choices = _choices_from_column(choices_column) or _choices_from_prompt(prompt)
    if len(gold) > 2:  # a reference given as the choice text rather than its label
        by_text = {label for label, text in choices.items() if _plain(text) == _plain(gold)}
        if not by_text:
            return values.correct_reward if _plain(answer) == _plain(gold) else 0.0
        gold = next(iter(by_text))
    fallback = "123456789" if gold.isdigit() else "ABCDEFGH"
    labels = science_labels(answer, choices, fallback)
    if labels == {gold}:
        return values.correct_reward
    if gold in labels:
        return values.correct_reward * values.hedge_fraction
    return 0.0


def check_science(cases: Sequence[Case], values: RewardValues) -> list[float]:
    """`score_science` for each case, with its prompt and choices column."""
    return [score_science(case.answer, case.reference, case.prompt, case.choices, values) for case in cases]
