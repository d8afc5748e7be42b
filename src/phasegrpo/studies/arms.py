"""The study's arms: each turns the base Config into the one setting it tests, nothing else.

- `curriculum`: the base config as it is (with a preset: the reference phase curriculum).
- `static`: every reward of any phase on from step 0, as a plain TRL user would write it; a
  per-phase weight list keeps the value of the last phase that enabled the reward.
- `no-scale`: the curriculum with every domain scale 1.0.
- `metric`: the curriculum timed by the metric-driven schedule (`phase_schedule="metric"`).
- `phase-weights`: the curriculum with the seed's per-phase intent as weights (`PHASE_WEIGHTS`):
  strict format weighted high early, length pressure strong in the last phase.

A new arm is one function here and one entry in `ARMS`.
"""

from __future__ import annotations

import dataclasses

from phasegrpo.config import Config, override

DEFAULT_ARMS = ("curriculum", "static", "no-scale")


def curriculum(config: Config) -> Config:
    return config


def static(config: Config) -> Config:
    enabled = list(dict.fromkeys(name for phase in config.phase_rewards for name in phase))
    weights = {}
    for name, weight in config.reward_weights.items():
        if isinstance(weight, (list, tuple)):
            phases = [index for index, rewards in enumerate(config.phase_rewards) if name in rewards and index < len(weight)]
            weight = weight[phases[-1]] if phases else weight[-1]
        weights[name] = weight
    return override(config, phase_rewards=[list(enabled) for _ in config.phase_rewards], reward_weights=weights)


def no_scale(config: Config) -> Config:
    return override(config, domain_scales=dict.fromkeys(config.domain_scales, 1.0))


def metric(config: Config) -> Config:
    return override(config, phase_schedule="metric")


PHASE_WEIGHTS = {"match_format_exactly": [2.0, 1.0, 1.0], "penalize_length_and_rambling": [1.0, 1.0, 2.0]}
"""The seed's "strict format, high weight early" and "strong termination pressure" in the last phase,
as per-phase weights (the candidate the `phase-weights` arm tests against uniform weights)."""


def phase_weights(config: Config) -> Config:
    if len(config.phase_rewards) != 3:
        raise ValueError(f"The phase-weights arm gives three per-phase weights; this config has {len(config.phase_rewards)} phases.")
    return override(config, reward_weights={**config.reward_weights, **PHASE_WEIGHTS})


ARMS = {"curriculum": curriculum, "static": static, "no-scale": no_scale, "metric": metric, "phase-weights": phase_weights}
"""Arm name → the function that makes its Config from the base Config."""


def check_arms(names) -> list[str]:
    """`names` as a list, each a known arm, without repeats; else an error naming the known ones."""
    names = list(names)
    unknown = [name for name in names if name not in ARMS]
    if unknown:
        raise ValueError(f"Unknown arm(s) {unknown}. Available: {', '.join(ARMS)} (e.g. --arms curriculum,static).")
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"arms must name at least one arm, each once; got {names}.")
    return names


def arm_config(base: Config, arm: str, seed: int, output_dir: str) -> Config:
    """The Config of one run: the arm applied to `base`, then the run's seed and folder."""
    check_arms([arm])
    return override(ARMS[arm](base), seed=seed, output_dir=output_dir)


def config_differences(first: Config, second: Config) -> dict[str, tuple]:
    """Field name → (first's value, second's value) for every field that differs."""
    return {
        field.name: (getattr(first, field.name), getattr(second, field.name))
        for field in dataclasses.fields(Config)
        if getattr(first, field.name) != getattr(second, field.name)
    }
