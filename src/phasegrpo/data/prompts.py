"""What the model sees: one system prompt stating the reply format, one user prompt per domain,
and the chat template for base models whose tokenizer has none.

Prompts are short on purpose: the demo runs a 270M model on CPU, where every prompt token
costs time in every rollout of the group.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Sequence

from phasegrpo.formats import ANSWER_START, FORMAT_INSTRUCTION

SYSTEM_PROMPT = FORMAT_INSTRUCTION

CHOICE_LABELS = "ABCDEFGH"

# Gemma turn markup (`<start_of_turn>user ... <end_of_turn>`), for base models and for the
# embedded Gemma 3 270M whose tokenizer carries no template. As in Gemma's own template, a
# system message is folded into the first user turn (Gemma has no system role). The
# generation prompt ends with `<start_of_turn>model\n` and nothing more: the model must write
# `<reasoning>` itself, since the format rewards score the completion alone.
BASE_MODEL_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% set system = namespace(text='') %}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{% set system.text = system.text + (message['content'] | trim) + '\n\n' %}"
    "{% else %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else 'user' }}\n"
    "{% if message['role'] != 'assistant' %}{{ system.text }}{% set system.text = '' %}{% endif %}"
    "{{ message['content'] | trim }}<end_of_turn>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def conversation(user_prompt: str) -> list[dict[str, str]]:
    """The `prompt` column: TRL's conversational format, system prompt first."""
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_prompt}]


def math_prompt(question: str) -> list[dict[str, str]]:
    return conversation(f"{question.strip()}\nThe answer is a number.")


def logic_prompt(question: str) -> list[dict[str, str]]:
    return conversation(f"{question.strip()}\nAnswer yes or no.")


def science_prompt(question: str, choices: Sequence[str]) -> list[dict[str, str]]:
    """Choices are listed as `A) text` lines, always lettered (the answer is the letter)."""
    if not 2 <= len(choices) <= len(CHOICE_LABELS):
        raise ValueError(f"A science question needs 2 to {len(CHOICE_LABELS)} choices, got {len(choices)}.")
    lines = "\n".join(f"{label}) {text.strip()}" for label, text in zip(CHOICE_LABELS, choices))
    return conversation(f"{question.strip()}\n{lines}\nAnswer with the letter.")


def code_prompt(task: str, tests: Sequence[str], reference: str = "") -> list[dict[str, str]]:
    """States the function's name and signature (from the first test) and shows that test."""
    if not tests:
        raise ValueError("A code task needs at least one test to name its function.")
    signature = function_signature(tests[0], reference)
    return conversation(
        f"{task.strip()}\nFunction: {signature}\nIt must pass: {tests[0].strip()}\n"
        f"Put only the Python code in {ANSWER_START}."
    )


def _worked_examples() -> dict[str, tuple[list[dict[str, str]], str]]:
    """One solved item per domain, written like the real prompts (builders above)."""
    from phasegrpo.formats import render

    return {
        "math": (math_prompt("Tom has 3 apples and buys 4 more. How many apples does he have now?"),
                 render("Tom starts with 3 apples and buys 4 more, so 3 + 4 = 7.", "7")),
        "logic": (logic_prompt("Is 12 + 5 more than 15?"), render("12 + 5 = 17, and 17 is more than 15.", "yes")),
        "science": (science_prompt("Which of these is a liquid at room temperature?", ["ice", "water", "stone"]),
                    render("Water flows at room temperature; ice and stone are solid.", "B")),
        "code": (code_prompt("Write a function that returns twice a number.", ["assert double(3) == 6"]),
                 render("Multiply the number by 2.", "def double(x):\n    return 2 * x")),
    }


def with_worked_example(prompt: list[dict[str, str]], domain: str) -> list[dict[str, str]]:
    """`prompt` with one solved item of its domain shown first, as an earlier user/assistant turn.

    Base models such as the embedded Gemma 3 270M otherwise copy the format instruction's
    placeholder (`<answer>...</answer>`) instead of answering; one example in the real format
    turns that around (measured in docs/data.md). Instruct models do not need it.
    """
    examples = _worked_examples()
    if domain not in examples:
        raise ValueError(f"No worked example for domain {domain!r}. Known: {', '.join(sorted(examples))}.")
    example_prompt, example_reply = examples[domain]
    system = [message for message in prompt if message["role"] == "system"]
    rest = [message for message in prompt if message["role"] != "system"]
    example_turns = [message for message in example_prompt if message["role"] != "system"]
    return [*system, *example_turns, {"role": "assistant", "content": example_reply}, *rest]


def add_worked_examples(rows):
    """A datasets.Dataset of contract rows with `with_worked_example` applied to every prompt."""
    return rows.map(lambda row: {"prompt": with_worked_example(row["prompt"], row["domain"])})


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
