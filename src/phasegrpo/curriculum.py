"""Phase schedules: which curriculum phase a training step is in, and the state that must
survive a resume.

Two schedules implement one interface, `PhaseSchedule` (`phase`, `phase_of`, `fraction`,
`observe`, `metrics`, `transition_reason`, `to_dict`/`save`); a new kind of schedule subclasses
it and registers in `SCHEDULE_KINDS`:

- `ProgressSchedule` (the reference): the phase is a pure function of the training fraction
  `global_step / max_steps`.
- `MetricSchedule` (opt-in): the phase advances when a logged metric has stayed at or above a
  threshold for a window of steps, never before a minimum fraction of training and always by
  a maximum fraction. Its transitions are state, checkpointed next to the model.

Both pin `max_steps` when training starts: transformers overwrites `state.max_steps` from the
arguments on resume, so the schedule keeps its own copy and checkpoints it; a resume with a
different `max_steps` is refused by `check_resume_max_steps`.

Multi-process: `ProgressSchedule` depends only on `global_step`, the same on every rank.
`MetricSchedule.observe` is fed the metrics TRL has already averaged across processes, so every
rank takes the same transitions at the same step.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from phasegrpo import metric_keys

STATE_FILE = "phasegrpo_state.json"


class PhaseSchedule:
    """Which curriculum phase a training step is in, and the state a resume needs.

    Subclasses are dataclasses with a `max_steps` field (pinned when training starts) and
    implement `phase`, `to_dict`/`from_dict`; `observe`, `metrics` and `transition_reason` have
    do-nothing defaults for schedules that ignore metrics.
    """

    kind: ClassVar[str]
    max_steps: int | None

    def fraction(self, global_step: int, max_steps: int | None = None) -> float:
        """Training progress in [0, 1]: the pinned `max_steps` wins over the one passed."""
        total = self.max_steps or max_steps
        if not total:
            return 0.0
        return min(max(global_step / total, 0.0), 1.0)

    def phase(self, global_step: int, max_steps: int | None = None) -> int:
        raise NotImplementedError

    def phase_of(self, trainer_state) -> int:
        """The phase for TRL's `trainer_state` (phase 0 when there is none, e.g. outside training)."""
        if trainer_state is None:
            return 0
        return self.phase(int(getattr(trainer_state, "global_step", 0)), getattr(trainer_state, "max_steps", None))

    def observe(self, global_step: int, metrics: dict[str, float]) -> None:
        """Feed the metrics of step `global_step`; schedules by progress ignore them."""

    def metrics(self) -> dict[str, float]:
        """Extra values logged every step next to the phase."""
        return {}

    def transition_reason(self, phase: int) -> str:
        """Why `phase` started, for the phase line printed during training."""
        return ""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> PhaseSchedule:
        raise NotImplementedError

    def save(self, folder: str | Path) -> None:
        save_schedule(self, folder)

    @classmethod
    def load(cls, folder: str | Path) -> PhaseSchedule | None:
        """The schedule saved in a checkpoint folder (of whichever kind), or None."""
        return load_schedule(folder)


@dataclass
class ProgressSchedule(PhaseSchedule):
    """Phase by training fraction: phase 0 below boundaries[0], phase 1 below boundaries[1], else 2.

    `max_steps` is pinned when training starts (see module docstring).
    """

    kind: ClassVar[str] = "progress"
    boundaries: tuple[float, ...] = (0.25, 0.75)
    max_steps: int | None = None

    def phase(self, global_step: int, max_steps: int | None = None) -> int:
        fraction = self.fraction(global_step, max_steps)
        return sum(fraction >= boundary for boundary in self.boundaries)

    def transition_reason(self, phase: int) -> str:
        return f"at fraction {self.boundaries[phase - 1]:g} of max_steps" if 0 < phase <= len(self.boundaries) else ""

    # --- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"schedule": "progress", "boundaries": list(self.boundaries), "max_steps": self.max_steps}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> ProgressSchedule:
        return cls(boundaries=tuple(state["boundaries"]), max_steps=state["max_steps"])


