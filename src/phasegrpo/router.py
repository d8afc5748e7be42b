"""RewardRouter: phase → gate → weight → domain scale → one score per completion.

    contribution(reward) = enabled(reward, phase) * weight(reward, phase) * raw(reward) * scale(domain)
    score = sum of contributions

The router is itself a TRL reward function. Every call logs, through TRL's `log_metric`
keyword, the phase, each reward's mean raw value and contribution (overall and per domain),
each domain's total and the exact-format share; `score` does the arithmetic for a batch in a
given phase (evaluation uses it in the last phase) and `explain` shows it for one completion.
The reference rewards score with the router's own table (`reward_values`), bound by
`phasegrpo.rewards.reward_functions`.

Keep the domain scale alive in training: TRL's default `scale_rewards="group"` divides each
group (one prompt, so one domain) by its own std and cancels the scale. phasegrpo trains with
`scale_rewards="batch"` (see docs/curriculum.md and tests/test_router.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from phasegrpo import metric_keys, rewards
from phasegrpo.config import REFERENCE_PHASE_REWARDS
from phasegrpo.curriculum import ProgressSchedule, Schedule
from phasegrpo.formats import completion_text, is_exact_format
from phasegrpo.rewards import RewardValues

RewardFunction = Callable[..., list]

# User rewards registered by name; any router (and so any config's phase_rewards) can enable them.
_REGISTERED_REWARDS: dict[str, RewardFunction] = {}


def register_reward(name: str, function: RewardFunction | None = None):
    """Make a TRL-signature reward `f(completions, **kwargs) -> list[float]` known by `name`.

    Use as `register_reward("brevity", brevity)` or as a decorator `@register_reward("brevity")`.
    """

    def register(function: RewardFunction) -> RewardFunction:
        if not callable(function):
            raise TypeError(f"register_reward({name!r}, ...) needs a callable, got {type(function).__name__}.")
        _REGISTERED_REWARDS[name] = function
        return function

    return register(function) if function is not None else register


def registered_reward_names() -> list[str]:
    """The names `register_reward` has made known, besides the reference rewards."""
    return sorted(_REGISTERED_REWARDS)


def _reference_scales() -> dict[str, float]:
    # Imported when needed: the domain registry loads datasets and torch, the router alone does not.
    from phasegrpo.domains import reference_scales

    return reference_scales()


@dataclass(frozen=True)
class Scores:
    """A batch scored in one phase: the totals, and each enabled reward's raw values and
    contributions (weighted, domain-scaled), one per completion."""

    phase: int
    totals: list[float]
    raw: dict[str, list[float]]
    contributions: dict[str, list[float]]


@dataclass(frozen=True)
class ScoredBatch:
    """The last batch the router scored: what the run's sample log shows."""

    prompts: list
    completions: list
    domains: list[str]
    totals: list[float]
    phase: int


@dataclass(frozen=True)
class RewardLine:
    """One reward's share of one completion's score (a row of `RewardRouter.explain`)."""

    name: str
    is_enabled: bool
    raw: float
    weight: float
    scale: float
    contribution: float


@dataclass(frozen=True)
class Explanation:
    """Why a completion got its score: every reward's line, the phase and the total."""

    domain: str | None
    step: int
    max_steps: int | None
    phase: int
    lines: tuple[RewardLine, ...]
    total: float

    def table(self) -> str:
        header = ("reward", "enabled", "raw", "weight", "scale", "contribution")
        rows = [
            (line.name, "yes" if line.is_enabled else "no", f"{line.raw:+.3f}", f"{line.weight:g}", f"{line.scale:g}",
             f"{line.contribution:+.3f}")
            for line in self.lines
        ]
        widths = [max(len(str(row[column])) for row in [header, *rows]) for column in range(len(header))]

        def render(row) -> str:
            return "  ".join(str(cell).ljust(width) if column == 0 else str(cell).rjust(width)
                             for column, (cell, width) in enumerate(zip(row, widths, strict=True)))

        rule = "  ".join("-" * width for width in widths)
        steps = f"step {self.step}/{self.max_steps}" if self.max_steps else f"step {self.step}"
        title = f"domain {self.domain}, {steps}, phase {self.phase}"
        full_width = sum(widths) + 2 * (len(widths) - 1)
        total_text = f"{self.total:+.3f}"
        total = "total" + total_text.rjust(full_width - len("total"))
        return "\n".join([title, render(header), rule, *map(render, rows), rule, total])


