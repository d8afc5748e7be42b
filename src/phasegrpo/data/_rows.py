"""The normalized row of the contract: its columns, their Arrow types, and one constructor."""

from __future__ import annotations

from collections.abc import Sequence

import datasets

from phasegrpo.domains import get_domain

COLUMNS = ("prompt", "domain", "answer", "tests", "setup_code", "source", "id")

# Explicit types so that an all-empty `tests` column is still `list[str]` and datasets from
# different sources concatenate without casts.
FEATURES = datasets.Features(
    {
        "prompt": datasets.List({"role": datasets.Value("string"), "content": datasets.Value("string")}),
        "domain": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "tests": datasets.List(datasets.Value("string")),
        "setup_code": datasets.Value("string"),
        "source": datasets.Value("string"),
        "id": datasets.Value("string"),
    }
)


def make_row(
    *,
    prompt: list[dict[str, str]],
    domain: str,
    answer: str,
    source: str,
    id: str,
    tests: Sequence[str] = (),
    setup_code: str = "",
) -> dict:
    return {
        "prompt": prompt,
        "domain": domain,
        "answer": answer,
        "tests": list(tests),
        "setup_code": setup_code,
        "source": source,
        "id": id,
    }


def check_domain(domain: str) -> str:
    """`domain` itself when it is registered; the registry's ValueError naming the known ones otherwise."""
    return get_domain(domain).name