@dataclass
class MetricSchedule(PhaseSchedule):
    """Metric-driven phases: leave phase p when `metrics[p]` has been >= `thresholds[p]` for
    `window` consecutive observed steps and the fraction is >= `min_fractions[p]`; leave it at
    `max_fractions[p]` regardless.

    `observe(step, metrics)` is called once per optimizer step with that step's metrics; a
    transition decided at step s takes effect from step s + 1. Everything that decides future
    phases (`phase_starts`, `streak`, `last_observed_step`) is saved in checkpoints.
    """

    kind: ClassVar[str] = "metric"
    metric_names: tuple[str, ...] = (metric_keys.EXACT_FORMAT_RATE, metric_keys.reward("check_answer", "raw"))
    thresholds: tuple[float, ...] = (0.8, 1.5)
    window: int = 5
    min_fractions: tuple[float, ...] = (0.1, 0.3)
    max_fractions: tuple[float, ...] = (0.5, 0.9)
    max_steps: int | None = None
    # --- state --------------------------------------------------------------------------------
    phase_starts: list[int] = field(default_factory=list)  # phase_starts[p] = first step of phase p + 1
    transitions: list[dict] = field(default_factory=list)  # one record per transition, for logs and docs
    streak: int = 0
    last_observed_step: int = -1

    def __post_init__(self) -> None:
        self.metric_names = tuple(self.metric_names)
        self.thresholds = tuple(float(value) for value in self.thresholds)
        self.min_fractions = tuple(float(value) for value in self.min_fractions)
        self.max_fractions = tuple(float(value) for value in self.max_fractions)
        count = len(self.metric_names)
        problems = []
        if not (len(self.thresholds) == len(self.min_fractions) == len(self.max_fractions) == count):
            problems.append(
                f"metric_names, thresholds, min_fractions and max_fractions need one entry per transition, got "
                f"{len(self.metric_names)}, {len(self.thresholds)}, {len(self.min_fractions)}, {len(self.max_fractions)}."
            )
        if self.window < 1:
            problems.append(f"window must be >= 1 step, got {self.window}.")
        for index, (low, high) in enumerate(zip(self.min_fractions, self.max_fractions, strict=False)):
            if not 0 <= low <= high <= 1:
                problems.append(f"transition {index}: need 0 <= min_fraction <= max_fraction <= 1, got {low} and {high}.")
        if list(self.max_fractions) != sorted(self.max_fractions):
            problems.append(f"max_fractions must not decrease from one transition to the next, got {list(self.max_fractions)}.")
        if problems:
            raise ValueError("Invalid metric schedule: " + " ".join(problems))

    def _forced_start(self, phase: int, max_steps: int | None) -> int | None:
        """First step whose fraction reaches `max_fractions[phase]` (phase + 1 starts there at the latest)."""
        total = self.max_steps or max_steps
        if not total:
            return None
        return math.ceil(self.max_fractions[phase] * total - 1e-9)

    def phase(self, global_step: int, max_steps: int | None = None) -> int:
        phase = sum(start <= global_step for start in self.phase_starts)
        while phase < len(self.metric_names) and self.fraction(global_step, max_steps) >= self.max_fractions[phase]:
            phase += 1
        return phase

    def observe(self, global_step: int, metrics: dict[str, float], max_steps: int | None = None) -> None:
        """Feed the metrics of step `global_step` (0-based: the step whose rewards they are)."""
        if global_step <= self.last_observed_step:  # e.g. a second scoring pass within one step
            return
        self.last_observed_step = global_step
        phase = self.phase(global_step, max_steps)
        while len(self.phase_starts) < phase:  # reached by max_fraction: record it like any transition
            forced = len(self.phase_starts)
            self._record(forced + 1, self._forced_start(forced, max_steps) or global_step, "max_fraction", None)
        if phase >= len(self.metric_names):
            return
        value = metrics.get(self.metric_names[phase])
        if value is None or not math.isfinite(value):
            return  # no evidence this step: the streak neither grows nor breaks
        self.streak = self.streak + 1 if value >= self.thresholds[phase] else 0
        next_step = global_step + 1
        if self.streak >= self.window and self.fraction(next_step, max_steps) >= self.min_fractions[phase]:
            self._record(phase + 1, next_step, "metric", value)

    def _record(self, phase: int, start_step: int, reason: str, value: float | None) -> None:
        self.phase_starts.append(int(start_step))
        transition = {"phase": phase, "step": int(start_step), "reason": reason}
        if reason == "metric":
            transition.update(metric=self.metric_names[phase - 1], value=float(value), threshold=self.thresholds[phase - 1],
                              window=self.window)
        self.transitions.append(transition)
        self.streak = 0

    def metrics(self) -> dict[str, float]:
        """Logged every step next to the phase."""
        return {"curriculum/streak": float(self.streak)}

    def transition_reason(self, phase: int) -> str:
        for transition in self.transitions:
            if transition["phase"] == phase:
                if transition["reason"] == "metric":
                    return (f"{transition['metric']} >= {transition['threshold']:g} for {transition['window']} steps "
                            f"(last {transition['value']:.3g})")
                return f"max fraction {self.max_fractions[phase - 1]:g} of max_steps reached"
        return f"max fraction {self.max_fractions[phase - 1]:g} of max_steps reached" if 0 < phase <= len(self.max_fractions) else ""

    # --- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        state = asdict(self)
        for key in ("metric_names", "thresholds", "min_fractions", "max_fractions"):
            state[key] = list(state[key])
        return {"schedule": "metric", **state}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> MetricSchedule:
        return cls(**{key: value for key, value in state.items() if key != "schedule"})