class RewardRouter:
    """Scores completions with the rewards of the current phase, weighted and domain-scaled."""

    __name__ = "phase_router"

    def __init__(
        self,
        phase_rewards: Sequence[Sequence[str]] = REFERENCE_PHASE_REWARDS,
        reward_weights: Mapping[str, float | Sequence[float]] | None = None,
        domain_scales: Mapping[str, float] | None = None,
        schedule: Schedule | None = None,
        reward_functions: Mapping[str, RewardFunction] | None = None,
        reward_values: RewardValues | Mapping[str, Any] | None = None,
    ):
        """`reward_values` is the reference rewards' table: a `RewardValues`, overrides of the
        defaults by name (as `config.reward_values`), or None for the defaults."""
        self.reward_values = rewards.as_reward_values(reward_values)
        self.reward_functions = rewards.reward_functions(self.reward_values)
        self.reward_functions.update(_REGISTERED_REWARDS)
        self.reward_functions.update(reward_functions or {})
        self.phase_rewards = [tuple(names) for names in phase_rewards]
        self.reward_weights = dict(reward_weights or {})
        self.domain_scales = dict(_reference_scales() if domain_scales is None else domain_scales)
        self.schedule = schedule or ProgressSchedule()
        self._check_names()
        # Adds (sum, count) per metric over the processes of a run; the trainer sets it under a launcher.
        self.totals_across_processes: Callable[[dict], dict] = _this_process_only
        self.last_metrics: dict[str, float] = {}
        self.last_batch: ScoredBatch | None = None
        self.last_phase = 0

    @classmethod
    def from_config(cls, config, schedule: Schedule | None = None, **kwargs) -> RewardRouter:
        """The router of a run `config` (phase_rewards, reward_weights, domain_scales, reward_values,
        phase schedule)."""
        from phasegrpo.curriculum import make_schedule

        return cls(
            phase_rewards=config.phase_rewards,
            reward_weights=config.reward_weights,
            domain_scales=config.domain_scales,
            reward_values=config.reward_values,
            schedule=schedule or make_schedule(config),
            **kwargs,
        )

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

    def enabled_rewards(self, phase: int) -> tuple[str, ...]:
        return self.phase_rewards[min(phase, len(self.phase_rewards) - 1)]

    @property
    def last_phase_index(self) -> int:
        """The index of the last phase: evaluation scores in it (in the reference setup every reward is on there)."""
        return len(self.phase_rewards) - 1

    def score(self, completions, *, phase: int, prompts=None, **columns) -> Scores:
        """Scores a batch in `phase` (no schedule, no metrics): each enabled reward's raw values
        and contributions, and the totals. `columns` are the row columns as lists (`domain`,
        `answer`, ...) plus anything to hand on to the reward functions (`trainer_state`, ...)."""
        completions = list(completions or [])
        count = len(completions)
        scales = [self.scale(domain) for domain in _domains(columns, count)]
        totals = [0.0] * count
        raw_by_name: dict[str, list[float]] = {}
        contributions_by_name: dict[str, list[float]] = {}
        for name in self.enabled_rewards(phase):
            raw = self.reward_functions[name](completions=completions, prompts=prompts, **columns)
            raw = [_finite(value) for value in raw]
            weight = self.weight(name, phase)
            contributions = [weight * value * scale for value, scale in zip(raw, scales, strict=False)]
            totals = [total + contribution for total, contribution in zip(totals, contributions, strict=False)]
            raw_by_name[name], contributions_by_name[name] = raw, contributions
        return Scores(phase, totals, raw_by_name, contributions_by_name)

    def __call__(self, prompts=None, completions=None, trainer_state=None, **kwargs) -> list[float]:
        completions = list(completions or [])
        phase = self.schedule.phase_of(trainer_state)
        scores = self.score(completions, phase=phase, prompts=prompts, trainer_state=trainer_state, **kwargs)
        domains = _domains(kwargs, len(completions))
        totals = scores.totals
        is_exact = [float(is_exact_format(completion_text(completion))) for completion in completions]
        # Means over every completion of the step, on all processes: sums and counts are added
        # across ranks first (a mean of per-rank means would weigh a rank's 4 math completions
        # like another's 8, and TRL averages what is logged over ranks).
        sums = self.totals_across_processes(_sums_and_counts(scores, domains, is_exact))
        metrics: dict[str, float] = {metric_keys.PHASE: float(phase), **self.schedule.metrics()}
        for name, (total, count) in sums.items():
            metrics[name] = total / count if count else 0.0
            key = metric_keys.parse(name)
            if key is not None and key.kind == "domain" and key.part == "reward":
                metrics[metric_keys.domain_stat(key.domain, "count")] = count
        self.last_metrics, self.last_phase = metrics, phase
        self.last_batch = ScoredBatch(list(prompts or [None] * len(completions)), completions, domains, totals, phase)
        log_metric = kwargs.get("log_metric")  # TRL passes this; values land in its logged metrics
        if callable(log_metric):
            for name, value in metrics.items():
                log_metric(name, value)
        return totals

    def explain(self, completion, row: Mapping, step: int = 0, max_steps: int | None = None,
                phase: int | None = None) -> Explanation:
        """Every reward's line for one `completion` of one `row` at training `step` of `max_steps`:
        enabled in that phase or not, raw value, weight, domain scale, contribution, and the total.

        `row` holds the row columns (`domain`, `answer`, `tests`, `setup_code`, ...). The phase is the
        schedule's at `step` unless given. Disabled rewards are still computed to show what they
        would have given; their contribution is 0.
        """
        if phase is None:  # the given max_steps wins over the one the schedule pinned
            schedule = dataclasses.replace(self.schedule, max_steps=max_steps) if max_steps else self.schedule
            phase = schedule.phase(step)
        domain = row.get("domain")
        scale = self.scale(domain)
        columns = {key: [value] for key, value in row.items()}
        enabled = set(self.enabled_rewards(phase))
        names = [name for name in self.reward_functions if name in enabled or _is_named_in(name, self.phase_rewards)]
        lines = []
        for name in names:
            raw = _finite(self.reward_functions[name](completions=[completion], prompts=[row.get("prompt")], **columns)[0])
            weight = self.weight(name, phase)
            is_enabled = name in enabled
            lines.append(RewardLine(name, is_enabled, raw, weight, scale, weight * raw * scale if is_enabled else 0.0))
        total = sum(line.contribution for line in lines)
        return Explanation(domain, step, max_steps, phase, tuple(lines), total)


