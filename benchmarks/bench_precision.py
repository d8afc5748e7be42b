"""How far the fast log-prob passes move what GRPO learns from: bf16 autocast of the training passes
(Config.training_autocast) against fp32, and prompt sharing (Config.share_prompt_prefix) against
TRL's full forward of every row.

On one fixed batch (the demo's prompts, rollouts sampled once, a LoRA adapter with small random
B so the policy differs from the reference), computes both ways: the per-token log-probs of the
policy and of the reference, the GRPO loss, the logged KL and the gradient of the LoRA weights.
Prints, for each comparison, the max and mean absolute per-token log-prob difference, both
losses and KLs, and the gradient's cosine and norm ratio. Usage:
    python benchmarks/bench_precision.py [--model embedded|tiny] [--max-new-tokens 128] [--lora-b-std 0.002]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import torch


def build_trainer(config, model, tokenizer, folder):
    """A PhaseGRPOTrainer for `config` on the given model, as phasegrpo.train builds it."""
    from phasegrpo.data import make_mix_schedule
    from phasegrpo.models import declare_end_of_turn
    from phasegrpo.router import RewardRouter
    from phasegrpo.training.setup import grpo_args, load_training_rows, lora_config
    from phasegrpo.training.trainer import PhaseGRPOTrainer

    declare_end_of_turn(model, tokenizer)
    rows, row_domains = load_training_rows(config)
    router = RewardRouter.from_config(config)
    trainer = PhaseGRPOTrainer(
        model=model, processing_class=tokenizer, reward_funcs=[router], args=grpo_args(config, Path(folder)),
        train_dataset=rows, peft_config=lora_config(config), router=router, row_domains=row_domains,
        mix_schedule=make_mix_schedule("constant", config.domain_weights), config=config,
    )
    return trainer, rows


def perturb_adapter(model, std: float, seed: int = 0) -> None:
    """Give every LoRA B a small random value: a policy that has moved away from the reference."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)


COMPARISONS = {
    "bf16 autocast vs fp32 (prompt sharing on)": ({"training_autocast": "none"}, {"training_autocast": "bfloat16"}),
    "prompt sharing vs full forward (fp32)": ({"share_prompt_prefix": False, "training_autocast": "none"},
                                              {"share_prompt_prefix": True, "training_autocast": "none"}),
}


def compare(trainer, inputs, baseline: dict, other: dict) -> dict:
    """The passes with config overrides `baseline` against `other` on one scored batch: log-probs, loss, KL, gradient."""
    prompt_completion = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1)
    attention_mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1)
    keep = inputs["completion_ids"].size(1)
    mask = inputs["completion_mask"].bool()
    base_config = trainer.config
    trainer.current_gradient_accumulation_steps = 1  # what Trainer.train sets before its first micro-batch
    results = {}
    for label, overrides in (("baseline", baseline), ("other", other)):
        trainer.config = dataclasses.replace(base_config, **overrides)
        with torch.no_grad():
            with trainer.model.disable_adapter():
                reference, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, prompt_completion, attention_mask, keep)
            policy, _, _ = trainer._get_per_token_logps_and_entropies(trainer.model, prompt_completion, attention_mask, keep)
        batch = {**inputs, "ref_per_token_logps": reference}
        trainer.model.zero_grad()
        loss = trainer._compute_loss(trainer.model, batch)
        loss.backward()
        gradient = torch.cat([p.grad.flatten() for n, p in trainer.model.named_parameters() if p.grad is not None])
        results[label] = {"reference": reference[mask], "policy": policy[mask], "loss": float(loss.detach()),
                          "kl": trainer._metrics["train"]["kl"][-1], "gradient": gradient.clone()}
    trainer.config = base_config
    trainer.model.zero_grad()
    base, other = results["baseline"], results["other"]
    return {
        "tokens": int(mask.sum()),
        "policy_logp_max_abs_diff": float((base["policy"] - other["policy"]).abs().max()),
        "policy_logp_mean_abs_diff": float((base["policy"] - other["policy"]).abs().mean()),
        "reference_logp_max_abs_diff": float((base["reference"] - other["reference"]).abs().max()),
        "reference_logp_mean_abs_diff": float((base["reference"] - other["reference"]).abs().mean()),
        "loss_baseline": base["loss"], "loss_other": other["loss"],
        "kl_baseline": base["kl"], "kl_other": other["kl"],
        "gradient_cosine": float(torch.nn.functional.cosine_similarity(base["gradient"].double(), other["gradient"].double(), dim=0)),
        "gradient_norm_ratio": float(other["gradient"].norm() / base["gradient"].norm()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded", choices=["embedded", "tiny"])
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--lora-b-std", type=float, default=0.002)
    args = parser.parse_args()
    from phasegrpo import preset

    if args.model == "tiny":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from tiny import tiny_model, tiny_tokenizer

        tokenizer = tiny_tokenizer()
        model = tiny_model(tokenizer)
    else:
        from phasegrpo.models import load_model, load_tokenizer

        tokenizer, model = load_tokenizer("embedded"), load_model("embedded", "float32")
    with tempfile.TemporaryDirectory() as folder:
        config = preset("demo", max_completion_length=args.max_new_tokens, output_dir=folder, rollout_dtype="bfloat16",
                        rows_per_domain=20)
        trainer, rows = build_trainer(config, model, tokenizer, folder)
        perturb_adapter(trainer.model, args.lora_b_std)
        trainer.model.train()
        batch = [rows[index] for index in (0, 0, 0, 0, 1, 1, 1, 1)]
        inputs = trainer._generate_and_score_completions(batch)
        reports = {title: compare(trainer, inputs, *settings) for title, settings in COMPARISONS.items()}
    for title, report in reports.items():
        width = max(map(len, report))
        print(f"{title}, model {args.model}, one batch of 8 rollouts, LoRA B std {args.lora_b_std}:")
        for name, value in report.items():
            print(f"  {name.ljust(width)}  {value:.6g}" if isinstance(value, float) else f"  {name.ljust(width)}  {value}")


if __name__ == "__main__":
    main()
