"""Domain-mix schedules: the weights a `DomainMixSampler` draws with, constant, annealed over
training (`LinearMix`) or adapted to recent rewards (`AdaptiveMix`), with the state a resumed
run restores."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from phasegrpo.domains import domain_names, reference_weights


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

    def weights_after(self, observations: int) -> dict[str, float]:
        """The weights as they were after the first `observations` calls of `observe_rewards`
        (the sampler draws ahead of the scoring; see `DomainMixSampler(reward_lag=...)`)."""
        return self.weights()

    def state_dict(self) -> dict:
        """What a resumed run needs to continue with the same weights (JSON-serializable)."""
        return {"progress": self.progress}

    def load_state_dict(self, state: Mapping) -> None:
        self.progress = float(state["progress"])


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
        self.observations = 0  # observe_rewards calls so far
        # The moving average after each of the last few calls, for `weights_after`.
        self.history: dict[int, dict[str, float]] = {0: {}}

    HISTORY_LENGTH = 16

    def observe_rewards(self, domain_means: Mapping[str, float]) -> None:
        for domain, value in domain_means.items():
            if domain not in self.base or value is None or not math.isfinite(value):
                continue  # a domain absent from this step's batch, or not mixed at all
            previous = self.recent_reward.get(domain)
            value = float(value)
            self.recent_reward[domain] = value if previous is None else self.smoothing * previous + (1 - self.smoothing) * value
        self.observations += 1
        self.history[self.observations] = dict(self.recent_reward)
        self.history.pop(self.observations - self.HISTORY_LENGTH, None)

    def weights(self) -> dict[str, float]:
        return self._weights_for(self.recent_reward)

    def weights_after(self, observations: int) -> dict[str, float]:
        # Not (or no longer) in the history: the latest average is the closest there is.
        return self._weights_for(self.history.get(observations, self.recent_reward))

    def state_dict(self) -> dict:
        return {
            **super().state_dict(), "recent_reward": dict(self.recent_reward), "observations": self.observations,
            "history": {str(count): dict(average) for count, average in self.history.items()},
        }

    def load_state_dict(self, state: Mapping) -> None:
        super().load_state_dict(state)
        self.recent_reward = {domain: float(value) for domain, value in state["recent_reward"].items()}
        self.observations = int(state["observations"])
        self.history = {int(count): dict(average) for count, average in state["history"].items()}

    def _weights_for(self, recent_reward: Mapping[str, float]) -> dict[str, float]:
        if not recent_reward:
            return dict(self.base)
        neutral = sum(recent_reward.values()) / len(recent_reward)
        logits = {
            domain: math.log(weight) - recent_reward.get(domain, neutral) / self.temperature
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
