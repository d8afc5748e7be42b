"""The run report: PNG plots, one self-contained HTML page and a Markdown summary, built from
what a run folder holds (metrics.jsonl, config.json, eval_before/after.json, samples.jsonl).

    report = write_report("runs/demo")      # or: phasegrpo report runs/demo
    print(report.html)                      # runs/demo/report.html, images embedded

Whatever is missing or malformed (a run killed mid-write, evaluation off, a run still going) is
left out and named in the report's notes; the report itself never fails on a run's data.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from phasegrpo import run_folder

REPORT_HTML = "report.html"
REPORT_MARKDOWN = "report.md"
SAMPLES_FILE = "samples.jsonl"
EVAL_BEFORE_FILE = "eval_before.json"
EVAL_AFTER_FILE = "eval_after.json"

PHASE_COLOURS = ("#e8f0fe", "#fef3d6", "#e3f4e6", "#f6e6f4")
DOMAIN_COLOURS = {"math": "#1f77b4", "code": "#ff7f0e", "science": "#2ca02c", "logic": "#d62728"}
OTHER_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
EVAL_METRICS = (
    ("accuracy", "Accuracy"),
    ("exact_format_rate", "Exact format"),
    ("refusal_rate", "Refusals"),
    ("mean_reward", "Mean total reward"),
    ("mean_completion_tokens", "Mean length (tokens)"),
)
SAMPLES_PER_GROUP = 2
"""Sample completions shown per (domain, phase) of training and per domain of each eval."""
_KL_KEY = re.compile(r"^kl(?:[/_](?P<domain>.+))?$")


@dataclass
class RunData:
    """What a run folder holds, read leniently; `notes` say what was missing or malformed."""

    run_dir: Path
    records: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    eval_before: dict | None = None
    eval_after: dict | None = None
    samples: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    """The files a report wrote."""

    html: Path
    markdown: Path
    plots: dict[str, Path]
    notes: list[str]


def read_run(run_dir: str | Path) -> RunData:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"Run folder {run_dir} does not exist. Pass the --output-dir of a training run, e.g. runs/demo.")
    data = RunData(run_dir)
    metrics_path = run_dir / run_folder.METRICS_FILE
    if not metrics_path.exists():
        data.notes.append(f"{run_folder.METRICS_FILE} is missing: no training curves (has the run logged its first step?).")
    raw_records, malformed = run_folder.read_jsonl(metrics_path)
    by_step: dict[int, dict] = {}
    without_step = 0
    for record in raw_records:
        step = record.get("step")
        if isinstance(step, int) and not isinstance(step, bool):
            by_step[step] = record  # a step logged twice (an old resume) keeps its last row
        else:
            without_step += 1
    data.records = [by_step[step] for step in sorted(by_step)]
    if malformed:
        data.notes.append(
            f"{malformed} malformed line(s) in {run_folder.METRICS_FILE} were skipped "
            f"(a run killed mid-write cuts its last line short)."
        )
    if without_step:
        data.notes.append(f"{without_step} row(s) of {run_folder.METRICS_FILE} have no integer 'step' and were skipped.")
    if metrics_path.exists() and not data.records:
        data.notes.append(f"{run_folder.METRICS_FILE} holds no usable rows: no training curves.")
    data.config = _read_json(run_dir / run_folder.CONFIG_FILE, data.notes, "the run's settings are not shown") or {}
    data.eval_before = _read_eval(run_dir / EVAL_BEFORE_FILE, data.notes)
    data.eval_after = _read_eval(run_dir / EVAL_AFTER_FILE, data.notes)
    if data.eval_before is None and data.eval_after is None:
        data.notes.append(f"No {EVAL_BEFORE_FILE} / {EVAL_AFTER_FILE}: train with --eval-before-after for the before/after chart.")
    elif data.eval_after is None:
        data.notes.append(f"No {EVAL_AFTER_FILE}: the run has not finished (or was stopped); only the 'before' numbers are shown.")
    samples, bad_samples = run_folder.read_jsonl(run_dir / SAMPLES_FILE)
    data.samples = [s for s in samples if isinstance(s.get("completion"), str)]
    if bad_samples:
        data.notes.append(f"{bad_samples} malformed line(s) in {SAMPLES_FILE} were skipped.")
    max_steps = data.config.get("max_steps")
    if data.records and isinstance(max_steps, int) and data.records[-1]["step"] < max_steps:
        data.notes.append(
            f"Metrics end at step {data.records[-1]['step']} of {max_steps}: the run stopped early or is still running."
        )
    return data


# --- series ---------------------------------------------------------------------------------


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _series(records: list[dict], get) -> tuple[list[int], list[float]]:
    steps, values = [], []
    for record in records:
        try:
            value = _number(get(record))
        except (AttributeError, TypeError):
            value = None
        if value is not None:
            steps.append(record["step"])
            values.append(value)
    return steps, values


def _field(name: str):
    return lambda record: record.get(name)


def _nested(group: str, name: str):
    return lambda record: (record.get(group) or {}).get(name)


def _names(records: list[dict], group: str) -> list[str]:
    return sorted({name for r in records if isinstance(r.get(group), dict) for name in r[group]}, key=_domain_order)


def _domain_order(name: str):
    order = list(DOMAIN_COLOURS)
    return (order.index(name), name) if name in order else (len(order), name)


def _colour(name: str, index: int) -> str:
    return DOMAIN_COLOURS.get(name) or OTHER_COLOURS[index % len(OTHER_COLOURS)]


def kl_series(records: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """KL over steps: 'overall' from the row's `kl`, and one per domain (logged when per-domain
    KL is on) from `domain_kl{domain}` or TRL keys such as `kl/math` or `kl_math`."""
    series = {"overall": _series(records, _field("kl"))}
    for domain in _names(records, "domain_kl"):
        series[domain] = _series(records, _nested("domain_kl", domain))
    keys = sorted({key for r in records for key in (r.get("trl") or {}) if isinstance(key, str) and _KL_KEY.match(key)})
    for key in keys:
        domain = _KL_KEY.match(key).group("domain")
        if domain and domain not in series:
            series[domain] = _series(records, _nested("trl", key))
        elif not series["overall"][0]:
            series["overall"] = _series(records, _nested("trl", key))
    return {name: points for name, points in series.items() if points[0]}


def phase_spans(records: list[dict]) -> list[tuple[int, int, int]]:
    """(phase, first step, last step) for each run of consecutive rows in the same phase."""
    spans: list[tuple[int, int, int]] = []
    for record in records:
        phase = _number(record.get("phase"))
        phase = int(phase) if phase is not None else 0
        step = record["step"]
        if spans and spans[-1][0] == phase:
            spans[-1] = (phase, spans[-1][1], step)
        else:
            spans.append((phase, step, step))
    return spans


# --- plots ----------------------------------------------------------------------------------


def _figure(rows: int = 1, columns: int = 1, width: float = 8.0, height: float = 4.2):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, axes


def _decorate(axis, records: list[dict], title: str, ylabel: str) -> None:
    """Phases shaded, transitions marked, titles and labels set, legend outside the data."""
    from matplotlib.ticker import MaxNLocator

    spans = phase_spans(records)
    for index, (phase, first, last) in enumerate(spans):
        end = spans[index + 1][1] if index + 1 < len(spans) else last + 1
        axis.axvspan(first - 0.5, end - 0.5, color=PHASE_COLOURS[phase % len(PHASE_COLOURS)], zorder=0, label=f"phase {phase}")
        if index > 0:
            axis.axvline(first - 0.5, color="#555555", linestyle="--", linewidth=1, zorder=1, label="phase change")
    axis.set_title(title)
    axis.set_xlabel("training step")
    axis.set_ylabel(ylabel)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(True, alpha=0.3, zorder=0)
    handles, labels = axis.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    # Data first, then the phases in order, then the transition marker.
    order = sorted(unique, key=lambda label: (label.startswith("phase"), label == "phase change"))
    unique = {label: unique[label] for label in order}
    if unique:
        axis.legend(unique.values(), unique.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _line(axis, steps, values, label, colour=None) -> None:
    axis.plot(steps, values, marker="o", markersize=3, linewidth=1.5, label=label, color=colour, zorder=3)


def _plot_reward(records):
    steps, values = _series(records, _field("reward"))
    if not steps:
        return None
    figure, axes = _figure()
    axis = axes[0][0]
    std_steps, stds = _series(records, _field("reward_std"))
    std_by_step = dict(zip(std_steps, stds))
    if std_by_step:
        band = [(s, v) for s, v in zip(steps, values) if s in std_by_step]
        axis.fill_between(
            [s for s, _ in band], [v - std_by_step[s] for s, v in band], [v + std_by_step[s] for s, v in band],
            color="#1f77b4", alpha=0.15, label="±1 std over completions", zorder=2,
        )
    _line(axis, steps, values, "mean total reward", "#1f77b4")
    _decorate(axis, records, "Total reward (router score) per step", "reward")
    return figure


def _plot_contributions(records):
    names = _names(records, "reward_contribution")
    if not names:
        return None
    figure, axes = _figure()
    axis = axes[0][0]
    for index, name in enumerate(names):
        _line(axis, *_series(records, _nested("reward_contribution", name)), name, OTHER_COLOURS[index % len(OTHER_COLOURS)])
    axis.axhline(0, color="black", linewidth=0.8, zorder=2)
    _decorate(axis, records, "Each reward's contribution to the total (weighted, domain-scaled)", "mean contribution")
    return figure


def _plot_domain_reward(records):
    names = _names(records, "domain_reward")
    if not names:
        return None
    figure, axes = _figure()
    axis = axes[0][0]
    for index, name in enumerate(names):
        _line(axis, *_series(records, _nested("domain_reward", name)), name, _colour(name, index))
    _decorate(axis, records, "Mean total reward per domain (steps where the domain was sampled)", "reward")
    return figure


def _plot_kl(records):
    series = kl_series(records)
    if not series:
        return None
    figure, axes = _figure()
    axis = axes[0][0]
    for index, (name, points) in enumerate(series.items()):
        _line(axis, *points, name if name == "overall" else f"{name}", "black" if name == "overall" else _colour(name, index))
    title = "KL to the reference (frozen base)" + (", per domain" if len(series) > 1 else "")
    _decorate(axis, records, title, "KL")
    return figure


def _plot_length(records):
    steps, values = _series(records, _field("completion_length"))
    if not steps:
        steps, values = _series(records, _nested("trl", "completions/mean_length"))
    if not steps:
        return None
    figure, axes = _figure()
    axis = axes[0][0]
    low = dict(zip(*_series(records, _nested("trl", "completions/min_length"))))
    high = dict(zip(*_series(records, _nested("trl", "completions/max_length"))))
    band = [s for s in steps if s in low and s in high]
    if band:
        axis.fill_between(band, [low[s] for s in band], [high[s] for s in band], color="#9467bd", alpha=0.15, label="min–max", zorder=2)
    _line(axis, steps, values, "mean", "#9467bd")
    _decorate(axis, records, "Completion length", "tokens")
    return figure


def _plot_domain_mix(records):
    count_names = _names(records, "domain_count")
    weight_names = _names(records, "mix_weights")
    if not count_names and not weight_names:
        return None
    panels = [name for name, present in (("counts", count_names), ("weights", weight_names)) if present]
    figure, axes = _figure(len(panels), 1, height=3.4 * len(panels))
    for axis, panel in zip((row[0] for row in axes), panels):
        if panel == "counts":
            steps = [r["step"] for r in records if isinstance(r.get("domain_count"), dict) and r["domain_count"]]
            totals = {r["step"]: sum(_number(v) or 0.0 for v in r["domain_count"].values()) for r in records if r["step"] in steps}
            shares = [
                [(_number(((r.get("domain_count") or {}).get(name))) or 0.0) / (totals[r["step"]] or 1.0) for r in records if r["step"] in steps]
                for name in count_names
            ]
            bottoms = [0.0] * len(steps)
            for index, (name, share) in enumerate(zip(count_names, shares)):
                axis.bar(steps, share, bottom=bottoms, width=0.8, label=name, color=_colour(name, index), zorder=2)
                bottoms = [b + v for b, v in zip(bottoms, share)]
            axis.set_ylim(0, 1)
            _decorate(axis, records, "Domain mix of each step's rollouts (share of completions)", "share")
        else:
            for index, name in enumerate(weight_names):
                _line(axis, *_series(records, _nested("mix_weights", name)), name, _colour(name, index))
            _decorate(axis, records, "Sampler's domain weights in force", "weight")
    return figure


def _plot_eval(before: dict | None, after: dict | None):
    results = [(label, result["summary"]) for label, result in (("before", before), ("after", after)) if result]
    if not results:
        return None
    groups = list(dict.fromkeys(name for _, summary in results for name in summary))
    figure, axes = _figure(1, len(EVAL_METRICS), width=3.0 * len(EVAL_METRICS), height=3.8)
    width = 0.8 / len(results)
    colours = {"before": "#9e9e9e", "after": "#1f77b4"}
    for axis, (metric, title) in zip(axes[0], EVAL_METRICS):
        for offset, (label, summary) in enumerate(results):
            positions = [index + (offset - (len(results) - 1) / 2) * width for index in range(len(groups))]
            values = [_number((summary.get(group) or {}).get(metric)) or 0.0 for group in groups]
            bars = axis.bar(positions, values, width=width, label=label, color=colours[label], zorder=2)
            # Numbers on the bars, so a zero reads as 0 rather than as a missing bar.
            axis.bar_label(bars, fmt="%.0f" if metric == "mean_completion_tokens" else "%.2f", fontsize=6, rotation=90, padding=2)
        axis.set_xticks(range(len(groups)), groups, rotation=35, ha="right", fontsize=8)
        axis.set_title(title, fontsize=10)
        axis.grid(True, axis="y", alpha=0.3, zorder=0)
        if metric.endswith("rate") or metric == "accuracy":
            axis.set_ylim(0, 1.15)
        else:
            axis.margins(y=0.15)
        axis.axhline(0, color="black", linewidth=0.8)
    axes[0][0].set_ylabel("value")
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.suptitle("Held-out evaluation before and after training (per domain)")
    figure.legend(handles, labels, loc="outside right upper", fontsize=9)
    return figure


PLOTS = {
    "reward.png": ("Total reward", _plot_reward),
    "reward_contributions.png": ("Reward contributions", _plot_contributions),
    "domain_reward.png": ("Reward per domain", _plot_domain_reward),
    "kl.png": ("KL", _plot_kl),
    "completion_length.png": ("Completion length", _plot_length),
    "domain_mix.png": ("Domain mix", _plot_domain_mix),
    "eval_before_after.png": ("Evaluation before and after", None),
}
"""Every plot a report can hold: file name → (caption, builder from the metrics rows)."""


def _write_plots(data: RunData) -> dict[str, Path]:
    plots_dir = data.run_dir / run_folder.PLOTS_DIR
    plots_dir.mkdir(exist_ok=True)
    written = {}
    for filename, (caption, builder) in PLOTS.items():
        figure = _plot_eval(data.eval_before, data.eval_after) if builder is None else builder(data.records) if data.records else None
        if figure is None:
            if data.records and builder is not None:
                data.notes.append(f"{filename} not drawn: no '{caption.lower()}' values in {run_folder.METRICS_FILE}.")
            continue
        path = plots_dir / filename
        temp = path.with_name(f".{path.stem}.tmp.png")
        figure.savefig(temp, bbox_inches="tight")
        temp.replace(path)
        written[filename] = path
    return written


def write_plots(run_dir: str | Path) -> list[Path]:
    """Only the PNG plots of a run folder (see `write_report` for the whole report)."""
    return list(_write_plots(read_run(run_dir)).values())


# --- samples and tables ---------------------------------------------------------------------


def training_samples(samples: list[dict]) -> dict[tuple[str, int], list[dict]]:
    """The latest few logged training completions per (domain, phase)."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for sample in samples:
        key = (str(sample.get("domain", "unknown")), int(_number(sample.get("phase")) or 0))
        groups.setdefault(key, []).append(sample)
    ordered = sorted(groups, key=lambda key: (_domain_order(key[0]), key[1]))
    return {key: groups[key][-SAMPLES_PER_GROUP:] for key in ordered}


