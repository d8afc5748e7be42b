"""Logic: yes/no questions on number comparisons, parity, divisibility, syllogisms over
made-up words (so world knowledge cannot help), and transitive orderings."""

from __future__ import annotations

import numpy as np

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


def make_item(rng: np.random.Generator) -> dict:
    question, answer = _TEMPLATES[rng.integers(len(_TEMPLATES))](rng)
    return {"question": question, "answer": answer}
