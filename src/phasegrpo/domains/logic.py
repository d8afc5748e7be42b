"""Logic: yes/no questions. Generated reasoning questions, and StrategyQA from the Hub.

The user prompt is the question, then `Answer yes or no.`; `check_answer` compares the yes/no
in `<answer>` with the row's `answer` (the "logic" checker). Generated questions cover number
comparisons, parity, divisibility, syllogisms over made-up words (so world knowledge cannot
help) and transitive orderings.
"""

from __future__ import annotations

import numpy as np

from phasegrpo.data._rows import make_row
from phasegrpo.data.hub import HubDataset, UnusableRow
from phasegrpo.data.prompts import conversation
from phasegrpo.domains import Domain, register_domain
from phasegrpo.formats import render


def logic_prompt(question: str) -> list[dict[str, str]]:
    return conversation(f"{question.strip()}\nAnswer yes or no.")


# --- generated questions ---------------------------------------------------------------------

_WORDS = ("blicket", "wug", "fep", "zorb", "glim", "tove", "quiff", "lorp", "snib", "norf", "bram", "kest")
_NAMES = ("Ana", "Ben", "Chloe", "Dev", "Emma", "Finn", "Grace", "Hugo", "Ivy", "Jack", "Kira", "Leo", "Maya", "Noah")
_RELATIONS = ("taller", "older", "faster", "heavier", "stronger")


def _yes_no(value) -> str:
    return "yes" if value else "no"


def _compare(rng):
    a, b = rng.choice(np.arange(1, 1000), size=2, replace=False)
    word = ("greater", "smaller")[rng.integers(2)]
    return f"Is {a} {word} than {b}?", _yes_no(a > b if word == "greater" else a < b)


def _parity(rng):
    n = rng.integers(1, 1000)
    word = ("even", "odd")[rng.integers(2)]
    return f"Is {n} an {word} number?", _yes_no((n % 2 == 0) == (word == "even"))


def _divisible(rng):
    k = rng.integers(2, 10)
    if rng.integers(2):
        n = k * rng.integers(2, 40)
    else:
        n = rng.integers(10, 300)
    return f"Is {n} divisible by {k}?", _yes_no(n % k == 0)


def _sum_compare(rng):
    a, b = rng.integers(2, 50, size=2)
    c = a + b + rng.integers(-10, 11)
    if c == a + b:
        c += 1
    return f"Is {a} + {b} more than {c}?", _yes_no(a + b > c)


def _syllogism(rng):
    first, second = rng.choice(_WORDS, size=2, replace=False)
    name = _NAMES[rng.integers(len(_NAMES))]
    form = rng.integers(4)
    if form == 0:
        return f"All {first}s are {second}s. {name} is a {first}. Is {name} a {second}?", "yes"
    if form == 1:
        return f"No {first}s are {second}s. {name} is a {first}. Is {name} a {second}?", "no"
    if form == 2:
        return f"All {first}s are {second}s. {name} is not a {second}. Is {name} a {first}?", "no"
    third = rng.choice([word for word in _WORDS if word not in (first, second)])
    return f"All {first}s are {second}s. All {second}s are {third}s. Is every {first} a {third}?", "yes"


def _ordering(rng):
    x, y, z = rng.choice(_NAMES, size=3, replace=False)
    relation = _RELATIONS[rng.integers(len(_RELATIONS))]
    facts = f"{x} is {relation} than {y}. {y} is {relation} than {z}."
    if rng.integers(2):
        return f"{facts} Is {x} {relation} than {z}?", "yes"
    return f"{facts} Is {z} {relation} than {x}?", "no"


_TEMPLATES = (_compare, _parity, _divisible, _sum_compare, _syllogism, _ordering)


def generate(rng: np.random.Generator) -> dict:
    """One question of a random template, as row fields."""
    question, answer = _TEMPLATES[rng.integers(len(_TEMPLATES))](rng)
    return {"prompt": logic_prompt(question), "answer": answer}


# --- StrategyQA ------------------------------------------------------------------------------

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
        prompt=logic_prompt(row["question"]),
        domain="logic",
        answer="yes" if answer else "no",
        source="strategyqa",
        id=str(row.get("qid") or fallback_id),
    )


# ChilleD's copy: the 2,290 labelled StrategyQA questions split 1,603 train / 687 test, so
# evaluation is held out (the official test set has no public answers).
STRATEGYQA = HubDataset("strategyqa", "logic", "ChilleD/StrategyQA", None, _strategyqa)
# All 2,290 labelled questions in the original schema, as one train split.
STRATEGYQA_FULL = HubDataset("strategyqa_full", "logic", "tasksource/strategy-qa", None, _strategyqa, splits={"train": "train"})

WORKED_EXAMPLE = (logic_prompt("Is 12 + 5 more than 15?"), render("12 + 5 = 17, and 17 is more than 15.", "yes"))

register_domain(
    Domain(
        name="logic",
        checker="logic",
        generate=generate,
        worked_example=WORKED_EXAMPLE,
        hub_datasets=(STRATEGYQA, STRATEGYQA_FULL),
        data_dir_folders=("strategyqa", "logic"),
        weight=0.15,
        scale=0.7,
        seed_key=3,
    )
)
