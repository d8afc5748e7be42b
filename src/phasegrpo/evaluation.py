"""Evaluation on held-out rows: accuracy, exact-format rate, refusal rate, completion length and
total reward, per domain and overall (issue 8 deepens this: pass@k, Hub test splits, tables)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path


from phasegrpo.config import REFERENCE_DOMAIN_SCALES
from phasegrpo.formats import is_exact_format
from phasegrpo.generation import sample_completions


@dataclass
class _FinalPhase:
    """A stand-in trainer state in the last phase, so the total reward counts every reward."""

    global_step: int = 1
    max_steps: int = 1


def evaluate_rows(model, tokenizer, rows, *, max_new_tokens: int, batch_size: int = 8, domain_scales=None) -> dict:
    """Greedy completions for `rows` (a datasets.Dataset of contract rows), scored by the rewards."""
    from phasegrpo import rewards
    from phasegrpo.router import RewardRouter

    router = RewardRouter(domain_scales=domain_scales or REFERENCE_DOMAIN_SCALES)
    full_credit = rewards.reward_values().correct_reward
    end_ids = model.generation_config.eos_token_id
    end_ids = [end_ids] if isinstance(end_ids, int) else list(end_ids or [tokenizer.eos_token_id])
    model.eval()
    samples = []
    started = time.perf_counter()
    for start in range(0, len(rows), batch_size):
        batch = rows.select(range(start, min(start + batch_size, len(rows))))
        prompt_ids = [
            list(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
            for prompt in batch["prompt"]
        ]
        completion_ids = sample_completions(
            model, prompt_ids, max_new_tokens=max_new_tokens, temperature=0.0, end_token_ids=end_ids,
            pad_token_id=tokenizer.pad_token_id, tokenizer=tokenizer,
        )
        texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in completion_ids]
        columns = {name: batch[name] for name in batch.column_names if name != "prompt"}
        kwargs = dict(prompts=batch["prompt"], completions=texts, **columns)
        correctness = rewards.check_answer(**kwargs)
        refusal = rewards.punish_refusal(**kwargs)
        totals = router(trainer_state=_FinalPhase(), **kwargs)
        for index, text in enumerate(texts):
            samples.append({
                "domain": columns["domain"][index],
                "id": columns.get("id", [""] * len(texts))[index],
                "completion": text,
                "is_correct": correctness[index] >= full_credit - 1e-9,
                "is_exact_format": is_exact_format(text),
                "is_refusal": refusal[index] < 0,
                "completion_tokens": len(completion_ids[index]),
                "reward": totals[index],
            })
    return {"summary": summarize(samples), "samples": samples, "seconds": time.perf_counter() - started}


def summarize(samples: list[dict]) -> dict:
    groups: dict[str, list[dict]] = {}
    for sample in samples:
        groups.setdefault(sample["domain"], []).append(sample)
    groups = {"overall": samples, **dict(sorted(groups.items()))}
    return {
        name: {
            "rows": len(items),
            "accuracy": _mean([s["is_correct"] for s in items]),
            "exact_format_rate": _mean([s["is_exact_format"] for s in items]),
            "refusal_rate": _mean([s["is_refusal"] for s in items]),
            "mean_completion_tokens": _mean([s["completion_tokens"] for s in items]),
            "mean_reward": _mean([s["reward"] for s in items]),
        }
        for name, items in groups.items()
    }


def load_eval_rows(*, source: str, rows_per_domain: int, data_dir: str | None = None, seed: int = 0, domains=None):
    from datasets import concatenate_datasets

    from phasegrpo.data import load_mixture

    weights = {domain: 1.0 for domain in (domains or ("math", "code", "science", "logic"))}
    by_domain = load_mixture(
        weights, source="synthetic" if source == "synthetic" else None, split="test",
        data_dir=data_dir or None, limit=rows_per_domain, seed=seed,
    )
    return concatenate_datasets(list(by_domain.values()))


def format_table(summary: dict) -> str:
    header = f"{'domain':10s} {'rows':>5s} {'accuracy':>9s} {'format':>7s} {'refusal':>8s} {'tokens':>7s} {'reward':>7s}"
    lines = [header, "-" * len(header)]
    for name, row in summary.items():
        lines.append(
            f"{name:10s} {row['rows']:5d} {row['accuracy']:9.2f} {row['exact_format_rate']:7.2f} "
            f"{row['refusal_rate']:8.2f} {row['mean_completion_tokens']:7.1f} {row['mean_reward']:7.2f}"
        )
    return "\n".join(lines)


def load_for_eval(model_name: str, adapter: str | Path | None = None, dtype: str = "auto"):
    from phasegrpo.models import declare_end_of_turn, load_model, load_tokenizer

    tokenizer = load_tokenizer(model_name)
    model = load_model(model_name, dtype)
    declare_end_of_turn(model, tokenizer)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return model, tokenizer


def _mean(values) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else 0.0


__all__ = ["evaluate_rows", "summarize", "load_eval_rows", "format_table", "load_for_eval"]
