"""The report's Markdown summary: the same text as the HTML page, with plots linked, not embedded."""

from __future__ import annotations

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
from phasegrpo.run_folder import REPORT_HTML


def render_markdown(data: RunData, plots: dict[str, Path]) -> str:
    """The whole summary for `data`, linking each of `plots` (file name → PNG path) relative to the run."""
    lines = [f"# phasegrpo run report: {data.run_dir.name}", "", _table([[k, v] for k, v in summary_facts(data)], header=False), ""]
    lines.append(f"The full report with every plot embedded: [{REPORT_HTML}]({REPORT_HTML}).\n")
    if data.notes:
        lines += ["## Notes (missing or partial data)", ""] + [f"- {note}" for note in data.notes] + [""]
    if data.eval_before or data.eval_after:
        table = _table(eval_table_rows(data.eval_before, data.eval_after, with_intervals=True))
        lines += ["## Held-out evaluation (before → after)", "", table, "", INTERVAL_NOTE, ""]
        verdicts = noise_lines(data.eval_before, data.eval_after)
        if verdicts:
            lines += ["**Is the change beyond noise?**", ""] + [f"- {line}" for line in verdicts] + [""]
    if plots:
        lines += ["## Plots", ""]
        for filename, path in plots.items():
            lines += [f"![{PLOTS[filename][0]}]({path.relative_to(data.run_dir).as_posix()})", ""]
    for heading, groups in sample_sections(data):
        lines += [f"## {heading}", ""]
        for group, items in groups:
            lines += [f"### {group}", ""] + [_sample(sample) for sample in items]
    return "\n".join(lines).rstrip() + "\n"


def _table(rows: list[list[str]], header: bool = True) -> str:
    """A pipe table; without `header`, an empty header row (Markdown tables need one)."""
    rows = [[str(cell).replace("|", "\\|").replace("\n", " ") for cell in row] for row in rows]
    if not header:
        rows = [["", ""]] + rows
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows[1:]])


def _sample(sample: dict) -> str:
    """One completion in a code fence, longer than any fence inside it, under its meta line."""
    question = clip(str(sample.get("question") or ""), 300).replace("\n", " ")
    fence = "````" if "```" in sample["completion"] else "```"
    text = f"*{sample_meta(sample)}*"
    if question:
        text += f" — {question}"
    return f"{text}\n\n{fence}\n{clip(sample['completion'], 800)}\n{fence}\n"
