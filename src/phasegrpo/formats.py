"""The one place that knows the reply format: `<reasoning>…</reasoning>` then `<answer>…</answer>`.

Rewards, prompts, evaluation and the report ask this module rather than writing their own
regexes, so the format can change in one place.

Every parser here runs in time linear in the text (plain `str.find`/`rfind`, no regex that can
backtrack), because the rewards call it on whatever the policy writes: megabyte strings, a
thousand unclosed tags, NUL bytes.
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

# The shape of an exact reply, for readers and for generation-time stop rules. It does not
# check the one-of-each-tag and non-empty rules; `is_exact_format` is the complete test.
EXACT_FORMAT = re.compile(
    r"\A\s*<reasoning>(?P<reasoning>.*?)</reasoning>\s*<answer>(?P<answer>.*?)</answer>\s*\Z",
    re.DOTALL,
)


def completion_text(completion) -> str:
    """The text of one completion, whether TRL passed a string or a list of chat messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        content = completion.get("content")
        if isinstance(content, list):  # multimodal message: [{"type": "text", "text": ...}, ...]
            return "".join(str(part.get("text") or "") if isinstance(part, dict) else str(part) for part in content)
        return "" if content is None else str(content)
    if isinstance(completion, (list, tuple)):
        return "".join(completion_text(message) for message in completion)
    return "" if completion is None else str(completion)


@dataclass(frozen=True)
class TagCounts:
    reasoning_start: int
    reasoning_end: int
    answer_start: int
    answer_end: int

    def as_tuple(self) -> tuple[int, int, int, int]:
        return (self.reasoning_start, self.reasoning_end, self.answer_start, self.answer_end)


def count_tags(text: str) -> TagCounts:
    return TagCounts(*(text.count(tag) for tag in TAGS))


def is_exact_format(text: str) -> bool:
    """Exactly one `<reasoning>` block with content, then exactly one `<answer>` block with
    content, and nothing but whitespace before, between and after them."""
    if count_tags(text).as_tuple() != (1, 1, 1, 1):
        return False
    body = text.strip()
    if not (body.startswith(REASONING_START) and body.endswith(ANSWER_END)):
        return False
    reasoning_end = body.find(REASONING_END)
    answer_start = body.find(ANSWER_START)
    if not reasoning_end < answer_start:
        return False
    reasoning = body[len(REASONING_START) : reasoning_end]
    between = body[reasoning_end + len(REASONING_END) : answer_start]
    answer = body[answer_start + len(ANSWER_START) : -len(ANSWER_END)]
    return bool(reasoning.strip()) and not between.strip() and bool(answer.strip())


def _last_answer_span(text: str) -> tuple[int, int] | None:
    """(start, end) of the content of the last complete `<answer>` block: the last `<answer>`
    that a `</answer>` follows, up to the first `</answer>` after it (so nested or repeated
    openings resolve to the innermost block)."""
    last_close = text.rfind(ANSWER_END)
    if last_close < 0:
        return None
    start = text.rfind(ANSWER_START, 0, last_close)
    if start < 0:
        return None
    content_start = start + len(ANSWER_START)
    return content_start, text.find(ANSWER_END, content_start)


def extract_answer(text: str) -> str | None:
    """The content of the last complete `<answer>` block, stripped; None when there is none."""
    span = _last_answer_span(text)
    return None if span is None else text[span[0] : span[1]].strip()


def has_empty_answer(text: str) -> bool:
    """True when the reply's answer is an `<answer>` with nothing in it: the last complete
    block is empty, or there is no complete block and an opened `<answer>` is followed only by
    whitespace."""
    span = _last_answer_span(text)
    if span is not None:
        return not text[span[0] : span[1]].strip()
    start = text.rfind(ANSWER_START)
    return start >= 0 and not text[start + len(ANSWER_START) :].strip()


def extract_reasoning(text: str) -> str | None:
    """The content of the first `<reasoning>` block, stripped; None when there is none."""
    start = text.find(REASONING_START)
    if start < 0:
        return None
    end = text.find(REASONING_END, start + len(REASONING_START))
    if end < 0:
        return None
    return text[start + len(REASONING_START) : end].strip()


def text_after_answer(text: str) -> str:
    """Whatever follows the last `</answer>` (empty when there is none), unstripped."""
    end = text.rfind(ANSWER_END)
    return "" if end < 0 else text[end + len(ANSWER_END) :]


def render(reasoning: str, answer: str) -> str:
    """A reply in the exact format, as the gold replies in tests and examples are written."""
    return f"{REASONING_START}\n{reasoning.strip()}\n{REASONING_END}\n{ANSWER_START}\n{answer.strip()}\n{ANSWER_END}"
