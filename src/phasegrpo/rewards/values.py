"""The reward table: every value, band and phrase list the five reward functions use.

One frozen dataclass, `RewardValues`, with the reason for each number in its help text (the
same table is in docs/rewards.md). Each reward function takes its table as the keyword
`reward_values` (default `DEFAULT_REWARD_VALUES`); a run with other values builds its own
functions with `phasegrpo.rewards.reward_functions(overrides)`, so no process-wide state changes.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _value(default: Any, reason: str) -> Any:
    return field(default=default, metadata={"help": reason})


REFUSAL_PHRASES = (
    "i can't help",
    "i cannot help",
    "i can't assist",
    "i cannot assist",
    "i can't answer",
    "i cannot answer",
    "i can't provide",
    "i cannot provide",
    "i can't do that",
    "i won't be able to",
    "i'm unable to",
    "i am unable to",
    "i'm not able to",
    "i am not able to",
    "i must decline",
    "i'm sorry, but",
    "i am sorry, but",
    "sorry, i can't",
    "sorry, i cannot",
    "as an ai",
    "as a language model",
)

RAMBLING_PHRASES = (
    "wait, let me",
    "wait, no",
    "wait, actually",
    "let me re-check",
    "let me recheck",
    "let me double-check",
    "let me double check",
    "let me re-evaluate",
    "let me reconsider",
    "let me start over",
    "let me try again",
    "on second thought",
    "hmm,",
    "let me know if",
    "hope this helps",
    "hope that helps",
    "feel free to ask",
    "feel free to reach out",
    "is there anything else",
    "happy to help",
)


@dataclass(frozen=True)
class RewardValues:
    """Every number and phrase list of the reference rewards. Penalties are negative numbers."""

    # --- punish_refusal ------------------------------------------------------------------
    refusal_penalty: float = _value(
        -5.0,
        "Larger in magnitude than any other reward's value (format 3, correctness 3, worst "
        "length/rambling -3.5), so refusing is never a safe way out of a hard prompt.",
    )
    refusal_phrases: tuple[str, ...] = _value(
        REFUSAL_PHRASES,
        "Stock refusal openings (matched case-insensitively, curly apostrophes folded). Only "
        "whole, specific phrases: 'I can't be sure' or 'sorry' alone are not refusals.",
    )
    refusal_placeholder_answers: tuple[str, ...] = _value(
        ("n/a", "na", "unknown", "i don't know", "idk", "no answer", "cannot be determined", "?", "...", "-"),
        "Whole answers that decline while looking filled in; scored like an empty `<answer>` so the "
        "format rewards cannot be collected without answering. 'none' is left out: it can be a "
        "real answer.",
    )
    refusal_window_chars: int = _value(
        160,
        "A phrase counts only within this many characters of the start of the answer block, or "
        "of the reply when it has no answer block: refusals open with the phrase, while the same "
        "words deep in real reasoning are not a refusal.",
    )
    # --- match_format_exactly ------------------------------------------------------------
    exact_format_reward: float = _value(
        3.0,
        "Full credit for the exact format; above the best near miss (4 x 0.5 = 2.0) so the exact "
        "form is always worth the last step.",
    )
    # --- match_format_approximately ------------------------------------------------------
    tag_once_reward: float = _value(
        0.5,
        "Per tag present exactly once: four small steps a model can climb one at a time; all four "
        "(2.0) stays below the exact format (3.0) and prose scores 0.",
    )
    tag_duplicate_penalty: float = _value(
        -0.5,
        "Per tag present more than once: repeating a tag must not pay, and duplicates are the "
        "usual way a reply loops; bounded (4 tags) so it never rivals a refusal.",
    )
    # --- check_answer --------------------------------------------------------------------
    correct_reward: float = _value(
        3.0,
        "Full credit for a correct answer; equal to the exact-format reward so, once correctness "
        "is on, being right matters as much as being well formed.",
    )
    math_near_rel_tol: float = _value(
        0.01,
        "Math: relative distance counted as 'near' (rounding 33.33 for 100/3, 0.33 for 1/3).",
    )
    math_near_fraction: float = _value(
        0.5,
        "Math: share of full credit for a near answer: better than wrong, clearly short of exact, "
        "so rounding is not learned as a habit.",
    )
    math_exact_rel_tol: float = _value(
        1e-9,
        "Math: relative distance still counted as exact (float noise, '72.0' vs '72').",
    )
    hedge_fraction: float = _value(
        0.0,
        "Share of full credit when the answer offers several candidates that include the right one "
        "('72 or 74', 'A or B', 'yes and no'). Zero: any positive value makes listing candidates "
        "beat committing to one guess.",
    )
    math_verify_max_chars: int = _value(
        300,
        "Math: longest answer (and reference) handed to math-verify; its LaTeX parser is slow and "
        "can hang on long or adversarial input. Plain numbers never need it.",
    )
    math_verify_timeout_s: int = _value(
        3,
        "Math: math-verify's own timeout per parse/compare (signal-based, so main thread only; "
        "in other threads the length cap and the screen for exponent towers, huge exponents and "
        "big factorials are the guard).",
    )
    code_timeout_s: float = _value(
        5.0,
        "Code: wall-clock limit per program in the sandbox; MBPP solutions run in milliseconds.",
    )
    code_memory_mb: int = _value(1024, "Code: address-space limit per program in the sandbox.")
    code_max_chars: int = _value(
        20_000,
        "Code: longer programs score 0 without running: no MBPP-size task needs them and they "
        "cost sandbox time every step.",
    )
    # --- penalize_length_and_rambling ----------------------------------------------------
    soft_length_chars: int = _value(
        1200,
        "Replies longer than this many characters (about 300 tokens) start to pay: room for "
        "reasoning plus an answer, well under the reference max_completion_length of 512 tokens.",
    )
    length_penalty_per_100_chars: float = _value(
        -0.1, "Growth of the length penalty per 100 characters beyond the soft limit."
    )
    length_penalty_max: float = _value(
        -1.0, "Cap of the length penalty (reached 1,000 characters past the soft limit)."
    )
    trailing_text_penalty: float = _value(
        -0.5,
        "Any non-whitespace after the last </answer>: the reply should end there, and text after "
        "it is where chat filler and second answers go.",
    )
    rambling_phrases: tuple[str, ...] = _value(
        RAMBLING_PHRASES,
        "Self-doubt loops and chat filler (matched case-insensitively, each occurrence counted).",
    )
    rambling_phrase_penalty: float = _value(-0.25, "Per rambling phrase occurrence.")
    rambling_penalty_max: float = _value(-1.0, "Cap of the rambling-phrase penalty (four phrases).")
    repetition_min_sentence_words: int = _value(
        6,
        "Sentences (or lines) with fewer words, numbers included, are ignored when looking for "
        "repeats: short steps like 'So 3 + 4 = 7.' legitimately recur.",
    )
    repeated_sentence_penalty: float = _value(-0.25, "Per repeat of an earlier sentence.")
    repetition_ngram_words: int = _value(5, "Word n-gram size for the loop detector.")
    repetition_min_words: int = _value(
        40, "Replies with fewer words are too short for the n-gram statistic to mean anything."
    )
    repeated_ngram_threshold: float = _value(
        0.3,
        "Share of repeated word n-grams tolerated; worked solutions stay well under it, loops go "
        "far above it. The penalty grows linearly from here to repeated_ngram_full_share.",
    )
    repeated_ngram_full_share: float = _value(
        0.8,
        "Share of repeated word n-grams at which the repetition penalty is full: a reply that is "
        "four-fifths copies of itself is a loop, whatever it says.",
    )
    repetition_penalty_max: float = _value(
        -1.0, "Cap of the repetition penalty (the worse of repeated sentences and repeated n-grams)."
    )
    analysis_max_chars: int = _value(
        20_000,
        "Rambling and repetition look at the first this-many characters only: bounded cost on "
        "megabyte outputs, whose length penalty is capped anyway.",
    )

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"Reward value {spec.name} must be finite, got {value!r}.")
            if spec.name.endswith("_penalty") or spec.name.endswith("_penalty_max") or spec.name == "length_penalty_per_100_chars":
                if value > 0:
                    raise ValueError(f"Reward value {spec.name} is a penalty and must be <= 0, got {value!r}.")
            if spec.name.endswith(("_fraction", "_share", "_threshold")) and not 0.0 <= value <= 1.0:
                raise ValueError(f"Reward value {spec.name} is a share of full credit and must be in [0, 1], got {value!r}.")

    def table(self) -> list[tuple[str, Any, str]]:
        """(name, value, reason) for every entry, in declaration order (docs and tests read it)."""
        return [(spec.name, getattr(self, spec.name), spec.metadata["help"]) for spec in dataclasses.fields(self)]


# Which function reads which entries (by name prefix), for the documented table.
_TABLE_SECTIONS = (
    ("punish_refusal", ("refusal_",)),
    ("match_format_exactly", ("exact_format_",)),
    ("match_format_approximately", ("tag_",)),
    ("check_answer", ("correct_", "math_", "hedge_", "code_")),
    ("penalize_length_and_rambling", ("soft_length_", "length_", "trailing_", "rambling_", "repetition_", "repeated_", "analysis_")),
)


def markdown_table(values: RewardValues | None = None) -> str:
    """The table of docs/rewards.md: one section per reward function, one row per entry."""
    rows = (values or RewardValues()).table()
    lines: list[str] = []
    for function, prefixes in _TABLE_SECTIONS:
        lines += ["", f"### `{function}`", "", "| name | default | why |", "| --- | --- | --- |"]
        for name, value, reason in rows:
            if name.startswith(prefixes):
                shown = ", ".join(f"`{phrase}`" for phrase in value) if isinstance(value, tuple) else f"`{value!r}`"
                lines.append(f"| `{name}` | {shown} | {reason} |")
    return "\n".join(lines).lstrip("\n") + "\n"


DEFAULT_REWARD_VALUES = RewardValues()


def _coerce(name: str, default: Any, value: Any) -> Any:
    """`value` as the type of the field's default, or a ValueError naming the field."""
    if isinstance(default, tuple):
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or not all(isinstance(item, str) for item in value):
            raise ValueError(f"Reward value {name} must be a list of strings, got {value!r}.")
        return tuple(item.casefold() for item in value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Reward value {name} must be a number, got {value!r}.")
    if isinstance(default, int):
        if float(value) != int(value):
            raise ValueError(f"Reward value {name} must be a whole number, got {value!r}.")
        return int(value)
    return float(value)


def reward_values_from(overrides: Mapping[str, Any] | None = None, base: RewardValues = DEFAULT_REWARD_VALUES) -> RewardValues:
    """The reward table with `overrides` (field name -> value) applied to `base`.

    Raises ValueError for an unknown name (listing the valid ones), a wrong type, or a value
    outside its range (a positive penalty, a fraction above 1).
    """
    overrides = dict(overrides or {})
    defaults = {spec.name: getattr(base, spec.name) for spec in dataclasses.fields(RewardValues)}
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        raise ValueError(
            f"Unknown reward value(s) {', '.join(map(repr, unknown))}. Valid names: {', '.join(defaults)}."
        )
    coerced = {name: _coerce(name, defaults[name], value) for name, value in overrides.items()}
    return dataclasses.replace(base, **coerced)


def as_reward_values(values: RewardValues | Mapping[str, Any] | None) -> RewardValues:
    """The table `values` stands for: itself, overrides of the defaults (a mapping), or the defaults (None)."""
    if values is None:
        return DEFAULT_REWARD_VALUES
    if isinstance(values, RewardValues):
        return values
    if isinstance(values, Mapping):
        return reward_values_from(values)
    raise TypeError(
        f"Reward values must be a RewardValues, a mapping of overrides (name -> value) or None, "
        f"got {type(values).__name__}."
    )
