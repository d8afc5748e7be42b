"""The study's PNGs: one per evaluation metric (bars per arm and domain with 95 % intervals, the
shared "before" first) and one per training curve (mean over seeds, min–max band, phases shaded)."""

from __future__ import annotations

from pathlib import Path

from phasegrpo.report.plots import OTHER_COLOURS, PHASE_COLOURS, save_figure
from phasegrpo.report.reading import EVAL_METRICS
from phasegrpo.studies.summary import CURVE_METRICS

ARM_COLOURS = {"curriculum": "#1f77b4", "static": "#ff7f0e", "no-scale": "#2ca02c", "metric": "#d62728"}
BEFORE_COLOUR = "#9e9e9e"


def arm_colour(arm: str, index: int) -> str:
    return ARM_COLOURS.get(arm) or OTHER_COLOURS[index % len(OTHER_COLOURS)]


def write_study_plots(summary: dict, plots_dir: Path) -> dict[str, Path]:
    """Every study PNG into `plots_dir`; file name → path."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    figures = {f"eval_{metric}.png": _eval_figure(summary, metric, title) for metric, title in EVAL_METRICS}
    for metric, title in CURVE_METRICS.items():
        figures[f"curve_{metric}.png"] = _curve_figure(summary, metric, title)
    written = {}
    for filename, figure in figures.items():
        if figure is None:
            continue
        written[filename] = save_figure(figure, plots_dir / filename)
    return written


def _figure(width: float = 8.0, height: float = 4.2):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    return figure, figure.subplots()


def _eval_figure(summary: dict, metric: str, title: str):
    series = [("before", summary["before"])] + list(summary["arms"].items())
    groups = summary["groups"]
    figure, axis = _figure(width=max(8.0, 1.6 * len(groups) * len(series) / 3))
    width = 0.8 / len(series)
    for offset, (label, described) in enumerate(series):
        positions = [index + (offset - (len(series) - 1) / 2) * width for index in range(len(groups))]
        cells = [described.get(group, {}).get(metric) for group in groups]
        means = [cell["mean"] if cell else 0.0 for cell in cells]
        errors = [[max(0.0, c["mean"] - c["low"]) if c else 0.0 for c in cells], [max(0.0, c["high"] - c["mean"]) if c else 0.0 for c in cells]]
        colour = BEFORE_COLOUR if label == "before" else arm_colour(label, offset)
        axis.bar(positions, means, width=width, color=colour, label=label + (" (base model)" if label == "before" else ""), zorder=2,
                 yerr=errors, capsize=2, error_kw={"linewidth": 0.8, "zorder": 3})
    axis.set_xticks(range(len(groups)), groups)
    axis.set_title(f"Held-out {title.lower()} after training, per arm (95 % interval over seeds x rows)")
    axis.grid(True, axis="y", alpha=0.3, zorder=0)
    axis.axhline(0, color="black", linewidth=0.8)
    if metric.endswith("rate") or metric == "accuracy":
        axis.set_ylim(0, 1.05)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return figure


def _curve_figure(summary: dict, metric: str, title: str):
    lines = {arm: curves[metric] for arm, curves in summary["curves"].items() if metric in curves}
    if not lines:
        return None
    from matplotlib.ticker import MaxNLocator

    figure, axis = _figure()
    spans = summary.get("phases") or []
    for index, (phase, first, last) in enumerate(spans):
        end = spans[index + 1][1] if index + 1 < len(spans) else last + 1
        axis.axvspan(first - 0.5, end - 0.5, color=PHASE_COLOURS[phase % len(PHASE_COLOURS)], zorder=0,
                     label=f"phase {phase} ({summary.get('phases_arm', 'reference')})")
    for index, (arm, line) in enumerate(lines.items()):
        colour = arm_colour(arm, index)
        axis.fill_between(line["steps"], line["low"], line["high"], color=colour, alpha=0.15, zorder=2)
        axis.plot(line["steps"], line["mean"], marker="o", markersize=3, linewidth=1.5, color=colour, zorder=3,
                  label=f"{arm} (mean; band: min–max over seeds)")
    axis.set_title(title + " per step")
    axis.set_xlabel("training step")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.grid(True, alpha=0.3, zorder=0)
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return figure
