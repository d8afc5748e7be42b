"""A tiny `phasegrpo.train` run on every process of a launcher, for tests/test_multiprocess.py:

    accelerate launch --num_processes 2 --cpu tests/multiprocess_train.py RUN_DIR LOG_DIR [options]

The CLI loads real models; this builds the tiny model and tokenizer of tests/tiny.py instead.
Every rank records what its router scored (step, phase, domain, total, exact format of each
completion) into LOG_DIR/rank<R>.jsonl, so the test can redo the per-domain means over all
ranks' completions as one process would, and its RunResult into LOG_DIR/result<R>.json.

Options: --resume, --overwrite; --interrupt-rank R --interrupt-at-step N (rank R alone sends
itself SIGINT as step N+1 begins); --slow-rng-rank R (that rank writes its RNG state late, and
LOG_DIR/marks.jsonl records which RNG files were there when a checkpoint was marked complete).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/tiny.py

import torch  # noqa: E402
from tiny import tiny_model, tiny_tokenizer  # noqa: E402
from transformers import Trainer, TrainerCallback  # noqa: E402

from phasegrpo import run_folder  # noqa: E402
from phasegrpo.config import preset  # noqa: E402
from phasegrpo.formats import completion_text, is_exact_format  # noqa: E402
from phasegrpo.router import RewardRouter  # noqa: E402
from phasegrpo.training import train  # noqa: E402

RANK = int(os.environ.get("RANK", "0"))


def completion_length_reward(completions, **kwargs):
    """Varies within every group, so each step has a learning signal."""
    return [len(str(c)) / 10.0 for c in completions]


def tiny_config(run_dir: str, max_steps: int):
    return preset(
        "demo", model="tiny", output_dir=run_dir, max_steps=max_steps, max_completion_length=16, rows_per_domain=8,
        save_steps=100, eval_before_after=True, eval_rows_per_domain=1, learning_rate=1e-2, seed=3,
        phase_rewards=[["punish_refusal", "completion_length_reward"]] * 2 + [["completion_length_reward", "match_format_exactly"]],
    )


def record_router_calls(log_path: Path) -> None:
    """Wraps RewardRouter.__call__ to log each training batch this rank scored."""
    original = RewardRouter.__call__

    def recording(self, prompts=None, completions=None, trainer_state=None, **kwargs):
        totals = original(self, prompts, completions, trainer_state, **kwargs)
        if trainer_state is not None:
            run_folder.append_jsonl(log_path, {
                "step": trainer_state.global_step + 1, "phase": self.last_phase, "domains": list(kwargs["domain"]),
                "totals": totals, "exact": [is_exact_format(completion_text(c)) for c in completions],
            })
        return totals

    RewardRouter.__call__ = recording


def delay_rng_state() -> None:
    """This rank writes its RNG state into a checkpoint 2 s late (see log_marks)."""
    original_save = Trainer._save_rng_state

    def late_save(self, output_dir):
        time.sleep(2.0)
        original_save(self, output_dir)

    Trainer._save_rng_state = late_save


def log_marks(log_dir: Path) -> None:
    """The main process logs the RNG files present at the moment it marks a checkpoint complete."""
    original_mark = run_folder.mark_complete

    def mark(checkpoint):
        present = sorted(path.name for path in Path(checkpoint).glob("rng_state_*.pth"))
        run_folder.append_jsonl(log_dir / "marks.jsonl", {"checkpoint": Path(checkpoint).name, "rng_files": present})
        original_mark(checkpoint)

    run_folder.mark_complete = mark


def log_model_saves(log_dir: Path) -> None:
    """Logs every Trainer.save_model call of this rank (ZeRO-3 and FSDP gather only if all ranks call it)."""
    original_save_model = Trainer.save_model

    def save_model(self, output_dir=None, _internal_call=False):
        run_folder.append_jsonl(log_dir / "saves.jsonl", {"rank": RANK, "folder": Path(output_dir).name})
        original_save_model(self, output_dir, _internal_call=_internal_call)

    Trainer.save_model = save_model


class InterruptAtStep(TrainerCallback):
    """Sends this process alone a real SIGINT when a given step begins."""

    def __init__(self, step: int):
        self.step = step

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("log_dir")
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--interrupt-rank", type=int, default=-1)
    parser.add_argument("--interrupt-at-step", type=int, default=-1)
    parser.add_argument("--slow-rng-rank", type=int, default=-1)
    options = parser.parse_args()
    torch.set_num_threads(1)
    log_dir = Path(options.log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    record_router_calls(log_dir / f"rank{RANK}.jsonl")
    log_marks(log_dir)
    log_model_saves(log_dir)
    if RANK == options.slow_rng_rank:
        delay_rng_state()
    callbacks = [InterruptAtStep(options.interrupt_at_step)] if RANK == options.interrupt_rank else []
    tokenizer = tiny_tokenizer()
    result = train(
        tiny_config(options.run_dir, options.max_steps), resume=options.resume, overwrite=options.overwrite,
        model=tiny_model(tokenizer), tokenizer=tokenizer, reward_functions={"completion_length_reward": completion_length_reward},
        callbacks=callbacks, show_progress=False,
    )
    (log_dir / f"result{RANK}.json").write_text(json.dumps({
        "global_step": result.global_step, "was_interrupted": result.was_interrupted,
        "adapter_dir": str(result.adapter_dir) if result.adapter_dir else None, "eval_after": result.eval_after,
    }))


if __name__ == "__main__":
    main()
