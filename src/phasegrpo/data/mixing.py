"""Domain mixing at sampling time: which domain each prompt of a batch comes from.

`DomainMixSampler` replaces TRL's `RepeatSampler` (trl 1.16, `trl/trainer/utils.py`) in
`GRPOTrainer._get_train_sampler` and yields indices with the same structure: chunks of
`batch_size` distinct prompts, each chunk repeated `repeat_count` times, each index repeated
`mini_repeat_count` times in a row. Only the choice of prompts differs: slot by slot, a domain
is picked by the weights in force, then a row of that domain without replacement (reshuffled
once the domain is used up).

Domains are apportioned by smooth weighted round-robin with a seeded random phase: every
domain accrues its weight at each slot and the one with the most credit is picked. After n
slots each domain's count is within about one of n·weight, so every batch mixes domains and
the proportions hold on small runs too, not only in expectation.

Weights come from a `MixSchedule`: `ConstantMix`, `LinearMix` (start → end weights over a span
of training), `AdaptiveMix` (toward the domains whose recent reward is lowest, with a floor).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from torch.utils.data import Sampler

from phasegrpo.domains import domain_names, reference_weights

if TYPE_CHECKING:
    import datasets


def normalize_weights(weights: Mapping[str, float], known: Sequence[str] | None = None) -> dict[str, float]:
    """Weights validated and scaled to sum to 1 (they need not sum to 1 on input).

    known: the domains a weight may name; default every registered domain.
    """
    known = domain_names() if known is None else known
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError(f"Domain weights must be a non-empty mapping of domain -> weight, got {weights!r}.")
    unknown = [domain for domain in weights if domain not in known]
    if unknown:
        raise ValueError(f"Unknown domain(s) {', '.join(map(repr, unknown))} in weights. Available: {', '.join(known)}.")
    for domain, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"Weight of {domain!r} must be a finite number >= 0, got {weight!r}.")
    total = float(sum(weights.values()))
    if total <= 0:
        raise ValueError(f"Domain weights are all zero ({dict(weights)}); give at least one domain a positive weight.")
    return {domain: float(weight) / total for domain, weight in weights.items()}


# --- schedules ---------------------------------------------------------------------------


class MixSchedule:
    """The domain weights in force, which may change with training progress or rewards.

    Subclasses override `weights`; `set_progress` and `observe_rewards` are the hooks the
    trainer calls (every process must call them with the same values, so that every process
    draws the same prompts).
    """

    def __init__(self) -> None:
        self.progress = 0.0

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(self.weights())

    def weights(self) -> dict[str, float]:
        raise NotImplementedError

    @property
    def drawn_domains(self) -> tuple[str, ...]:
        """The domains this schedule can ever draw from: a weight 0 that never rises drops its domain.

        By default the domains weighted now; a schedule whose zero weights can rise says so."""
        return tuple(domain for domain, weight in self.weights().items() if weight > 0)

    def set_progress(self, fraction: float) -> None:
        """Training progress, global_step / max_steps, clipped to [0, 1]."""
        if not math.isfinite(fraction):
            raise ValueError(f"Progress must be a finite fraction, got {fraction!r}.")
        self.progress = min(1.0, max(0.0, float(fraction)))

    def observe_rewards(self, domain_means: Mapping[str, float]) -> None:
        """Recent mean reward per domain; ignored by schedules that do not adapt."""


class ConstantMix(MixSchedule):
    """Fixed weights; default the registry's default mix (`phasegrpo.domains.reference_weights()`)."""

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        self._weights = normalize_weights(reference_weights() if weights is None else weights)

    def weights(self) -> dict[str, float]:
        return dict(self._weights)

    def __repr__(self) -> str:
        return f"ConstantMix({self._weights})"