def eval_samples(result: dict | None) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for sample in (result or {}).get("samples", []):
        if isinstance(sample, dict) and isinstance(sample.get("completion"), str):
            groups.setdefault(str(sample.get("domain", "unknown")), []).append(sample)
    return {name: groups[name][:SAMPLES_PER_GROUP] for name in sorted(groups, key=_domain_order)}


def eval_table_rows(before: dict | None, after: dict | None) -> list[list[str]]:
    """Header + one row per group: each metric as 'before → after' (or the one that exists)."""
    summaries = [result["summary"] for result in (before, after) if result]
    groups = list(dict.fromkeys(name for summary in summaries for name in summary))
    rows = [["group", "rows"] + [title for _, title in EVAL_METRICS]]
    for group in groups:
        cells = [group, str(next(((s.get(group) or {}).get("rows") for s in summaries if group in s), ""))]
        for metric, _ in EVAL_METRICS:
            values = [_number((s.get(group) or {}).get(metric)) for s in summaries]
            digits = 1 if metric == "mean_completion_tokens" else 2
            cells.append(" → ".join("–" if v is None else f"{v:.{digits}f}" for v in values))
        rows.append(cells)
    return rows


def _summary_facts(data: RunData) -> list[tuple[str, str]]:
    config, records = data.config, data.records
    facts = [("run folder", str(data.run_dir))]
    for key in ("model", "data_source", "max_steps", "num_generations", "prompts_per_step", "beta", "learning_rate"):
        if key in config:
            facts.append((key, str(config[key])))
    if records:
        facts.append(("steps logged", f"{records[0]['step']}–{records[-1]['step']} ({len(records)} rows)"))
        for name in ("reward", "kl", "completion_length"):
            first, last = _series(records[:1], _field(name))[1], _series(records[-1:], _field(name))[1]
            if first and last:
                facts.append((f"{name} first → last", f"{first[0]:.3f} → {last[0]:.3f}"))
    for phase, first, last in phase_spans(records):
        rewards = config.get("phase_rewards", [])
        enabled = ", ".join(rewards[phase]) if isinstance(rewards, list) and phase < len(rewards) else "?"
        facts.append((f"phase {phase}", f"steps {first}–{last}: {enabled}"))
    return facts


