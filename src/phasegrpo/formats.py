"""The one place that knows the reply format: `<reasoning>…</reasoning>` then `<answer>…</answer>`.

Rewards, prompts, evaluation and the report ask this module rather than writing their own
regexes, so the format can change in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REASONING_START, REASONING_END = "<reasoning>", "</reasoning>"
ANSWER_START, ANSWER_END = "<answer>", "</answer>"
TAGS = (REASONING_START, REASONING_END, ANSWER_START, ANSWER_END)

FORMAT_INSTRUCTION = (
    "Think step by step inside <reasoning> </reasoning>, then give only the final answer "
    "inside <answer> </answer>, exactly like this:\n"
    "<reasoning>\n...\n</reasoning>\n<answer>\n...\n</answer>"
)

# Whole reply in the exact format: one reasoning block with content, then one answer block
# with content, nothing but whitespace around them.
EXACT_FORMAT = re.compile(
    r"\A\s*<reasoning>(?P<reasoning>(?:(?!</?reasoning>|</?answer>).)*\S(?:(?!</?reasoning>|</?answer>).)*)</reasoning>"
    r"\s*<answer>(?P<answer>(?:(?!</?reasoning>|</?answer>).)*\S(?:(?!</?reasoning>|</?answer>).)*)</answer>\s*\Z",
    re.DOTALL,
)
_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def completion_text(completion) -> str:
    """The text of one completion, whether TRL passed a string or a list of chat messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        return str(completion.get("content") or "")
    if isinstance(completion, (list, tuple)):
        return "".join(completion_text(message) for message in completion)
    return "" if completion is None else str(completion)


def is_exact_format(text: str) -> bool:
    return EXACT_FORMAT.match(text) is not None


def extract_answer(text: str) -> str | None:
    """The content of the last complete `<answer>` block, stripped; None when there is none."""
    blocks = _ANSWER_BLOCK.findall(text)
    return blocks[-1].strip() if blocks else None


def extract_reasoning(text: str) -> str | None:
    start, end = text.find(REASONING_START), text.find(REASONING_END)
    if start < 0 or end < start:
        return None
    return text[start + len(REASONING_START) : end].strip()


def render(reasoning: str, answer: str) -> str:
    """A reply in the exact format, as the gold replies in tests and examples are written."""
    return f"{REASONING_START}\n{reasoning.strip()}\n{REASONING_END}\n{ANSWER_START}\n{answer.strip()}\n{ANSWER_END}"


@dataclass(frozen=True)
class TagCounts:
    reasoning_start: int
    reasoning_end: int
    answer_start: int
    answer_end: int


def count_tags(text: str) -> TagCounts:
    return TagCounts(*(text.count(tag) for tag in TAGS))