class LinearMix(MixSchedule):
    """`start` weights until `start_fraction` of training, `end` weights from `end_fraction`,
    linear in between (each side normalized first; a domain missing on one side weighs 0 there)."""

    def __init__(
        self,
        start: Mapping[str, float],
        end: Mapping[str, float],
        start_fraction: float = 0.0,
        end_fraction: float = 1.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= start_fraction < end_fraction <= 1.0:
            raise ValueError(
                f"LinearMix needs 0 <= start_fraction < end_fraction <= 1, got {start_fraction} and {end_fraction}."
            )
        start, end = normalize_weights(start), normalize_weights(end)
        domains = [domain for domain in domain_names() if domain in start or domain in end]
        self.start = {domain: start.get(domain, 0.0) for domain in domains}
        self.end = {domain: end.get(domain, 0.0) for domain in domains}
        self.start_fraction, self.end_fraction = float(start_fraction), float(end_fraction)

    @property
    def drawn_domains(self) -> tuple[str, ...]:
        # A domain that starts at 0 is drawn once the mix anneals towards it.
        return tuple(domain for domain in self.start if self.start[domain] > 0 or self.end[domain] > 0)

    def weights(self) -> dict[str, float]:
        t = (self.progress - self.start_fraction) / (self.end_fraction - self.start_fraction)
        t = min(1.0, max(0.0, t))
        return {domain: (1 - t) * self.start[domain] + t * self.end[domain] for domain in self.start}

    def __repr__(self) -> str:
        return f"LinearMix(start={self.start}, end={self.end}, {self.start_fraction}..{self.end_fraction})"


class AdaptiveMix(MixSchedule):
    """Leans toward the domains whose recent reward is lowest.

    weights = floor + (1 - floor·n) · softmax(log(base) - ema_reward / temperature), where
    ema_reward is each domain's reward averaged with `smoothing` (exponential moving average)
    over `observe_rewards` calls. A domain not yet observed counts as the mean of the observed
    ones. The floor keeps every domain of `base` at least `floor` of the draws. `base`
    defaults to the registry's default mix.
    """

    def __init__(
        self,
        base: Mapping[str, float] | None = None,
        *,
        temperature: float = 0.5,
        floor: float = 0.05,
        smoothing: float = 0.8,
    ) -> None:
        super().__init__()
        base = reference_weights() if base is None else base
        self.base = {domain: weight for domain, weight in normalize_weights(base).items() if weight > 0}
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"AdaptiveMix temperature must be > 0, got {temperature!r}.")
        if not 0.0 <= floor * len(self.base) <= 1.0 or floor < 0:
            raise ValueError(
                f"AdaptiveMix floor {floor!r} times {len(self.base)} domains must lie in [0, 1]; lower the floor."
            )
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"AdaptiveMix smoothing must be in [0, 1), got {smoothing!r}.")
        self.temperature, self.floor, self.smoothing = float(temperature), float(floor), float(smoothing)
        self.recent_reward: dict[str, float] = {}

    def observe_rewards(self, domain_means: Mapping[str, float]) -> None:
        for domain, value in domain_means.items():
            if domain not in self.base or value is None or not math.isfinite(value):
                continue  # a domain absent from this step's batch, or not mixed at all
            previous = self.recent_reward.get(domain)
            value = float(value)
            self.recent_reward[domain] = value if previous is None else self.smoothing * previous + (1 - self.smoothing) * value

    def weights(self) -> dict[str, float]:
        if not self.recent_reward:
            return dict(self.base)
        neutral = sum(self.recent_reward.values()) / len(self.recent_reward)
        logits = {
            domain: math.log(weight) - self.recent_reward.get(domain, neutral) / self.temperature
            for domain, weight in self.base.items()
        }
        top = max(logits.values())
        exps = {domain: math.exp(logit - top) for domain, logit in logits.items()}
        total = sum(exps.values())
        spread = 1.0 - self.floor * len(self.base)
        return {domain: self.floor + spread * value / total for domain, value in exps.items()}

    def __repr__(self) -> str:
        return f"AdaptiveMix(base={self.base}, temperature={self.temperature}, floor={self.floor})"


MIX_SCHEDULES = {"constant": ConstantMix, "linear": LinearMix, "adaptive": AdaptiveMix}


