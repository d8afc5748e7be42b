"""The run report: PNG plots, one self-contained HTML page and a Markdown summary, built from
what a run folder holds (metrics.jsonl, config.json, eval_before/after.json, samples.jsonl).

    report = write_report("runs/demo")      # or: phasegrpo report runs/demo
    print(report.html)                      # runs/demo/report.html, images embedded

Whatever is missing or malformed (a run killed mid-write, evaluation off, a run still going) is
left out and named in the report's notes; the report itself never fails on a run's data.

Modules: `reading` (the run folder, series), `plots` (PNGs), `content` (what both pages say),
`html` and `markdown` (the two pages).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from phasegrpo.report.content import eval_samples, eval_table_rows, training_samples
from phasegrpo.report.html import render_html
from phasegrpo.report.markdown import render_markdown
from phasegrpo.report.plots import PLOTS, draw_plots, write_plots
from phasegrpo.report.reading import RunData, kl_series, phase_spans, read_run
from phasegrpo.run_folder import REPORT_HTML, REPORT_MARKDOWN, SAMPLES_FILE


@dataclass
class Report:
    """The files a report wrote."""

    html: Path
    markdown: Path
    plots: dict[str, Path]
    notes: list[str]


def write_report(run_dir: str | Path) -> Report:
    """Plots, report.html (self-contained) and report.md in `run_dir`; see module docstring."""
    data = read_run(run_dir)
    plots = draw_plots(data)  # first: a plot it cannot draw adds a note the pages show
    html_path = data.run_dir / REPORT_HTML
    markdown_path = data.run_dir / REPORT_MARKDOWN
    for path, text in ((html_path, render_html(data, plots)), (markdown_path, render_markdown(data, plots))):
        temp = path.with_name(f".{path.name}.tmp")
        temp.write_text(text, encoding="utf-8")
        temp.replace(path)
    return Report(html=html_path, markdown=markdown_path, plots=plots, notes=list(data.notes))


__all__ = [
    "write_report", "write_plots", "read_run", "Report", "RunData", "PLOTS", "REPORT_HTML", "REPORT_MARKDOWN", "SAMPLES_FILE",
    "kl_series", "phase_spans", "training_samples", "eval_samples", "eval_table_rows",
]
