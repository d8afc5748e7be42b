"""`train()`: a GRPO run with the phase curriculum, from a Config into a run folder.

    from phasegrpo import train, preset
    result = train(preset("demo", max_steps=4))
    result = train(config, dataset=my_rows)       # your own datasets.Dataset of contract rows

Checks its input first (the user's rows; TRL's settings; training.preflight: trackers, Hub login,
rewards, GPU, model, data), prepares the run folder (or picks up a resumable one), builds the
router, the model, the rows and the trainer, evaluates before and after when configured, and
writes the adapter and the report. Every file is written so that a kill leaves it complete or absent (run_folder).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from phasegrpo import run_folder
from phasegrpo.config import Config, from_dict
from phasegrpo.cpu_allocator import keep_freed_memory
from phasegrpo.curriculum import Schedule, check_resume_max_steps, load_schedule, make_schedule
from phasegrpo.data import make_mix_schedule
from phasegrpo.data.prompts import add_worked_examples
from phasegrpo.model_card import set_portable_base, write_model_card
from phasegrpo.models import declare_end_of_turn, load_model, load_tokenizer
from phasegrpo.router import RewardRouter
from phasegrpo.trackers import parse_report_to
from phasegrpo.training import distributed
from phasegrpo.training.callbacks import (
    ConfigToTrackers,
    MetricsFile,
    PhaseAnnouncer,
    ProgressBar,
    SampleCompletions,
    StopOnInterrupt,
)
from phasegrpo.training.preflight import preflight
from phasegrpo.training.setup import grpo_args, load_training_rows, lora_config, trained_domains, user_training_rows
from phasegrpo.training.trainer import PhaseGRPOTrainer

logger = logging.getLogger(__name__)

# Settings a resume may change without a warning: they do not change what is learned.
_RESUMABLE_CHANGES = {"max_steps", "save_steps", "logging_steps", "report_to", "output_dir"}


@dataclass
class RunResult:
    """What a run left: its folder and files, and the held-out evaluation summaries (None when not run)."""

    run_dir: Path
    global_step: int
    was_interrupted: bool
    adapter_dir: Path | None
    eval_before: dict | None = None  # evaluation summary per domain, as in eval_before.json's "summary"
    eval_after: dict | None = None
    metrics_path: Path | None = None
    report_html: Path | None = None
    report_markdown: Path | None = None


def train(
    config: Config,
    *,
    resume: bool = False,
    overwrite: bool = False,
    allow_max_steps_change: bool = False,
    model=None,
    tokenizer=None,
    reward_functions: dict | None = None,
    callbacks: list | None = None,
    show_progress: bool = True,
    dataset=None,
) -> RunResult:
    """Run GRPO with the phase curriculum into `config.output_dir`.

    `model`/`tokenizer` may be passed in (tests use tiny models); otherwise `config.model` is loaded.
    `reward_functions` registers your own rewards by name (enable them in `config.phase_rewards`);
    `callbacks` are extra transformers TrainerCallbacks. `dataset`, a `datasets.Dataset` of
    contract rows (CONTRACT.md), replaces the config's training data; pass it again on resume.
    The before/after evaluation still reads the config's held-out rows (data_source, data_dir).
    """
    # Before anything is written, bad input fails with one message and the run folder untouched:
    # the user's rows and TRL's settings (trl_args included), then what the run needs from this
    # machine and the Hub (training.preflight).
    distributed.check_backend_installed(config.trl_args)
    user_rows = user_training_rows(dataset, config) if dataset is not None else None
    training_args = grpo_args(config, Path(config.output_dir))
    # Asked once, on the main process: N ranks would each send the same Hub requests, and could
    # get different answers (one timed out) and part ways. Every rank raises its error, if any.
    distributed.run_on_main_process(lambda: preflight(
        config, reward_functions=reward_functions, model_given=model is not None, dataset_given=dataset is not None,
    ))
    # Under a launcher only the main process touches the folder; the others get its answer (or error).
    run_dir, checkpoint, schedule = distributed.run_on_main_process(
        lambda: prepare_run(config, resume, overwrite, allow_max_steps_change)
    )
    sampler_state = resume_sampler_state(checkpoint) if resume else None

    if config.keep_freed_memory and not torch.cuda.is_available():
        keep_freed_memory()
    router = RewardRouter.from_config(config, schedule=schedule, reward_functions=reward_functions)
    tokenizer = tokenizer or load_tokenizer(config.model)
    model = model if model is not None else load_model(config.model, config.dtype)
    declare_end_of_turn(model, tokenizer)
    train_rows, row_domains = user_rows if user_rows is not None else load_training_rows(config)
    mix = make_mix_schedule(config.mix_schedule, config.domain_weights, **({"end": config.mix_end_weights} if config.mix_schedule == "linear" else {}))

    eval_rows = eval_before = eval_after = None
    if config.eval_before_after:
        eval_rows = _load_eval_rows(config)
        eval_before = _saved_eval_summary(run_dir / run_folder.EVAL_BEFORE_FILE) if checkpoint is not None else None
        if eval_before is None:  # a resumed run evaluated before training already, unless killed first
            eval_before = _evaluate_into(run_dir / run_folder.EVAL_BEFORE_FILE, "before training", model, tokenizer, eval_rows, config, router)
    interrupt = StopOnInterrupt()
    samples = SampleCompletions(run_dir, router)
    samples.last_phase = _last_logged_phase(run_dir) if checkpoint is not None else None
    run_callbacks = [MetricsFile(run_dir), samples, PhaseAnnouncer(router)]
    if show_progress:
        run_callbacks.append(ProgressBar())
    trainer = PhaseGRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[router],
        args=training_args,
        train_dataset=train_rows,
        peft_config=lora_config(config),
        callbacks=[*run_callbacks, interrupt, *(callbacks or [])],
        router=router,
        row_domains=row_domains,
        mix_schedule=mix,
        config=config,
        sampler_state=sampler_state,
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if parse_report_to(config.report_to):
        trainer.add_callback(ConfigToTrackers(config, trainer.callback_handler.callbacks))
    interrupt.install()
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise run_folder.disk_full_error(run_dir, error) from error
        raise
    finally:
        interrupt.restore()
    adapter_dir = report = None
    if not interrupt.is_interrupted:  # alike on every rank (StopOnInterrupt combines it)
        # Every rank saves and evaluates: under ZeRO-3 or FSDP the weights are gathered, and the
        # model generates, only collectively. The main process writes the files.
        adapter_dir = save_adapter(trainer, run_dir)
        if eval_rows is not None:
            from trl.models import unwrap_model_for_generation

            # ZeRO-3 gathers the weights here; under FSDP every rank generates the same rows in step.
            with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator) as policy:
                eval_after = _evaluate_into(run_dir / run_folder.EVAL_AFTER_FILE, "after training", policy, tokenizer, eval_rows, config, router)
    if trainer.args.should_save:
        if interrupt.is_interrupted:
            print(f"Stopped at step {trainer.state.global_step}; resume with: phasegrpo train --resume --output-dir {run_dir}", flush=True)
        else:
            write_model_card(adapter_dir, run_dir)  # after the eval: the card shows its table
        from phasegrpo.report import write_report

        report = write_report(run_dir)
        print(f"Report: {report.html}  (summary: {report.markdown})", flush=True)
    distributed.barrier()  # every rank returns once the run folder is complete
    if trainer.args.should_save and adapter_dir is not None and config.push_to_hub:
        from phasegrpo.export import push_run

        print(f"Uploaded the adapter to {push_run(run_dir, config.push_to_hub)}", flush=True)
    return RunResult(
        run_dir, trainer.state.global_step, interrupt.is_interrupted, adapter_dir,
        eval_before=eval_before, eval_after=eval_after, metrics_path=run_dir / run_folder.METRICS_FILE,
        report_html=report.html if report else None, report_markdown=report.markdown if report else None,
    )


def prepare_run(config: Config, resume: bool, overwrite: bool, allow_max_steps_change: bool) -> tuple[Path, Path | None, Schedule | None]:
    """The run folder made ready (main process only): emptied or picked up, the metrics of a resumed
    run cut back to its checkpoint, config.json written; with the checkpoint and schedule to resume."""
    run_dir = prepare_run_dir(config, resume, overwrite)
    checkpoint, schedule = (None, None)
    if resume:
        _warn_about_changed_settings(config, run_dir)
        checkpoint, schedule = resolve_resume(config, run_dir, allow_max_steps_change)
        drop_rows_after_checkpoint(run_dir, checkpoint)
    run_folder.write_json_atomic(run_dir / run_folder.CONFIG_FILE, config.to_dict())
    return run_dir, checkpoint, schedule


def prepare_run_dir(config: Config, resume: bool, overwrite: bool) -> Path:
    """The run folder, emptied with `overwrite`; refuses to overwrite silently or resume nothing."""
    run_dir = Path(config.output_dir)
    if run_dir.exists() and any(run_dir.iterdir()) and not resume:
        if not overwrite:
            raise FileExistsError(
                f"Run folder {run_dir} already exists. Pass --resume to continue it, --overwrite to start "
                f"over, or --output-dir for a new run."
            )
        shutil.rmtree(run_dir)
    if resume and not (run_dir / run_folder.CONFIG_FILE).exists():
        raise FileNotFoundError(f"Cannot resume: {run_dir / run_folder.CONFIG_FILE} does not exist. Start the run without --resume.")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _warn_about_changed_settings(config: Config, run_dir: Path) -> None:
    saved = from_dict(json.loads((run_dir / run_folder.CONFIG_FILE).read_text()))
    changed = {f.name for f in dataclasses.fields(Config) if getattr(saved, f.name) != getattr(config, f.name)}
    if changed - _RESUMABLE_CHANGES:
        logger.warning("Resuming with changed settings: %s", ", ".join(sorted(changed)))


def resolve_resume(config: Config, run_dir: Path, allow_max_steps_change: bool) -> tuple[Path | None, Schedule]:
    """The checkpoint to continue from and the phase schedule it was running with."""
    checkpoint = run_folder.latest_complete_checkpoint(run_dir)
    if checkpoint is None:
        logger.warning("No complete checkpoint in %s: starting from step 0.", run_dir)
        return None, make_schedule(config)
    saved = load_schedule(checkpoint)
    if saved is None:
        raise RuntimeError(f"{checkpoint} has no curriculum state ({checkpoint}/phasegrpo_state.json).")
    check_resume_max_steps(saved.max_steps, config.max_steps, allow_max_steps_change)
    if allow_max_steps_change:
        saved.max_steps = config.max_steps
    return checkpoint, saved


def resume_sampler_state(checkpoint: Path | None) -> dict | None:
    """The domain-mix sampler state saved in `checkpoint`, or None (no checkpoint, or one
    written before sampler states were saved: the sampler then restarts its stream)."""
    if checkpoint is None:
        return None
    path = checkpoint / run_folder.SAMPLER_STATE_FILE
    if not path.exists():
        logger.warning("%s has no sampler state (%s): the domain mix restarts its stream.", checkpoint, path.name)
        return None
    return json.loads(path.read_text())


def drop_rows_after_checkpoint(run_dir: Path, checkpoint: Path | None) -> None:
    """Metrics and sample rows logged after the checkpoint a resume continues from (all of them
    without one) are dropped: the resumed run logs those steps again."""
    step = run_folder.checkpoint_step(checkpoint) if checkpoint is not None else 0
    for name in (run_folder.METRICS_FILE, run_folder.SAMPLES_FILE):
        run_folder.truncate_metrics_after(run_dir / name, step)


def _last_logged_phase(run_dir: Path) -> int | None:
    records, _ = run_folder.read_jsonl(run_dir / run_folder.METRICS_FILE)
    return int(records[-1].get("phase", 0)) if records else None


def _saved_eval_summary(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())["summary"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _load_eval_rows(config: Config):
    from phasegrpo.evaluation import load_eval_rows

    rows = load_eval_rows(
        source=config.data_source, rows_per_domain=config.eval_rows_per_domain, data_dir=config.data_dir, seed=config.seed,
        domains=trained_domains(config),
    )
    return add_worked_examples(rows) if config.worked_example else rows


def _evaluate_into(path: Path, label: str, model, tokenizer, rows, config: Config, router: RewardRouter) -> dict:
    """Greedy held-out evaluation, scored by the run's own router in its last phase; its summary."""
    from phasegrpo.evaluation import evaluate_rows, format_table

    was_training = model.training
    result = evaluate_rows(
        model, tokenizer, rows, max_new_tokens=config.max_completion_length, router=router, decode_dtype=config.rollout_dtype,
    )
    model.train(was_training)
    if not distributed.is_main_process():  # every rank evaluated the same rows alike; one writes
        return result["summary"]
    run_folder.write_json_atomic(path, result)
    print(f"\nEval {label} ({len(rows)} held-out rows, greedy, {result['seconds']:.0f} s):\n{format_table(result['summary'])}", flush=True)
    return result["summary"]


def save_adapter(trainer: PhaseGRPOTrainer, run_dir: Path) -> Path:
    """The final LoRA adapter into run_dir/adapter, replacing any older one atomically.

    Called on every process: `save_model` gathers ZeRO-3 / FSDP shards collectively and writes
    on the main process only, which then moves the folder in place.
    """
    target = run_dir / run_folder.ADAPTER_DIR
    staging = run_dir / f".{run_folder.ADAPTER_DIR}.tmp"
    if trainer.args.should_save:
        shutil.rmtree(staging, ignore_errors=True)
    trainer.save_model(str(staging))
    if trainer.args.should_save:
        set_portable_base(staging, trainer.config)  # not the cache path of this machine
        run_folder.replace_dir_atomic(staging, target)
    return target
