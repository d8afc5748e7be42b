"""The code checker: the answer's program run against its row's tests in the sandbox."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from phasegrpo import sandbox
from phasegrpo.rewards._common import is_list_like
from phasegrpo.rewards.values import RewardValues

if TYPE_CHECKING:  # only for annotations: correctness imports this module
    from phasegrpo.rewards.correctness import Case

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
    for positions, verdict in zip(program_of.values(), verdicts, strict=False):
        for position in positions:
            scores[position] = values.correct_reward * min(1.0, max(0.0, float(verdict.fraction)))
    return scores
