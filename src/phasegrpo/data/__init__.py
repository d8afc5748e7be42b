"""Data for phasegrpo: loaders per source, generators per domain, prompts, and the mixing sampler.

    load_domain("math", source="synthetic")          # generated offline
    load_domain("code")                              # google-research-datasets/mbpp from the Hub
    load_domain("science", data_files="arc.jsonl")   # local files in the Hub schema
    train, domains = concat_domains(load_mixture(DEFAULT_WEIGHTS, source="synthetic"))
    sampler = DomainMixSampler(domains, DEFAULT_WEIGHTS, mini_repeat_count=4, batch_size=4)

See docs/data.md.
"""

from phasegrpo.data._rows import COLUMNS, DOMAINS, FEATURES
from phasegrpo.data.hub import HUB_DATASETS, REFERENCE
from phasegrpo.data.loading import load_domain, load_mixture, sources_for
from phasegrpo.data.mixing import (
    DEFAULT_WEIGHTS,
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
    "DEFAULT_WEIGHTS",
    "DOMAINS",
    "FEATURES",
    "HUB_DATASETS",
    "MIX_SCHEDULES",
    "REFERENCE",
    "SYSTEM_PROMPT",
    "AdaptiveMix",
    "ConstantMix",
    "DomainMixSampler",
    "LinearMix",
    "MixSchedule",
    "concat_domains",
    "load_domain",
    "load_mixture",
    "make_mix_schedule",
    "normalize_weights",
    "sources_for",
]
