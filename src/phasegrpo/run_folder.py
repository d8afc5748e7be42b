"""The run folder: what a run leaves behind, written so that a kill at any moment leaves every
file either complete or absent (temp file + rename; checkpoints marked complete last)."""

from __future__ import annotations

import errno
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
SAMPLER_STATE_FILE = "mix_sampler_state.json"  # in a checkpoint: the domain-mix stream to resume
EVAL_FILE = "eval.json"  # `phasegrpo eval --run-dir` writes here
REPORT_HTML = "report.html"
REPORT_MARKDOWN = "report.md"


def write_json_atomic(path: str | Path, value) -> None:
    write_text_atomic(path, json.dumps(value, indent=2, default=str))


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace `path` with `text`: written to a temp file, synced to disk, then renamed, so a
    kill or a full disk leaves the old file or the new one, never a torn one."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.tmp")
    try:
        _write_synced(temp, text)
        os.replace(temp, path)
    except OSError as error:
        temp.unlink(missing_ok=True)
        raise OSError(
            error.errno, f"Could not write {path} ({error.strerror or error}); the previous file is unchanged"
        ) from error
    _sync_folder(path.parent)  # the rename itself survives a power loss


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _sync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # some systems cannot open a folder; the rename is atomic there anyway
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def disk_full_error(run_dir: str | Path, error: OSError) -> OSError:
    """The error a run stops with when its disk is full: what happened, what is kept, what to do."""
    checkpoint = latest_complete_checkpoint(run_dir)
    kept = f"the last complete checkpoint, {checkpoint}, is intact" if checkpoint else "no checkpoint was complete yet"
    return OSError(
        errno.ENOSPC,
        f"The disk of run folder {run_dir} is full ({error}); {kept}. Free some space, then continue with "
        f"phasegrpo train --resume --output-dir {run_dir}",
    )


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
    """On resume, drop rows logged after the checkpoint we continue from (they will be redone).
    Works for any JSONL of rows with a `step` (metrics.jsonl, samples.jsonl); no file, nothing to do."""
    if not Path(path).exists():
        return
    records, _ = read_jsonl(path)
    kept = [record for record in records if int(record.get("step", 0)) <= step]
    write_text_atomic(path, "".join(json.dumps(record) + "\n" for record in kept))


def replace_dir_atomic(staging: Path, target: Path) -> None:
    """Move a fully written `staging` folder to `target`, replacing any older one."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)


def mark_complete(checkpoint: str | Path) -> None:
    """Mark a fully written checkpoint resumable: its files are synced to disk first, so that
    the marker never outlives them in a power loss."""
    for path in sorted(Path(checkpoint).rglob("*")):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    write_text_atomic(Path(checkpoint, COMPLETE_MARKER), "ok\n")


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
