"""The reference datasets on the Hugging Face Hub, and how each row becomes a contract row.

Each adapter takes one row in its dataset's Hub schema and returns the normalized row, or
raises `UnusableRow` with the reason; the loader drops, counts and reports those. The same
adapters read local JSON/JSONL/Parquet files written in the Hub schema (`data_files=`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from phasegrpo.data import prompts
from phasegrpo.data._rows import make_row


class UnusableRow(ValueError):
    """A source row that cannot become a training row (no answer, no tests, unparseable)."""


@dataclass(frozen=True)
class HubDataset:
    """One reference dataset: where it lives on the Hub and how its rows are normalized."""

    name: str
    domain: str
    path: str
    config: str | None
    normalize: Callable[[dict, str], dict]  # (row, id to use if it has none)
    # our split -> the Hub split holding it
    splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "test": "test"})
    note: str = ""


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _gsm8k(row: dict, fallback_id: str) -> dict:
    question, solution = row.get("question"), row.get("answer")
    if not question or not isinstance(solution, str) or "####" not in solution:
        raise UnusableRow("no '#### <number>' in the answer")
    match = _NUMBER.fullmatch(solution.rsplit("####", 1)[1].strip())
    if match is None:
        raise UnusableRow("the text after '####' is not a number")
    answer = match.group(0).replace(",", "")
    return make_row(
        prompt=prompts.math_prompt(question),
        domain="math",
        answer=answer,
        source="openai/gsm8k",
        id=str(row.get("id") or fallback_id),
    )


def _mbpp(row: dict, fallback_id: str) -> dict:
    # `full` has text + test_setup_code; `sanitized` has prompt + test_imports.
    task = row.get("text") or row.get("prompt")
    tests = [test for test in (row.get("test_list") or []) if isinstance(test, str) and test.strip()]
    if not task or not tests:
        raise UnusableRow("no task text or no tests")
    setup_code = row.get("test_setup_code") or ""
    imports = row.get("test_imports") or []
    if imports:
        setup_code = "\n".join([*imports, setup_code]).strip()
    reference = (row.get("code") or "").replace("\r\n", "\n")
    try:
        prompt = prompts.code_prompt(task, tests, reference)
    except ValueError as error:
        raise UnusableRow(str(error)) from error
    return make_row(
        prompt=prompt,
        domain="code",
        answer=reference,
        tests=tests,
        setup_code=setup_code,
        source="google-research-datasets/mbpp",
        id=str(row.get("task_id") or fallback_id),
    )


def _arc(row: dict, fallback_id: str) -> dict:
    choices = row.get("choices") or {}
    texts, labels = list(choices.get("text") or []), [str(label).strip() for label in choices.get("label") or []]
    key = str(row.get("answerKey") or "").strip()
    if not row.get("question") or len(texts) != len(labels) or not 2 <= len(texts) <= len(prompts.CHOICE_LABELS):
        raise UnusableRow("no question or malformed choices")
    if key not in labels:
        raise UnusableRow(f"answerKey {key!r} is not among the labels {labels}")
    # Some rows label choices 1-4; prompts always letter them, so the answer is the letter
    # at the key's position.
    return make_row(
        prompt=prompts.science_prompt(row["question"], texts),
        domain="science",
        answer=prompts.CHOICE_LABELS[labels.index(key)],
        source="allenai/ai2_arc",
        id=str(row.get("id") or fallback_id),
    )


_YES = {"true", "yes", "1"}
_NO = {"false", "no", "0"}


def _strategyqa(row: dict, fallback_id: str) -> dict:
    # Accepts the original release JSON and the Hub copies: `facts` a list or one string,
    # `decomposition` optional (neither is shown to the model: StrategyQA asks for the
    # implicit reasoning itself).
    answer = row.get("answer")
    if isinstance(answer, str):
        answer = True if answer.strip().lower() in _YES else False if answer.strip().lower() in _NO else None
    if not isinstance(answer, bool) or not row.get("question"):
        raise UnusableRow("no question or no true/false answer")
    return make_row(
        prompt=prompts.logic_prompt(row["question"]),
        domain="logic",
        answer="yes" if answer else "no",
        source="strategyqa",
        id=str(row.get("qid") or fallback_id),
    )


HUB_DATASETS = {
    "gsm8k": HubDataset("gsm8k", "math", "openai/gsm8k", "main", _gsm8k),
    "mbpp": HubDataset(
        "mbpp", "code", "google-research-datasets/mbpp", "full", _mbpp,
        splits={"train": "train", "test": "test", "validation": "validation", "prompt": "prompt"},
    ),
    "mbpp_sanitized": HubDataset(
        "mbpp_sanitized", "code", "google-research-datasets/mbpp", "sanitized", _mbpp,
        splits={"train": "train", "test": "test", "validation": "validation", "prompt": "prompt"},
    ),
    "arc_easy": HubDataset(
        "arc_easy", "science", "allenai/ai2_arc", "ARC-Easy", _arc,
        splits={"train": "train", "test": "test", "validation": "validation"},
    ),
    # ChilleD's copy: the 2,290 labelled StrategyQA questions split 1,603 train / 687 test, so
    # evaluation is held out (the official test set has no public answers).
    "strategyqa": HubDataset("strategyqa", "logic", "ChilleD/StrategyQA", None, _strategyqa),
    # All 2,290 labelled questions in the original schema, as one train split.
    "strategyqa_full": HubDataset("strategyqa_full", "logic", "tasksource/strategy-qa", None, _strategyqa, splits={"train": "train"}),
}

# The reference dataset of each domain (source=None).
REFERENCE = {"math": "gsm8k", "code": "mbpp", "science": "arc_easy", "logic": "strategyqa"}
