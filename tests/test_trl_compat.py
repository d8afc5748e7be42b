"""Each TRL seam of phasegrpo.training.trl_compat against the installed TRL: the overridden
private methods still exist with the mirrored parameters, and each hook really takes effect.
A TRL upgrade that moves one of them fails here, loudly, before any training run does."""

from __future__ import annotations

import pytest
import torch
import trl
from datasets import Dataset
from transformers import TrainerCallback

from phasegrpo.config import Config
from phasegrpo.domains.math import math_prompt
from phasegrpo.training import grpo_args, trl_compat
from phasegrpo.training.trl_compat import TRLSeams

ROWS = [{"prompt": math_prompt("1+1?"), "domain": "math", "answer": "2"},
        {"prompt": math_prompt("2+2?"), "domain": "math", "answer": "4"}]


def constant_reward(completions, **kwargs):
    return [1.0] * len(completions)


class RecordingSeams(TRLSeams):
    """Implements every hook by recording that it was called."""

    def __init__(self, *args, rollouts=None, **kwargs):
        self.rollouts = rollouts
        self.calls: dict[str, list] = {}
        super().__init__(*args, **kwargs)

    def _record(self, name, *values):
        self.calls.setdefault(name, []).append(values)

    def build_train_sampler(self):
        self._record("build_train_sampler")
        return list(range(len(self.train_dataset)))  # any Sampler-like iterable

    def generate_rollouts(self, prompt_ids):
        self._record("generate_rollouts", prompt_ids)
        return None if self.rollouts is None else [list(self.rollouts) for _ in prompt_ids]

    def before_scoring(self, inputs):
        self._record("before_scoring", len(inputs))

    def after_scoring(self, inputs, output, step_metrics):
        self._record("after_scoring", dict(step_metrics))

    def checkpoint_saved(self, folder):
        self._record("checkpoint_saved", folder, sorted(path.name for path in folder.iterdir()))


def make_trainer(tmp_path, tiny, **kwargs):
    from peft import LoraConfig

    model, tokenizer = tiny
    config = Config(prompts_per_step=2, num_generations=2, max_completion_length=16, beta=0.1, report_to="none", save_steps=1)
    trainer = RecordingSeams(
        model=model, processing_class=tokenizer, reward_funcs=[constant_reward], args=grpo_args(config, tmp_path),
        train_dataset=Dataset.from_list(ROWS), peft_config=LoraConfig(r=2, lora_alpha=4, target_modules="all-linear", task_type="CAUSAL_LM"),
        **kwargs,
    )
    trainer.model.train()
    return trainer


def test_installed_trl_is_the_version_the_seams_mirror():
    assert trl.__version__.startswith(trl_compat.TESTED_TRL + "."), (
        f"TRL {trl.__version__} is installed; trl_compat mirrors {trl_compat.TESTED_TRL}. Re-check every seam, then "
        "update TESTED_TRL and the pin in pyproject.toml."
    )


def test_overridden_private_methods_keep_their_parameters():
    assert trl_compat.signature_mismatches() == []


def test_the_train_sampler_comes_from_the_hook(tmp_path, tiny):
    trainer = make_trainer(tmp_path, tiny)
    assert trainer._get_train_sampler() == [0, 1]
    assert "build_train_sampler" in trainer.calls


def test_rollouts_come_from_the_hook_and_scoring_hooks_see_the_step_metrics(tmp_path, tiny):
    model, tokenizer = tiny
    fixed = tokenizer.encode("<answer>7</answer>", add_special_tokens=False)
    trainer = make_trainer(tmp_path, tiny, rollouts=fixed)
    batch = [ROWS[0], ROWS[0], ROWS[1], ROWS[1]]
    output = trainer._generate_and_score_completions(batch)
    assert output["completion_ids"][0, : len(fixed)].tolist() == fixed  # our ids, not TRL's generate
    assert len(trainer.calls["generate_rollouts"][0][0]) == 4
    assert trainer.calls["before_scoring"] == [(4,)]
    (step_metrics,) = trainer.calls["after_scoring"][0]
    assert step_metrics["reward"] == pytest.approx(1.0)  # this step's values, as TRL will log them
    assert "rewards/constant_reward/mean" in step_metrics


def test_trl_generates_when_the_hook_declines(tmp_path, tiny):
    trainer = make_trainer(tmp_path, tiny, rollouts=None)
    output = trainer._generate_and_score_completions([ROWS[0], ROWS[0]])
    assert output["completion_ids"].shape[0] == 2 and "generate_rollouts" in trainer.calls


