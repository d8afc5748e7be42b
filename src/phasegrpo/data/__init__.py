"""Data for phasegrpo: loaders per source, the generic generator, prompts, and the mixing sampler.

What each domain brings (its generator, prompt, Hub datasets, folders, worked example, weight)
lives in `phasegrpo.domains`; this package reads the registry when it runs.

    load_domain("math", source="synthetic")          # generated offline
    load_domain("code")                              # google-research-datasets/mbpp from the Hub
    load_domain("science", data_files="arc.jsonl")   # local files in the Hub schema
    weights = reference_weights()                    # from phasegrpo.domains: math 0.35, code 0.30, ...
    train, domains = concat_domains(load_mixture(weights, source="synthetic"))
    sampler = DomainMixSampler(domains, weights, mini_repeat_count=4, batch_size=4)

See docs/data.md.
"""

# The registry first: the built-in domains it imports use this package's modules (_rows, hub,
# prompts), which in turn ask the registry; starting from here would leave them half-imported.
import phasegrpo.domains  # noqa: F401
from phasegrpo.data._rows import COLUMNS, FEATURES
from phasegrpo.data.hub import HubDataset, UnusableRow, hub_datasets, reference_datasets
from phasegrpo.data.loading import load_domain, load_mixture, sources_for
from phasegrpo.data.mixing import (
    MIX_SCHEDULES,
    AdaptiveMix,
    ConstantMix,
    DomainMixSampler,
    LinearMix,
    MixSchedule,
    concat_domains,
    make_mix_schedule,
    normalize_weights,
)
from phasegrpo.data.prompts import BASE_MODEL_CHAT_TEMPLATE, SYSTEM_PROMPT

__all__ = [
    "BASE_MODEL_CHAT_TEMPLATE",
    "COLUMNS",
    "FEATURES",
    "MIX_SCHEDULES",
    "SYSTEM_PROMPT",
    "AdaptiveMix",
    "ConstantMix",
    "DomainMixSampler",
    "HubDataset",
    "LinearMix",
    "MixSchedule",
    "UnusableRow",
    "concat_domains",
    "hub_datasets",
    "load_domain",
    "load_mixture",
    "make_mix_schedule",
    "normalize_weights",
    "reference_datasets",
    "sources_for",
]
