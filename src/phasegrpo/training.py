"""Builds TRL's GRPOTrainer from a Config and runs it into a run folder.

    from phasegrpo import train, preset
    result = train(preset("demo", max_steps=4))

The trainer subclass extends TRL by its smallest seams (TRL 1.16): the train sampler (domain
mixing at sampling time), single-turn generation (the CPU rollout loop), and checkpoint saving
(curriculum state + a completeness marker). Everything else is callbacks.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from trl import GRPOConfig, GRPOTrainer

from phasegrpo import run_folder
from phasegrpo.config import Config, from_dict
from phasegrpo.curriculum import ProgressSchedule, Schedule, check_resume_max_steps, load_schedule, make_schedule
from phasegrpo.data import DomainMixSampler, concat_domains, load_mixture, make_mix_schedule
from phasegrpo.data.prompts import add_worked_examples
from phasegrpo.generation import sample_completions
from phasegrpo.kl import DomainKLMixin
from phasegrpo.models import declare_end_of_turn, load_model, load_tokenizer, resolve_dtype
from phasegrpo.router import RewardRouter

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    run_dir: Path
    global_step: int
    was_interrupted: bool
    adapter_dir: Path | None


class PhaseGRPOTrainer(DomainKLMixin, GRPOTrainer):
    """GRPOTrainer with sampling-time domain mixing, fast CPU rollouts, complete-marked checkpoints,
    a KL coefficient per domain (phasegrpo.kl) and metric-driven phase schedules fed every step."""

    def __init__(self, *args, router: RewardRouter, row_domains: list[str], mix_schedule, phase_config: Config, **kwargs):
        self.router = router
        self.row_domains = row_domains
        self.mix_schedule = mix_schedule
        self.phase_config = phase_config
        self.domain_betas = dict(phase_config.domain_betas)
        self.mix_sampler: DomainMixSampler | None = None
        super().__init__(*args, **kwargs)

    # Mirrors GRPOTrainer._get_train_sampler (TRL 1.16): same repeat structure, domain-mixed draws.
    def _get_train_sampler(self, dataset=None):
        self.mix_sampler = DomainMixSampler(
            self.row_domains,
            self.mix_schedule,
            mini_repeat_count=self.num_generations,
            batch_size=self.args.generation_batch_size // self.num_generations,
            repeat_count=self.num_iterations * self.args.steps_per_generation,
            seed=self.args.seed,
        )
        return self.mix_sampler

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        if not (self.phase_config.fast_cpu_generation and not self.use_vllm and images is None and not multimodal_fields):
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations, has_tool_images)
        from trl.models import unwrap_model_for_generation

        # Seeded by step, so a resumed run draws the same rollouts it would have drawn.
        generator = torch.Generator(device=self.accelerator.device).manual_seed(
            self.args.seed * 1_000_003 + self.state.global_step * 101 + self.accelerator.process_index
        )
        with unwrap_model_for_generation(self.model_wrapped, self.accelerator) as unwrapped_model:
            completion_ids = sample_completions(
                unwrapped_model,
                prompt_ids,
                max_new_tokens=self.max_completion_length,
                temperature=self.temperature,
                top_p=self.top_p,
                end_token_ids=self.eos_token_ids,
                pad_token_id=self._tokenizer.pad_token_id,
                tokenizer=self._tokenizer if self.phase_config.stop_at_answer_end else None,
                generator=generator,
            )
        return completion_ids, None

    # Mirrors GRPOTrainer._generate_and_score_completions (TRL 1.16): once TRL has averaged this
    # step's metrics across processes, the phase schedule sees them, so every rank takes the same
    # transition at the same step.
    def _generate_and_score_completions(self, inputs):
        metrics = self._metrics["train"]
        counts_before = {name: len(values) for name, values in metrics.items()}
        output = super()._generate_and_score_completions(inputs)
        if self.model.training:
            fresh = {name: values[-1] for name, values in metrics.items() if len(values) > counts_before.get(name, 0)}
            self.router.schedule.observe(self.state.global_step, fresh)
        return output

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        with _score_completion_positions_only():
            return super()._get_per_token_logps_and_entropies(*args, **kwargs)

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.args.should_save:
            folder = Path(self._get_output_dir(trial)) / f"checkpoint-{self.state.global_step}"
            self.router.schedule.save(folder)
            run_folder.mark_complete(folder)  # last: only a fully written checkpoint is resumable


@contextmanager
def _score_completion_positions_only():
    """TRL 1.16's fused LM head projects only the scored (completion) positions on Triton devices,
    but every position, prompt and padding included, elsewhere (to keep Neuron tile shapes static).
    On a CPU that doubles the cost of the 262k-wide head; the compact path gives identical log-probs."""
    import trl.trainer.utils as trl_utils

    original = trl_utils._use_triton
    if original(torch.device("cpu")):  # a TRL version where the name means something else: leave it
        yield
        return
    trl_utils._use_triton = lambda device: device.type == "cpu" or original(device)
    try:
        yield
    finally:
        trl_utils._use_triton = original


class RunCallback(TrainerCallback):
    """Writes metrics.jsonl, announces phases, drives the mix schedule, shows progress, and turns
    Ctrl-C into 'save a checkpoint and stop'."""

    def __init__(self, run_dir: Path, router: RewardRouter, trainer_ref: dict, show_progress: bool = True):
        self.run_dir = run_dir
        self.router = router
        self.trainer_ref = trainer_ref
        self.show_progress = show_progress
        self.last_phase: int | None = None
        self.is_interrupted = False
        self.progress = None
        self._step_started = time.perf_counter()
        self._previous_handler = None
        self._sample_domains: dict[str, str] | None = None

    # --- Ctrl-C -------------------------------------------------------------------------------
    def install_interrupt_handler(self) -> None:
        def handler(signum, frame):
            if self.is_interrupted:  # second Ctrl-C: give up waiting for the step
                signal.signal(signal.SIGINT, signal.default_int_handler)
                raise KeyboardInterrupt
            self.is_interrupted = True
            print("\nCtrl-C: saving a checkpoint after this step, then stopping (Ctrl-C again to abort).", flush=True)

        self._previous_handler = signal.signal(signal.SIGINT, handler)

    def restore_interrupt_handler(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGINT, self._previous_handler)

    # --- training events ---------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        if self.show_progress and state.is_world_process_zero:
            from tqdm.auto import tqdm

            self.progress = tqdm(total=state.max_steps, initial=state.global_step, desc="train", dynamic_ncols=True)

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = time.perf_counter()
        sampler = self.trainer_ref["trainer"].mix_sampler
        if sampler is not None:
            sampler.set_progress(self.router.schedule.fraction(state.global_step, state.max_steps))

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.update(state.global_step - self.progress.n)
        if self.is_interrupted:
            control.should_save = True
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "reward" not in logs:
            return
        record = metrics_record(state.global_step, logs)
        sampler = self.trainer_ref["trainer"].mix_sampler
        if sampler is not None:
            record["mix_weights"] = dict(sampler.weights_in_force)
            domain_means = {d: v for d, v in record.get("domain_reward", {}).items()}
            sampler.observe_rewards(domain_means)
        if state.is_world_process_zero:
            run_folder.append_jsonl(self.run_dir / run_folder.METRICS_FILE, record)
            self._log_samples(state, record)
            self._announce(record)

    def _log_samples(self, state, record: dict) -> None:
        """One completion per domain of this step into samples.jsonl, for the report: at each
        phase's first logged step and ~20 times per run, so the file stays small."""
        if state.global_step % max(1, state.max_steps // 20) and record["phase"] == self.last_phase:
            return
        try:
            from phasegrpo.formats import completion_text

            trainer = self.trainer_ref["trainer"]
            logs = trainer._logs  # TRL 1.16 keeps the last generation batch here, log_completions or not
            totals = list(logs["rewards"].get(self.router.__name__, []))
            if self._sample_domains is None:
                rows = trainer.train_dataset
                self._sample_domains = {_user_text(p): d for p, d in zip(rows["prompt"], rows["domain"])}
            seen: set[str] = set()
            for index, (prompt, completion) in enumerate(zip(list(logs["prompt"]), list(logs["completion"]))):
                question = _user_text(prompt)
                domain = self._sample_domains.get(question, "unknown")
                if domain in seen:
                    continue
                seen.add(domain)
                run_folder.append_jsonl(self.run_dir / "samples.jsonl", {
                    "step": record["step"], "phase": record["phase"], "domain": domain, "question": question,
                    "completion": completion_text(completion), "reward": totals[index] if index < len(totals) else None,
                })
        except Exception as error:  # samples are a nicety; never stop training for them
            if self._sample_domains != {}:
                logger.warning("Not logging sample completions for the report: %r", error)
            self._sample_domains = {}

    def _announce(self, record: dict) -> None:
        phase = record["phase"]
        if phase != self.last_phase:
            enabled = ", ".join(self.router.phase_rewards[min(phase, len(self.router.phase_rewards) - 1)])
            reason = self.router.schedule.transition_reason(phase) if self.last_phase is not None else ""
            self._write(f"[step {record['step']}] phase {phase}: {enabled}" + (f"  ({reason})" if reason else ""))
            self.last_phase = phase
        if self.progress is not None:
            self.progress.set_postfix(
                phase=phase, reward=f"{record['reward']:.2f}", kl=f"{record.get('kl') or 0:.3f}",
                len=f"{record.get('completion_length') or 0:.0f}", refresh=False,
            )

    def _write(self, text: str) -> None:
        if self.progress is not None:
            self.progress.write(text)
        else:
            print(text, flush=True)

    def on_train_end(self, args, state, control, **kwargs):
        if self.progress is not None:
            self.progress.close()


def _user_text(prompt) -> str:
    """The last user message of a prompt (conversational or plain), naming it in samples.jsonl."""
    if isinstance(prompt, str):
        return prompt
    users = [message.get("content", "") for message in prompt if isinstance(message, dict) and message.get("role") == "user"]
    return users[-1] if users else ""


def metrics_record(step: int, logs: dict) -> dict:
    """One metrics.jsonl row from TRL's logged dict: the headline fields first, then every
    per-reward and per-domain value, and everything else TRL logged under `trl`."""
    record = {
        "step": step,
        "phase": int(round(logs.get("phase", 0))),
        "reward": logs.get("reward"),
        "reward_std": logs.get("reward_std"),
        "kl": logs.get("kl"),
        "completion_length": logs.get("completions/mean_length"),
        "step_time": logs.get("step_time"),
        "exact_format_rate": logs.get("format/exact_rate"),
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
    for key, value in logs.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == "rewards" and parts[2] in ("raw", "contribution"):
            record[f"reward_{parts[2]}"][parts[1]] = value
        elif len(parts) == 3 and parts[0] == "domain" and parts[2] in ("reward", "count", "exact_rate", "kl"):
            record[f"domain_{parts[2]}"][parts[1]] = value
        elif len(parts) == 4 and parts[0] == "rewards" and parts[3] in ("raw", "contribution"):
            record[f"reward_{parts[3]}_by_domain"].setdefault(parts[2], {})[parts[1]] = value
        elif key not in ("phase",):
            record["trl"][key] = value
    return record


def build_router(config: Config, schedule: Schedule | None = None, reward_functions=None) -> RewardRouter:
    return RewardRouter(
        reward_functions=reward_functions,
        phase_rewards=config.phase_rewards,
        reward_weights=config.reward_weights,
        domain_scales=config.domain_scales,
        reward_values=config.reward_values,
        schedule=schedule or make_schedule(config),
    )


def load_training_rows(config: Config):
    weights = {domain: weight for domain, weight in config.domain_weights.items() if float(weight) > 0}
    by_domain = load_mixture(
        weights,
        source="synthetic" if config.data_source == "synthetic" else None,
        split="train",
        data_dir=config.data_dir or None,
        limit=config.rows_per_domain or None,
        seed=config.seed,
    )
    if config.worked_example:
        by_domain = {domain: add_worked_examples(rows) for domain, rows in by_domain.items()}
    return concat_domains(by_domain)


def grpo_args(config: Config, run_dir: Path) -> GRPOConfig:
    on_gpu = torch.cuda.is_available()
    dtype = resolve_dtype(config.dtype)
    per_device_batch = config.prompts_per_step * config.num_generations // config.gradient_accumulation_steps
    return GRPOConfig(
        output_dir=str(run_dir / run_folder.CHECKPOINTS_DIR),
        max_steps=config.max_steps,
        per_device_train_batch_size=per_device_batch,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        num_generations=config.num_generations,
        learning_rate=config.learning_rate,
        beta=config.beta,
        epsilon=config.epsilon,
        temperature=config.temperature,
        top_p=config.top_p,
        max_completion_length=config.max_completion_length,
        scale_rewards=config.scale_rewards,
        loss_type=config.loss_type,
        seed=config.seed,
        logging_steps=config.logging_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=3,
        report_to=[] if config.report_to in ("", "none") else config.report_to.split(","),
        use_cpu=not on_gpu,
        bf16=on_gpu and dtype == torch.bfloat16,
        fp16=on_gpu and dtype == torch.float16,
        gradient_checkpointing=config.gradient_checkpointing,
        use_vllm=config.use_vllm,
        vllm_mode=config.vllm_mode,
        disable_tqdm=True,
        log_completions=False,
        shuffle_dataset=True,
    )


def prepare_run_dir(config: Config, resume: bool, overwrite: bool) -> Path:
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
) -> RunResult:
    """Run GRPO with the phase curriculum into `config.output_dir`; see module docstring.

    `model`/`tokenizer` may be passed in (tests use tiny models); otherwise `config.model` is loaded.
    `reward_functions` registers your own rewards by name (enable them in `config.phase_rewards`);
    `callbacks` are extra transformers TrainerCallbacks.
    """
    config.validate()
    return _train(config, resume, overwrite, allow_max_steps_change, model, tokenizer, reward_functions, callbacks, show_progress)


def _train(config, resume, overwrite, allow_max_steps_change, model, tokenizer, reward_functions, callbacks, show_progress) -> RunResult:
    run_dir = prepare_run_dir(config, resume, overwrite)
    checkpoint, schedule = (None, None)
    if resume:
        saved_config = from_dict(json.loads((run_dir / run_folder.CONFIG_FILE).read_text()))
        changed = {f.name for f in dataclasses.fields(Config) if getattr(saved_config, f.name) != getattr(config, f.name)}
        if changed - {"max_steps", "save_steps", "logging_steps", "report_to", "output_dir"}:
            logger.warning("Resuming with changed settings: %s", ", ".join(sorted(changed)))
        checkpoint, schedule = resolve_resume(config, run_dir, allow_max_steps_change)
        if checkpoint is not None:
            run_folder.truncate_metrics_after(run_dir / run_folder.METRICS_FILE, int(checkpoint.name.split("-")[-1]))
    run_folder.write_json_atomic(run_dir / run_folder.CONFIG_FILE, config.to_dict())

    router = build_router(config, schedule, reward_functions)
    tokenizer = tokenizer or load_tokenizer(config.model)
    model = model if model is not None else load_model(config.model, config.dtype)
    declare_end_of_turn(model, tokenizer)
    train_rows, row_domains = load_training_rows(config)
    mix = make_mix_schedule(config.mix_schedule, config.domain_weights, **({"end": config.mix_end_weights} if config.mix_schedule == "linear" else {}))

    from peft import LoraConfig

    target_modules = config.lora_target_modules
    peft_config = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=target_modules if target_modules == "all-linear" else target_modules.split(","),
        task_type="CAUSAL_LM",
    )
    eval_rows = None
    if config.eval_before_after and not resume:
        from phasegrpo.evaluation import load_eval_rows

        eval_rows = load_eval_rows(
            source=config.data_source, rows_per_domain=config.eval_rows_per_domain, data_dir=config.data_dir, seed=config.seed,
            domains=[d for d, w in config.domain_weights.items() if float(w) > 0],
        )
        if config.worked_example:
            eval_rows = add_worked_examples(eval_rows)
        _evaluate_into(run_dir / "eval_before.json", "before training", model, tokenizer, eval_rows, config, router)
    trainer_ref: dict = {}
    callback = RunCallback(run_dir, router, trainer_ref, show_progress=show_progress)
    trainer = PhaseGRPOTrainer(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[router],
        args=grpo_args(config, run_dir),
        train_dataset=train_rows,
        peft_config=peft_config,
        callbacks=[callback, *(callbacks or [])],
        router=router,
        row_domains=row_domains,
        mix_schedule=mix,
        phase_config=config,
    )
    trainer_ref["trainer"] = trainer
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    callback.install_interrupt_handler()
    try:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        callback.restore_interrupt_handler()
    adapter_dir = None
    if trainer.args.should_save:
        if callback.is_interrupted:
            print(f"Stopped at step {trainer.state.global_step}; resume with: phasegrpo train --resume --output-dir {run_dir}", flush=True)
        else:
            adapter_dir = save_adapter(trainer, run_dir)
            if eval_rows is not None:
                _evaluate_into(run_dir / "eval_after.json", "after training", trainer.model, tokenizer, eval_rows, config, router)
        from phasegrpo.report import write_report

        report = write_report(run_dir)
        print(f"Report: {report.html}  (summary: {report.markdown})", flush=True)
    return RunResult(run_dir, trainer.state.global_step, callback.is_interrupted, adapter_dir)


def _evaluate_into(path: Path, label: str, model, tokenizer, rows, config: Config, router: RewardRouter) -> None:
    from phasegrpo.evaluation import evaluate_rows, format_table

    was_training = model.training
    result = evaluate_rows(model, tokenizer, rows, max_new_tokens=config.max_completion_length, router=router)
    model.train(was_training)
    run_folder.write_json_atomic(path, result)
    print(f"\nEval {label} ({len(rows)} held-out rows, greedy, {result['seconds']:.0f} s):\n{format_table(result['summary'])}", flush=True)


def save_adapter(trainer: GRPOTrainer, run_dir: Path) -> Path:
    target = run_dir / run_folder.ADAPTER_DIR
    staging = run_dir / f".{run_folder.ADAPTER_DIR}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    trainer.save_model(str(staging))
    run_folder.replace_dir_atomic(staging, target)
    return target