def make_mix_schedule(kind: str, weights: Mapping[str, float] | None = None, **options) -> MixSchedule:
    """A schedule by name: `constant` (weights), `linear` (weights → `end`, optional
    `start_fraction`/`end_fraction`), `adaptive` (base weights; `temperature`, `floor`, `smoothing`).
    `weights` defaults to the registry's default mix."""
    if kind not in MIX_SCHEDULES:
        raise ValueError(f"Unknown mix schedule {kind!r}. Available: {', '.join(MIX_SCHEDULES)}.")
    if kind == "linear":
        if "end" not in options:
            raise ValueError("The linear mix schedule needs end weights: make_mix_schedule('linear', start, end={...}).")
        return LinearMix(reference_weights() if weights is None else weights, **options)
    return MIX_SCHEDULES[kind](weights, **options)


# --- the sampler ---------------------------------------------------------------------------


class _DomainPool:
    """The rows of one domain, handed out in a shuffled order without replacement."""

    def __init__(self, indices: list[int]) -> None:
        self.indices = np.asarray(indices, dtype=np.int64)
        self.order: list[int] = []
        self.position = 0

    def draw(self, rng: np.random.Generator, taken: set[int]) -> int:
        for _ in range(2):
            while self.position < len(self.order):
                index = self.order[self.position]
                self.position += 1
                if index not in taken:
                    return index
            # Used up: reshuffle. Rows already in the current chunk are skipped, since a chunk
            # holds distinct prompts.
            self.order = rng.permutation(self.indices).tolist()
            self.position = 0
        raise ValueError("A batch asks for more distinct rows of one domain than the domain has.")


