"""Reading a run folder for the report, leniently, and the per-step series drawn from its rows."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from phasegrpo import run_folder
from phasegrpo.run_folder import CONFIG_FILE, EVAL_AFTER_FILE, EVAL_BEFORE_FILE, METRICS_FILE, SAMPLES_FILE

DOMAIN_ORDER = ("math", "code", "science", "logic")
"""The known domains, in the order the report lists them; any other domain follows, by name."""
EVAL_METRICS = (
    ("accuracy", "Accuracy"),
    ("exact_format_rate", "Exact format"),
    ("refusal_rate", "Refusals"),
    ("mean_reward", "Mean total reward"),
    ("mean_completion_tokens", "Mean length (tokens)"),
)
"""The per-domain numbers of an evaluation's summary that the report shows: (key, title)."""
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


def read_run(run_dir: str | Path) -> RunData:
    """Everything the report shows from `run_dir`; only a missing folder raises."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"Run folder {run_dir} does not exist. Pass the --output-dir of a training run, e.g. runs/demo.")
    data = RunData(run_dir)
    _read_metrics(run_dir / METRICS_FILE, data)
    data.config = _read_json(run_dir / CONFIG_FILE, data.notes, "the run's settings are not shown") or {}
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


def _read_metrics(metrics_path: Path, data: RunData) -> None:
    """`data.records`: one row per integer step, in step order; what was skipped goes to the notes."""
    if not metrics_path.exists():
        data.notes.append(f"{METRICS_FILE} is missing: no training curves (has the run logged its first step?).")
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
            f"{malformed} malformed line(s) in {METRICS_FILE} were skipped "
            f"(a run killed mid-write cuts its last line short)."
        )
    if without_step:
        data.notes.append(f"{without_step} row(s) of {METRICS_FILE} have no integer 'step' and were skipped.")
    if metrics_path.exists() and not data.records:
        data.notes.append(f"{METRICS_FILE} holds no usable rows: no training curves.")


def _read_json(path: Path, notes: list[str], consequence: str) -> dict | None:
    """A JSON object from `path`, or None: absent silently, malformed with a note."""
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
    """An evaluation result with a per-domain `summary`, or None (with a note if it was unusable)."""
    value = _read_json(path, notes, "its numbers are not shown")
    if value is None:
        return None
    summary = value.get("summary")
    if not isinstance(summary, dict) or not all(isinstance(row, dict) for row in summary.values()):
        notes.append(f"{path.name} has no per-domain 'summary': its numbers are not shown.")
        return None
    return value


# --- series ---------------------------------------------------------------------------------


def number(value) -> float | None:
    """`value` as a finite float, or None for anything else (bools, strings, NaN, missing)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def series(records: list[dict], get) -> tuple[list[int], list[float]]:
    """(steps, values) of the rows where `get(row)` is a finite number."""
    steps, values = [], []
    for record in records:
        try:
            value = number(get(record))
        except (AttributeError, TypeError):
            value = None
        if value is not None:
            steps.append(record["step"])
            values.append(value)
    return steps, values


def top_level(name: str):
    """A getter for `row[name]`, for `series`."""
    return lambda record: record.get(name)


def nested(group: str, name: str):
    """A getter for `row[group][name]`, for `series`."""
    return lambda record: (record.get(group) or {}).get(name)


def names(records: list[dict], group: str) -> list[str]:
    """Every name logged under `group` (a dict per row) in any row, in domain order."""
    return sorted({name for r in records if isinstance(r.get(group), dict) for name in r[group]}, key=domain_order)


def domain_order(name: str):
    """Sort key: the known domains first, in `DOMAIN_ORDER`, then the rest by name."""
    return (DOMAIN_ORDER.index(name), name) if name in DOMAIN_ORDER else (len(DOMAIN_ORDER), name)


def kl_series(records: list[dict]) -> dict[str, tuple[list[int], list[float]]]:
    """KL over steps: 'overall' from the row's `kl`, and one per domain (logged when per-domain
    KL is on) from `domain_kl{domain}` or TRL keys such as `kl/math` or `kl_math`."""
    found = {"overall": series(records, top_level("kl"))}
    for domain in names(records, "domain_kl"):
        found[domain] = series(records, nested("domain_kl", domain))
    keys = sorted({key for r in records for key in (r.get("trl") or {}) if isinstance(key, str) and _KL_KEY.match(key)})
    for key in keys:
        domain = _KL_KEY.match(key).group("domain")
        if domain and domain not in found:
            found[domain] = series(records, nested("trl", key))
        elif not found["overall"][0]:
            found["overall"] = series(records, nested("trl", key))
    return {name: points for name, points in found.items() if points[0]}


def phase_spans(records: list[dict]) -> list[tuple[int, int, int]]:
    """(phase, first step, last step) for each run of consecutive rows in the same phase."""
    spans: list[tuple[int, int, int]] = []
    for record in records:
        phase = number(record.get("phase"))
        phase = int(phase) if phase is not None else 0
        step = record["step"]
        if spans and spans[-1][0] == phase:
            spans[-1] = (phase, spans[-1][1], step)
        else:
            spans.append((phase, step, step))
    return spans