def test_recorded_metrics_reach_trls_logs(tmp_path, tiny):
    logged = []

    class Capture(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logged.append(dict(logs))

    trainer = make_trainer(tmp_path, tiny, callbacks=[Capture()])
    trainer.record_metric("mix/math", 0.25)
    trainer.record_metric("mix/math", 0.75)
    trainer.log({})
    assert logged[-1]["mix/math"] == pytest.approx(0.5)  # averaged over the logging interval


def test_tokenizer_is_trls_text_tokenizer(tmp_path, tiny):
    trainer = make_trainer(tmp_path, tiny)
    assert trainer.tokenizer is tiny[1]


def test_checkpoint_hook_runs_after_trl_wrote_the_folder(tmp_path, tiny):
    trainer = make_trainer(tmp_path, tiny)
    trainer.create_optimizer_and_scheduler(num_training_steps=3)  # TRL saves the optimizer too
    trainer.state.global_step = 3
    trainer._save_checkpoint(trainer.model, None)
    ((folder, names),) = trainer.calls["checkpoint_saved"]
    assert folder.name == "checkpoint-3" and folder.parent == tmp_path / "checkpoints"
    assert "adapter_model.safetensors" in names and "trainer_state.json" in names


def test_compact_head_patch_takes_effect_and_keeps_log_probs(tmp_path, tiny, monkeypatch):
    """On CPU, TRL's fused head projects every position unless `_use_triton` says otherwise; the
    patch makes it project only completion positions, with identical log-probs."""
    import trl.trainer.utils as trl_utils

    trainer = make_trainer(tmp_path, tiny)
    projected_rows = []
    original = trl_utils._ChunkedLogProbFunction

    class Spy:
        @staticmethod
        def apply(hidden_states, *args):
            projected_rows.append(hidden_states.shape[0])
            return original.apply(hidden_states, *args)

    monkeypatch.setattr(trl_utils, "_ChunkedLogProbFunction", Spy)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(10, 60, (2, 12), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :3] = 0  # left padding
    logits_to_keep = 5
    with torch.no_grad():
        with trl_compat.score_completion_positions_only():
            assert trl_utils._use_triton(torch.device("cpu"))
            compact, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, input_ids, attention_mask, logits_to_keep)
        assert not trl_utils._use_triton(torch.device("cpu"))  # restored
        full, _, _ = TRLSeams.__mro__[1]._get_per_token_logps_and_entropies(trainer, trainer.model, input_ids, attention_mask, logits_to_keep)
    if not projected_rows:
        pytest.fail("TRL no longer scores through trl.trainer.utils._ChunkedLogProbFunction: re-check the compact-head seam.")
    assert projected_rows[0] < projected_rows[-1]  # fewer positions through the head with the patch
    assert torch.allclose(compact, full, atol=1e-6)


def test_per_sample_beta_swaps_in_and_out(tmp_path, tiny):
    trainer = make_trainer(tmp_path, tiny)
    beta = trl_compat.PerSampleBeta(0.1, torch.tensor([0.0, 2.0]))
    assert beta != 0.0 and not beta == 0.0 and float(beta) == 0.1
    per_token_kl = torch.ones(2, 3)
    assert (beta * per_token_kl).tolist() == [[0.0] * 3, [2.0] * 3]
    assert beta.per_token_kl is not None
    assert trainer.beta == 0.1 and isinstance(trainer.beta, float)


def test_every_log_prob_pass_runs_inside_the_precision_hook(tmp_path, tiny):
    """The reference pass and the policy pass (forward; its backward follows the forward's dtypes)."""
    seen_dtypes = []

    class Autocast(RecordingSeams):
        def log_prob_precision(self):
            return torch.autocast("cpu", dtype=torch.bfloat16)

    model, tokenizer = tiny
    fixed = tokenizer.encode("<answer>7</answer>", add_special_tokens=False)
    trainer = make_trainer(tmp_path, tiny, rollouts=fixed)
    trainer.__class__ = Autocast
    layer = trainer.model.get_base_model().model.layers[0].mlp.down_proj.base_layer
    handle = layer.register_forward_hook(lambda module, args, output: seen_dtypes.append(output.dtype))
    inputs = trainer._generate_and_score_completions([ROWS[0], ROWS[0]])  # the reference pass (beta > 0)
    assert seen_dtypes and set(seen_dtypes) == {torch.bfloat16}
    seen_dtypes.clear()
    trainer.current_gradient_accumulation_steps = 1
    trainer._compute_loss(trainer.model, inputs).backward()  # the policy pass
    handle.remove()
    assert seen_dtypes and set(seen_dtypes) == {torch.bfloat16}
