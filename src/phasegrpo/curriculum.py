"""Phase schedules: which curriculum phase a training step is in, and the state that must
survive a resume (the `max_steps` the phases were timed with)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

STATE_FILE = "phasegrpo_state.json"


@dataclass
class ProgressSchedule:
    """Phase by training fraction: phase 0 below boundaries[0], phase 1 below boundaries[1], else 2.

    `max_steps` is pinned when training starts: transformers overwrites `state.max_steps` from
    the arguments on resume, so the schedule keeps its own copy and checkpoints it.
    """

    boundaries: tuple[float, float] = (0.25, 0.75)
    max_steps: int | None = None

    def fraction(self, global_step: int, max_steps: int | None = None) -> float:
        total = self.max_steps or max_steps
        if not total:
            return 0.0
        return min(max(global_step / total, 0.0), 1.0)

    def phase(self, global_step: int, max_steps: int | None = None) -> int:
        fraction = self.fraction(global_step, max_steps)
        return sum(fraction >= boundary for boundary in self.boundaries)

    def phase_of(self, trainer_state) -> int:
        """The phase for TRL's `trainer_state` (phase 0 when there is none, e.g. outside training)."""
        if trainer_state is None:
            return 0
        return self.phase(int(getattr(trainer_state, "global_step", 0)), getattr(trainer_state, "max_steps", None))

    # --- persistence ------------------------------------------------------------------------
    def save(self, folder: str | Path) -> None:
        path = Path(folder) / STATE_FILE
        path.write_text(json.dumps({"schedule": "progress", **asdict(self)}, indent=2))

    @classmethod
    def load(cls, folder: str | Path) -> "ProgressSchedule | None":
        path = Path(folder) / STATE_FILE
        if not path.exists():
            return None
        state = json.loads(path.read_text())
        return cls(boundaries=tuple(state["boundaries"]), max_steps=state["max_steps"])


def check_resume_max_steps(saved_max_steps: int, requested_max_steps: int, allow_change: bool) -> None:
    """Refuse a resume that would re-time the phases, unless the user said so explicitly."""
    if saved_max_steps != requested_max_steps and not allow_change:
        raise ValueError(
            f"max_steps changed from {saved_max_steps} to {requested_max_steps} since this run started; "
            f"phases are defined by it. Pass --max-steps {saved_max_steps}, or --allow-max-steps-change "
            f"to re-time the phases."
        )
