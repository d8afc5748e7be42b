"""`check_answer`: is the last `<answer>` block right for its row? One checker per domain.

`CHECKERS` maps a domain to a batch checker `(cases, values) -> list[float]`; adding a domain is
one entry. Checkers read only the answer block: a right number that appears only in the
reasoning earns nothing, so the model cannot score by thinking out loud.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from phasegrpo import sandbox
from phasegrpo.formats import extract_answer
from phasegrpo.rewards._common import column, is_list_like, safe_reward
from phasegrpo.rewards.values import RewardValues, reward_values

logger = logging.getLogger("phasegrpo.rewards")

# Answers are short; the checkers look at this much of one (bounded cost on megabyte replies).
_ANSWER_SCAN_CHARS = 2000


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


# --- shared text helpers ---------------------------------------------------------------------

_PREFIX = re.compile(
    r"^(?:so\s*,?\s*|therefore\s*,?\s*|thus\s*,?\s*)?(?:(?:the|my)\s+)?(?:final\s+|correct\s+|right\s+|best\s+)?"
    r"(?:answer|option|choice)\s*(?:is\s*)?(?:[:=\-\u2013]\s*)?",
    re.IGNORECASE,
)


def _strip_decoration(text: str) -> str:
    """The answer without markdown emphasis, `\\boxed{}`, LaTeX text wrappers and 'The answer is'."""
    text = text[:_ANSWER_SCAN_CHARS].replace("**", "").replace("`", "").strip()
    text = _unbox(text)
    text = _TEXT_WRAPPER.sub(r"\1", text).replace("-\\$", "-").replace("-$", "-").replace("\\$", " ").replace("$", " ").strip()
    for _ in range(2):  # "The answer is option B"
        text = _PREFIX.sub("", text, count=1).strip()
    return text


_TEXT_WRAPPER = re.compile(r"\\(?:text|mathrm|textbf|mathbf|operatorname)\s*\{([^{}]*)\}")


# Where a verdict's justification starts: "Yes, because no one ...", "72 since 8 x 9 ...".
_EXPLANATION = re.compile(r"\b(?:because|since|as|given|due)\b", re.IGNORECASE)


def _without_explanation(text: str) -> str:
    """The text before its first 'because'/'since'/... when anything precedes it, else all of it
    (the numbers and words in a justification are not candidate answers)."""
    verdict = _EXPLANATION.split(text, maxsplit=1)[0]
    return verdict if verdict.strip(" \t\n,;:.") else text


def _unbox(text: str) -> str:
    """The content of the last `\\boxed{...}` (or `\\fbox{...}`), else the text unchanged."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return text
    position = text.index("{", start) + 1
    depth = 1
    for end in range(position, len(text)):
        if text[end] == "{":
            depth += 1
        elif text[end] == "}":
            depth -= 1
            if depth == 0:
                return text[position:end]
    return text[position:]


# --- math ----------------------------------------------------------------------------------

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
    text = _strip_decoration(text).translate(_CURRENCY_AND_SPACES).replace("\\%", "%")
    text = _LATEX_FRACTION.sub(r"\1/\2", text)
    return _THIN_THOUSANDS.sub(",", text)


def _final_segment(text: str) -> str:
    """The part that states the result: before any justification ('72 because 8 x 9' -> '72'),
    then what follows the last `=` or `≈` when a number follows it ('36 + 36 = 72' -> '72')."""
    verdict = _without_explanation(text)
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


# --- science -------------------------------------------------------------------------------

_CHOICE_LINE = re.compile(r"^[ \t]*\(?([A-Z]|\d{1,2})[ \t]*[).:][ \t]*(\S[^\n]*?)[ \t]*$", re.MULTILINE)
_WHOLE_LABEL = re.compile(r"^[\(\[]?([A-Za-z]|\d{1,2})[\)\]]?[.:)]?$")
_LEADING_LABEL = re.compile(r"^(?:\(([A-Za-z]|\d{1,2})\)|([A-Za-z]|\d{1,2})\)|([A-Z]|\d{1,2})[.:\-\u2013])\s*(\S.*)$", re.DOTALL)
_LABEL_TOKEN = re.compile(r"\(([A-Za-z]|\d{1,2})\)|(?<![\w'\u2019-])([A-Z]|\d{1,2})(?![\w'\u2019-])")
# A label written as a label ("(B)", "B)") inside the text after a leading one: "(A) (B)" is two.
_LABEL_MARK = re.compile(r"\(([A-Za-z]|\d{1,2})\)|(?<![\w(])([A-Z]|\d{1,2})\)")
_NON_WORD = re.compile(r"[\W_]+")


