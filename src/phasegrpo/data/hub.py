"""Datasets on the Hugging Face Hub: how one is described, and the views of those the domains list.

Each domain lists its Hub datasets (`Domain.hub_datasets`, in `phasegrpo.domains.<name>`), each
with an adapter that takes one row in the dataset's Hub schema and returns the normalized row,
or raises `UnusableRow` with the reason; the loader drops, counts and reports those. The same
adapters read local JSON/JSONL/Parquet files written in the Hub schema (`data_files=`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from phasegrpo.domains import domain_names, get_domain


class UnusableRow(ValueError):
    """A source row that cannot become a training row (no answer, no tests, unparseable)."""


@dataclass(frozen=True)
class HubDataset:
    """One dataset of a domain: where it lives on the Hub and how its rows are normalized."""

    name: str
    domain: str
    path: str
    config: str | None
    normalize: Callable[[dict, str], dict]  # (row, id to use if it has none)
    # our split -> the Hub split holding it
    splits: dict[str, str] = field(default_factory=lambda: {"train": "train", "test": "test"})
    note: str = ""


# Functions, not constants: a domain registered after import must show up.
def hub_datasets() -> dict[str, HubDataset]:
    """Every registered domain's Hub datasets by name (`gsm8k`, `mbpp`, `mbpp_sanitized`, ...)."""
    return {spec.name: spec for name in domain_names() for spec in get_domain(name).hub_datasets}


def reference_datasets() -> dict[str, str]:
    """The reference Hub dataset of each domain that has one (`{"math": "gsm8k", ...}`)."""
    return {name: get_domain(name).reference_dataset.name for name in domain_names() if get_domain(name).hub_datasets}