Schedule = PhaseSchedule  # the name the rest of the package annotates with
SCHEDULE_KINDS: dict[str, type[PhaseSchedule]] = {"progress": ProgressSchedule, "metric": MetricSchedule}
SCHEDULES = tuple(SCHEDULE_KINDS)


def save_schedule(schedule: Schedule, folder: str | Path) -> None:
    path = Path(folder) / STATE_FILE
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(schedule.to_dict(), indent=2))
    temporary.replace(path)


def load_schedule(folder: str | Path) -> Schedule | None:
    """The schedule saved in a checkpoint folder, or None when it has none."""
    path = Path(folder) / STATE_FILE
    if not path.exists():
        return None
    state = json.loads(path.read_text())
    kind = state.get("schedule", "progress")
    if kind not in SCHEDULE_KINDS:
        raise ValueError(f"{path} holds an unknown schedule {kind!r}. Known: {', '.join(SCHEDULE_KINDS)}.")
    return SCHEDULE_KINDS[kind].from_dict(state)


def make_schedule(config) -> Schedule:
    """The schedule a fresh run of `config` starts with (`config.phase_schedule`)."""
    if config.phase_schedule == "progress":
        return ProgressSchedule(tuple(config.phase_boundaries), max_steps=config.max_steps)
    if config.phase_schedule == "metric":
        return MetricSchedule(
            metric_names=tuple(config.transition_metrics),
            thresholds=tuple(config.transition_thresholds),
            window=config.transition_window,
            min_fractions=tuple(config.transition_min_fractions),
            max_fractions=tuple(config.transition_max_fractions),
            max_steps=config.max_steps,
        )
    raise ValueError(f"Unknown phase_schedule {config.phase_schedule!r}. Available: {', '.join(SCHEDULES)}.")


def check_resume_max_steps(saved_max_steps: int, requested_max_steps: int, allow_change: bool) -> None:
    """Refuse a resume that would re-time the phases, unless the user said so explicitly."""
    if saved_max_steps != requested_max_steps and not allow_change:
        raise ValueError(
            f"max_steps changed from {saved_max_steps} to {requested_max_steps} since this run started; "
            f"phases are defined by it. Pass --max-steps {saved_max_steps}, or --allow-max-steps-change "
            f"to re-time the phases."
        )
