"""What every reward function shares: reading TRL's arguments and never failing a step."""

from __future__ import annotations

import functools
import logging
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from phasegrpo.formats import completion_text

logger = logging.getLogger("phasegrpo.rewards")
_logged_failures: set[str] = set()

RewardFunction = Callable[..., list[float]]


def texts_of(completions: Any) -> list[str]:
    """One string per completion; anything that is not a sequence of completions is no completions."""
    if completions is None or isinstance(completions, (str, bytes, dict)):
        return []
    try:
        return [completion_text(completion) for completion in completions]
    except TypeError:
        return []


def is_list_like(value: Any) -> bool:
    """A list, tuple, numpy array or similar; not a string or a mapping."""
    return not isinstance(value, (str, bytes, Mapping)) and hasattr(value, "__len__") and hasattr(value, "__getitem__")


def column(kwargs: dict[str, Any], name: str, index: int, default: Any = None) -> Any:
    """Row `index` of the column `name` that TRL passed as a keyword; `default` when absent."""
    values = kwargs.get(name)
    if not is_list_like(values):
        return default
    try:
        return values[index] if index < len(values) else default
    except (IndexError, KeyError, TypeError):
        return default


def safe_reward(function: RewardFunction) -> RewardFunction:
    """A reward function that returns one finite float per completion whatever happens inside.

    A failure scores the batch 0.0 and is logged once per function: the training step goes on
    (STYLE: inside the training loop, degrade safely and log once).
    """

    @functools.wraps(function)
    def wrapper(completions: Any = None, **kwargs: Any) -> list[float]:
        texts = texts_of(completions)
        try:
            scores = function(texts, **kwargs)
        except Exception as error:  # noqa: BLE001 - a reward must never stop training
            if function.__name__ not in _logged_failures:
                _logged_failures.add(function.__name__)
                logger.exception("Reward %s failed (scoring the batch 0.0; logged once): %s", function.__name__, error)
            scores = [0.0] * len(texts)
        return [float(score) if isinstance(score, (int, float)) and math.isfinite(score) else 0.0 for score in scores]

    return wrapper


_CURLY = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"', "\u00a0": " "})
_WHITESPACE = re.compile(r"\s+")


def normalize_phrase_text(text: str) -> str:
    """Case-folded, curly quotes straightened, whitespace collapsed: how phrase lists are matched."""
    return _WHITESPACE.sub(" ", text.translate(_CURLY).casefold())


@functools.lru_cache(maxsize=32)
def phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str] | None:
    """One alternation of the phrases, longest first so an occurrence counts once. Plain
    literals, so the regex engine can skip ahead by first character; `phrase_matches` adds the
    whole-word check."""
    cleaned = sorted({normalize_phrase_text(phrase).strip() for phrase in phrases if phrase.strip()}, key=len, reverse=True)
    if not cleaned:
        return None
    return re.compile("|".join(re.escape(phrase) for phrase in cleaned))


def _is_word_character(character: str) -> bool:
    return character.isalnum() or character == "_"


def phrase_matches(pattern: re.Pattern[str] | None, text: str, end: int | None = None) -> Iterator[re.Match[str]]:
    """Occurrences of the phrases in `text` (ending by `end`) that are whole words: 'as an ai'
    does not occur in 'as an aide', nor 'wait, no' in 'wait, nobody'."""
    if pattern is None:
        return
    end = len(text) if end is None else min(end, len(text))
    position = 0
    while True:
        match = pattern.search(text, position, end)
        if match is None:
            return
        first, last = match.start(), match.end()
        starts_word = first == 0 or not (_is_word_character(text[first]) and _is_word_character(text[first - 1]))
        ends_word = last == len(text) or not (_is_word_character(text[last - 1]) and _is_word_character(text[last]))
        if starts_word and ends_word:
            yield match
            position = last
        else:
            position = first + 1
