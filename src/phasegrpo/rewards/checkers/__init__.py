"""One answer checker per domain, `(cases, values) -> list[float]`; `rewards.correctness.CHECKERS`
maps domain names to them. `_text` holds what they share: reading an answer past its dressing."""