def _last_user_message(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if is_list_like(prompt):
        for message in reversed(list(prompt)):
            if isinstance(message, Mapping) and message.get("role") == "user":
                return str(message.get("content") or "")
    return ""


def _choices_from_prompt(prompt: Any) -> dict[str, str]:
    """`{label: text}` from the last user message's 'A) text' / 'A. text' lines (letters, or
    numbers when the last choice line is numbered)."""
    lines = _CHOICE_LINE.findall(_last_user_message(prompt)[-8000:])
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
        return {str(label).strip().upper(): str(text) for label, text in zip(labels, choices["text"])}
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
    text = _strip_decoration(answer).strip().rstrip(".!")
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
    tokens = {(lower or upper).upper() for lower, upper in _LABEL_TOKEN.findall(_without_explanation(text))} & known
    if tokens:
        return tokens
    return _choices_named(text, choices) if choices else set()


def score_science(answer: str, reference: Any, prompt: Any, choices_column: Any, values: RewardValues) -> float:
    """Full credit for the reference label in any usual spelling or the text of that choice;
    `hedge_fraction` when the answer names it among others; 0.0 otherwise."""
    gold = _strip_decoration(str(reference or "")).strip().rstrip(".").strip("()").upper()
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


# --- logic ---------------------------------------------------------------------------------

_POLARITY = {"yes": "yes", "true": "yes", "y": "yes", "no": "no", "false": "no", "n": "no"}
_WORD = re.compile(r"[a-z]+")


def logic_polarities(text: str) -> set[str]:
    """{'yes'}, {'no'}, both (a hedge) or neither, from yes/no/true/false in any case or dress.
    Only the verdict counts, not its explanation: 'Yes, because no one ...' is a yes."""
    verdict = _without_explanation(_strip_decoration(text).casefold())
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


# --- code ----------------------------------------------------------------------------------

_LANGUAGE_TAG = re.compile(r"^[\w+#.\-]*$")


def _without_language_tag(block: str) -> str:
    first_line, newline, rest = block.partition("\n")
    return rest if newline and _LANGUAGE_TAG.match(first_line.strip()) else block


def extract_code(answer: str) -> str:
    """The program in an answer: its fenced blocks (```python ... ```) joined, or the whole
    answer when it has no fence."""
    parts = answer.split("```")
    if len(parts) == 1:
        return answer.strip()
    if len(parts) == 2:  # a single fence: the code is on whichever side has it
        after = _without_language_tag(parts[1]).strip()
        return after or parts[0].strip()
    blocks = [_without_language_tag(block).strip("\n") for block in parts[1::2]]
    return "\n\n".join(block for block in blocks if block.strip())


def _tests_of(tests: Any) -> tuple[str, ...]:
    if isinstance(tests, str):
        stripped = tests.strip()
        if stripped.startswith("["):
            try:
                tests = json.loads(stripped)
            except ValueError:
                return (tests,)
        else:
            return (tests,) if stripped else ()
    if not is_list_like(tests):
        return ()
    return tuple(str(test) for test in tests if str(test).strip())


def check_code(cases: Sequence[Case], values: RewardValues) -> list[float]:
    """Runs every case's code against its row's tests after its setup code, in ONE sandbox call
    (identical programs run once); score = fraction of tests passed x `correct_reward`."""
    scores = [0.0] * len(cases)
    program_of: dict[tuple[str, tuple[str, ...], str], list[int]] = {}
    for position, case in enumerate(cases):
        code, tests = extract_code(case.answer), _tests_of(case.tests)
        if code and tests and len(code) <= values.code_max_chars:
            setup_code = case.setup_code if isinstance(case.setup_code, str) else ""
            program_of.setdefault((code, tests, setup_code), []).append(position)
    if not program_of:
        return scores
    programs = [sandbox.Program(code=code, tests=tests, setup_code=setup) for code, tests, setup in program_of]
    verdicts = sandbox.run_programs(programs, timeout_s=values.code_timeout_s, memory_mb=values.code_memory_mb)
    for positions, verdict in zip(program_of.values(), verdicts):
        for position in positions:
            scores[position] = values.correct_reward * min(1.0, max(0.0, float(verdict.fraction)))
    return scores


# --- the registry --------------------------------------------------------------------------

Checker = Callable[[Sequence[Case], RewardValues], list[float]]


def _check_math(cases: Sequence[Case], values: RewardValues) -> list[float]:
    return [score_math(case.answer, case.reference, values) for case in cases]


def _check_science(cases: Sequence[Case], values: RewardValues) -> list[float]:
    return [score_science(case.answer, case.reference, case.prompt, case.choices, values) for case in cases]


def _check_logic(cases: Sequence[Case], values: RewardValues) -> list[float]:
    return [score_logic(case.answer, case.reference, values) for case in cases]


CHECKERS: dict[str, Checker] = {
    "math": _check_math,
    "code": check_code,
    "science": _check_science,
    "logic": _check_logic,
}

_logged_domains: set[str] = set()


@safe_reward
def check_answer(completions: list[str], **kwargs: Any) -> list[float]:
    """`correct_reward` (or a share of it) when the last `<answer>` block is right for the
    row's `domain`; 0.0 when it is wrong, missing, or the row cannot be checked."""
    values = reward_values()
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
            domain_scores = CHECKERS[domain](cases, values)
        except Exception as error:  # noqa: BLE001 - one domain failing must not zero the others
            if domain not in _logged_domains:
                _logged_domains.add(domain)
                logger.exception("check_answer: the %s checker failed (scoring those rows 0.0; logged once): %s", domain, error)
            continue
        for case, score in zip(cases, domain_scores):
            scores[case.index] = score
    return scores
