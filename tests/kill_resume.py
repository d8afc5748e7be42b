"""A tiny seeded run of `phasegrpo.train` for the kill -9 resume tests, in this process or as a
child process that a test kills with SIGKILL, on one process or on each process of a launcher:

    python tests/kill_resume.py RUN_DIR MIX_SCHEDULE --pause-at-step 4
    accelerate launch --num_processes 2 ... tests/kill_resume.py RUN_DIR MIX_SCHEDULE --rows-per-domain 2 --trl-generation [--resume]

With --pause-at-step the run trains until the given step begins (its checkpoints and rows written
so far), writes RUN_DIR.paused and waits there to be killed. Under a launcher each rank first
writes its process id into RUN_DIR.rank<R>.pid, so that a test can kill every rank.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

sys.path.insert(0, str(Path(__file__).parent))  # tiny.py, when run as a script

from tiny import tiny_model, tiny_tokenizer  # noqa: E402

from phasegrpo import run_folder  # noqa: E402
from phasegrpo.config import preset  # noqa: E402
from phasegrpo.training import train  # noqa: E402

WALL_CLOCK_FIELDS = ("step_time",)  # the only fields that may differ between two identical runs

# 2 prompts per chunk, 1 row per domain: an epoch of the data is 2 chunks = 2 steps, so the
# checkpoint at step 3 is one step into the second epoch; 2 micro-batches per step.
MIX_SETTINGS = {
    "constant": {},
    "linear": {"mix_end_weights": {"math": 0.1, "code": 0.1, "science": 0.1, "logic": 0.7}},
    "adaptive": {},
}


def length_reward(completions, **kwargs):
    """Varies within every group and by domain, so the adaptive mix has something to follow."""
    return [len(str(completion)) / 10.0 for completion in completions]


def run_config(run_dir: Path, mix: str, **overrides):
    values = dict(
        model="tiny", output_dir=str(run_dir), max_steps=5, save_steps=3, max_completion_length=16,
        rows_per_domain=1, prompts_per_step=2, num_generations=2, gradient_accumulation_steps=2,
        eval_before_after=False, eval_rows_per_domain=1, learning_rate=1e-2, mix_schedule=mix,
        phase_rewards=[["punish_refusal", "length_reward"]] * 2 + [["length_reward", "check_answer"]],
        **MIX_SETTINGS[mix],
    )
    values.update(overrides)
    return preset("demo", **values)


def comparable_rows(run_dir: Path, name: str = run_folder.METRICS_FILE) -> list[dict]:
    """The rows of a run-folder JSONL file without their wall-clock fields."""
    rows, malformed = run_folder.read_jsonl(Path(run_dir) / name)
    assert malformed == 0
    for row in rows:
        for field in WALL_CLOCK_FIELDS:
            row.pop(field, None)
            row.get("trl", {}).pop(field, None)
    return rows


def run(config, *, resume: bool = False, callbacks=()):
    torch.set_num_threads(1)  # the same arithmetic in the test process and in the child
    tokenizer = tiny_tokenizer()
    return train(
        config, resume=resume, model=tiny_model(tokenizer), tokenizer=tokenizer,
        reward_functions={"length_reward": length_reward}, callbacks=list(callbacks), show_progress=False,
    )


class PauseAtStep(TrainerCallback):
    """Stops the run where a kill should land: `marker` written, then wait to be killed."""

    def __init__(self, step: int, marker: Path):
        self.step, self.marker = step, marker

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            self.marker.write_text(str(state.global_step))
            time.sleep(600)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("mix", choices=sorted(MIX_SETTINGS))
    parser.add_argument("--pause-at-step", type=int)
    parser.add_argument("--eval", action="store_true", help="evaluate before and after training")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--rows-per-domain", type=int, default=1)
    parser.add_argument("--trl-generation", action="store_true",
                        help="TRL's generate (each rank's torch RNG) instead of the step-seeded CPU rollouts")
    arguments = parser.parse_args()
    if "LOCAL_RANK" in os.environ:  # under a launcher
        pid_file = arguments.run_dir.with_name(f"{arguments.run_dir.name}.rank{os.environ['RANK']}.pid")
        run_folder.write_text_atomic(pid_file, str(os.getpid()))
    config = run_config(arguments.run_dir, arguments.mix, eval_before_after=arguments.eval, rows_per_domain=arguments.rows_per_domain,
                        fast_cpu_generation=not arguments.trl_generation)
    marker = arguments.run_dir.with_name(arguments.run_dir.name + ".paused")
    pause = [PauseAtStep(arguments.pause_at_step, marker)] if arguments.pause_at_step is not None else []
    run(config, resume=arguments.resume, callbacks=pause)


if __name__ == "__main__":
    main()
