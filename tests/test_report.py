"""The run report: every PNG, the HTML page and the Markdown summary from a recorded run folder,
and a report of what is there (with notes) from malformed or partial files."""

from __future__ import annotations

import base64
import json
import shutil
from itertools import pairwise
from pathlib import Path

import pytest

from phasegrpo import cli
from phasegrpo.report import PLOTS, kl_series, phase_spans, read_run, write_plots, write_report

FIXTURE = Path(__file__).parent / "fixtures" / "run"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def run_dir(tmp_path) -> Path:
    """A copy of a recorded tiny-model run (24 steps, three phases, eval before and after)."""
    target = tmp_path / "run"
    shutil.copytree(FIXTURE, target)
    return target


def test_recorded_run_gives_every_plot_the_html_and_the_markdown(run_dir):
    report = write_report(run_dir)
    assert set(report.plots) == set(PLOTS)
    for path in report.plots.values():
        assert path.read_bytes().startswith(PNG_MAGIC)
    page = report.html.read_text()
    # Self-contained: every plot embedded, no file references.
    for path in report.plots.values():
        assert base64.b64encode(path.read_bytes()).decode() in page
    assert 'src="plots/' not in page
    assert "Held-out evaluation (before → after)" in page
    assert "Training completions per domain and phase" in page
    assert "Evaluation completions after training" in page
    assert report.notes == [] and "Notes" not in page
    markdown = report.markdown.read_text()
    for filename in PLOTS:
        assert f"](plots/{filename})" in markdown
    assert "| overall |" in markdown


def test_samples_are_shown_per_domain_and_phase(run_dir):
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    page = write_report(run_dir).html.read_text()
    for domain, phase in {(s["domain"], s["phase"]) for s in samples}:
        assert f"<h3>{domain}, phase {phase}</h3>" in page


def test_phases_and_transitions_come_from_the_rows(run_dir):
    data = read_run(run_dir)
    spans = phase_spans(data.records)
    assert [phase for phase, _, _ in spans] == [0, 1, 2]
    assert spans[0][1] == 1 and spans[-1][2] == 24
    assert all(later[1] == earlier[2] + 1 for earlier, later in pairwise(spans))


def test_per_domain_kl_from_trl_keys_or_domain_kl():
    records = [
        {"step": 1, "kl": 0.1, "trl": {"kl": 0.1, "kl/math": 0.2, "kl_code": 0.05}},
        {"step": 2, "kl": 0.2, "domain_kl": {"logic": 0.3}, "trl": {"kl/math": "n/a"}},
    ]
    series = kl_series(records)
    assert series["overall"] == ([1, 2], [0.1, 0.2])
    assert series["math"] == ([1], [0.2]) and series["code"] == ([1], [0.05]) and series["logic"] == ([2], [0.3])


def test_killed_mid_write_still_reports_what_is_there(run_dir):
    metrics = run_dir / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    # The first 10 rows, a row without a step, a non-object, and a last line cut short by a kill.
    metrics.write_text("\n".join(lines[:10] + ['{"phase": 0}', "[1, 2]", lines[10][:37]]))
    (run_dir / "eval_after.json").unlink()
    (run_dir / "samples.jsonl").write_text('{"step": 1, "phase": 0, "domain": "math", "completion": "x"}\n{"step": 2, "ph')
    report = write_report(run_dir)
    assert {"reward.png", "kl.png", "domain_mix.png", "eval_before_after.png"} <= set(report.plots)
    notes = "\n".join(report.notes)
    assert "2 malformed line(s) in metrics.jsonl" in notes
    assert "1 row(s) of metrics.jsonl have no integer 'step'" in notes
    assert "Metrics end at step 10 of 24" in notes
    assert "No eval_after.json" in notes
    assert "1 malformed line(s) in samples.jsonl" in notes
    page = report.html.read_text()
    assert "Metrics end at step 10 of 24" in page and "Notes (missing or partial data)" in page


def test_missing_fields_and_files_are_noted_not_fatal(run_dir):
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for record in records:  # an older or stripped-down run: no KL, no mix, NaN rewards in places
        record.pop("kl"), record.pop("domain_kl", None), record.pop("domain_count"), record.pop("mix_weights")
        record["trl"] = {}
        record["reward"] = float("nan") if record["step"] % 3 == 0 else record["reward"]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run_dir / "eval_before.json").write_text("{not json")
    (run_dir / "eval_after.json").write_text(json.dumps({"summary": "none"}))
    (run_dir / "config.json").unlink()
    report = write_report(run_dir)
    assert "kl.png" not in report.plots and "domain_mix.png" not in report.plots
    assert "eval_before_after.png" not in report.plots and "reward.png" in report.plots
    notes = "\n".join(report.notes)
    assert "kl.png not drawn" in notes and "domain_mix.png not drawn" in notes
    assert "eval_before.json is not valid JSON" in notes and "eval_after.json has no per-domain 'summary'" in notes
    assert report.html.exists() and report.markdown.exists()


def test_empty_run_folder_still_gives_a_page(tmp_path):
    report = write_report(tmp_path)
    assert report.plots == {}
    assert "metrics.jsonl is missing" in report.html.read_text()


def test_write_plots_writes_the_pngs_only(run_dir):
    paths = write_plots(run_dir)
    assert {path.name for path in paths} == set(PLOTS)
    assert not (run_dir / "report.html").exists()


def test_cli_report_prints_where_the_page_is(run_dir, capsys):
    assert cli.main(["report", str(run_dir)]) == 0
    assert f"Report: {run_dir / 'report.html'}" in capsys.readouterr().out
    assert cli.main(["report", str(run_dir / "missing")]) == 2
