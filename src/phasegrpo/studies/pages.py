"""The study's pages: study.html (self-contained, plots embedded, the run report's style) and
study.md (the same tables, plots linked), from the summary in study.json."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from phasegrpo.report.html import CSS
from phasegrpo.report.reading import EVAL_METRICS
from phasegrpo.studies.summary import INTERVAL_METHOD


def _value(cell: dict | None, metric: str) -> str:
    if not cell:
        return "–"
    digits = 1 if metric == "mean_completion_tokens" else 2
    return f"{cell['mean']:.{digits}f} [{cell['low']:.{digits}f}, {cell['high']:.{digits}f}]"


def _difference(cell: dict | None, metric: str) -> str:
    if not cell:
        return "–"
    digits = 1 if metric == "mean_completion_tokens" else 2
    return f"{cell['difference']:+.{digits}f} [{cell['low']:+.{digits}f}, {cell['high']:+.{digits}f}] {cell['verdict']}"


def facts(summary: dict) -> list[list[str]]:
    settings = summary["settings"]
    rows = [["study folder", summary["study_dir"]]]
    for key in ("model", "data_source", "max_steps", "prompts_per_step", "num_generations", "learning_rate", "beta", "max_completion_length"):
        rows.append([key, str(settings["base_config"].get(key))])
    rows += [
        ["arms", ", ".join(summary["arm_names"])],
        ["seeds per arm", ", ".join(str(seed) for seed in settings["seeds"])],
        ["held-out rows", f"{settings['eval_rows']} ({settings['eval_rows_per_domain']} per domain, eval seed {settings['eval_seed']}, greedy)"],
        ["runs finished", f"{summary['runs_finished']} of {summary['runs_planned']}"],
        ["wall time of this invocation", f"{summary['wall_seconds'] / 60:.1f} min"],
    ]
    return rows


def tables(summary: dict) -> list[tuple[str, list[list[str]]]]:
    """(heading, rows with a header first) of every table, in page order."""
    groups = summary["groups"]
    found = [("What each arm changes (vs the curriculum arm)",
              [["arm", "changed settings"]] + [[arm, "; ".join(f"{name}: {values[1]}" for name, values in changes.items()) or "(the base config)"]
                                                for arm, changes in summary["differences"].items()])]
    for metric, title in EVAL_METRICS:
        rows = [["", *groups], ["before (base model)", *(_value(summary["before"].get(g, {}).get(metric), metric) for g in groups)]]
        rows += [[arm, *(_value(described.get(g, {}).get(metric), metric) for g in groups)] for arm, described in summary["arms"].items()]
        found.append((f"{title} (held-out, after training)", rows))
    for arm, compared in summary["versus"].items():
        rows = [["metric", *groups]]
        rows += [[title, *(_difference(compared.get(g, {}).get(metric), metric) for g in groups)] for metric, title in EVAL_METRICS]
        found.append((f"{arm} minus {summary['reference_arm']} (after training)", rows))
    run_rows = [["run", "arm", "seed", *(title for _, title in EVAL_METRICS), "minutes"]]
    for run in summary["runs"]:
        overall = run.get("overall") or {}
        run_rows.append([run["name"], run["arm"], str(run["seed"]),
                         *(("–" if metric not in overall else f"{overall[metric]:.{1 if metric == 'mean_completion_tokens' else 2}f}")
                           for metric, _ in EVAL_METRICS),
                         "–" if run.get("seconds") is None else f"{run['seconds'] / 60:.1f}"])
    found.append(("Every run (overall, after training)", run_rows))
    return found


def render_html(summary: dict, plots: dict[str, Path]) -> str:
    title = f"phasegrpo study: {Path(summary['study_dir']).name}"
    body = [f"<h1>{escape(title)}</h1>", _html_table(facts(summary), header=False)]
    if summary.get("notes"):
        body.append('<div class="notes"><b>Notes</b><ul>' + "".join(f"<li>{escape(n)}</li>" for n in summary["notes"]) + "</ul></div>")
    body.append(f'<p class="meta">Intervals: {escape(INTERVAL_METHOD)} Rewards are scored by the curriculum arm\'s '
                "router in its last phase for every arm, so they compare on one scale.</p>")
    for heading, rows in tables(summary):
        body += [f"<h2>{escape(heading)}</h2>", _html_table(rows)]
    body.append("<h2>Plots</h2>")
    for filename, path in plots.items():
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        body.append(f'<h3>{escape(filename)}</h3><img alt="{escape(filename)}" src="data:image/png;base64,{encoded}">')
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def render_markdown(summary: dict, plots: dict[str, Path], study_dir: Path) -> str:
    lines = [f"# phasegrpo study: {Path(summary['study_dir']).name}", "", _markdown_table(facts(summary), header=False), ""]
    lines += [f"Intervals: {INTERVAL_METHOD} Rewards are scored by the curriculum arm's router in its last phase for every arm.", ""]
    for note in summary.get("notes", []):
        lines.append(f"- note: {note}")
    for heading, rows in tables(summary):
        lines += [f"## {heading}", "", _markdown_table(rows), ""]
    lines += ["## Plots", ""] + [f"![{name}]({path.relative_to(study_dir).as_posix()})\n" for name, path in plots.items()]
    return "\n".join(lines).rstrip() + "\n"


def _html_table(rows: list[list[str]], header: bool = True) -> str:
    parts = ["<table>"]
    for index, row in enumerate(rows):
        tag = "th" if header and index == 0 else "td"
        parts.append("<tr>" + "".join(f"<{tag}>{escape(str(cell))}</{tag}>" for cell in row) + "</tr>")
    return "\n".join(parts + ["</table>"])


def _markdown_table(rows: list[list[str]], header: bool = True) -> str:
    rows = [[str(cell).replace("|", "\\|").replace("\n", " ") for cell in row] for row in rows]
    if not header:
        rows = [[""] * len(rows[0])] + rows
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows[1:]])
