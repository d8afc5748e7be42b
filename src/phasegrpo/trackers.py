"""The experiment trackers `report_to` may name: their packages, their pip extras, and the checks.

    phasegrpo train --preset demo --report-to tensorboard     # pip install 'phasegrpo[tensorboard]'

transformers' Trainer drives each tracker (its TensorBoardCallback, WandbCallback, TrackioCallback)
and so receives every metric TRL logs, phasegrpo's per-reward, per-domain and phase keys
included (`phasegrpo.metric_keys`). `training.callbacks.ConfigToTrackers` adds phasegrpo's own
Config. This module imports nothing heavy: Config checks names with it on construction.
"""

from __future__ import annotations

import importlib.util

# report_to name -> (the module transformers imports for it, phasegrpo's pip extra that installs it)
TRACKERS = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "trackio": ("trackio", "trackio"),
    "wandb": ("wandb", "wandb"),
}
NO_TRACKER = "none"


def parse_report_to(report_to: str) -> list[str]:
    """The tracker names of a `report_to` value ("none", "", or a comma list such as "tensorboard,wandb")."""
    names = [name.strip() for name in report_to.split(",") if name.strip()]
    return [] if names in ([], [NO_TRACKER]) else names


def report_to_problems(report_to: str) -> list[str]:
    """What is wrong with a `report_to` value's names (not whether their packages are installed)."""
    names = [name.strip() for name in report_to.split(",") if name.strip()]
    unknown = [name for name in names if name not in TRACKERS and name != NO_TRACKER]
    if unknown:
        return [f"report_to has unknown tracker(s) {unknown}; supported: {NO_TRACKER}, {', '.join(TRACKERS)} "
                "(comma list, e.g. --report-to tensorboard,wandb)."]
    if NO_TRACKER in names and len(names) > 1:
        return [f"report_to {report_to!r} mixes '{NO_TRACKER}' with trackers; pass '{NO_TRACKER}' alone or only trackers."]
    return []


class MissingTrackerError(ImportError):
    """A tracker named in report_to whose package is not installed."""


def check_trackers_installed(report_to: str) -> None:
    """Raise MissingTrackerError naming the pip command for each tracker of `report_to` that is not installed.

    Called first thing in `train()`, so a missing package fails before any model or run-folder work
    (a saved config naming a tracker stays readable where the tracker is not installed).
    """
    missing = [name for name in parse_report_to(report_to) if importlib.util.find_spec(TRACKERS[name][0]) is None]
    if missing:
        raise MissingTrackerError("\n".join(
            f"report_to {name!r} needs the {TRACKERS[name][0]} package: pip install 'phasegrpo[{TRACKERS[name][1]}]'"
            for name in missing
        ))
