"""The run's TrainerCallbacks, one job each: the metrics file, the sample completions, the phase
announcements, the progress bar, Ctrl-C, and phasegrpo's config for the trackers."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

from transformers import TrainerCallback

from phasegrpo import metric_keys, run_folder
from phasegrpo.config import Config
from phasegrpo.formats import completion_text
from phasegrpo.messages import last_user_message
from phasegrpo.router import RewardRouter
from phasegrpo.training import distributed

logger = logging.getLogger(__name__)


def is_step_log(logs: dict | None) -> bool:
    """Whether a transformers log event carries a training step's metrics (not the final summary)."""
    return bool(logs) and "reward" in logs


def metrics_record(step: int, logs: dict) -> dict:
    """One metrics.jsonl row from TRL's logged dict: the headline fields first, then every
    per-reward and per-domain value, everything else TRL logged under `trl`, and the mix."""
    record = {
        "step": step,
        "phase": int(round(logs.get(metric_keys.PHASE, 0))),
        "reward": logs.get("reward"),
        "reward_std": logs.get("reward_std"),
        "kl": logs.get("kl"),
        "completion_length": logs.get("completions/mean_length"),
        "step_time": logs.get("step_time"),
        "exact_format_rate": logs.get(metric_keys.EXACT_FORMAT_RATE),
        "reward_raw": {},
        "reward_contribution": {},
        "domain_reward": {},
        "domain_count": {},
        "domain_exact_rate": {},
        "domain_kl": {},
        "reward_raw_by_domain": {},
        "reward_contribution_by_domain": {},
        "trl": {},
    }
    mix_weights = {}
    for name, value in logs.items():
        key = metric_keys.parse(name)
        if key is None:
            if name != metric_keys.PHASE:
                record["trl"][name] = value
        elif key.kind == "reward":
            record[f"reward_{key.part}"][key.name] = value
        elif key.kind == "reward_by_domain":
            record[f"reward_{key.part}_by_domain"].setdefault(key.domain, {})[key.name] = value
        elif key.kind == "domain":
            record[f"domain_{key.part}"][key.domain] = value
        elif key.kind == "mix":
            mix_weights[key.domain] = value
    if mix_weights:
        record["mix_weights"] = mix_weights
    return record


