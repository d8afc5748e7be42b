"""What the HTML page and the Markdown summary both say: the facts table, the evaluation table
and the sample completions, as plain text for each page to format."""

from __future__ import annotations

import re

from phasegrpo.report.reading import EVAL_METRICS, RunData, domain_order, number, phase_spans, series, top_level

SAMPLES_PER_GROUP = 2
"""Sample completions shown per (domain, phase) of training and per domain of each eval."""
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def training_samples(samples: list[dict]) -> dict[tuple[str, int], list[dict]]:
    """The latest few logged training completions per (domain, phase)."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for sample in samples:
        key = (str(sample.get("domain", "unknown")), int(number(sample.get("phase")) or 0))
        groups.setdefault(key, []).append(sample)
    ordered = sorted(groups, key=lambda key: (domain_order(key[0]), key[1]))
    return {key: groups[key][-SAMPLES_PER_GROUP:] for key in ordered}


def eval_samples(result: dict | None) -> dict[str, list[dict]]:
    """The first few completions per domain of an evaluation result."""
    groups: dict[str, list[dict]] = {}
    for sample in (result or {}).get("samples", []):
        if isinstance(sample, dict) and isinstance(sample.get("completion"), str):
            groups.setdefault(str(sample.get("domain", "unknown")), []).append(sample)
    return {name: groups[name][:SAMPLES_PER_GROUP] for name in sorted(groups, key=domain_order)}


def sample_sections(data: RunData) -> list[tuple[str, list[tuple[str, list[dict]]]]]:
    """The completions a page shows: (section heading, [(group heading, samples)]), in page order."""
    sections = []
    grouped = training_samples(data.samples)
    if grouped:
        groups = [(f"{domain}, phase {phase}", items) for (domain, phase), items in grouped.items()]
        sections.append(("Training completions per domain and phase", groups))
    for label, result in (("before", data.eval_before), ("after", data.eval_after)):
        by_domain = eval_samples(result)
        if by_domain:
            sections.append((f"Evaluation completions {label} training", list(by_domain.items())))
    return sections


RATE_METRICS = ("accuracy", "exact_format_rate", "refusal_rate")
"""The evaluation numbers that are rates: they get a 95 % Wilson interval and a noise check."""
INTERVAL_NOTE = (
    "[low, high]: 95 % Wilson score interval of the rate over the group's completions. A before → after "
    "change is within noise when the two-sided pooled two-proportion z-test gives p >= 0.05 (conservative: "
    "before and after are scored on the same rows)."
)


def eval_table_rows(before: dict | None, after: dict | None, *, with_intervals: bool = False) -> list[list[str]]:
    """Header + one row per group: each metric as 'before → after' (or the one that exists);
    `with_intervals` adds each rate's 95 % Wilson interval."""
    summaries = [result["summary"] for result in (before, after) if result]
    groups = list(dict.fromkeys(name for summary in summaries for name in summary))
    rows = [["group", "rows"] + [title for _, title in EVAL_METRICS]]
    for group in groups:
        cells = [group, str(next(((s.get(group) or {}).get("rows") for s in summaries if group in s), ""))]
        for metric, _ in EVAL_METRICS:
            shown = [_cell(s.get(group) or {}, metric, with_intervals) for s in summaries]
            cells.append(" → ".join(shown))
        rows.append(cells)
    return rows


def _cell(numbers: dict, metric: str, with_interval: bool) -> str:
    from phasegrpo.intervals import format_interval, rate_interval

    value = number(numbers.get(metric))
    if value is None:
        return "–"
    text = f"{value:.{1 if metric == 'mean_completion_tokens' else 2}f}"
    trials = _trials(numbers)
    if with_interval and metric in RATE_METRICS and trials:
        text += " " + format_interval(*rate_interval(value, trials))
    return text


def _trials(numbers: dict) -> int:
    trials = number(numbers.get("completions")) or number(numbers.get("rows")) or 0
    return int(trials)


def p_text(p_value: float) -> str:
    """A p-value with enough digits that one just above 0.05 does not read as 0.05."""
    return f"{p_value:.3f}" if p_value < 0.1 else f"{p_value:.2f}"


def noise_lines(before: dict | None, after: dict | None) -> list[str]:
    """One plain sentence per group and rate: is the before → after change beyond noise?"""
    from phasegrpo.intervals import difference_verdict

    if not before or not after:
        return []
    lines = []
    for group, numbers_after in after["summary"].items():
        numbers_before = before["summary"].get(group)
        if not isinstance(numbers_before, dict):
            continue
        verdicts = []
        for metric, title in EVAL_METRICS:
            rate_before, rate_after = number(numbers_before.get(metric)), number(numbers_after.get(metric))
            trials_before, trials_after = _trials(numbers_before), _trials(numbers_after)
            if metric not in RATE_METRICS or None in (rate_before, rate_after) or not trials_before or not trials_after:
                continue
            verdict, p_value = difference_verdict(rate_before, trials_before, rate_after, trials_after)
            change = f"{rate_before:.2f} → {rate_after:.2f}"
            if verdict == "within noise":
                verdicts.append(f"{title.lower()} {change} is within noise (p = {p_text(p_value)})")
            else:
                verdicts.append(f"{title.lower()} {change} is {verdict} beyond noise (p = {p_text(p_value)})")
        if verdicts:
            lines.append(f"{group}: " + "; ".join(verdicts) + ".")
    return lines


def summary_facts(data: RunData) -> list[tuple[str, str]]:
    """The (label, value) table at the top of both pages: settings, steps, first → last, phases."""
    config, records = data.config, data.records
    facts = [("run folder", str(data.run_dir))]
    for key in ("model", "data_source", "max_steps", "num_generations", "prompts_per_step", "beta", "learning_rate"):
        if key in config:
            facts.append((key, str(config[key])))
    if records:
        facts.append(("steps logged", f"{records[0]['step']}–{records[-1]['step']} ({len(records)} rows)"))
        for name in ("reward", "kl", "completion_length"):
            first, last = series(records[:1], top_level(name))[1], series(records[-1:], top_level(name))[1]
            if first and last:
                facts.append((f"{name} first → last", f"{first[0]:.3f} → {last[0]:.3f}"))
    for phase, first, last in phase_spans(records):
        rewards = config.get("phase_rewards", [])
        enabled = ", ".join(rewards[phase]) if isinstance(rewards, list) and phase < len(rewards) else "?"
        facts.append((f"phase {phase}", f"steps {first}–{last}: {enabled}"))
    return facts


def sample_meta(sample: dict) -> str:
    """The line above a completion: step, reward and the eval flags it carries."""
    parts = []
    if "reward" in sample and number(sample["reward"]) is not None:
        parts.append(f"reward {float(sample['reward']):.2f}")
    for flag, label in (("is_correct", "correct"), ("is_exact_format", "exact format"), ("is_refusal", "refusal")):
        if flag in sample:
            parts.append(f"{label}: {'yes' if sample[flag] else 'no'}")
    if "step" in sample:
        parts.insert(0, f"step {sample['step']}")
    return ", ".join(parts)


def clip(text: str, limit: int = 1200) -> str:
    """`text` cut to `limit` characters, control characters shown as � (pages stay valid)."""
    text = _CONTROL_CHARACTERS.sub("\ufffd", text)
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more characters)"
