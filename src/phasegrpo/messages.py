"""Chat messages of a prompt (TRL's conversational format, or a plain string)."""

from __future__ import annotations

from collections.abc import Mapping


def last_user_message(prompt) -> str:
    """The content of the last user message (the question), or the prompt itself when it is a string."""
    if isinstance(prompt, str):
        return prompt
    try:
        messages = list(prompt or [])
    except TypeError:
        return ""
    for message in reversed(messages):
        if isinstance(message, Mapping) and message.get("role") == "user":
            return str(message.get("content") or "")
    return ""