def _domains(columns: Mapping, count: int) -> list[str]:
    """The `domain` column, "unknown" where a row has none."""
    return [domain or "unknown" for domain in (columns.get("domain") or [None] * count)]


def _sums_and_counts(scores: Scores, domains: Sequence[str], is_exact: Sequence[float]) -> dict[str, tuple[float, float]]:
    """The (sum, count) behind every mean the router logs, for one process's batch."""
    sums: dict[str, tuple[float, float]] = {}
    by_domain = _indices_by_domain(domains)

    def add(name: str, values: Sequence[float]) -> None:
        sums[name] = (float(sum(values)), float(len(values)))

    for name, raw in scores.raw.items():
        contributions = scores.contributions[name]
        add(metric_keys.reward(name, "raw"), raw)
        add(metric_keys.reward(name, "contribution"), contributions)
        for domain, indices in by_domain.items():
            add(metric_keys.reward(name, "raw", domain), [raw[index] for index in indices])
            add(metric_keys.reward(name, "contribution", domain), [contributions[index] for index in indices])
    add(metric_keys.EXACT_FORMAT_RATE, is_exact)
    for domain, indices in by_domain.items():
        add(metric_keys.domain_stat(domain, "reward"), [scores.totals[index] for index in indices])
        add(metric_keys.domain_stat(domain, "exact_rate"), [is_exact[index] for index in indices])
    return sums


def _this_process_only(sums: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    return dict(sums)


def _indices_by_domain(domains: Sequence[str]) -> dict[str, list[int]]:
    indices: dict[str, list[int]] = defaultdict(list)
    for index, domain in enumerate(domains):
        indices[domain].append(index)
    return indices


def _is_named_in(name: str, phase_rewards: Sequence[Sequence[str]]) -> bool:
    return any(name in names for names in phase_rewards)


def _finite(value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) else 0.0
