"""The math checker: the answer's number (or expression) against the reference.

Plain numbers are compared after normalization (currency, LaTeX fractions, thousands marks);
symbolic answers and references go to math-verify, behind a length cap and a screen for input
it could grind on.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from phasegrpo.rewards.checkers._text import strip_decoration, without_explanation
from phasegrpo.rewards.values import RewardValues

if TYPE_CHECKING:  # only for annotations: correctness imports this module
    from phasegrpo.rewards.correctness import Case

_CURRENCY_AND_SPACES = str.maketrans({"$": "", "\u20ac": "", "\u00a3": "", "\u00a5": "", "\u2212": "-", "\u2013": "-", "\u00a0": " ", "\u202f": " "})
_LATEX_FRACTION = re.compile(r"\\[dt]?frac\s*\{\s*(-?[\d.,]+)\s*\}\s*\{\s*(-?[\d.,]+)\s*\}")
_THIN_THOUSANDS = re.compile(r"(?<=\d)(?:\{,\}|\\,|\\!|\\ |'|\u2009)(?=\d{3}(?!\d))")
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>-)?(?P<value>(?:(?:\d{1,3}(?:,\d{3})+(?![\d,])|\d+)(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d{1,3}(?!\d))?)"
    r"(?:\s*/\s*(?P<denominator>\d+(?:\.\d+)?))?"
)
_SYMBOLIC = re.compile(r"\\|\^|\u221a|\u03c0|\bsqrt\b|\bpi\b")
_RESULT_MARKERS = ("=", "\\approx", "\u2248")


def _math_text(text: str) -> str:
    """Answer text with currency, LaTeX fractions and thousands spacing normalized to plain
    numbers (`\\frac{3}{4}` -> `3/4`, `1{,}234` -> `1,234`)."""
    text = strip_decoration(text).translate(_CURRENCY_AND_SPACES).replace("\\%", "%")
    text = _LATEX_FRACTION.sub(r"\1/\2", text)
    return _THIN_THOUSANDS.sub(",", text)


def _final_segment(text: str) -> str:
    """The part that states the result: before any justification ('72 because 8 x 9' -> '72'),
    then what follows the last `=` or `≈` when a number follows it ('36 + 36 = 72' -> '72')."""
    verdict = without_explanation(text)
    if any(character.isdigit() for character in verdict):
        text = verdict
    cut = max(text.rfind(marker) + len(marker) if marker in text else -1 for marker in _RESULT_MARKERS)
    if cut > 0 and any(character.isdigit() for character in text[cut:]):
        return text[cut:]
    return text


def parse_numbers(text: str) -> list[float]:
    """The distinct numbers in an answer, in order of appearance, signs and fractions kept."""
    found: list[float] = []
    for match in _NUMBER.finditer(_final_segment(_math_text(text))):
        try:
            value = float(match["value"].replace(",", ""))
            if match["denominator"]:
                denominator = float(match["denominator"])
                if denominator == 0:
                    continue
                value /= denominator
        except (ValueError, OverflowError):
            continue
        if match["sign"]:
            value = -value
        if value == value and abs(value) != float("inf") and not any(_is_close(value, seen, 1e-12) for seen in found):
            found.append(value)
    return found


def _is_close(value: float, reference: float, relative_tolerance: float) -> bool:
    return abs(value - reference) <= relative_tolerance * max(abs(reference), 1e-12)


def _reference_text(reference: Any) -> str:
    text = "" if reference is None else str(reference)
    return text.rsplit("####", 1)[1] if "####" in text else text  # a raw GSM8K solution


@functools.lru_cache(maxsize=1)
def _math_verify_api():
    """math-verify's (parse, verify), imported and warmed up once: its first parse builds the
    LaTeX grammar, which on a busy CPU can outlast the timeout and cost a right answer."""
    from math_verify import parse, verify

    timeout_s = 60 if threading.current_thread() is threading.main_thread() else None
    # A symbolic comparison, so sympy's lazily imported simplification code loads now too.
    verify(parse("$2$", parsing_timeout=timeout_s), parse("$\\sqrt{4}$", parsing_timeout=timeout_s), timeout_seconds=timeout_s)
    return parse, verify


@functools.lru_cache(maxsize=4096)
def _math_verify_equal(reference: str, answer: str, timeout_s: int) -> bool:
    """math-verify's verdict, False when it cannot decide (parse failure, timeout, any error)."""
    try:
        parse, verify = _math_verify_api()
        in_main_thread = threading.current_thread() is threading.main_thread()
        timeout = timeout_s if in_main_thread else None  # its timeout uses signal.alarm
        gold = parse(reference if "$" in reference else f"${reference}$", parsing_timeout=timeout)
        target = parse(answer if "$" in answer or "\\boxed" in answer else f"${answer}$", parsing_timeout=timeout)
        if not gold or not target:
            return False
        return bool(verify(gold, target, timeout_seconds=timeout))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # noqa: BLE001 - its TimeoutException is a BaseException; never fail a step
        return False


# Input sympy would grind on without an interruptible check (a signal cannot stop a C-level
# big-integer power): towers of exponents, huge exponents, factorials of big numbers.
_EXPENSIVE = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\(?\s*[-+]?\d{5,}|\^\s*\{?\s*\d+\s*\}?\s*\^|!(?!=)|\\(?:prod|sum|int|lim|binom|Gamma|uparrow)")


def _math_verify(reference: str, answer: str, values: RewardValues) -> bool:
    limit = values.math_verify_max_chars
    if len(reference) > limit or len(answer) > limit or not reference.strip() or not answer.strip():
        return False
    if _EXPENSIVE.search(answer) or _EXPENSIVE.search(reference):
        return False
    return _math_verify_equal(reference.strip(), answer.strip(), max(1, int(values.math_verify_timeout_s)))


def _is_symbolic(text: str) -> bool:
    """Whether the normalized text still holds maths beyond plain numbers (roots, powers, pi)."""
    return _SYMBOLIC.search(_math_text(text)) is not None


def score_math(answer: str, reference: Any, values: RewardValues) -> float:
    """Full credit for the reference number (after normalization, or equal per math-verify), a
    fraction when within `math_near_rel_tol`, `hedge_fraction` when it is one of several
    different numbers, 0.0 otherwise. A symbolic reference ('2\\sqrt{2}') goes to math-verify."""
    reference_text = _reference_text(reference).strip()
    gold_numbers = parse_numbers(reference_text)
    candidates = parse_numbers(answer)
    if len(gold_numbers) != 1 or _is_symbolic(reference_text) or not candidates:
        return values.correct_reward if _math_verify(reference_text, answer, values) else 0.0
    gold = gold_numbers[0]
    if len(candidates) == 1 and _is_close(candidates[0], gold, values.math_exact_rel_tol):
        return values.correct_reward
    if _is_symbolic(answer) and _math_verify(reference_text, answer, values):  # '2^{10}' is 1024
        return values.correct_reward
    if len(candidates) == 1:
        return values.correct_reward * values.math_near_fraction if _is_close(candidates[0], gold, values.math_near_rel_tol) else 0.0
    if any(_is_close(candidate, gold, values.math_near_rel_tol) for candidate in candidates):
        return values.correct_reward * values.hedge_fraction
    return 0.0


def check_math(cases: Sequence[Case], values: RewardValues) -> list[float]:
    """`score_math` for each case."""
    return [score_math(case.answer, case.reference, values) for case in cases]
