"""Answer-text helpers the domain checkers share: undress an answer, cut off its justification."""

from __future__ import annotations

import re

# Answers are short; the checkers look at this much of one (bounded cost on megabyte replies).
ANSWER_SCAN_CHARS = 2000

_PREFIX = re.compile(
    r"^(?:so\s*,?\s*|therefore\s*,?\s*|thus\s*,?\s*)?(?:(?:the|my)\s+)?(?:final\s+|correct\s+|right\s+|best\s+)?"
    r"(?:answer|option|choice)\s*(?:is\s*)?(?:[:=\-\u2013]\s*)?",
    re.IGNORECASE,
)
_TEXT_WRAPPER = re.compile(r"\\(?:text|mathrm|textbf|mathbf|operatorname)\s*\{([^{}]*)\}")
# Where a verdict's justification starts: "Yes, because no one ...", "72 since 8 x 9 ...".
_EXPLANATION = re.compile(r"\b(?:because|since|as|given|due)\b", re.IGNORECASE)


def strip_decoration(text: str) -> str:
    """The answer without markdown emphasis, `\\boxed{}`, LaTeX text wrappers and 'The answer is'."""
    text = text[:ANSWER_SCAN_CHARS].replace("**", "").replace("`", "").strip()
    text = unbox(text)
    text = _TEXT_WRAPPER.sub(r"\1", text).replace("-\\$", "-").replace("-$", "-").replace("\\$", " ").replace("$", " ").strip()
    for _ in range(2):  # "The answer is option B"
        text = _PREFIX.sub("", text, count=1).strip()
    return text


def without_explanation(text: str) -> str:
    """The text before its first 'because'/'since'/... when anything precedes it, else all of it
    (the numbers and words in a justification are not candidate answers)."""
    verdict = _EXPLANATION.split(text, maxsplit=1)[0]
    return verdict if verdict.strip(" \t\n,;:.") else text


def unbox(text: str) -> str:
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
