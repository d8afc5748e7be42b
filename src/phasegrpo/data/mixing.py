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

import copy
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from torch.utils.data import Sampler

from phasegrpo.data.mix_schedules import (  # noqa: F401  (re-exported: the mixing API)
    MIX_SCHEDULES,
    AdaptiveMix,
    ConstantMix,
    LinearMix,
    MixSchedule,
    make_mix_schedule,
    normalize_weights,
)
from phasegrpo.domains import domain_names

if TYPE_CHECKING:
    import datasets


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
        progress_of_chunk: training progress (0..1) when chunk number `c` (0, 1, ...) starts
            being trained on; the schedule's progress is set from it before each draw, so the
            weights follow the chunk drawn, however far ahead the dataloader prefetches.
        reward_lag: when given, chunk `c` is drawn with the weights after `c - reward_lag`
            reward observations, the ones every draw is sure to follow (with prefetching, a
            chunk is drawn before the previous one is scored); default: the latest weights.

    `state_dict(chunk)` / `load_state_dict(state)` save and restore the stream as it stood
    before drawing chunk `chunk`, so that a resumed run draws what an uninterrupted one would.
    """

    SNAPSHOTS_KEPT = 8  # chunks drawn ahead of training (prefetch) whose start is still saveable

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
        progress_of_chunk: Callable[[int], float] | None = None,
        reward_lag: int | None = None,
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
        self.progress_of_chunk, self.reward_lag = progress_of_chunk, reward_lag
        self.chunks_drawn = 0
        self._snapshots: dict[int, dict] = {}  # chunk number -> the stream's state before drawing it
        self._chunk_weights: dict[int, dict[str, float]] = {}  # chunk number -> the weights it was drawn with
        self._placeholder_chunks = 0  # chunks the next pass yields without drawing (a resume skips them)

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
        number = self.chunks_drawn
        self._remember(number, self._snapshot())
        if self.progress_of_chunk is not None:
            self.schedule.set_progress(self.progress_of_chunk(number))
        if self.reward_lag is None:
            weights = self.schedule.weights()
        else:
            weights = self.schedule.weights_after(max(0, number - self.reward_lag))
        self._chunk_weights[number] = weights
        self.chunks_drawn += 1
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
        placeholders, self._placeholder_chunks = self._placeholder_chunks, 0
        for position in range(self.num_chunks):
            # Placeholders stand for chunks trained on before a resume: the Trainer skips them
            # unread, and the restored stream goes on where it stopped.
            chunk = list(range(self.batch_size)) if position < placeholders else self.next_chunk()
            for _ in range(self.repeat_count):
                for index in chunk:
                    for _ in range(self.mini_repeat_count):
                        yield index

    def __len__(self) -> int:
        return self.num_chunks * self.batch_size * self.mini_repeat_count * self.repeat_count

    # --- resume ---------------------------------------------------------------------------------
    def weights_of_chunk(self, number: int) -> dict[str, float]:
        """The weights chunk `number` was drawn with (for one of the last few chunks drawn)."""
        return dict(self._chunk_weights.get(number) or self.weights_in_force)

    def state_dict(self, chunk: int) -> dict:
        """The stream as it stood before drawing chunk number `chunk` (one not yet drawn, or one
        of the last `SNAPSHOTS_KEPT` drawn), with the schedule's current state; JSON-serializable."""
        snapshot = self._snapshot() if chunk == self.chunks_drawn else self._snapshots.get(chunk)
        if snapshot is None:
            raise ValueError(
                f"Cannot save the sampler before chunk {chunk}: it has drawn {self.chunks_drawn} chunks and keeps "
                f"the state of the last {self.SNAPSHOTS_KEPT} only."
            )
        return {
            "chunk": chunk, "num_chunks": self.num_chunks, "batch_size": self.batch_size, "rows": len(self.domains),
            **snapshot, "schedule": self.schedule.state_dict(),
        }

    def load_state_dict(self, state: Mapping, *, trainer_skips_batches: bool = True) -> None:
        """Continue the stream saved by `state_dict`. With `trainer_skips_batches` (transformers'
        Trainer does, unless `ignore_data_skip`), the next pass first yields placeholders for
        the chunks of the pass already trained on, which the Trainer skips unread."""
        shape = {"num_chunks": self.num_chunks, "batch_size": self.batch_size, "rows": len(self.domains)}
        saved_shape = {key: state.get(key) for key in shape}
        if saved_shape != shape or set(state["pools"]) != set(self.pools):
            raise ValueError(
                f"The saved sampler state does not fit this run's data: saved {saved_shape} over domains "
                f"{sorted(state['pools'])}, now {shape} over {sorted(self.pools)}. Resume with the same data and "
                "batch settings, or start a new run."
            )
        self.rng.bit_generator.state = state["rng"]
        for domain, pool_state in state["pools"].items():
            self.pools[domain].order, self.pools[domain].position = list(pool_state["order"]), int(pool_state["position"])
        self.credit = {domain: float(value) for domain, value in state["credit"].items()}
        self.domain_counts = {domain: int(value) for domain, value in state["domain_counts"].items()}
        self.schedule.load_state_dict(state["schedule"])
        self.chunks_drawn = int(state["chunk"])
        self._snapshots, self._chunk_weights = {}, {}
        self._placeholder_chunks = self.chunks_drawn % self.num_chunks if trainer_skips_batches else 0

    def _snapshot(self) -> dict:
        # Pool orders are replaced on reshuffle, never changed in place: keeping them is enough.
        return {
            "rng": copy.deepcopy(self.rng.bit_generator.state),
            "pools": {domain: {"order": pool.order, "position": pool.position} for domain, pool in self.pools.items()},
            "credit": dict(self.credit),
            "domain_counts": dict(self.domain_counts),
        }

    def _remember(self, number: int, snapshot: dict) -> None:
        self._snapshots[number] = snapshot
        self._snapshots.pop(number - self.SNAPSHOTS_KEPT, None)
        self._chunk_weights.pop(number - self.SNAPSHOTS_KEPT, None)


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
