"""Exact resume: a run killed with SIGKILL at any moment and resumed logs the rows an
uninterrupted run logs (seeded), for every mix schedule, past the first epoch of the data and
with gradient accumulation. The killed run is a real child process (tests/kill_resume.py)."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kill_resume import comparable_rows, run, run_config

from phasegrpo import run_folder

KILL_SCRIPT = Path(__file__).with_name("kill_resume.py")
def kill_child_at_step(run_dir: Path, mix: str, step: int, *extra: str) -> None:
    """Start a run in a child process, wait until it begins `step`, and kill it with SIGKILL."""
    marker = run_dir.with_name(run_dir.name + ".paused")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(run_folder.__file__).parents[1]), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen(
        [sys.executable, str(KILL_SCRIPT), str(run_dir), mix, "--pause-at-step", str(step), *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environment,
    )
    deadline = time.monotonic() + 300
    while not marker.exists():
        if child.poll() is not None:
            raise AssertionError(f"the child run ended before step {step}: {child.stderr.read().decode()[-3000:]}")
        assert time.monotonic() < deadline, "the child run did not reach the step in time"
        time.sleep(0.1)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stderr.close()
    assert child.returncode == -signal.SIGKILL


# Each case takes about a minute (three runs, one in a child process): the adaptive mix, the one
# with the most state, runs every time; the other two with the slow tests.
@pytest.mark.parametrize("mix", [
    pytest.param("constant", marks=pytest.mark.slow), pytest.param("linear", marks=pytest.mark.slow), "adaptive",
])
def test_a_run_killed_with_sigkill_resumes_to_the_rows_of_an_uninterrupted_run(tmp_path, mix):
    evaluate = mix == "adaptive"  # once is enough for the before/after evaluation
    reference = run(run_config(tmp_path / "reference", mix, eval_before_after=evaluate))

    killed = tmp_path / "killed"
    kill_child_at_step(killed, mix, 4, *(["--eval"] if evaluate else []))
    # Killed in step 4: checkpoint-3 (one step into the second epoch) is the last complete one,
    # and step 4's rows were written after it.
    assert run_folder.latest_complete_checkpoint(killed).name == "checkpoint-3"
    assert [row["step"] for row in comparable_rows(killed)] == [1, 2, 3, 4]
    assert not (killed / run_folder.EVAL_AFTER_FILE).exists()

    resumed = run(run_config(killed, mix, eval_before_after=evaluate), resume=True)
    assert resumed.global_step == 5 and not resumed.was_interrupted
    expected = comparable_rows(reference.run_dir)
    assert [row["step"] for row in expected] == [1, 2, 3, 4, 5]
    assert comparable_rows(killed) == expected
    assert comparable_rows(killed, run_folder.SAMPLES_FILE) == comparable_rows(reference.run_dir, run_folder.SAMPLES_FILE)
    if mix != "constant":  # the weights move, and the resumed run follows them
        assert len({json.dumps(row["mix_weights"], sort_keys=True) for row in expected}) > 2
    if evaluate:
        assert resumed.eval_after is not None and (killed / run_folder.EVAL_AFTER_FILE).exists()
        assert resumed.eval_before == reference.eval_before
        assert json.loads((killed / run_folder.EVAL_AFTER_FILE).read_text())["summary"] == reference.eval_after


def test_resume_without_a_complete_checkpoint_starts_over_with_empty_rows(tmp_path):
    config = run_config(tmp_path / "run", "constant", max_steps=2, save_steps=2)
    run_dir = Path(config.output_dir)
    run_dir.mkdir()
    run_folder.write_json_atomic(run_dir / run_folder.CONFIG_FILE, config.to_dict())
    for name in (run_folder.METRICS_FILE, run_folder.SAMPLES_FILE):  # what a kill before checkpoint 2 leaves
        run_folder.append_jsonl(run_dir / name, {"step": 1, "phase": 0, "reward": 123.0})
    half_written = run_dir / run_folder.CHECKPOINTS_DIR / "checkpoint-2"
    half_written.mkdir(parents=True)

    result = run(config, resume=True)
    assert result.global_step == 2
    rows = comparable_rows(run_dir)
    assert [row["step"] for row in rows] == [1, 2] and rows[0]["reward"] != 123.0
    assert all(row["reward"] != 123.0 for row in comparable_rows(run_dir, run_folder.SAMPLES_FILE))


def test_a_full_disk_stops_the_run_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    config = run_config(tmp_path / "run", "constant", max_steps=4, save_steps=2)
    real_write = run_folder._write_synced

    def fail_in_the_second_checkpoint(path, text):
        if "checkpoint-4" in str(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(path, text)

    monkeypatch.setattr(run_folder, "_write_synced", fail_in_the_second_checkpoint)
    with pytest.raises(OSError, match="is full") as caught:
        run(config)
    message = str(caught.value)
    assert caught.value.errno == errno.ENOSPC
    assert "checkpoint-2" in message and "intact" in message and "--resume" in message
    run_dir = Path(config.output_dir)
    assert run_folder.latest_complete_checkpoint(run_dir).name == "checkpoint-2"
    assert not (run_dir / run_folder.CHECKPOINTS_DIR / "checkpoint-4" / run_folder.COMPLETE_MARKER).exists()
    assert not list((run_dir / run_folder.CHECKPOINTS_DIR / "checkpoint-4").glob(".*.tmp"))

    monkeypatch.setattr(run_folder, "_write_synced", real_write)  # space freed: the run continues
    assert run(config, resume=True).global_step == 4
