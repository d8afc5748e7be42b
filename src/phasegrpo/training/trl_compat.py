"""Every place phasegrpo relies on TRL's internals, and nowhere else (TRL 1.16).

TRL's `GRPOTrainer` has no public extension points for what phasegrpo changes, so `TRLSeams`
overrides six of its private methods and reads three of its private attributes, and turns
them into plain hooks that `PhaseGRPOTrainer` implements:

| TRL 1.16 internal                            | hook / helper here                        | what for |
| -------------------------------------------- | ----------------------------------------- | -------- |
| `_get_train_sampler(dataset)`                | `build_train_sampler()`                    | domain mixing at sampling time |
| `_generate_single_turn(...)`                 | `generate_rollouts(prompt_ids)`, `finish_rollouts(ids, logprobs)` | the fast CPU rollout loop; the `</answer>` stop on TRL's paths (`generate` gets the tokenizer its `stop_strings` need) |
| `_generate_and_score_completions(inputs)`    | `before_scoring(inputs)`, `after_scoring(inputs, output, step_metrics)` | feed sampler and phase schedule; per-sample KL betas |
| `_get_per_token_logps_and_entropies(...)`    | `log_prob_precision()`, `share_prompts_in(model)`, (`score_completion_positions_only`) | e.g. bf16 autocast of the log-prob passes; each distinct prompt computed once; skip the LM head on prompt and padding positions on CPU |
| `_compute_loss(model, inputs)` + `self.beta` | `kl_betas(inputs)`, `kl_computed(...)`     | a KL coefficient per sample (per domain) |
| `_save_checkpoint(model, trial)`             | `checkpoint_saved(folder)`                 | curriculum state + completeness marker |
| `_metrics`, `_tokenizer`, `_get_output_dir`  | `record_metric`, `tokenizer`, `step_metrics` | logging and checkpoint paths |
| `trl.trainer.utils._use_triton`              | `score_completion_positions_only()`        | see above |

`tests/test_trl_compat.py` checks each entry against the installed TRL (signature and effect);
pyproject pins TRL to the versions those tests cover. A TRL upgrade starts there.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from trl import GRPOTrainer

from phasegrpo import prompt_sharing

TESTED_TRL = "1.16"

# The private methods overridden below, with the parameters they are called with in TRL 1.16.
MIRRORED_SIGNATURES = {
    "_get_train_sampler": ("self", "dataset"),
    "_generate_single_turn": ("self", "prompt_ids", "images", "multimodal_fields", "num_generations", "has_tool_images"),
    "_generate_and_score_completions": ("self", "inputs"),
    "_get_per_token_logps_and_entropies": ("self", "model", "input_ids", "attention_mask", "logits_to_keep"),
    "_compute_loss": ("self", "model", "inputs"),
    "_save_checkpoint": ("self", "model", "trial"),
}


def signature_mismatches() -> list[str]:
    """Overridden TRL methods whose leading parameters no longer match what `TRLSeams` mirrors."""
    problems = []
    for name, expected in MIRRORED_SIGNATURES.items():
        method = getattr(GRPOTrainer, name, None)
        if method is None:
            problems.append(f"GRPOTrainer.{name} no longer exists")
            continue
        actual = tuple(inspect.signature(method).parameters)[: len(expected)]
        if actual != expected:
            problems.append(f"GRPOTrainer.{name}{actual} != {expected}")
    return problems


class PerSampleBeta:
    """Stands in for `GRPOTrainer.beta` inside one `_compute_loss` call.

    TRL 1.16 adds the KL as `per_token_loss + self.beta * per_token_kl`, one float for every
    sample. This object compares like the configured float (so TRL takes the same branches on
    every rank: the KL metric is a collective reduce) and multiplies `per_token_kl` (B, T) by a
    per-sample beta (B, 1). It keeps the per-token KL it saw, so the KL can be logged per domain
    without recomputing it.
    """

    def __init__(self, base: float, per_sample: torch.Tensor):
        self.base = float(base)
        self.per_sample = per_sample
        self.per_token_kl: torch.Tensor | None = None

    def __eq__(self, other) -> bool:
        return self.base == other

    def __ne__(self, other) -> bool:
        return self.base != other

    __hash__ = None

    def __float__(self) -> float:
        return self.base

    def __mul__(self, per_token_kl: torch.Tensor) -> torch.Tensor:
        self.per_token_kl = per_token_kl.detach()
        return self.per_sample.to(per_token_kl.dtype).unsqueeze(1) * per_token_kl

    __rmul__ = __mul__


@contextmanager
def score_completion_positions_only():
    """TRL 1.16's fused LM head projects only the scored (completion) positions on Triton devices,
    but every position, prompt and padding included, elsewhere (to keep Neuron tile shapes static).
    On a CPU that doubles the cost of the 262k-wide head; the compact path gives identical log-probs."""
    import trl.trainer.utils as trl_utils

    original = trl_utils._use_triton
    if original(torch.device("cpu")):  # a TRL where the name means something else: leave it alone
        yield
        return
    trl_utils._use_triton = lambda device: device.type == "cpu" or original(device)
    try:
        yield
    finally:
        trl_utils._use_triton = original


@contextmanager
def generate_with_tokenizer(model, tokenizer):
    """Within the block, `generate` of `model` (unwrapped to the transformers model under a PEFT
    wrapper, whose `generate` forwards there) is called with `tokenizer=tokenizer`."""
    import functools

    target = model.get_base_model() if hasattr(model, "get_base_model") else model
    target.generate = functools.partial(type(target).generate, target, tokenizer=tokenizer)
    try:
        yield
    finally:
        del target.generate  # the class's method again


class TRLSeams(GRPOTrainer):
    """GRPOTrainer whose private extension points call the public hooks below (TRL 1.16).

    Every hook's default keeps TRL's behaviour, so this class alone trains exactly like
    `GRPOTrainer`.
    """

    # --- hooks ------------------------------------------------------------------------------
    def build_train_sampler(self):
        """The train sampler to use instead of TRL's `RepeatSampler`, or None for TRL's."""
        return None

    def generate_rollouts(self, prompt_ids: list[list[int]]) -> list[list[int]] | None:
        """Completion token ids for text-only prompts, or None to let TRL generate."""
        return None

    def finish_rollouts(self, completion_ids: list[list[int]], logprobs: list[list[float]] | None):
        """The completions (and their sampling log-probs, or None) of any generation path, before
        TRL scores them, counts the truncated ones and masks them; unchanged by default."""
        return completion_ids, logprobs

    def before_scoring(self, inputs: list[dict]) -> None:
        """Called with a generation batch's rows before TRL generates and scores them."""

    def after_scoring(self, inputs: list[dict], output: dict, step_metrics: dict[str, float]) -> None:
        """Called with TRL's scored batch and the metrics it logged for it (already averaged
        across processes, so every rank sees the same numbers)."""

    def kl_betas(self, inputs: dict) -> torch.Tensor | None:
        """A KL coefficient per sample of a training micro-batch, or None for TRL's one `beta`."""
        return None

    def kl_computed(self, per_token_kl: torch.Tensor, inputs: dict) -> None:
        """Called with the per-token KL of a micro-batch when `kl_betas` gave per-sample betas."""

    def checkpoint_saved(self, folder: Path) -> None:
        """Called on the saving process after every process has written its part of `folder`."""

    # --- settings TRL builds in __init__ -----------------------------------------------------
    def stop_generate_at(self, stop_strings: list[str]) -> None:
        """Stop TRL's transformers `generate` path at `stop_strings` (TRL 1.16 builds its
        `generation_config` in __init__; `_generate_single_turn` below lends `generate` the
        tokenizer they need). No effect on the vLLM path: its stop is in generation_kwargs."""
        # Continuous batching (`generate_batch`) takes no tokenizer: left to the cut in finish_rollouts.
        if self.use_vllm or getattr(self, "use_transformers_continuous_batching", False) or getattr(self, "generation_config", None) is None:
            return
        self.generation_config.stop_strings = list(stop_strings)
        self.generation_kwargs = {**(self.generation_kwargs or {}), "stop_strings": list(stop_strings)}

    def share_prompts_in(self, model) -> bool:
        """Whether the log-prob passes of `model` may run each distinct prompt once
        (`phasegrpo.prompt_sharing`); TRL's full forward of every row by default."""
        return False

    def log_prob_precision(self):
        """A context manager around every log-prob pass (reference and policy; the backward follows
        the forward's dtypes), e.g. a CPU bf16 autocast; TRL's own precision by default."""
        return nullcontext()

    # --- read access to TRL's private attributes ---------------------------------------------
    @property
    def tokenizer(self):
        """The text tokenizer (TRL unwraps a processor into `_tokenizer`)."""
        return self._tokenizer

    def record_metric(self, name: str, value: float) -> None:
        """Add a value to the metrics TRL averages and logs at the next logging step."""
        mode = "train" if self.model.training else "eval"
        self._metrics[mode][name].append(value)

    # --- the overridden private methods (each mirrors TRL 1.16) -------------------------------
    def _get_train_sampler(self, dataset=None):
        return self.build_train_sampler() or super()._get_train_sampler(dataset)

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        if images is None and not multimodal_fields:
            completion_ids = self.generate_rollouts(prompt_ids)
            if completion_ids is not None:
                return self.finish_rollouts(completion_ids, None)  # no sampling log-probs: TRL recomputes them when needed
        with self._tokenizer_for_stop_strings():
            completion_ids, logprobs = super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images
            )
        return self.finish_rollouts(completion_ids, logprobs)

    @contextmanager
    def _tokenizer_for_stop_strings(self):
        """transformers' `generate` needs the tokenizer for `stop_strings`, and TRL 1.16's
        `generate(**inputs, generation_config=...)` call passes none: lend it for this call."""
        generation_config = getattr(self, "generation_config", None)  # TRL sets it on its transformers path only
        if self.use_vllm or generation_config is None or not getattr(generation_config, "stop_strings", None):
            yield
            return
        with generate_with_tokenizer(self.accelerator.unwrap_model(self.model_wrapped), self.tokenizer):
            yield

    def _generate_and_score_completions(self, inputs):
        self.before_scoring(inputs)
        metrics = self._metrics["train" if self.model.training else "eval"]
        counts_before = {name: len(values) for name, values in metrics.items()}
        output = super()._generate_and_score_completions(inputs)
        step_metrics = {name: values[-1] for name, values in metrics.items() if len(values) > counts_before.get(name, 0)}
        self.after_scoring(inputs, output, step_metrics)
        return output

    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, compute_aux_loss=False, **model_inputs):
        with score_completion_positions_only(), self.log_prob_precision():
            text_only = not compute_aux_loss and all(value is None for value in model_inputs.values())
            if text_only and self.share_prompts_in(model) and prompt_sharing.shares_prompts(input_ids, attention_mask, logits_to_keep):
                shared = self._log_probs_sharing_prompts(model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy)
                if shared is not None:
                    return shared
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy, compute_aux_loss, **model_inputs
            )

    def _log_probs_sharing_prompts(self, model, input_ids, attention_mask, logits_to_keep, batch_size, compute_entropy):
        """TRL's chunks of `batch_size` rows and its autocast, each chunk through `prompt_sharing`
        (None if the model's backbone keeps no KV cache)."""
        batch_size = batch_size or input_ids.size(0)
        log_probs, entropies = [], []
        for start in range(0, input_ids.size(0), batch_size):
            rows = slice(start, start + batch_size)
            with self.accelerator.autocast():
                chunk = prompt_sharing.completion_log_probs(
                    model, input_ids[rows], attention_mask[rows], logits_to_keep, compute_entropy,
                    temperature=self.temperature, head_in_float32=self.args.cast_lm_head_to_fp32,
                )
            if chunk is None:
                return None
            chunk_log_probs, chunk_entropy = chunk
            log_probs.append(chunk_log_probs)
            entropies.append(chunk_entropy)
        return torch.cat(log_probs), (torch.cat(entropies) if compute_entropy else None), None

    def _compute_loss(self, model, inputs):
        betas = self.kl_betas(inputs) if self.beta != 0.0 else None
        if betas is None:
            return super()._compute_loss(model, inputs)
        beta = PerSampleBeta(self.beta, betas)
        self.beta = beta
        try:
            loss = super()._compute_loss(model, inputs)
        finally:
            self.beta = beta.base
        if beta.per_token_kl is not None:
            self.kl_computed(beta.per_token_kl, inputs)
        return loss

    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        # Every rank writes its own RNG state (and ZeRO/FSDP shards) into the folder: the saving
        # process marks it complete only once all of them are done.
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            self.checkpoint_saved(Path(self._get_output_dir(trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
