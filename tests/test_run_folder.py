"""The run folder's durable writes: synced before the rename, and a full disk leaves the old file."""

import errno
import json
import os

import pytest

from phasegrpo import run_folder


def test_a_file_is_synced_to_disk_before_it_replaces_the_old_one(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(run_folder.os, "fsync", lambda descriptor: (events.append("fsync"), real_fsync(descriptor))[1])
    monkeypatch.setattr(run_folder.os, "replace", lambda source, target: (events.append("replace"), real_replace(source, target))[1])
    run_folder.write_json_atomic(tmp_path / "config.json", {"a": 1})
    assert events[:2] == ["fsync", "replace"]
    assert json.loads((tmp_path / "config.json").read_text()) == {"a": 1}


@pytest.mark.parametrize("write", [
    lambda path: run_folder.write_json_atomic(path, {"new": True}),
    lambda path: run_folder.truncate_metrics_after(path, 0),
])
def test_a_full_disk_leaves_the_previous_file_and_no_temp_file(tmp_path, monkeypatch, write):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1}\n')

    def disk_full(path, text):
        path.write_text(text[:3])  # part of it reached the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(run_folder, "_write_synced", disk_full)
    with pytest.raises(OSError, match=r"Could not write .*metrics.jsonl \(No space left on device\); the previous file is unchanged") as caught:
        write(path)
    assert caught.value.errno == errno.ENOSPC
    assert path.read_text() == '{"step": 1}\n'
    assert [entry.name for entry in tmp_path.iterdir()] == ["metrics.jsonl"]


def test_the_disk_full_message_names_the_checkpoint_kept_and_how_to_continue(tmp_path):
    checkpoint = tmp_path / run_folder.CHECKPOINTS_DIR / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    run_folder.mark_complete(checkpoint)
    error = run_folder.disk_full_error(tmp_path, OSError(errno.ENOSPC, "No space left on device"))
    assert error.errno == errno.ENOSPC
    assert f"the last complete checkpoint, {checkpoint}, is intact" in str(error)
    assert f"phasegrpo train --resume --output-dir {tmp_path}" in str(error)


def test_a_checkpoint_is_marked_complete_after_its_files_are_synced(tmp_path, monkeypatch):
    checkpoint = tmp_path / "checkpoint-2"
    checkpoint.mkdir()
    (checkpoint / "adapter_model.safetensors").write_bytes(b"weights")
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(run_folder.os, "fsync", lambda descriptor: (synced.append(os.readlink(f"/proc/self/fd/{descriptor}")), real_fsync(descriptor))[1])
    run_folder.mark_complete(checkpoint)
    assert synced[0].endswith("adapter_model.safetensors") and any(".complete" in path for path in synced[1:])
    assert (checkpoint / run_folder.COMPLETE_MARKER).read_text() == "ok\n"
