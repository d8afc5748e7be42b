"""The domain registry: one `Domain` per task family, and everything else asks it.

A domain says how its items are generated, prompted, read from the Hub or from a data folder,
weighted in the default mix, scaled in the reward and checked. The built-in domains (math,
code, science, logic) each live in one module of this package and register themselves on
import; adding a domain is one more file that calls `register_domain`:

    from phasegrpo.domains import Domain, register_domain

    register_domain(Domain(name="parity", checker="logic", generate=generate_parity,
                           worked_example=(prompt, reply)))

Loaders, prompts, the sampler, the config and the CLI read the registry when they run, so a
domain registered after `import phasegrpo` is visible everywhere. See docs/data.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from math import isfinite  # not `import math`: the built-in module `math` below takes that name
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from phasegrpo.data.hub import HubDataset

# (cases, reward values) -> one score per case, as the checkers in phasegrpo.rewards.CHECKERS.
Checker = Callable[..., list]
# rng -> the row fields of one generated item (see phasegrpo.data.synthetic.ROW_FIELDS).
Generator = Callable[["np.random.Generator"], dict]

# Names appear in metric keys (`domain/<name>/reward`) and row ids (`<name>-<i>`).
_NAME = re.compile(r"[a-z][a-z0-9_]*")


@dataclass(frozen=True, kw_only=True)
class Domain:
    """One task family: its data sources, prompts, default weight, reward scale and checker.

    name: a lowercase word; the rows' `domain` column.
    checker: how `check_answer` scores the domain's answers: the name of a checker in
        `phasegrpo.rewards.CHECKERS` ("math", "code", "science", "logic"), or a callable
        `(cases, values) -> list[float]`.
    generate: `rng -> row fields` for `source="synthetic"`: `prompt` (chat messages, e.g. from
        `phasegrpo.data.prompts.conversation`) and `answer`, for code also `tests`, `setup_code`.
    worked_example: `(prompt, reply)`, one solved item shown to base models before each question.
    hub_datasets: the `HubDataset`s the domain reads; the first is the reference (`source=None`).
    data_dir_folders: folder names under a `data_dir`, first found wins (default: the name).
    weight: weight in the default mix (`reference_weights()`); 0 keeps the domain out of it
        until a config weights it.
    scale: multiplier of every reward of the domain's rows (`reference_scales()`).
    seed_key: generated item i is drawn from `default_rng((seed, seed_key, i))`; default: a
        stable hash of the name. The built-ins keep 0-3, so their data never changes.
    """

    name: str
    checker: str | Checker
    generate: Generator | None = None
    worked_example: tuple[list[dict[str, str]], str] | None = None
    hub_datasets: tuple[HubDataset, ...] = ()
    data_dir_folders: tuple[str, ...] = ()
    weight: float = 0.0
    scale: float = 1.0
    seed_key: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"Domain name {self.name!r} must be a lowercase word (letters, digits, _), e.g. 'parity'.")
        if not (isinstance(self.checker, str) or callable(self.checker)):
            raise TypeError(f"Domain {self.name!r}: checker must be a checker name or a callable, got {self.checker!r}.")
        if self.generate is not None and not callable(self.generate):
            raise TypeError(f"Domain {self.name!r}: generate must be a callable rng -> row fields, got {self.generate!r}.")
        example = self.worked_example
        if example is not None and not (len(example) == 2 and isinstance(example[0], list) and isinstance(example[1], str)):
            raise TypeError(f"Domain {self.name!r}: worked_example must be (prompt messages, reply text).")
        for spec in self.hub_datasets:
            if getattr(spec, "domain", None) != self.name:
                raise ValueError(f"Domain {self.name!r} lists Hub dataset {getattr(spec, 'name', spec)!r} of domain {getattr(spec, 'domain', None)!r}.")
        for number, label in ((self.weight, "weight"), (self.scale, "scale")):
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not isfinite(number):
                raise ValueError(f"Domain {self.name!r}: {label} must be a finite number, got {number!r}.")
        if self.weight < 0:
            raise ValueError(f"Domain {self.name!r}: weight must be >= 0, got {self.weight!r}.")
        # Frozen: normalized through object.__setattr__, once, here.
        object.__setattr__(self, "hub_datasets", tuple(self.hub_datasets))
        object.__setattr__(self, "data_dir_folders", tuple(self.data_dir_folders) or (self.name,))
        if self.seed_key is None:
            object.__setattr__(self, "seed_key", _stable_seed_key(self.name))

    @property
    def reference_dataset(self) -> HubDataset | None:
        """The Hub dataset loaded by `load_domain(name)` (source None or "hub"), if any."""
        return self.hub_datasets[0] if self.hub_datasets else None


def _stable_seed_key(name: str) -> int:
    # Python's hash() of a str changes per process; the generated data must not.
    return int.from_bytes(hashlib.sha256(f"phasegrpo-domain:{name}".encode()).digest()[:4], "big")


# --- the registry ----------------------------------------------------------------------------

_DOMAINS: dict[str, Domain] = {}


def register_domain(domain: Domain, *, replace: bool = False) -> Domain:
    """Make `domain` known to the loaders, prompts, sampler, config and CLI; returns it.

    A taken name is an error unless `replace=True` (the replacement keeps the old one's place
    in the order of `domain_names()`).
    """
    if not isinstance(domain, Domain):
        raise TypeError(f"register_domain needs a phasegrpo.domains.Domain, got {type(domain).__name__}.")
    from phasegrpo.rewards import CHECKERS

    if isinstance(domain.checker, str) and domain.checker not in CHECKERS:
        raise ValueError(
            f"Domain {domain.name!r}: unknown checker {domain.checker!r}. Available: {', '.join(CHECKERS)}; "
            "or pass a callable (cases, values) -> list[float]."
        )
    if domain.name in _DOMAINS and not replace:
        raise ValueError(
            f"Domain {domain.name!r} is already registered. Pick another name, or pass replace=True to replace it."
        )
    for other in _DOMAINS.values():
        if other.name == domain.name:
            continue  # being replaced
        if other.seed_key == domain.seed_key:
            raise ValueError(
                f"Domain {domain.name!r} has seed_key {domain.seed_key}, already used by {other.name!r}; "
                "give it another seed_key so their generated items do not share random streams."
            )
        shared = {spec.name for spec in other.hub_datasets} & {spec.name for spec in domain.hub_datasets}
        if shared:
            raise ValueError(f"Domain {domain.name!r} reuses Hub dataset name(s) {sorted(shared)} of {other.name!r}; rename them.")
    _DOMAINS[domain.name] = domain
    return domain


def unregister_domain(name: str) -> Domain:
    """Forget a registered domain (for tests and plugins); returns it."""
    domain = get_domain(name)
    del _DOMAINS[name]
    return domain


@contextlib.contextmanager
def temporarily_registered(domain: Domain, *, replace: bool = False) -> Iterator[Domain]:
    """`register_domain` for the duration of a `with` block; the registry is restored after."""
    previous = _DOMAINS.get(domain.name)
    register_domain(domain, replace=replace)
    try:
        yield domain
    finally:
        if previous is None:
            _DOMAINS.pop(domain.name, None)
        else:
            _DOMAINS[domain.name] = previous


def get_domain(name: str) -> Domain:
    """The registered domain called `name`; a ValueError listing the known ones otherwise."""
    domain = _DOMAINS.get(name) if isinstance(name, str) else None
    if domain is None:
        raise ValueError(
            f"Unknown domain {name!r}. Available: {', '.join(sorted(_DOMAINS))}. "
            "Register your own with phasegrpo.register_domain."
        )
    return domain


def domain_names() -> tuple[str, ...]:
    """Every registered domain, in registration order (the built-ins: math, code, science, logic)."""
    return tuple(_DOMAINS)


def reference_weights() -> dict[str, float]:
    """The default mix: `{domain: weight}` of every registered domain with a weight > 0.

    With the built-ins alone this is the reference mix, math 0.35, code 0.30, science 0.20,
    logic 0.15; a registered domain joins it only if it declares a weight.
    """
    return {name: domain.weight for name, domain in _DOMAINS.items() if domain.weight > 0}


def reference_scales() -> dict[str, float]:
    """`{domain: reward scale}` of every registered domain (math 1.0, code 1.2, science 0.8, logic 0.7)."""
    return {name: domain.scale for name, domain in _DOMAINS.items()}


__all__ = [
    "Domain",
    "domain_names",
    "get_domain",
    "reference_scales",
    "reference_weights",
    "register_domain",
    "temporarily_registered",
    "unregister_domain",
]

# The built-in domains register themselves on import, last, since they import the registry
# above. Their order is the reference order (of the default mix, load_mixture, configs, logs).
from phasegrpo.domains import math, code, science, logic  # noqa: E402, F401  # isort: skip
