"""The report's PNG plots: training curves over steps with the phases shaded, and the held-out
evaluation before and after training. Matplotlib is imported only when a figure is drawn."""

from __future__ import annotations

from pathlib import Path

from phasegrpo.report.reading import (
    DOMAIN_ORDER,
    EVAL_METRICS,
    RunData,
    kl_series,
    names,
    nested,
    number,
    phase_spans,
    read_run,
    series,
    top_level,
)
from phasegrpo.run_folder import METRICS_FILE, PLOTS_DIR

PHASE_COLOURS = ("#e8f0fe", "#fef3d6", "#e3f4e6", "#f6e6f4")
DOMAIN_COLOURS = dict(zip(DOMAIN_ORDER, ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"), strict=True))
OTHER_COLOURS = ("#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def domain_colour(name: str, index: int) -> str:
    """A known domain's own colour, else the `index`-th of the other colours."""
    return DOMAIN_COLOURS.get(name) or OTHER_COLOURS[index % len(OTHER_COLOURS)]


def other_colour(name: str, index: int) -> str:
    """The `index`-th of the other colours, for names that are not domains (rewards)."""
    return OTHER_COLOURS[index % len(OTHER_COLOURS)]


def _figure(rows: int = 1, columns: int = 1, width: float = 8.0, height: float = 4.2):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    return figure, axes


def _single_figure():
    """A figure with one axis, the size of every per-step plot."""
    figure, axes = _figure()
    return figure, axes[0][0]


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
    unique = dict(zip(labels, handles, strict=True))
    # Data first, then the phases in order, then the transition marker.
    order = sorted(unique, key=lambda label: (label.startswith("phase"), label == "phase change"))
    unique = {label: unique[label] for label in order}
    if unique:
        axis.legend(unique.values(), unique.keys(), fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def _line(axis, steps, values, label, colour=None) -> None:
    axis.plot(steps, values, marker="o", markersize=3, linewidth=1.5, label=label, color=colour, zorder=3)


def _lines_per_name(axis, records: list[dict], group: str, group_names: list[str], colour) -> None:
    """One line per name logged under `group` (a dict per row), coloured by `colour(name, index)`."""
    for index, name in enumerate(group_names):
        _line(axis, *series(records, nested(group, name)), name, colour(name, index))


def _plot_per_name(records, group: str, title: str, ylabel: str, colour, zero_line: bool = False):
    """A line per name under `group` over the steps, or None when no row logged the group."""
    group_names = names(records, group)
    if not group_names:
        return None
    figure, axis = _single_figure()
    _lines_per_name(axis, records, group, group_names, colour)
    if zero_line:
        axis.axhline(0, color="black", linewidth=0.8, zorder=2)
    _decorate(axis, records, title, ylabel)
    return figure


def _plot_reward(records):
    steps, values = series(records, top_level("reward"))
    if not steps:
        return None
    figure, axis = _single_figure()
    std_steps, stds = series(records, top_level("reward_std"))
    std_by_step = dict(zip(std_steps, stds, strict=True))
    if std_by_step:
        band = [(s, v) for s, v in zip(steps, values, strict=True) if s in std_by_step]
        axis.fill_between(
            [s for s, _ in band], [v - std_by_step[s] for s, v in band], [v + std_by_step[s] for s, v in band],
            color="#1f77b4", alpha=0.15, label="±1 std over completions", zorder=2,
        )
    _line(axis, steps, values, "mean total reward", "#1f77b4")
    _decorate(axis, records, "Total reward (router score) per step", "reward")
    return figure


def _plot_contributions(records):
    return _plot_per_name(
        records, "reward_contribution", "Each reward's contribution to the total (weighted, domain-scaled)",
        "mean contribution", other_colour, zero_line=True,
    )


def _plot_domain_reward(records):
    return _plot_per_name(
        records, "domain_reward", "Mean total reward per domain (steps where the domain was sampled)", "reward", domain_colour
    )


def _plot_kl(records):
    found = kl_series(records)
    if not found:
        return None
    figure, axis = _single_figure()
    for index, (name, points) in enumerate(found.items()):
        _line(axis, *points, name, "black" if name == "overall" else domain_colour(name, index))
    title = "KL to the reference (frozen base)" + (", per domain" if len(found) > 1 else "")
    _decorate(axis, records, title, "KL")
    return figure


def _plot_length(records):
    steps, values = series(records, top_level("completion_length"))
    if not steps:
        steps, values = series(records, nested("trl", "completions/mean_length"))
    if not steps:
        return None
    figure, axis = _single_figure()
    low = dict(zip(*series(records, nested("trl", "completions/min_length")), strict=True))
    high = dict(zip(*series(records, nested("trl", "completions/max_length")), strict=True))
    band = [s for s in steps if s in low and s in high]
    if band:
        axis.fill_between(band, [low[s] for s in band], [high[s] for s in band], color="#9467bd", alpha=0.15, label="min–max", zorder=2)
    _line(axis, steps, values, "mean", "#9467bd")
    _decorate(axis, records, "Completion length", "tokens")
    return figure


def _plot_domain_mix(records):
    count_names = names(records, "domain_count")
    weight_names = names(records, "mix_weights")
    if not count_names and not weight_names:
        return None
    panels = [name for name, present in (("counts", count_names), ("weights", weight_names)) if present]
    figure, axes = _figure(len(panels), 1, height=3.4 * len(panels))
    for axis, panel in zip((row[0] for row in axes), panels, strict=True):
        if panel == "counts":
            _draw_domain_shares(axis, records, count_names)
            _decorate(axis, records, "Domain mix of each step's rollouts (share of completions)", "share")
        else:
            _lines_per_name(axis, records, "mix_weights", weight_names, domain_colour)
            _decorate(axis, records, "Sampler's domain weights in force", "weight")
    return figure


def _draw_domain_shares(axis, records: list[dict], count_names: list[str]) -> None:
    """Stacked bars: each domain's share of the completions of each step that logged counts."""
    steps = [r["step"] for r in records if isinstance(r.get("domain_count"), dict) and r["domain_count"]]
    totals = {r["step"]: sum(number(v) or 0.0 for v in r["domain_count"].values()) for r in records if r["step"] in steps}
    shares = [
        [(number((r.get("domain_count") or {}).get(name)) or 0.0) / (totals[r["step"]] or 1.0) for r in records if r["step"] in steps]
        for name in count_names
    ]
    bottoms = [0.0] * len(steps)
    for index, (name, share) in enumerate(zip(count_names, shares, strict=True)):
        axis.bar(steps, share, bottom=bottoms, width=0.8, label=name, color=domain_colour(name, index), zorder=2)
        bottoms = [b + v for b, v in zip(bottoms, share, strict=True)]
    axis.set_ylim(0, 1)


def _plot_eval(before: dict | None, after: dict | None):
    results = [(label, result["summary"]) for label, result in (("before", before), ("after", after)) if result]
    if not results:
        return None
    groups = list(dict.fromkeys(name for _, summary in results for name in summary))
    figure, axes = _figure(1, len(EVAL_METRICS), width=3.0 * len(EVAL_METRICS), height=3.8)
    width = 0.8 / len(results)
    colours = {"before": "#9e9e9e", "after": "#1f77b4"}
    for axis, (metric, title) in zip(axes[0], EVAL_METRICS, strict=True):
        for offset, (label, summary) in enumerate(results):
            positions = [index + (offset - (len(results) - 1) / 2) * width for index in range(len(groups))]
            values = [number((summary.get(group) or {}).get(metric)) or 0.0 for group in groups]
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
"""Every plot a report can hold: file name → (caption, builder from the metrics rows; None for
the evaluation chart, drawn from the eval results instead)."""


def draw_plots(data: RunData) -> dict[str, Path]:
    """Every plot `data` has values for, written to the run's plots folder; file name → path.
    A plot left out for want of metrics is named in `data.notes`."""
    plots_dir = data.run_dir / PLOTS_DIR
    plots_dir.mkdir(exist_ok=True)
    written = {}
    for filename, (caption, builder) in PLOTS.items():
        figure = _plot_eval(data.eval_before, data.eval_after) if builder is None else builder(data.records) if data.records else None
        if figure is None:
            if data.records and builder is not None:
                data.notes.append(f"{filename} not drawn: no '{caption.lower()}' values in {METRICS_FILE}.")
            continue
        written[filename] = save_figure(figure, plots_dir / filename)
    return written


def save_figure(figure, path: Path) -> Path:
    """Write a PNG so that a kill leaves the old file or the new one, never half of one."""
    temp = path.with_name(f".{path.stem}.tmp.png")
    figure.savefig(temp, bbox_inches="tight")
    temp.replace(path)
    return path


def write_plots(run_dir: str | Path) -> list[Path]:
    """Only the PNG plots of a run folder (see `write_report` for the whole report)."""
    return list(draw_plots(read_run(run_dir)).values())
