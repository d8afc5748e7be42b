"""Code: tiny function-writing tasks, each with a reference solution and assert tests.

A family is one kind of task (add a constant, reverse a string, largest of a list, ...); an
item draws the family, its constant where it has one, and three test inputs. The expected
values come from a Python oracle written separately from the reference source, and the tests
check that the two agree by running the reference in the sandbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

_WORDS = (
    "apple", "river", "stone", "cloud", "tiger", "lemon", "piano", "robot", "candle", "garden",
    "pencil", "rocket", "banana", "window", "planet", "cat", "sun", "moon", "book", "tree",
)


@dataclass(frozen=True)
class _Family:
    name: str  # may hold {k}
    parameters: str
    task: str  # may hold {k}
    body: str  # may hold {k}; the reference solution's return expression
    inputs: Callable[[np.random.Generator, int], tuple]
    oracle: Callable[..., object]  # oracle(k, *arguments)
    constants: tuple = (0,)


def _int(low: int, high: int):
    return lambda rng, k: (int(rng.integers(low, high)),)


def _two_ints(rng, k):
    return int(rng.integers(-20, 51)), int(rng.integers(-20, 51))


def _int_list(rng, k):
    return ([int(x) for x in rng.integers(-20, 51, size=int(rng.integers(3, 7)))],)


def _word(rng, k):
    return (_WORDS[rng.integers(len(_WORDS))],)


def _letters(rng, k):
    return ("".join(rng.choice(list("abcde"), size=int(rng.integers(3, 9)))),)


_FAMILIES = (
    _Family("add_{k}", "x", "Write a function that returns x plus {k}.", "x + {k}", _int(-20, 51), lambda k, x: x + k, tuple(range(2, 21))),
    _Family("times_{k}", "x", "Write a function that returns x multiplied by {k}.", "x * {k}", _int(-20, 51), lambda k, x: x * k, tuple(range(2, 13))),
    _Family("add", "a, b", "Write a function that returns the sum of a and b.", "a + b", _two_ints, lambda k, a, b: a + b),
    _Family("difference", "a, b", "Write a function that returns a minus b.", "a - b", _two_ints, lambda k, a, b: a - b),
    _Family("larger", "a, b", "Write a function that returns the larger of a and b.", "max(a, b)", _two_ints, lambda k, a, b: max(a, b)),
    _Family("largest", "numbers", "Write a function that returns the largest number in a list.", "max(numbers)", _int_list, lambda k, xs: max(xs)),
    _Family("smallest", "numbers", "Write a function that returns the smallest number in a list.", "min(numbers)", _int_list, lambda k, xs: min(xs)),
    _Family("total", "numbers", "Write a function that returns the sum of a list of numbers.", "sum(numbers)", _int_list, lambda k, xs: sum(xs)),
    _Family("last_item", "items", "Write a function that returns the last element of a list.", "items[-1]", _int_list, lambda k, xs: xs[-1]),
    _Family("count_even", "numbers", "Write a function that returns how many numbers in a list are even.", "sum(1 for n in numbers if n % 2 == 0)", _int_list, lambda k, xs: len([x for x in xs if x % 2 == 0])),
    _Family("count_above_{k}", "numbers", "Write a function that returns how many numbers in a list are greater than {k}.", "sum(1 for n in numbers if n > {k})", _int_list, lambda k, xs: len([x for x in xs if x > k]), tuple(range(0, 31, 5))),
    _Family("reverse_string", "s", "Write a function that returns the string s reversed.", "s[::-1]", _word, lambda k, s: "".join(reversed(s))),
    _Family("shout", "s", "Write a function that returns the string s in upper case.", "s.upper()", _word, lambda k, s: "".join(c.upper() for c in s)),
    _Family("length", "s", "Write a function that returns the number of characters in s.", "len(s)", _word, lambda k, s: sum(1 for _ in s)),
    _Family("repeat_{k}", "s", "Write a function that returns the string s repeated {k} times.", "s * {k}", _word, lambda k, s: "".join([s] * k), (2, 3, 4)),
    _Family("first_{k}", "s", "Write a function that returns the first {k} characters of s.", "s[:{k}]", _word, lambda k, s: "".join(list(s)[:k]), (1, 2, 3)),
    _Family("count_{k}", "s", "Write a function that returns how many times the letter '{k}' appears in s.", "s.count('{k}')", _letters, lambda k, s: len([c for c in s if c == k]), tuple("abcde")),
    _Family("is_even", "n", "Write a function that returns True if n is even, else False.", "n % 2 == 0", _int(-20, 101), lambda k, n: n % 2 == 0),
    _Family("divisible_by_{k}", "n", "Write a function that returns True if n is divisible by {k}, else False.", "n % {k} == 0", _int(1, 101), lambda k, n: n - (n // k) * k == 0, tuple(range(2, 10))),
    _Family("square", "n", "Write a function that returns n squared.", "n * n", _int(-12, 13), lambda k, n: n**2),
    _Family("absolute", "n", "Write a function that returns the absolute value of n.", "abs(n)", _int(-50, 51), lambda k, n: n if n >= 0 else -n),
)


def make_item(rng: np.random.Generator) -> dict:
    family = _FAMILIES[rng.integers(len(_FAMILIES))]
    k = family.constants[rng.integers(len(family.constants))]
    name = family.name.format(k=k)
    tests, seen = [], set()
    while len(tests) < 3:
        arguments = family.inputs(rng, k)
        call = f"{name}({', '.join(repr(argument) for argument in arguments)})"
        if call in seen:
            continue
        seen.add(call)
        tests.append(f"assert {call} == {family.oracle(k, *arguments)!r}")
    reference = f"def {name}({family.parameters}):\n    return {family.body.format(k=k)}\n"
    return {"task": family.task.format(k=k), "tests": tests, "reference": reference}
