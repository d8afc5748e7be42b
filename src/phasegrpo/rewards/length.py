"""`penalize_length_and_rambling`: the cost of saying more than the answer needs."""

from __future__ import annotations

import re

from phasegrpo.formats import TAGS, extract_answer, text_after_answer
from phasegrpo.rewards._common import column, normalize_phrase_text, phrase_matches, phrase_pattern, safe_reward
from phasegrpo.rewards.values import DEFAULT_REWARD_VALUES, RewardValues

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\w+")


def length_penalty(text: str, values: RewardValues) -> float:
    excess = len(text) - values.soft_length_chars
    if excess <= 0:
        return 0.0
    return max(values.length_penalty_max, values.length_penalty_per_100_chars * excess / 100)


def trailing_text_penalty(text: str, values: RewardValues) -> float:
    return values.trailing_text_penalty if text_after_answer(text).strip() else 0.0


def rambling_penalty(normalized: str, values: RewardValues) -> float:
    occurrences = sum(1 for _ in phrase_matches(phrase_pattern(values.rambling_phrases), normalized))
    return max(values.rambling_penalty_max, values.rambling_phrase_penalty * occurrences)


def repetition_penalty(text: str, values: RewardValues) -> float:
    """The worse of: repeats of earlier sentences, and a share of repeated word n-grams above
    `repeated_ngram_threshold` (a loop), each capped at `repetition_penalty_max`."""
    for tag in TAGS:
        text = text.replace(tag, "\n")
    sentences = [" ".join(_WORD.findall(sentence)) for sentence in _SENTENCE_BREAK.split(text)]
    sentences = [sentence for sentence in sentences if sentence.count(" ") + 1 >= values.repetition_min_sentence_words]
    repeats = len(sentences) - len(set(sentences))
    sentence_penalty = values.repeated_sentence_penalty * repeats

    words = _WORD.findall(text)
    size = max(1, values.repetition_ngram_words)
    ngram_penalty = 0.0
    if len(words) >= max(values.repetition_min_words, size):
        ngrams = [tuple(words[i : i + size]) for i in range(len(words) - size + 1)]
        repeated_share = 1.0 - len(set(ngrams)) / len(ngrams)
        threshold = values.repeated_ngram_threshold
        if repeated_share > threshold:
            ramp = max(1e-9, values.repeated_ngram_full_share - threshold)
            ngram_penalty = values.repetition_penalty_max * min(1.0, (repeated_share - threshold) / ramp)
    return max(values.repetition_penalty_max, min(sentence_penalty, ngram_penalty))


def _without_code(text: str) -> str:
    """The text with its answer block and fenced blocks removed: code repeats lines by nature."""
    answer = extract_answer(text)
    if answer:
        text = text.replace(answer, "\n")
    return "\n".join(text.split("```")[0::2])


def length_and_rambling_penalty(text: str, values: RewardValues, is_code: bool = False) -> float:
    head = text[: values.analysis_max_chars]
    prose = _without_code(head) if is_code else head
    return (
        length_penalty(text, values)
        + trailing_text_penalty(text, values)
        + rambling_penalty(normalize_phrase_text(head), values)
        + repetition_penalty(prose.casefold(), values)  # line breaks kept: a line is a sentence
    )


@safe_reward
def penalize_length_and_rambling(
    completions: list[str], reward_values: RewardValues = DEFAULT_REWARD_VALUES, **kwargs
) -> list[float]:
    """0.0 for a concise, well-formed reply; negative for length beyond `soft_length_chars`
    (growing, capped), text after `</answer>`, rambling phrases, and repeated sentences or
    n-grams (outside the code, for `domain` "code"). Each part is capped, so the sum is bounded
    (see docs/rewards.md)."""
    return [
        length_and_rambling_penalty(text, reward_values, is_code=str(column(kwargs, "domain", index, "")).strip().casefold() == "code")
        for index, text in enumerate(completions)
    ]
