"""The run folder: what a run leaves behind, written so that a kill at any moment leaves every
file either complete or absent (temp file + rename; checkpoints marked complete last)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS_DIR = "checkpoints"
ADAPTER_DIR = "adapter"
PLOTS_DIR = "plots"
SAMPLES_FILE = "samples.jsonl"
EVAL_BEFORE_FILE = "eval_before.json"
EVAL_AFTER_FILE = "eval_after.json"
COMPLETE_MARKER = ".complete"
EVAL_FILE = "eval.json"  # `phasegrpo eval --run-dir` writes here
REPORT_HTML = "report.html"
REPORT_MARKDOWN = "report.md"


def write_json_atomic(path: str | Path, value) -> None:
    path = Path(path)
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(value, indent=2, default=str))
    os.replace(temp, path)


def append_jsonl(path: str | Path, record: dict) -> None:
    """Append one line and flush it to disk; a kill can at worst cut the last line short,
    which `read_jsonl` skips."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=_plain) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_jsonl(path: str | Path) -> tuple[list[dict], int]:
    """The well-formed records of a JSONL file and how many lines were malformed."""
    records, malformed = [], 0
    if not Path(path).exists():
        return records, malformed
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            malformed += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            malformed += 1
    return records, malformed


def truncate_metrics_after(path: str | Path, step: int) -> None:
    """On resume, drop rows logged after the checkpoint we continue from (they will be redone)."""
    records, _ = read_jsonl(path)
    kept = [record for record in records if int(record.get("step", 0)) <= step]
    temp = Path(path).with_name(f".{Path(path).name}.tmp")
    temp.write_text("".join(json.dumps(record) + "\n" for record in kept))
    os.replace(temp, path)


def replace_dir_atomic(staging: Path, target: Path) -> None:
    """Move a fully written `staging` folder to `target`, replacing any older one."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def mark_complete(checkpoint: str | Path) -> None:
    Path(checkpoint, COMPLETE_MARKER).write_text("ok\n")


def checkpoint_step(checkpoint: str | Path) -> int:
    """The global step of a `checkpoint-N` folder."""
    return int(Path(checkpoint).name.split("-")[-1])


def latest_complete_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint that was fully written (half-written ones from a kill are ignored)."""
    folder = Path(run_dir) / CHECKPOINTS_DIR
    if not folder.is_dir():
        return None
    complete = [
        path for path in folder.glob("checkpoint-*")
        if (path / COMPLETE_MARKER).exists() and path.name.split("-")[-1].isdigit()
    ]
    return max(complete, key=lambda path: int(path.name.split("-")[-1]), default=None)


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)
