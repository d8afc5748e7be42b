"""Math: whole-number answers. Generated one- and two-step word problems, and GSM8K from the Hub.

The user prompt is the question, then `The answer is a number.`; `check_answer` compares the
number in `<answer>` with the row's `answer` (the "math" checker).
"""

from __future__ import annotations

import re

import numpy as np

from phasegrpo.data._rows import make_row
from phasegrpo.data.hub import HubDataset, UnusableRow
from phasegrpo.data.prompts import conversation
from phasegrpo.domains import Domain, register_domain
from phasegrpo.formats import render


def math_prompt(question: str) -> list[dict[str, str]]:
    return conversation(f"{question.strip()}\nThe answer is a number.")


# --- generated word problems -----------------------------------------------------------------

_PEOPLE = (
    ("Ana", "she"), ("Ben", "he"), ("Chloe", "she"), ("Dev", "he"), ("Emma", "she"), ("Finn", "he"),
    ("Grace", "she"), ("Hugo", "he"), ("Ivy", "she"), ("Jack", "he"), ("Kira", "she"), ("Leo", "he"),
    ("Maya", "she"), ("Noah", "he"), ("Olga", "she"), ("Paul", "he"), ("Rosa", "she"), ("Sam", "he"),
    ("Tara", "she"), ("Omar", "he"),
)
_THINGS = (
    "apples", "pencils", "stickers", "marbles", "cookies", "books", "stamps", "shells", "cards",
    "eggs", "toy cars", "balloons", "oranges", "candles", "buttons",
)


def _person(rng: np.random.Generator) -> tuple[str, str]:
    return _PEOPLE[rng.integers(len(_PEOPLE))]


def _add(rng):
    (name, pronoun), things = _person(rng), rng.choice(_THINGS)
    a, b = rng.integers(2, 41, size=2)
    return f"{name} has {a} {things}. {pronoun.capitalize()} gets {b} more. How many {things} does {name} have now?", a + b


def _subtract(rng):
    (name, _), things = _person(rng), rng.choice(_THINGS)
    a = rng.integers(10, 61)
    b = rng.integers(1, a)
    return f"{name} had {a} {things} and gave {b} to a friend. How many {things} are left?", a - b


def _multiply(rng):
    (name, _), things = _person(rng), rng.choice(_THINGS)
    a, b = rng.integers(2, 10), rng.integers(2, 13)
    return f"{name} buys {a} boxes with {b} {things} in each box. How many {things} is that in total?", a * b


def _divide(rng):
    (name, _), things = _person(rng), rng.choice(_THINGS)
    friends, each = rng.integers(2, 10), rng.integers(2, 13)
    return (
        f"{name} shares {friends * each} {things} equally among {friends} friends. "
        f"How many {things} does each friend get?",
        each,
    )


def _add_packs(rng):
    (name, pronoun), things = _person(rng), rng.choice(_THINGS)
    a, packs, size = rng.integers(1, 21), rng.integers(2, 6), rng.integers(2, 11)
    return (
        f"{name} has {a} {things} and buys {packs} packs of {size} {things}. "
        f"How many {things} does {pronoun} have now?",
        a + packs * size,
    )


def _wage(rng):
    name, pronoun = _person(rng)
    rate, hours = rng.integers(3, 16), rng.integers(2, 9)
    spent = rng.integers(1, rate * hours)
    return (
        f"{name} earns {rate} dollars an hour and works {hours} hours. "
        f"{pronoun.capitalize()} spends {spent} dollars. How many dollars are left?",
        rate * hours - spent,
    )


def _shelf(rng):
    name, _ = _person(rng)
    a = rng.integers(10, 51)
    taken = rng.integers(1, a)
    back = rng.integers(1, taken + 1)
    return (
        f"A shelf holds {a} books. {name} takes {taken} books and then puts {back} back. "
        "How many books are on the shelf now?",
        a - taken + back,
    )


def _together(rng):
    (name, _), things = _person(rng), rng.choice(_THINGS)
    other = _person(rng)[0]
    while other == name:
        other = _person(rng)[0]
    a, more = rng.integers(2, 31), rng.integers(1, 21)
    return (
        f"{name} has {a} {things}. {other} has {more} more {things} than {name}. "
        "How many do they have together?",
        a + a + more,
    )


def _change(rng):
    (name, pronoun), things = _person(rng), rng.choice(_THINGS)
    bill = int(rng.choice([10, 20, 50]))
    price = rng.integers(1, 6)
    count = rng.integers(1, bill // price)
    return (
        f"{name} buys {count} {things} at {price} dollars each and pays with a {bill} dollar bill. "
        f"How many dollars of change does {pronoun} get?",
        bill - count * price,
    )


_TEMPLATES = (_add, _subtract, _multiply, _divide, _add_packs, _wage, _shelf, _together, _change)


def generate(rng: np.random.Generator) -> dict:
    """One word problem of a random template, as row fields."""
    question, answer = _TEMPLATES[rng.integers(len(_TEMPLATES))](rng)
    return {"prompt": math_prompt(question), "answer": str(int(answer))}


# --- GSM8K -----------------------------------------------------------------------------------

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
        prompt=math_prompt(question),
        domain="math",
        answer=answer,
        source="openai/gsm8k",
        id=str(row.get("id") or fallback_id),
    )


GSM8K = HubDataset("gsm8k", "math", "openai/gsm8k", "main", _gsm8k)

# A fixed item the generator never produces (its names and wording are not in the templates).
WORKED_EXAMPLE = (
    math_prompt("Tom has 3 apples and buys 4 more. How many apples does he have now?"),
    render("Tom starts with 3 apples and buys 4 more, so 3 + 4 = 7.", "7"),
)

register_domain(
    Domain(
        name="math",
        checker="math",
        generate=generate,
        worked_example=WORKED_EXAMPLE,
        hub_datasets=(GSM8K,),
        data_dir_folders=("gsm8k", "math"),
        weight=0.35,
        scale=1.0,
        seed_key=0,
    )
)
