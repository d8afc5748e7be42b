"""95 % intervals and noise checks for evaluation numbers: how far a rate measured on a few
held-out rows can be trusted.

- `wilson_interval(k, n)`: the Wilson score interval of a rate k/n. Used wherever a single
  evaluation's rate is printed (`phasegrpo eval`, the run report). Unlike the normal
  approximation it stays inside [0, 1] and is not zero-width at 0/n or n/n, which matters on
  the 8 to 128 rows an evaluation here has.
- `two_proportion_p_value(k1, n1, k2, n2)`: the two-sided pooled two-proportion z-test. The run
  report calls a before → after change "within noise" when p >= 0.05. Before and after are
  scored on the same rows, so a paired test would be sharper; the unpaired test is the
  conservative choice (it says "within noise" at least as often) and needs only the summaries.
- `crossed_bootstrap_interval(values)`: a percentile bootstrap of the mean of a seeds x rows
  table, resampling seeds and rows independently (the study: every seed is evaluated on the
  same rows, so rows and seeds are two crossed sources of noise).
"""

from __future__ import annotations

import math

Z_95 = 1.959963984540054
"""The standard normal quantile of a two-sided 95 % interval."""
NOISE_P_VALUE = 0.05
"""A difference with a two-proportion p-value at or above this is reported as within noise."""


def wilson_interval(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of the rate `successes / trials` (95 % by default)."""
    if trials < 0 or not 0 <= successes <= max(trials, 0):
        raise ValueError(f"Need 0 <= successes <= trials, got {successes} of {trials}.")
    if trials == 0:
        return 0.0, 1.0  # no evidence: any rate is possible
    rate = successes / trials
    denominator = 1 + z * z / trials
    centre = (rate + z * z / (2 * trials)) / denominator
    half_width = z / denominator * math.sqrt(rate * (1 - rate) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


def rate_interval(rate: float, trials: int) -> tuple[float, float]:
    """The Wilson interval of a rate given as a fraction of `trials` (as evaluation summaries hold it)."""
    return wilson_interval(round(rate * trials), trials)


def two_proportion_p_value(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> float:
    """Two-sided p-value of the pooled two-proportion z-test that both rates are equal."""
    if trials_a <= 0 or trials_b <= 0:
        return 1.0
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b)
    if variance == 0:
        return 1.0  # both rates 0 or both 1: no difference to test
    z = (successes_b / trials_b - successes_a / trials_a) / math.sqrt(variance)
    return math.erfc(abs(z) / math.sqrt(2))


def difference_verdict(rate_before: float, trials_before: int, rate_after: float, trials_after: int) -> tuple[str, float]:
    """'higher', 'lower' or 'within noise' for a change of rate, with the test's p-value."""
    before, after = round(rate_before * trials_before), round(rate_after * trials_after)
    p_value = two_proportion_p_value(before, trials_before, after, trials_after)
    if p_value >= NOISE_P_VALUE:
        return "within noise", p_value
    return ("higher" if after / trials_after > before / trials_before else "lower"), p_value


def crossed_bootstrap_interval(
    values: list[list[float]], *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the mean of `values` (one list per seed, one value per row, every
    seed on the same rows): each resample draws seeds and rows with replacement, independently."""
    import numpy as np

    table = np.asarray(values, dtype=float)
    if table.ndim != 2 or table.size == 0:
        raise ValueError(f"values must be a non-empty seeds x rows table, got shape {table.shape}.")
    generator = np.random.default_rng(seed)
    seed_count, row_count = table.shape
    # All resamples at once: (resamples, seeds, 1) x (resamples, 1, rows) picks each resampled table.
    seeds = generator.integers(0, seed_count, (resamples, seed_count))
    rows = generator.integers(0, row_count, (resamples, row_count))
    means = table[seeds[:, :, None], rows[:, None, :]].mean(axis=(1, 2))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def crossed_bootstrap_difference(
    first: list[list[float]], second: list[list[float]], *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of mean(second) - mean(first), two seeds x rows tables on the same rows:
    each resample draws one set of rows for both and each table's seeds on their own."""
    import numpy as np

    tables = [np.asarray(values, dtype=float) for values in (first, second)]
    if any(table.ndim != 2 or table.size == 0 for table in tables) or tables[0].shape[1] != tables[1].shape[1]:
        raise ValueError(f"Need two non-empty seeds x rows tables on the same rows, got shapes {[t.shape for t in tables]}.")
    generator = np.random.default_rng(seed)
    row_count = tables[0].shape[1]
    rows = generator.integers(0, row_count, (resamples, row_count))
    means = []
    for table in tables:
        seeds = generator.integers(0, len(table), (resamples, len(table)))
        means.append(table[seeds[:, :, None], rows[:, None, :]].mean(axis=(1, 2)))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means[1] - means[0], [tail, 100 - tail])
    return float(low), float(high)


def format_interval(low: float, high: float, digits: int = 2) -> str:
    return f"[{low:.{digits}f}, {high:.{digits}f}]"


__all__ = [
    "wilson_interval", "rate_interval", "two_proportion_p_value", "difference_verdict", "crossed_bootstrap_interval",
    "crossed_bootstrap_difference", "format_interval", "Z_95", "NOISE_P_VALUE",
]
