"""RewardRouter: phase → gate → weight → domain scale → one score per completion.

The router is itself a TRL reward function. It also keeps the per-reward and per-domain
statistics of its last call, which the trainer pulls into its logged metrics.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

from phasegrpo.config import REFERENCE_DOMAIN_SCALES, REFERENCE_PHASE_REWARDS
from phasegrpo.curriculum import ProgressSchedule
from phasegrpo.formats import completion_text, is_exact_format

RewardFunction = Callable[..., list]


def reference_reward_functions() -> dict[str, RewardFunction]:
    from phasegrpo import rewards

    return {
        "punish_refusal": rewards.punish_refusal,
        "match_format_exactly": rewards.match_format_exactly,
        "match_format_approximately": rewards.match_format_approximately,
        "check_answer": rewards.check_answer,
        "penalize_length_and_rambling": rewards.penalize_length_and_rambling,
    }


class RewardRouter:
    """Scores completions with the rewards of the current phase, weighted and domain-scaled."""

    __name__ = "phase_router"

    def __init__(
        self,
        phase_rewards: Sequence[Sequence[str]] = REFERENCE_PHASE_REWARDS,
        reward_weights: Mapping[str, float | Sequence[float]] | None = None,
        domain_scales: Mapping[str, float] = REFERENCE_DOMAIN_SCALES,
        schedule: ProgressSchedule | None = None,
        reward_functions: Mapping[str, RewardFunction] | None = None,
    ):
        self.reward_functions = dict(reference_reward_functions())
        self.reward_functions.update(reward_functions or {})
        self.phase_rewards = [tuple(names) for names in phase_rewards]
        self.reward_weights = dict(reward_weights or {})
        self.domain_scales = dict(domain_scales)
        self.schedule = schedule or ProgressSchedule()
        self._check_names()
        self.last_metrics: dict[str, float] = {}
        self.last_phase = 0

    def _check_names(self) -> None:
        known = set(self.reward_functions)
        for phase, names in enumerate(self.phase_rewards):
            unknown = sorted(set(names) - known)
            if unknown:
                raise ValueError(
                    f"Phase {phase} enables unknown reward(s) {unknown}. Known: {', '.join(sorted(known))}; "
                    f"register your own with RewardRouter(reward_functions={{'name': fn}})."
                )
        unknown = sorted(set(self.reward_weights) - known)
        if unknown:
            raise ValueError(f"reward_weights names unknown reward(s) {unknown}. Known: {', '.join(sorted(known))}.")

    def weight(self, name: str, phase: int) -> float:
        weight = self.reward_weights.get(name, 1.0)
        if isinstance(weight, (list, tuple)):
            return float(weight[min(phase, len(weight) - 1)])
        return float(weight)

    def scale(self, domain: str | None) -> float:
        return float(self.domain_scales.get(domain, 1.0)) if domain is not None else 1.0

    def __call__(self, prompts=None, completions=None, trainer_state=None, **kwargs) -> list[float]:
        completions = list(completions or [])
        count = len(completions)
        phase = self.schedule.phase_of(trainer_state)
        domains = list(kwargs.get("domain") or [None] * count)
        scales = [self.scale(domain) for domain in domains]
        totals = [0.0] * count
        metrics: dict[str, float] = {"phase": float(phase)}
        per_domain: dict[str, list[float]] = defaultdict(list)
        for name in self.phase_rewards[min(phase, len(self.phase_rewards) - 1)]:
            raw = self.reward_functions[name](completions=completions, prompts=prompts, trainer_state=trainer_state, **kwargs)
            raw = [_finite(value) for value in raw]
            weight = self.weight(name, phase)
            contributions = [weight * value * scale for value, scale in zip(raw, scales)]
            totals = [total + contribution for total, contribution in zip(totals, contributions)]
            metrics[f"rewards/{name}/raw"] = _mean(raw)
            metrics[f"rewards/{name}/contribution"] = _mean(contributions)
        for domain, total in zip(domains, totals):
            per_domain[domain or "unknown"].append(total)
        for domain, values in per_domain.items():
            metrics[f"domain/{domain}/reward"] = _mean(values)
            metrics[f"domain/{domain}/count"] = float(len(values))
        texts = [completion_text(completion) for completion in completions]
        metrics["format/exact_rate"] = _mean([float(is_exact_format(text)) for text in texts])
        self.last_metrics, self.last_phase = metrics, phase
        log_metric = kwargs.get("log_metric")  # TRL passes this; values land in its logged metrics
        if callable(log_metric):
            for name, value in metrics.items():
                log_metric(name, value)
        return totals


def _finite(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) else 0.0


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0