class DomainMixSampler(Sampler[int]):
    """Drop-in for TRL's `RepeatSampler` that mixes domains by weight at sampling time.

    Args:
        domains: the domain of each row of the training dataset (`concat_domains` returns it).
        weights: `{domain: weight}` (constant mix) or a `MixSchedule`; default the registry's
            default mix (`phasegrpo.domains.reference_weights()`).
        mini_repeat_count: times each index repeats in a row (TRL: `num_generations`).
        batch_size: distinct prompts per chunk (TRL: `generation_batch_size // num_generations`).
        repeat_count: times each chunk repeats (TRL: `num_iterations * steps_per_generation`).
        seed: the sequence depends on it alone (and on the schedule's inputs), so every process
            of a distributed run yields the same indices and accelerate shards them, as with
            `RepeatSampler`.
        num_chunks: chunks per pass (`__iter__`); default: as many as the dataset has full
            chunks, so one pass is one "epoch" of TRL's accounting. Each new pass continues
            the same stream (its own random state), so a Trainer that re-iterates to reach
            `max_steps` never replays a pass.
    """

    def __init__(
        self,
        domains: Sequence[str],
        weights: Mapping[str, float] | MixSchedule | None = None,
        *,
        mini_repeat_count: int,
        batch_size: int,
        repeat_count: int = 1,
        seed: int = 0,
        num_chunks: int | None = None,
    ) -> None:
        for name, value in (("mini_repeat_count", mini_repeat_count), ("batch_size", batch_size), ("repeat_count", repeat_count)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        self.schedule = weights if isinstance(weights, MixSchedule) else ConstantMix(weights)
        self.domains = list(domains)
        rows_by_domain: dict[str, list[int]] = {}
        for index, domain in enumerate(self.domains):
            rows_by_domain.setdefault(domain, []).append(index)
        known = domain_names()
        # A domain the schedule never draws (weight 0 throughout) needs no rows; one with rows
        # keeps its pool, so that the draws of a run with the same rows stay the same.
        drawn = set(self.schedule.drawn_domains)
        weighted = [d for d in self.schedule.domains if d in known and (d in drawn or d in rows_by_domain)]
        missing = [domain for domain in weighted if domain not in rows_by_domain]
        if missing:
            raise ValueError(
                f"Weights name domain(s) {', '.join(missing)} but the dataset has no rows of them "
                f"(it has: {', '.join(sorted(rows_by_domain)) or 'none'}). Load them or drop their weight."
            )
        self.pools = {domain: _DomainPool(rows_by_domain[domain]) for domain in weighted}
        self.mini_repeat_count, self.batch_size, self.repeat_count = mini_repeat_count, batch_size, repeat_count
        self.seed = int(seed)
        full_chunks = len(self.domains) // batch_size
        self.num_chunks = full_chunks if num_chunks is None else int(num_chunks)
        if self.num_chunks < 1:
            raise ValueError(
                f"The dataset has {len(self.domains)} rows, fewer than one batch of {batch_size} distinct prompts."
            )
        self.rng = np.random.default_rng((self.seed, 0x6D6978))  # "mix"
        # Random phase of the round-robin, so that different seeds start with different domains.
        self.credit = {domain: float(self.rng.random()) for domain in self.pools}
        self.last_chunk_counts: dict[str, int] = {}  # domains of the chunk drawn last
        self.domain_counts = dict.fromkeys(self.pools, 0)  # prompts drawn per domain, all chunks

    @property
    def weights_in_force(self) -> dict[str, float]:
        """The normalized weights the next chunk is drawn with (log these every step)."""
        return self.schedule.weights()

    def set_progress(self, fraction: float) -> None:
        self.schedule.set_progress(fraction)

    def observe_rewards(self, domain_means: Mapping[str, float]) -> None:
        self.schedule.observe_rewards(domain_means)

    def set_epoch(self, epoch: int) -> None:
        """Called by transformers' Trainer; the stream simply continues, so nothing to do."""

    def _next_domain(self, weights: Mapping[str, float], counts: Mapping[str, int]) -> str:
        for domain in self.pools:
            self.credit[domain] += weights.get(domain, 0.0)
        # A domain with no rows left for this chunk cannot be picked again in it.
        candidates = [d for d in self.pools if weights.get(d, 0.0) > 0 and counts.get(d, 0) < len(self.pools[d].indices)]
        if not candidates:
            raise ValueError(
                f"Cannot fill a batch of {self.batch_size} distinct prompts from the weighted domains "
                f"({ {d: len(p.indices) for d, p in self.pools.items()} } rows)."
            )
        chosen = max(candidates, key=lambda domain: self.credit[domain])
        self.credit[chosen] -= 1.0
        return chosen

    def next_chunk(self) -> list[int]:
        """The next `batch_size` distinct row indices, in random order."""
        weights = self.schedule.weights()
        chunk: list[int] = []
        taken: set[int] = set()
        counts: dict[str, int] = {}
        for _ in range(self.batch_size):
            domain = self._next_domain(weights, counts)
            index = self.pools[domain].draw(self.rng, taken)
            chunk.append(index)
            taken.add(index)
            counts[domain] = counts.get(domain, 0) + 1
        self.last_chunk_counts = counts
        for domain, count in counts.items():
            self.domain_counts[domain] += count
        return [chunk[i] for i in self.rng.permutation(len(chunk))]

    def __iter__(self) -> Iterator[int]:
        for _ in range(self.num_chunks):
            chunk = self.next_chunk()
            for _ in range(self.repeat_count):
                for index in chunk:
                    for _ in range(self.mini_repeat_count):
                        yield index

    def __len__(self) -> int:
        return self.num_chunks * self.batch_size * self.mini_repeat_count * self.repeat_count


def concat_domains(datasets_by_domain: Mapping[str, datasets.Dataset]) -> tuple[datasets.Dataset, list[str]]:
    """One training dataset from per-domain datasets (in the mapping's order), and the domain
    of each of its rows, as `DomainMixSampler` takes it."""
    import datasets

    if not datasets_by_domain:
        raise ValueError("concat_domains needs at least one dataset.")
    parts = []
    for domain, dataset in datasets_by_domain.items():
        if len(dataset) == 0:
            raise ValueError(f"The {domain} dataset is empty.")
        parts.append(dataset)
    combined = datasets.concatenate_datasets(parts)
    return combined, list(combined["domain"])
