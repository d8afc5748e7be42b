"""The report's HTML page: self-contained (plots embedded as base64), readable in any browser."""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

from phasegrpo.report.content import (
    INTERVAL_NOTE,
    clip,
    eval_table_rows,
    noise_lines,
    sample_meta,
    sample_sections,
    summary_facts,
)
from phasegrpo.report.plots import PLOTS
from phasegrpo.report.reading import RunData

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em} td,th{border:1px solid #ddd;padding:.3em .6em;text-align:left}
th{background:#f4f4f4} img{max-width:100%;border:1px solid #eee;margin:.4em 0}
.notes{background:#fff7e0;border:1px solid #f0d48a;padding:.6em 1em} pre{white-space:pre-wrap;background:#f7f7f7;
padding:.6em;border-radius:4px;font-size:.85em;margin:.3em 0} .sample{margin:.8em 0} .meta{color:#666;font-size:.85em}
"""


def render_html(data: RunData, plots: dict[str, Path]) -> str:
    """The whole page for `data`, with each of `plots` (file name → PNG path) embedded."""
    title = f"phasegrpo run report: {data.run_dir.name}"
    body = [f"<h1>{escape(title)}</h1>", _table([[k, v] for k, v in summary_facts(data)], header=False)]
    if data.notes:
        body.append('<div class="notes"><b>Notes (missing or partial data)</b><ul>'
                    + "".join(f"<li>{escape(note)}</li>" for note in data.notes) + "</ul></div>")
    if data.eval_before or data.eval_after:
        body.append("<h2>Held-out evaluation (before → after)</h2>")
        body.append(_table(eval_table_rows(data.eval_before, data.eval_after, with_intervals=True)))
        body.append(f'<p class="meta">{escape(INTERVAL_NOTE)}</p>')
        verdicts = noise_lines(data.eval_before, data.eval_after)
        if verdicts:
            body.append("<p><b>Is the change beyond noise?</b></p><ul>" + "".join(f"<li>{escape(line)}</li>" for line in verdicts) + "</ul>")
    body.append("<h2>Plots</h2>")
    for filename, path in plots.items():
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        body.append(f'<h3>{escape(PLOTS[filename][0])}</h3><img alt="{filename}" src="data:image/png;base64,{encoded}">')
    if not plots:
        body.append("<p>No plots: nothing to draw yet.</p>")
    for heading, groups in sample_sections(data):
        body.append(f"<h2>{heading}</h2>")
        for group, items in groups:
            body.append(f"<h3>{escape(group)}</h3>")
            body.extend(_sample(sample) for sample in items)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _table(rows: list[list[str]], header: bool = True) -> str:
    parts = ["<table>"]
    for index, row in enumerate(rows):
        tag = "th" if header and index == 0 else "td"
        parts.append("<tr>" + "".join(f"<{tag}>{escape(str(cell))}</{tag}>" for cell in row) + "</tr>")
    return "\n".join(parts + ["</table>"])


def _sample(sample: dict) -> str:
    """One completion: its meta line, the question, the reference if any, the completion."""
    question = escape(clip(str(sample.get("question") or sample.get("prompt") or ""), 600))
    reference = sample.get("reference")
    return (
        f'<div class="sample"><div class="meta">{escape(sample_meta(sample))}</div>'
        + (f"<pre>{question}</pre>" if question else "")
        + (f'<div class="meta">reference: {escape(str(reference))}</div>' if reference else "")
        + f"<pre>{escape(clip(sample['completion']))}</pre></div>"
    )
