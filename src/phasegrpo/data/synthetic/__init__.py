"""Offline generated data for every domain: seeded, deterministic per item, verifiable.

Item *i* of a domain comes from `np.random.default_rng((seed, domain_number, i))`, so it is the
same however many items were drawn before and on any process. Splits are disjoint by
construction: an item belongs to "test" when a hash of its user prompt falls in one bucket out
of ten, else to "train"; each split keeps the first `n` distinct items of its own kind. The
`id` is `<domain>-<i>`, the candidate index, so any row can be regenerated alone.
"""

from __future__ import annotations

import hashlib

import numpy as np

from phasegrpo.data import prompts
from phasegrpo.data._rows import make_row
from phasegrpo.data.synthetic import arithmetic, functions, logic, science

SOURCE = "synthetic"
SPLITS = ("train", "test")
DEFAULT_ROWS = {"train": 5000, "test": 500}
_TEST_BUCKETS = 10  # one hash bucket in ten is "test"


def _math_row(item: dict) -> dict:
    return {"prompt": prompts.math_prompt(item["question"]), "answer": item["answer"]}


def _code_row(item: dict) -> dict:
    return {
        "prompt": prompts.code_prompt(item["task"], item["tests"], item["reference"]),
        "answer": item["reference"],
        "tests": item["tests"],
    }


def _science_row(item: dict) -> dict:
    return {
        "prompt": prompts.science_prompt(item["question"], item["choices"]),
        "answer": prompts.CHOICE_LABELS[item["answer_index"]],
    }


def _logic_row(item: dict) -> dict:
    return {"prompt": prompts.logic_prompt(item["question"]), "answer": item["answer"]}


# domain -> (its number in the seed, item generator, item -> row fields)
GENERATORS = {
    "math": (0, arithmetic.make_item, _math_row),
    "code": (1, functions.make_item, _code_row),
    "science": (2, science.make_item, _science_row),
    "logic": (3, logic.make_item, _logic_row),
}


def generate_row(domain: str, index: int, seed: int = 0) -> dict:
    """Candidate item `index` of `domain`, as a normalized row (whatever split it falls in)."""
    domain_number, make_item, to_row = GENERATORS[domain]
    fields = to_row(make_item(np.random.default_rng((seed, domain_number, index))))
    return make_row(domain=domain, source=SOURCE, id=f"{domain}-{index}", **fields)


def split_of(row: dict) -> str:
    digest = hashlib.blake2b(row["prompt"][-1]["content"].encode("utf-8"), digest_size=8).digest()
    return "test" if int.from_bytes(digest, "big") % _TEST_BUCKETS == 0 else "train"


def generate(domain: str, split: str = "train", count: int | None = None, seed: int = 0) -> list[dict]:
    """The first `count` distinct rows of `split` (default: DEFAULT_ROWS[split])."""
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r} for synthetic data. Available: {', '.join(SPLITS)}.")
    count = DEFAULT_ROWS[split] if count is None else count
    # Test items are a tenth of the candidates; past this many tries the space is exhausted.
    max_candidates = 50 * count + 1000
    rows, seen = [], set()
    for index in range(max_candidates):
        if len(rows) >= count:
            break
        row = generate_row(domain, index, seed)
        key = row["prompt"][-1]["content"]
        if key in seen or split_of(row) != split:
            continue
        seen.add(key)
        rows.append(row)
    if len(rows) < count:
        raise ValueError(
            f"The {domain} generator yields only {len(rows)} distinct {split} items in {max_candidates} tries; "
            f"ask for at most that many."
        )
    return rows