_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _clip(text: str, limit: int = 1200) -> str:
    """`text` cut to `limit` characters, control characters shown as � (pages stay valid)."""
    text = _CONTROL_CHARACTERS.sub("\ufffd", text)
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more characters)"


# --- HTML and Markdown ----------------------------------------------------------------------


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em} td,th{border:1px solid #ddd;padding:.3em .6em;text-align:left}
th{background:#f4f4f4} img{max-width:100%;border:1px solid #eee;margin:.4em 0}
.notes{background:#fff7e0;border:1px solid #f0d48a;padding:.6em 1em} pre{white-space:pre-wrap;background:#f7f7f7;
padding:.6em;border-radius:4px;font-size:.85em;margin:.3em 0} .sample{margin:.8em 0} .meta{color:#666;font-size:.85em}
"""


def _html_table(rows: list[list[str]], header: bool = True) -> str:
    parts = ["<table>"]
    for index, row in enumerate(rows):
        tag = "th" if header and index == 0 else "td"
        parts.append("<tr>" + "".join(f"<{tag}>{html.escape(str(cell))}</{tag}>" for cell in row) + "</tr>")
    return "\n".join(parts + ["</table>"])


def _html_sample(sample: dict, meta: str) -> str:
    question = html.escape(_clip(str(sample.get("question") or sample.get("prompt") or ""), 600))
    reference = sample.get("reference")
    return (
        f'<div class="sample"><div class="meta">{html.escape(meta)}</div>'
        + (f"<pre>{question}</pre>" if question else "")
        + (f'<div class="meta">reference: {html.escape(str(reference))}</div>' if reference else "")
        + f"<pre>{html.escape(_clip(sample['completion']))}</pre></div>"
    )


def _sample_meta(sample: dict) -> str:
    parts = []
    if "reward" in sample and _number(sample["reward"]) is not None:
        parts.append(f"reward {float(sample['reward']):.2f}")
    for flag, label in (("is_correct", "correct"), ("is_exact_format", "exact format"), ("is_refusal", "refusal")):
        if flag in sample:
            parts.append(f"{label}: {'yes' if sample[flag] else 'no'}")
    if "step" in sample:
        parts.insert(0, f"step {sample['step']}")
    return ", ".join(parts)


def _render_html(data: RunData, plots: dict[str, Path]) -> str:
    title = f"phasegrpo run report: {data.run_dir.name}"
    body = [f"<h1>{html.escape(title)}</h1>", _html_table([[k, v] for k, v in _summary_facts(data)], header=False)]
    if data.notes:
        body.append('<div class="notes"><b>Notes (missing or partial data)</b><ul>'
                    + "".join(f"<li>{html.escape(note)}</li>" for note in data.notes) + "</ul></div>")
    if data.eval_before or data.eval_after:
        body.append("<h2>Held-out evaluation (before → after)</h2>")
        body.append(_html_table(eval_table_rows(data.eval_before, data.eval_after)))
    body.append("<h2>Plots</h2>")
    for filename, path in plots.items():
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        body.append(f'<h3>{html.escape(PLOTS[filename][0])}</h3><img alt="{filename}" src="data:image/png;base64,{encoded}">')
    if not plots:
        body.append("<p>No plots: nothing to draw yet.</p>")
    grouped = training_samples(data.samples)
    if grouped:
        body.append("<h2>Training completions per domain and phase</h2>")
        for (domain, phase), items in grouped.items():
            body.append(f"<h3>{html.escape(domain)}, phase {phase}</h3>")
            body.extend(_html_sample(sample, _sample_meta(sample)) for sample in items)
    for label, result in (("before", data.eval_before), ("after", data.eval_after)):
        groups = eval_samples(result)
        if groups:
            body.append(f"<h2>Evaluation completions {label} training</h2>")
            for domain, items in groups.items():
                body.append(f"<h3>{html.escape(domain)}</h3>")
                body.extend(_html_sample(sample, _sample_meta(sample)) for sample in items)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _markdown_table(rows: list[list[str]], header: bool = True) -> str:
    rows = [[str(cell).replace("|", "\\|").replace("\n", " ") for cell in row] for row in rows]
    if not header:
        rows = [["", ""]] + rows
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows[1:]])


def _markdown_sample(sample: dict) -> str:
    question = _clip(str(sample.get("question") or ""), 300).replace("\n", " ")
    fence = "````" if "```" in sample["completion"] else "```"
    text = f"*{_sample_meta(sample)}*"
    if question:
        text += f" — {question}"
    return f"{text}\n\n{fence}\n{_clip(sample['completion'], 800)}\n{fence}\n"


def _render_markdown(data: RunData, plots: dict[str, Path]) -> str:
    lines = [f"# phasegrpo run report: {data.run_dir.name}", "", _markdown_table([[k, v] for k, v in _summary_facts(data)], header=False), ""]
    lines.append(f"The full report with every plot embedded: [{REPORT_HTML}]({REPORT_HTML}).\n")
    if data.notes:
        lines += ["## Notes (missing or partial data)", ""] + [f"- {note}" for note in data.notes] + [""]
    if data.eval_before or data.eval_after:
        lines += ["## Held-out evaluation (before → after)", "", _markdown_table(eval_table_rows(data.eval_before, data.eval_after)), ""]
    if plots:
        lines += ["## Plots", ""]
        for filename, path in plots.items():
            lines += [f"![{PLOTS[filename][0]}]({path.relative_to(data.run_dir).as_posix()})", ""]
    grouped = training_samples(data.samples)
    if grouped:
        lines += ["## Training completions per domain and phase", ""]
        for (domain, phase), items in grouped.items():
            lines += [f"### {domain}, phase {phase}", ""] + [_markdown_sample(sample) for sample in items]
    for label, result in (("before", data.eval_before), ("after", data.eval_after)):
        groups = eval_samples(result)
        if groups:
            lines += [f"## Evaluation completions {label} training", ""]
            for domain, items in groups.items():
                lines += [f"### {domain}", ""] + [_markdown_sample(sample) for sample in items]
    return "\n".join(lines).rstrip() + "\n"


def write_report(run_dir: str | Path) -> Report:
    """Plots, report.html (self-contained) and report.md in `run_dir`; see module docstring."""
    data = read_run(run_dir)
    plots = _write_plots(data)
    html_path = data.run_dir / REPORT_HTML
    markdown_path = data.run_dir / REPORT_MARKDOWN
    for path, text in ((html_path, _render_html(data, plots)), (markdown_path, _render_markdown(data, plots))):
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(text, encoding="utf-8")
        temp.replace(path)
    return Report(html=html_path, markdown=markdown_path, plots=plots, notes=list(data.notes))


def _read_json(path: Path, notes: list[str], consequence: str) -> dict | None:
    if not path.exists():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        notes.append(f"{path.name} is not valid JSON: {consequence}.")
        return None
    if not isinstance(value, dict):
        notes.append(f"{path.name} is not a JSON object: {consequence}.")
        return None
    return value


def _read_eval(path: Path, notes: list[str]) -> dict | None:
    value = _read_json(path, notes, "its numbers are not shown")
    if value is None:
        return None
    summary = value.get("summary")
    if not isinstance(summary, dict) or not all(isinstance(row, dict) for row in summary.values()):
        notes.append(f"{path.name} has no per-domain 'summary': its numbers are not shown.")
        return None
    return value


__all__ = ["write_report", "write_plots", "read_run", "Report", "RunData", "PLOTS", "REPORT_HTML", "REPORT_MARKDOWN", "SAMPLES_FILE"]