class MetricsFile(TrainerCallback):
    """Appends one `metrics_record` per logged step to metrics.jsonl (main process only)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / run_folder.METRICS_FILE

    def on_log(self, args, state, control, logs=None, **kwargs):
        if is_step_log(logs) and state.is_world_process_zero:
            run_folder.append_jsonl(self.path, metrics_record(state.global_step, logs))


class SampleCompletions(TrainerCallback):
    """One completion per domain into samples.jsonl, for the report: at each phase's first
    logged step and ~20 times per run, so the file stays small. Read from the batch the router
    scored last."""

    def __init__(self, run_dir: Path, router: RewardRouter):
        self.path = Path(run_dir) / run_folder.SAMPLES_FILE
        self.router = router
        self.last_phase: int | None = None
        self.has_failed = False

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not is_step_log(logs) or not state.is_world_process_zero:
            return
        phase = int(round(logs.get(metric_keys.PHASE, 0)))
        is_new_phase, self.last_phase = phase != self.last_phase, phase
        if state.global_step % max(1, state.max_steps // 20) and not is_new_phase:
            return
        batch = self.router.last_batch
        if batch is None or self.has_failed:
            return
        try:
            seen: set[str] = set()
            for prompt, completion, domain, reward in zip(batch.prompts, batch.completions, batch.domains, batch.totals, strict=False):
                if domain in seen:
                    continue
                seen.add(domain)
                run_folder.append_jsonl(self.path, {
                    "step": state.global_step, "phase": phase, "domain": domain, "question": last_user_message(prompt),
                    "completion": completion_text(completion), "reward": reward,
                })
        except OSError as error:  # samples are a nicety; never stop training for them
            self.has_failed = True
            logger.warning("Not logging sample completions for the report: %r", error)


def _write(text: str) -> None:
    """Print a line without breaking a progress bar (tqdm redraws its bars below it)."""
    from tqdm.auto import tqdm

    tqdm.write(text)


class PhaseAnnouncer(TrainerCallback):
    """Prints a line when the curriculum enters a phase: the rewards it enables and why now."""

    def __init__(self, router: RewardRouter):
        self.router = router
        self.last_phase: int | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not is_step_log(logs) or not state.is_world_process_zero:
            return
        phase = int(round(logs.get(metric_keys.PHASE, 0)))
        if phase == self.last_phase:
            return
        enabled = ", ".join(self.router.enabled_rewards(phase))
        reason = self.router.schedule.transition_reason(phase) if self.last_phase is not None else ""
        _write(f"[step {state.global_step}] phase {phase}: {enabled}" + (f"  ({reason})" if reason else ""))
        self.last_phase = phase


class ProgressBar(TrainerCallback):
    """A tqdm bar over the optimizer steps, showing phase, reward, KL and completion length."""

    def __init__(self):
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and is_step_log(logs):
            self.bar.set_postfix(
                phase=int(round(logs.get(metric_keys.PHASE, 0))), reward=f"{logs['reward']:.2f}",
                kl=f"{logs.get('kl') or 0:.3f}", len=f"{logs.get('completions/mean_length') or 0:.0f}", refresh=False,
            )

    def on_train_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()


class StopOnInterrupt(TrainerCallback):
    """Turns Ctrl-C into 'save a checkpoint after this step and stop'; a second Ctrl-C aborts.

    Under a launcher every rank stops after the same step: the flag is combined across processes
    at each step's end (a rank that stopped alone would leave the others waiting in a collective).
    A terminal's Ctrl-C reaches each rank twice, from the terminal and forwarded by torchrun's
    agent, so a repeat within `REPEAT_WINDOW_S` under a launcher is the same Ctrl-C. The agent
    kills the ranks TORCH_ELASTIC_SHUTDOWN_TIMEOUT seconds (default 30) after Ctrl-C.
    """

    REPEAT_WINDOW_S = 3.0

    def __init__(self):
        self.is_interrupted = False  # on every rank alike, from the step end on
        self.has_received_signal = False  # on this process
        self._received_at = 0.0
        self._previous_handler = None

    def install(self) -> None:
        is_launched = "LOCAL_RANK" in os.environ or "TORCHELASTIC_RUN_ID" in os.environ

        def handler(signum, frame):
            now = time.monotonic()
            if self.has_received_signal:
                if is_launched and now - self._received_at < self.REPEAT_WINDOW_S:
                    return  # the launcher forwarding the same Ctrl-C
                signal.signal(signal.SIGINT, signal.default_int_handler)  # second Ctrl-C: give up waiting for the step
                raise KeyboardInterrupt
            self.has_received_signal, self._received_at = True, now
            if distributed.is_main_process():
                print("\nCtrl-C: saving a checkpoint after this step, then stopping (Ctrl-C again to abort).", flush=True)

        self._previous_handler = signal.signal(signal.SIGINT, handler)

    def restore(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)

    def on_step_end(self, args, state, control, **kwargs):
        # Every rank reaches here once per step: the combine is a collective on all of them.
        if distributed.any_process(self.has_received_signal):
            self.is_interrupted = True
            control.should_save = True
            control.should_training_stop = True


class ConfigToTrackers(TrainerCallback):
    """Hands phasegrpo's own Config (phases, weights, scales, ...) to each tracker of report_to.

    transformers' tracker callbacks log only TRL's GRPOConfig and the model config. They open
    their run in on_train_begin and come before this callback (the Trainer adds them first), so
    here the run exists: TensorBoard gets a `phasegrpo/config` text summary of the JSON through
    the TensorBoardCallback's writer, wandb and trackio a `phasegrpo` entry in their run config.
    """

    TEXT_TAG = "phasegrpo/config"
    CONFIG_KEY = "phasegrpo"

    def __init__(self, config: Config, trainer_callbacks: list):
        self.config = config
        self.trainer_callbacks = trainer_callbacks  # the Trainer's live list, read at train begin

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        values = self.config.to_dict()
        trackers = set(args.report_to or [])
        if "tensorboard" in trackers:
            from transformers.integrations import TensorBoardCallback

            # Indented: TensorBoard renders text as Markdown, and this keeps the JSON a code block.
            text = "\n".join("    " + line for line in json.dumps(values, indent=2).splitlines())
            for callback in self.trainer_callbacks:
                if isinstance(callback, TensorBoardCallback) and callback.tb_writer is not None:
                    callback.tb_writer.add_text(self.TEXT_TAG, text, state.global_step)
                    callback.tb_writer.flush()
        if "wandb" in trackers:
            import wandb

            if wandb.run is not None:
                wandb.config.update({self.CONFIG_KEY: values}, allow_val_change=True)
            else:
                logger.warning("wandb has no active run: phasegrpo's config is not in its run config.")
        if "trackio" in trackers:
            import trackio

            trackio.config.update({self.CONFIG_KEY: values}, allow_val_change=True)
