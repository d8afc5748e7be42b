"""Plots and the run report from a run folder's metrics.jsonl (issue 8 deepens this)."""

from __future__ import annotations

from pathlib import Path

from phasegrpo import run_folder

PHASE_COLOURS = ("#e8f0fe", "#fef7e0", "#e6f4ea")


def _series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
    return [p[0] for p in points], [float(p[1]) for p in points]


def _nested_series(records: list[dict], key: str) -> dict[str, tuple[list[int], list[float]]]:
    names = sorted({name for r in records for name in (r.get(key) or {})})
    series = {}
    for name in names:
        points = [(r["step"], r[key][name]) for r in records if isinstance((r.get(key) or {}).get(name), (int, float))]
        series[name] = ([p[0] for p in points], [float(p[1]) for p in points])
    return series


def _shade_phases(axis, records: list[dict]) -> None:
    """Shade each phase's span of steps and label it once."""
    spans: list[tuple[int, int, int]] = []
    for record in records:
        phase, step = int(record.get("phase", 0)), int(record["step"])
        if spans and spans[-1][0] == phase:
            spans[-1] = (phase, spans[-1][1], step)
        else:
            spans.append((phase, step, step))
    for index, (phase, first, last) in enumerate(spans):
        end = spans[index + 1][1] if index + 1 < len(spans) else last + 1
        axis.axvspan(first - 0.5, end - 0.5, color=PHASE_COLOURS[phase % 3], zorder=0, label=f"phase {phase}")


def write_plots(run_dir: str | Path) -> list[Path]:
    """PNG plots of reward, per-reward contribution, per-domain reward, KL and completion length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    records, _ = run_folder.read_jsonl(run_dir / run_folder.METRICS_FILE)
    records = [r for r in records if isinstance(r.get("step"), int)]
    plots_dir = run_dir / run_folder.PLOTS_DIR
    plots_dir.mkdir(exist_ok=True)
    written = []
    panels = [
        ("reward.png", "Total reward (router score)", "reward", {"reward": _series(records, "reward")}),
        ("reward_contributions.png", "Mean contribution of each reward", "contribution", _nested_series(records, "reward_contribution")),
        ("domain_reward.png", "Mean total reward per domain", "reward", _nested_series(records, "domain_reward")),
        ("kl.png", "KL to the reference (frozen base)", "KL", {"kl": _series(records, "kl")}),
        ("completion_length.png", "Mean completion length", "tokens", {"length": _series(records, "completion_length")}),
    ]
    for filename, title, ylabel, series in panels:
        figure, axis = plt.subplots(figsize=(7, 4), dpi=110)
        if records:
            _shade_phases(axis, records)
        for name, (steps, values) in series.items():
            if steps:
                axis.plot(steps, values, marker="o", markersize=3, label=name)
        axis.set_title(title)
        axis.set_xlabel("step")
        axis.set_ylabel(ylabel)
        handles, labels = axis.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        if unique:
            axis.legend(unique.values(), unique.keys(), fontsize=8, loc="best")
        figure.tight_layout()
        path = plots_dir / filename
        temp = path.with_name(f".{path.stem}.tmp.png")
        figure.savefig(temp)
        plt.close(figure)
        temp.replace(path)
        written.append(path)
    return written
