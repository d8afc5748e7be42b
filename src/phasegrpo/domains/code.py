"""Code: write a small Python function that passes assert tests. Generated tasks, and MBPP from the Hub.

The user prompt states the task, the function's signature (from the first test) and that test;
`check_answer` runs the `<answer>` code against the row's `tests` in the sandbox (the "code"
checker). Generated tasks are families of tiny functions (add a constant, reverse a string,
largest of a list, ...): an item draws the family, its constant where it has one, and three test
inputs. The expected values come from a Python oracle written separately from the reference
source, and the tests check that the two agree by running the reference in the sandbox.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from phasegrpo.data._rows import make_row
from phasegrpo.data.hub import HubDataset, UnusableRow
from phasegrpo.data.prompts import conversation
from phasegrpo.domains import Domain, register_domain
from phasegrpo.formats import ANSWER_START, render

# --- the prompt ------------------------------------------------------------------------------


def code_prompt(task: str, tests: Sequence[str], reference: str = "") -> list[dict[str, str]]:
    """States the function's name and signature (from the first test) and shows that test."""
    if not tests:
        raise ValueError("A code task needs at least one test to name its function.")
    signature = function_signature(tests[0], reference)
    return conversation(
        f"{task.strip()}\nFunction: {signature}\nIt must pass: {tests[0].strip()}\n"
        f"Put only the Python code in {ANSWER_START}."
    )


def function_signature(test: str, reference: str = "") -> str:
    """`name(a, b)` for the function a test calls: the name and arity from the test, the
    parameter names from the reference solution when it defines that function with that arity.

    Raises ValueError when the test calls no user function (such a row cannot be prompted).
    """
    try:
        tree = ast.parse(test.strip())
    except SyntaxError as error:
        raise ValueError(f"Test is not valid Python: {test!r}") from error
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)]
    defined = _defined_functions(reference)
    # Prefer the function the reference defines (`set(f(x)) == ...` calls `set` first).
    chosen = next((call for call in calls if call.func.id in defined), None)
    if chosen is None:
        chosen = next((call for call in calls if not hasattr(builtins, call.func.id)), None)
    if chosen is None:
        raise ValueError(f"Test calls no user-defined function: {test!r}")
    name, arity = chosen.func.id, len(chosen.args) + len(chosen.keywords)
    parameters = defined.get(name)
    if parameters is None or len(parameters) != arity:
        parameters = [keyword.arg for keyword in chosen.keywords]
        parameters = [f"arg{i + 1}" for i in range(len(chosen.args))] + [p or "kwargs" for p in parameters]
    return f"{name}({', '.join(parameters)})"


def _defined_functions(code: str) -> dict[str, list[str]]:
    if not code:
        return {}
    try:
        tree = ast.parse(code.replace("\r\n", "\n"))
    except SyntaxError:
        return {}
    return {
        node.name: [argument.arg for argument in node.args.args]
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
    }


# --- generated tasks -------------------------------------------------------------------------

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


def generate(rng: np.random.Generator) -> dict:
    """One task of a random family, as row fields: the reference solution is the answer."""
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
    task = family.task.format(k=k)
    return {"prompt": code_prompt(task, tests, reference), "answer": reference, "tests": tests}


# --- MBPP ------------------------------------------------------------------------------------


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
        prompt = code_prompt(task, tests, reference)
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


_MBPP_SPLITS = {"train": "train", "test": "test", "validation": "validation", "prompt": "prompt"}
MBPP = HubDataset("mbpp", "code", "google-research-datasets/mbpp", "full", _mbpp, splits=_MBPP_SPLITS)
MBPP_SANITIZED = HubDataset("mbpp_sanitized", "code", "google-research-datasets/mbpp", "sanitized", _mbpp, splits=_MBPP_SPLITS)

# A fixed task no family produces (there is no `double`).
WORKED_EXAMPLE = (
    code_prompt("Write a function that returns twice a number.", ["assert double(3) == 6"]),
    render("Multiply the number by 2.", "def double(x):\n    return 2 * x"),
)

register_domain(
    Domain(
        name="code",
        checker="code",
        generate=generate,
        worked_example=WORKED_EXAMPLE,
        hub_datasets=(MBPP, MBPP_SANITIZED),
        data_dir_folders=("mbpp", "code"),
        weight=0.30,
        scale=1.2,
        seed_key=1,
    )
)
