"""The names of everything phasegrpo logs, built and parsed in one place.

The router and the trainer log through TRL (`log_metric`), so these keys reach TRL's logs,
`metrics.jsonl` and any tracker. `metrics.jsonl` regroups them into nested fields
(`parse` below), and the report reads those fields.

    rewards/<reward>/raw | contribution                  each reward's batch mean
    rewards/<reward>/<domain>/raw | contribution         ... per domain
    domain/<domain>/reward | count | exact_rate | kl     per-domain totals
    mix/<domain>                                         the domain mix weight in force
    phase, format/exact_rate                             the curriculum phase, exact-format share
"""

from __future__ import annotations

from dataclasses import dataclass

PHASE = "phase"
EXACT_FORMAT_RATE = "format/exact_rate"
REWARD_PARTS = ("raw", "contribution")
DOMAIN_STATS = ("reward", "count", "exact_rate", "kl")


def reward(name: str, part: str, domain: str | None = None) -> str:
    """`rewards/<name>/<part>`, or per domain `rewards/<name>/<domain>/<part>`."""
    return f"rewards/{name}/{part}" if domain is None else f"rewards/{name}/{domain}/{part}"


def domain_stat(domain: str, stat: str) -> str:
    return f"domain/{domain}/{stat}"


def mix_weight(domain: str) -> str:
    return f"mix/{domain}"


@dataclass(frozen=True)
class Key:
    """A parsed key: its kind ("reward", "reward_by_domain", "domain", "mix") and parts."""

    kind: str
    name: str = ""
    domain: str = ""
    part: str = ""


def parse(key: str) -> Key | None:
    """What a key built above means, or None for any other key (TRL's own, the phase)."""
    parts = key.split("/")
    if parts[0] == "rewards" and parts[-1] in REWARD_PARTS:
        if len(parts) == 3:
            return Key("reward", name=parts[1], part=parts[2])
        if len(parts) == 4:
            return Key("reward_by_domain", name=parts[1], domain=parts[2], part=parts[3])
    if len(parts) == 3 and parts[0] == "domain" and parts[2] in DOMAIN_STATS:
        return Key("domain", domain=parts[1], part=parts[2])
    if len(parts) == 2 and parts[0] == "mix":
        return Key("mix", domain=parts[1])
    return None
