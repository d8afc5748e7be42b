"""Offline generated data for any registered domain: seeded, deterministic per item, verifiable.

Each domain brings its own generator (`Domain.generate`, in `phasegrpo.domains.<name>`); this
module numbers, splits and normalizes what they make. Item *i* of a domain comes from
`np.random.default_rng((seed, domain.seed_key, i))`, so it is the same however many items were
drawn before and on any process. Splits are disjoint by construction: an item belongs to "test"
when a hash of its user prompt falls in one bucket out of ten, else to "train"; each split keeps
the first `n` distinct items of its own kind. The `id` is `<domain>-<i>`, the candidate index,
so any row can be regenerated alone.
"""

from __future__ import annotations

import hashlib

import numpy as np

from phasegrpo.data._rows import make_row
from phasegrpo.domains import get_domain

SOURCE = "synthetic"
SPLITS = ("train", "test")
DEFAULT_ROWS = {"train": 5000, "test": 500}
# What a generator returns: the first two always, the others where the domain has them.
ROW_FIELDS = ("prompt", "answer", "tests", "setup_code")
_TEST_BUCKETS = 10  # one hash bucket in ten is "test"


def generate_row(domain: str, index: int, seed: int = 0) -> dict:
    """Candidate item `index` of `domain`, as a normalized row (whatever split it falls in)."""
    spec = get_domain(domain)
    if spec.generate is None:
        raise ValueError(f"Domain {domain!r} has no generator, so no source='synthetic'; load it from its Hub dataset or files.")
    fields = spec.generate(np.random.default_rng((seed, spec.seed_key, index)))
    unknown, missing = set(fields) - set(ROW_FIELDS), {"prompt", "answer"} - set(fields)
    if unknown or missing:
        raise ValueError(
            f"The {domain} generator returned fields {sorted(fields)}; it must return prompt and answer "
            f"(and optionally tests, setup_code)."
        )
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
