"""Exact resume on 2 processes: a real 2-process run (accelerate launch, gloo on the CPU, the tiny
model of tests/kill_resume.py) killed with SIGKILL, launcher and both ranks, once a checkpoint is
complete, and resumed with 2 processes, logs the rows of an uninterrupted 2-process run.

The adaptive mix (the most state: its reward history and the sampler's stream), gradient
accumulation 2, and 8 rows drawn 4 prompts a step over both ranks: an epoch of the data is 2
steps, so checkpoint-3, the one resumed from, is one step into the second epoch. The killed run
waits at the start of step 5, so the kill lands after checkpoint-3 and before the last step:
during step 4 or at that wait, whenever SIGKILL gets there. The rollouts come from TRL's
generate, as on a GPU, which samples from each rank's own torch RNG.
"""

import time
from pathlib import Path

import pytest
from kill_resume import comparable_rows
from launcher import PROCESSES, ROOT, kill_launch, launch, start_launch

from phasegrpo import run_folder

SCRIPT = ROOT / "tests" / "kill_resume.py"
MIX = "adaptive"
# With kill_resume.run_config: max_steps 5, save_steps 3, 2 micro-batches a step. TRL's own
# generate samples from each rank's torch RNG: a resume must restore every rank's own RNG file.
SETTINGS = ("--rows-per-domain", "2", "--trl-generation")
PAUSE_AT_STEP = "5"


def wait_for_complete_checkpoint(run_dir: Path, launcher, log: Path, timeout: float = 420.0) -> Path:
    """Poll the run folder until a checkpoint is marked complete."""
    deadline = time.monotonic() + timeout
    while (checkpoint := run_folder.latest_complete_checkpoint(run_dir)) is None:
        if launcher.poll() is not None:
            raise AssertionError(f"the 2-process run ended before its first checkpoint:\n{log.read_text()[-6000:]}")
        assert time.monotonic() < deadline, f"no complete checkpoint after {timeout} s:\n{log.read_text()[-6000:]}"
        time.sleep(0.05)
    return checkpoint


def rank_pids(run_dir: Path) -> list[int]:
    """The process ids the ranks of a kill_resume.py launch wrote (the ones that got that far)."""
    files = [run_dir.with_name(f"{run_dir.name}.rank{rank}.pid") for rank in range(PROCESSES)]
    return [int(path.read_text()) for path in files if path.exists()]


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    base = tmp_path_factory.mktemp("two_process_resume")
    reference, killed, log = base / "reference", base / "killed", base / "killed.log"
    seconds = {}
    started = time.monotonic()
    launch(SCRIPT, str(reference), MIX, *SETTINGS)
    seconds["reference"] = time.monotonic() - started

    started = time.monotonic()
    launcher = start_launch(SCRIPT, log, str(killed), MIX, *SETTINGS, "--pause-at-step", PAUSE_AT_STEP)
    try:
        checkpoint = wait_for_complete_checkpoint(killed, launcher, log)
    finally:  # the kill, or after a failed wait: nothing left running
        pids = rank_pids(killed)
        kill_launch(launcher, pids, SCRIPT)
    seconds["killed"] = time.monotonic() - started
    after_kill = {
        "returncode": launcher.returncode,
        "ranks_killed": len(pids),
        "first_complete": checkpoint.name,
        "complete": run_folder.latest_complete_checkpoint(killed).name,
        "files": sorted(path.name for path in checkpoint.iterdir()),
        "steps": [row["step"] for row in run_folder.read_jsonl(killed / run_folder.METRICS_FILE)[0]],
    }

    started = time.monotonic()
    resumed = launch(SCRIPT, str(killed), MIX, *SETTINGS, "--resume")
    seconds["resumed"] = time.monotonic() - started
    print(f"\nseconds per launch: {seconds}; rows at the kill: steps {after_kill['steps']}")
    return {"reference": reference, "killed": killed, "after_kill": after_kill, "resumed": resumed}


def test_a_2_process_run_killed_with_sigkill_resumes_to_the_rows_of_an_uninterrupted_run(killed_and_resumed):
    after_kill = killed_and_resumed["after_kill"]
    assert after_kill["returncode"] < 0 and after_kill["ranks_killed"] == PROCESSES  # killed, not exited
    assert after_kill["first_complete"] == after_kill["complete"] == "checkpoint-3"
    # Each rank's RNG state and the domain-mix stream are in the checkpoint a resume continues from.
    assert {"rng_state_0.pth", "rng_state_1.pth", run_folder.SAMPLER_STATE_FILE, run_folder.COMPLETE_MARKER} <= set(after_kill["files"])
    assert after_kill["steps"] in ([1, 2, 3], [1, 2, 3, 4])  # step 4's row, when the kill came after it, is logged again

    expected = comparable_rows(killed_and_resumed["reference"])
    assert [row["step"] for row in expected] == [1, 2, 3, 4, 5]
    assert all(sum(row["domain_count"].values()) == PROCESSES * 2 * 2 for row in expected)  # both ranks' completions
    assert len({tuple(sorted(row["mix_weights"].items())) for row in expected}) > 2  # the adaptive mix moves
    resumed = comparable_rows(killed_and_resumed["killed"])
    for row, expected_row in zip(resumed, expected, strict=True):
        assert row == expected_row, f"step {expected_row['step']} differs"
    assert comparable_rows(killed_and_resumed["killed"], run_folder.SAMPLES_FILE) == comparable_rows(
        killed_and_resumed["reference"], run_folder.SAMPLES_FILE
    )
