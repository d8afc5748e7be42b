"""Per-domain KL coefficients: a domain with beta 0 adds no KL gradient, the others do; the KL
is logged per domain; with no per-domain betas the loss is TRL's own."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from trl import GRPOTrainer

from phasegrpo.config import Config
from phasegrpo.training import domain_kl
from phasegrpo.training.trainer import PhaseGRPOTrainer
from phasegrpo.training.trl_compat import PerSampleBeta

BETA = 0.1


def set_betas(trainer, betas: dict) -> None:
    trainer.config = dataclasses.replace(trainer.config, domain_betas=betas)


def betas_for(trainer, domains) -> torch.Tensor:
    return domain_kl.kl_betas_for(list(domains), trainer.config.domain_betas, BETA)


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    from datasets import Dataset
    from peft import LoraConfig
    from tiny import tiny_model, tiny_tokenizer

    from phasegrpo.domains.math import math_prompt
    from phasegrpo.training import grpo_args

    torch.set_num_threads(1)
    tokenizer = tiny_tokenizer()
    config = Config(prompts_per_step=1, num_generations=2, max_completion_length=16, beta=BETA, report_to="none")
    rows = Dataset.from_list([{"prompt": math_prompt("1+1?"), "domain": "math", "answer": "2"}])
    from phasegrpo.data import make_mix_schedule
    from phasegrpo.router import RewardRouter

    trainer = PhaseGRPOTrainer(
        model=tiny_model(tokenizer), processing_class=tokenizer, reward_funcs=[lambda completions, **k: [0.0] * len(completions)],
        args=grpo_args(config, tmp_path_factory.mktemp("kl")), train_dataset=rows,
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"),
        router=RewardRouter(), row_domains=["math"], mix_schedule=make_mix_schedule("constant", {"math": 1.0}), config=config)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    # LoRA's B starts at zero; move it so gradients reach every LoRA weight.
    with torch.no_grad():
        for name, parameter in trainer.model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.05)
    return trainer


def make_inputs(trainer, domains=("math", "logic"), seed=0):
    """A batch as TRL's _generate_and_score_completions returns it, with a reference that differs
    from the policy (so the KL is non-zero) and zero advantages (so only the KL term has a gradient)."""
    generator = torch.Generator().manual_seed(seed)
    count = len(domains)
    prompt_ids = torch.randint(10, 60, (count, 5), generator=generator)
    completion_ids = torch.randint(10, 60, (count, 6), generator=generator)
    completion_mask = torch.ones(count, 6, dtype=torch.long)
    completion_mask[1, -2:] = 0
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, torch.cat([prompt_ids, completion_ids], 1), torch.ones(count, 11, dtype=torch.long), 6)
    return {
        "prompt_ids": prompt_ids,
        "prompt_mask": torch.ones(count, 5, dtype=torch.long),
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": torch.zeros(count),
        "num_items_in_batch": completion_mask.sum(),
        "ref_per_token_logps": logps + 0.5 * torch.randn(logps.shape, generator=generator),
        "kl_beta": betas_for(trainer, domains),
        "kl_domain_index": torch.tensor([domain_kl.domain_index(domain, trainer.kl_domains) for domain in domains]),
    }


def kl_gradient(trainer, inputs) -> torch.Tensor:
    trainer.model.zero_grad()
    trainer._compute_loss(trainer.model, inputs).backward()
    gradients = [p.grad.flatten() for p in trainer.model.parameters() if p.requires_grad and p.grad is not None]
    return torch.cat(gradients)


def perturbed(inputs, sample: int) -> dict:
    changed = dict(inputs)
    changed["ref_per_token_logps"] = inputs["ref_per_token_logps"].clone()
    changed["ref_per_token_logps"][sample] -= 1.0
    return changed


def test_betas_per_sample_from_the_domain(trainer):
    set_betas(trainer, {"logic": 0.0, "code": 0.3})
    assert betas_for(trainer, ["math", "logic", "code", None]).tolist() == pytest.approx([BETA, 0.0, 0.3, BETA])


def test_domain_with_beta_zero_contributes_no_kl_gradient(trainer):
    set_betas(trainer, {"logic": 0.0})
    inputs = make_inputs(trainer)  # sample 0 math, sample 1 logic
    gradient = kl_gradient(trainer, inputs)
    assert gradient.abs().sum() > 0  # math's KL moves the policy
    assert torch.allclose(kl_gradient(trainer, perturbed(inputs, 1)), gradient, atol=1e-9)  # logic's reference: no effect
    assert not torch.allclose(kl_gradient(trainer, perturbed(inputs, 0)), gradient, atol=1e-6)
    only_logic = make_inputs(trainer, domains=("logic", "logic"))
    assert kl_gradient(trainer, only_logic).abs().max() == 0


def test_without_domain_betas_every_domain_contributes(trainer):
    set_betas(trainer, {})
    inputs = make_inputs(trainer)
    gradient = kl_gradient(trainer, inputs)
    assert not torch.allclose(kl_gradient(trainer, perturbed(inputs, 1)), gradient, atol=1e-6)


def test_uniform_betas_give_exactly_trls_loss(trainer):
    set_betas(trainer, {})
    inputs = make_inputs(trainer, seed=3)
    with torch.no_grad():
        ours = trainer._compute_loss(trainer.model, inputs)
        plain = {key: value for key, value in inputs.items() if not key.startswith("kl_")}
        trls = GRPOTrainer._compute_loss(trainer, trainer.model, plain)
    assert ours.item() == pytest.approx(trls.item(), rel=1e-6)
    assert trainer.beta == BETA and isinstance(trainer.beta, float)  # restored after the call


def test_loss_scales_the_kl_of_each_domain(trainer):
    inputs = make_inputs(trainer, seed=4)
    losses = {}
    for label, betas in {"both": {}, "math": {"logic": 0.0}, "logic": {"math": 0.0}}.items():
        set_betas(trainer, betas)
        inputs["kl_beta"] = betas_for(trainer, ["math", "logic"])
        with torch.no_grad():
            losses[label] = trainer._compute_loss(trainer.model, inputs).item()
    assert losses["math"] > 0 and losses["logic"] > 0
    assert losses["math"] + losses["logic"] == pytest.approx(losses["both"], rel=1e-5)


def test_kl_is_logged_per_domain(trainer):
    set_betas(trainer, {"logic": 0.0})
    trainer._metrics["train"].clear()
    inputs = make_inputs(trainer, seed=5)
    with torch.no_grad():
        trainer._compute_loss(trainer.model, inputs)
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            trainer.model, torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1),
            torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1), 6)
    delta = inputs["ref_per_token_logps"] - logps
    per_token_kl = torch.exp(delta) - delta - 1
    mask = inputs["completion_mask"]
    expected = ((per_token_kl * mask).sum(-1) / mask.sum(-1)).tolist()
    metrics = trainer._metrics["train"]
    assert metrics["domain/math/kl"][-1] == pytest.approx(expected[0], rel=1e-5)
    assert metrics["domain/logic/kl"][-1] == pytest.approx(expected[1], rel=1e-5)  # logged even with beta 0
    assert "domain/code/kl" not in metrics


def test_per_sample_beta_compares_like_the_configured_float():
    beta = PerSampleBeta(0.1, torch.tensor([0.0, 0.0]))
    assert (beta != 0.0) is True and (beta == 0.0) is False  # same branch on every rank, whatever the micro-batch
    assert float(beta) == 0.1


def test_training_run_logs_kl_per_domain(tmp_path):
    from tiny import tiny_model, tiny_tokenizer

    from phasegrpo.config import preset
    from phasegrpo.training import train

    torch.set_num_threads(1)
    tokenizer = tiny_tokenizer()
    config = preset("demo", model="tiny", output_dir=str(tmp_path / "run"), max_steps=2, save_steps=2,
                    eval_before_after=False, max_completion_length=16, rows_per_domain=8, prompts_per_step=2,
                    num_generations=2, domain_betas={"logic": 0.0, "math": 0.2})
    train(config, model=tiny_model(tokenizer), tokenizer=tokenizer, show_progress=False)
    records = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    for record in records:
        assert set(record["domain_kl"]) == set(record["domain_count"])  # every domain of the step
        assert record["reward_raw_by_domain"]  # and the per-domain per-reward values
