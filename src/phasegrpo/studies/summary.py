"""The study's numbers: per arm and domain, each evaluation metric with a 95 % interval over seeds
and rows, each arm's difference to the reference arm, and the training curves over steps.

Intervals: a crossed percentile bootstrap (`phasegrpo.intervals.crossed_bootstrap_interval`,
2000 resamples, fixed seed): every run is evaluated on the same rows, so each resample draws the
seeds and the rows with replacement, independently, and takes the mean of the resampled
seeds x rows table. The shared "before" evaluation has one model, so its interval is over rows
only. A bootstrap cannot see noise it never observed (0 refusals anywhere gives [0, 0]), so a
rate's interval is widened to hold at least the Wilson interval of its pooled rate with n = the
number of rows (not seeds x rows: the seeds share the rows). With 2 or 3 seeds the seed part of
the interval is coarse; more seeds narrow it.
"""

from __future__ import annotations

from phasegrpo.evaluation import METRICS
from phasegrpo.intervals import crossed_bootstrap_difference, crossed_bootstrap_interval, rate_interval

INTERVAL_METHOD = (
    "95 % crossed percentile bootstrap over seeds and held-out rows (2000 resamples: seeds and rows drawn "
    "with replacement, independently; every run is evaluated on the same rows); a rate's interval is widened to "
    "hold at least the Wilson interval of its pooled rate with n = rows. 'before' is one model, so its interval is "
    "over rows only. A difference to the reference arm is within noise when its bootstrap interval holds 0."
)
SAMPLE_FIELDS = {
    "accuracy": "is_correct",
    "exact_format_rate": "is_exact_format",
    "refusal_rate": "is_refusal",
    "mean_completion_tokens": "completion_tokens",
    "mean_reward": "reward",
}
"""Which field of an evaluation sample each summary metric is the mean of."""
RATES = ("accuracy", "exact_format_rate", "refusal_rate")
CURVE_METRICS = {
    "exact_format_rate": "Exact-format rate of the rollouts",
    "reward": "Training reward (each arm's own router)",
    "kl": "KL to the reference",
    "completion_length": "Completion length (tokens)",
}
"""Per-step values of metrics.jsonl drawn as the study's curves: key → title."""


def row_tables(results: list[dict], metric: str) -> dict[str, list[list[float]]]:
    """Group ("overall", then each domain) → seeds x rows table of `metric` from eval results on the same rows."""
    field = SAMPLE_FIELDS[metric]
    tables: dict[str, list[list[float]]] = {}
    for result in results:
        by_group: dict[str, list[tuple[int, float]]] = {"overall": []}
        for sample in result["samples"]:
            value = (sample["row"], float(sample[field]))
            by_group["overall"].append(value)
            by_group.setdefault(sample["domain"], []).append(value)
        for group, values in by_group.items():
            tables.setdefault(group, []).append([value for _, value in sorted(values)])
    return tables


def describe(results: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """Group → metric → {mean, low, high} over the seeds x rows of `results`."""
    described: dict[str, dict[str, dict[str, float]]] = {}
    for metric in METRICS:
        for group, table in row_tables(results, metric).items():
            mean = _mean(table)
            low, high = crossed_bootstrap_interval(table)
            if metric in RATES:
                wilson_low, wilson_high = rate_interval(mean, len(table[0]))
                low, high = min(low, wilson_low), max(high, wilson_high)
            described.setdefault(group, {})[metric] = {"mean": mean, "low": low, "high": high}
    return described


def compare(reference: list[dict], other: list[dict]) -> dict[str, dict[str, dict]]:
    """Group → metric → {difference, low, high, verdict} of `other` minus `reference`."""
    compared: dict[str, dict[str, dict]] = {}
    for metric in METRICS:
        first, second = row_tables(reference, metric), row_tables(other, metric)
        for group in first:
            if group not in second:
                continue
            mean = _mean(second[group]) - _mean(first[group])
            low, high = crossed_bootstrap_difference(first[group], second[group])
            verdict = "within noise" if low <= 0 <= high else ("higher" if mean > 0 else "lower")
            compared.setdefault(group, {})[metric] = {"difference": mean, "low": low, "high": high, "verdict": verdict}
    return compared


def curves(records_by_seed: list[list[dict]]) -> dict[str, dict[str, list[float]]]:
    """Metric → {steps, mean, low, high}: the mean over seeds per step, and the seeds' min and max."""
    found = {}
    for metric in CURVE_METRICS:
        by_step: dict[int, list[float]] = {}
        for records in records_by_seed:
            for record in records:
                value = record.get(metric)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    by_step.setdefault(int(record["step"]), []).append(float(value))
        steps = sorted(by_step)
        if steps:
            found[metric] = {
                "steps": steps,
                "mean": [sum(by_step[s]) / len(by_step[s]) for s in steps],
                "low": [min(by_step[s]) for s in steps],
                "high": [max(by_step[s]) for s in steps],
            }
    return found


def _mean(table: list[list[float]]) -> float:
    values = [value for row in table for value in row]
    return sum(values) / len(values)
