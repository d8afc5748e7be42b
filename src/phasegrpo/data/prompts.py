"""What the model sees, for every domain: the system prompt stating the reply format, the
conversation shape, the worked example shown to base models, and the chat template for base
models whose tokenizer has none. Each domain's own user prompt lives in its module
(`phasegrpo.domains.math.math_prompt`, ...).

Prompts are short on purpose: the demo runs a 270M model on CPU, where every prompt token
costs time in every rollout of the group.
"""

from __future__ import annotations

from phasegrpo.domains import get_domain
from phasegrpo.formats import FORMAT_INSTRUCTION

SYSTEM_PROMPT = FORMAT_INSTRUCTION

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


def with_worked_example(prompt: list[dict[str, str]], domain: str) -> list[dict[str, str]]:
    """`prompt` with one solved item of its domain shown first, as an earlier user/assistant turn.

    Base models such as the embedded Gemma 3 270M otherwise copy the format instruction's
    placeholder (`<answer>...</answer>`) instead of answering; one example in the real format
    turns that around (measured in docs/data.md). Instruct models do not need it.
    """
    example = get_domain(domain).worked_example
    if example is None:
        raise ValueError(f"No worked example for domain {domain!r}: give its Domain a worked_example=(prompt, reply).")
    example_prompt, example_reply = example
    system = [message for message in prompt if message["role"] == "system"]
    rest = [message for message in prompt if message["role"] != "system"]
    example_turns = [message for message in example_prompt if message["role"] != "system"]
    return [*system, *example_turns, {"role": "assistant", "content": example_reply}, *rest]


def add_worked_examples(rows):
    """A datasets.Dataset of contract rows with `with_worked_example` applied to every prompt."""
    return rows.map(lambda row: {"prompt": with_worked_example(row["prompt"], row["domain"])})
