"""Evaluation on held-out rows: accuracy, exact-format rate, refusal rate, completion length and
total reward, per domain and overall; greedy by default, pass@k with sampling as an option.

    model, tokenizer = load_for_eval("embedded", adapter="runs/demo/adapter")
    rows = load_eval_rows(source="synthetic", rows_per_domain=8)
    result = evaluate_rows(model, tokenizer, rows, max_new_tokens=256)
    print(format_table(result["summary"]))

On a machine with a GPU the model is moved there and batches are larger (`eval_device`,
`default_batch_size`); `model` may also be a `phasegrpo.vllm_eval.VLLMEngine` to generate through
vLLM. Every path stops a completion at `</answer>` and ends it with the end of turn
(phasegrpo.stop_rule), as training does.

A result is `{"summary": {group: numbers}, "samples": [...], "settings": {...}, "seconds": s}`;
the groups are "overall" then each domain. The total reward is the router's score in its last
phase (a run's own router: its phase rewards, weights, domain scales and reward values), so
before/after numbers compare like with like.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING

from phasegrpo.formats import is_exact_format
from phasegrpo.generation import sample_completions
from phasegrpo.messages import last_user_message

if TYPE_CHECKING:
    from phasegrpo.router import RewardRouter, Scores

METRICS = ("accuracy", "exact_format_rate", "refusal_rate", "mean_completion_tokens", "mean_reward")
"""The per-group numbers of a summary, in table order (pass@k columns follow when sampled)."""

CPU_EVAL_BATCH_SIZE = 16
GPU_EVAL_BATCH_SIZE = 64
"""Default completions per batch (`default_batch_size`)."""


def evaluate_rows(
    model,
    tokenizer,
    rows,
    *,
    max_new_tokens: int,
    batch_size: int | None = None,
    router: RewardRouter | None = None,
    samples_per_row: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    show_progress: bool = False,
    device: str = "auto",
    decode_dtype: str = "model",
) -> dict:
    """Completions for `rows` (a datasets.Dataset of contract rows), scored by `router` in its last
    phase (default: the reference `RewardRouter()`; pass a run's router to score as that run does).

    Greedy (`temperature=0`) gives one completion per row. With `temperature > 0` each row gets
    `samples_per_row` sampled completions and the summary adds pass@k for k = 1, 2, 4, ... up
    to `samples_per_row` (the unbiased estimator of Chen et al. 2021).

    A model on the CPU moves to `device` (`auto`: the GPU when there is one, `eval_device`);
    `batch_size` None takes `default_batch_size` of the device it runs on.

    `decode_dtype` 'bfloat16' (on the CPU only) generates from a copy of the model with any LoRA
    adapter merged, in bf16 (`rollout_copy`): ~2x faster on CPUs with bf16 matrix units, greedy
    choices equal to fp32's up to bf16 rounding. A run's eval uses its `rollout_dtype`.
    """
    import torch

    from phasegrpo.models import end_of_turn_id

    if samples_per_row < 1:
        raise ValueError(f"samples_per_row must be >= 1, got {samples_per_row}.")
    if samples_per_row > 1 and temperature <= 0:
        raise ValueError(
            f"samples_per_row={samples_per_row} with greedy decoding gives {samples_per_row} identical completions; "
            f"pass a temperature > 0 (e.g. --temperature 0.8) for pass@k."
        )
    is_vllm = bool(getattr(model, "is_vllm_engine", False))
    if is_vllm:
        generation_device = torch.device("cuda")
    else:
        current = next(model.parameters()).device
        generation_device = eval_device(device) if current.type == "cpu" else current  # as place_for_eval decides
        model = place_for_eval(model, device)
    if decode_dtype not in ("model", "bfloat16", "float32"):
        raise ValueError(f"decode_dtype must be model, bfloat16 or float32, got {decode_dtype!r}.")
    if decode_dtype != "model" and not is_vllm and generation_device.type == "cpu":
        from phasegrpo.rollout_copy import ROLLOUT_DTYPES, build_merged_copy

        model = build_merged_copy(model, ROLLOUT_DTYPES[decode_dtype])  # the caller's model is left as it is
    batch_size = default_batch_size(generation_device) if batch_size is None else batch_size
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    end_ids = tokenizer.eos_token_id if is_vllm else model.generation_config.eos_token_id
    end_ids = [end_ids] if isinstance(end_ids, int) else list(end_ids or [tokenizer.eos_token_id])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_ids[0]
    stop_token_id = end_of_turn_id(tokenizer)
    end_ids = list(dict.fromkeys([*end_ids, stop_token_id]))
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed) if temperature > 0 and not is_vllm else None
    # Every (row, sample) pair, row-major, so a batch holds the k samples of a row together.
    jobs = [(row, sample) for row in range(len(rows)) for sample in range(samples_per_row)]
    scorer = _Scorer(router)
    was_training = not is_vllm and model.training
    if not is_vllm:
        model.eval()
    samples: list[dict] = []
    started = time.perf_counter()
    progress = _progress_bar(len(jobs), show_progress)
    try:
        for start in range(0, len(jobs), batch_size):
            batch_jobs = jobs[start : start + batch_size]
            batch = rows.select([row for row, _ in batch_jobs])
            prompt_ids = [
                list(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
                for prompt in batch["prompt"]
            ]
            if is_vllm:
                completion_ids = model.complete(
                    prompt_ids, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                    seeds=[seed * 1_000_003 + start + offset for offset in range(len(prompt_ids))],
                    tokenizer=tokenizer, end_token_ids=end_ids, stop_token_id=stop_token_id,
                )
            else:
                completion_ids = sample_completions(
                    model, prompt_ids, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                    end_token_ids=end_ids, pad_token_id=pad_id, tokenizer=tokenizer, stop_token_id=stop_token_id,
                    generator=generator,
                )
            texts = [tokenizer.decode(ids, skip_special_tokens=True) for ids in completion_ids]
            scored = scorer(batch, texts, [len(ids) for ids in completion_ids])
            for (row, sample_index), sample in zip(batch_jobs, scored, strict=True):
                samples.append({"row": row, "sample": sample_index, **sample})
            if progress is not None:
                progress.update(len(batch_jobs))
    finally:
        if progress is not None:
            progress.close()
        if not is_vllm:
            model.train(was_training)
    settings = {
        "decoding": "sampling" if temperature > 0 else "greedy",
        "generation": "vllm" if is_vllm else generation_device.type,
        "decode_dtype": decode_dtype,
        "batch_size": batch_size,
        "temperature": temperature,
        "top_p": top_p,
        "samples_per_row": samples_per_row,
        "max_new_tokens": max_new_tokens,
        "rows": len(rows),
        "seed": seed,
    }
    return {"summary": summarize(samples), "samples": samples, "settings": settings, "seconds": time.perf_counter() - started}


class _Scorer:
    """Scores a batch of completions the way training does in its last phase, and reads off
    correctness and refusal (from the same scoring when that phase enables those rewards)."""

    def __init__(self, router: RewardRouter | None = None):
        from phasegrpo.router import RewardRouter

        self.router = router if router is not None else RewardRouter()
        self.full_credit = self.router.reward_values.correct_reward

    def __call__(self, batch, texts: list[str], token_counts: list[int]) -> list[dict]:
        columns = {name: batch[name] for name in batch.column_names if name != "prompt"}
        scores = self.router.score(texts, phase=self.router.last_phase_index, prompts=batch["prompt"], **columns)
        correctness = self._raw(scores, "check_answer", texts, batch["prompt"], columns)
        refusal = self._raw(scores, "punish_refusal", texts, batch["prompt"], columns)
        totals = scores.totals
        ids = columns.get("id") or [""] * len(texts)
        answers = columns.get("answer") or [""] * len(texts)
        return [
            {
                "domain": columns["domain"][index],
                "id": ids[index],
                "question": last_user_message(batch["prompt"][index]),
                "reference": answers[index],
                "completion": text,
                "is_correct": correctness[index] is not None and correctness[index] >= self.full_credit - 1e-9,
                "is_exact_format": is_exact_format(text),
                "is_refusal": refusal[index] is not None and refusal[index] < 0,
                "completion_tokens": token_counts[index],
                "reward": float(totals[index]),
            }
            for index, text in enumerate(texts)
        ]

    def _raw(self, scores: Scores, name: str, texts: list[str], prompts, columns: dict) -> list[float]:
        """Reward `name`'s raw values: from `scores` when the phase enabled it, else computed alone
        (so code runs in the sandbox once per completion either way)."""
        if name in scores.raw:
            return scores.raw[name]
        return self.router.reward_functions[name](completions=texts, prompts=prompts, **columns)


def summarize(samples: list[dict]) -> dict:
    """Per-group numbers ("overall" first, then domains A-Z) from scored samples."""
    groups: dict[str, list[dict]] = {}
    for sample in samples:
        groups.setdefault(sample["domain"], []).append(sample)
    groups = {"overall": samples, **dict(sorted(groups.items()))}
    summary = {}
    for name, items in groups.items():
        by_row: dict[int, list[bool]] = {}
        for position, sample in enumerate(items):
            by_row.setdefault(sample.get("row", position), []).append(bool(sample["is_correct"]))
        numbers = {
            "rows": len(by_row),
            "completions": len(items),
            "accuracy": _mean([s["is_correct"] for s in items]),
            "exact_format_rate": _mean([s["is_exact_format"] for s in items]),
            "refusal_rate": _mean([s["is_refusal"] for s in items]),
            "mean_completion_tokens": _mean([s["completion_tokens"] for s in items]),
            "mean_reward": _mean([s["reward"] for s in items]),
        }
        samples_per_row = min((len(v) for v in by_row.values()), default=1)
        if samples_per_row > 1:
            numbers["pass_at"] = {
                str(k): _mean([pass_at_k(len(v), sum(v), k) for v in by_row.values()]) for k in _k_values(samples_per_row)
            }
        summary[name] = numbers
    return summary


def pass_at_k(n: int, correct: int, k: int) -> float:
    """Chance that at least one of k completions drawn from n (of which `correct` are right) is right."""
    if n - correct < k:
        return 1.0
    return 1.0 - math.comb(n - correct, k) / math.comb(n, k)


def _k_values(n: int) -> list[int]:
    values, k = [], 1
    while k < n:
        values.append(k)
        k *= 2
    return values + [n]


def load_eval_rows(*, source: str, rows_per_domain: int, data_dir: str | None = None, seed: int = 0, domains=None):
    """Held-out rows per domain: the generated test split ('synthetic'), else the Hub test splits
    (or local files in the Hub schema under `data_dir`)."""
    from datasets import concatenate_datasets

    from phasegrpo.data import load_mixture
    from phasegrpo.domains import domain_names

    weights = dict.fromkeys(domains or domain_names(), 1.0)
    by_domain = load_mixture(
        weights, source="synthetic" if source == "synthetic" else None, split="test",
        data_dir=data_dir or None, limit=rows_per_domain, seed=seed,
    )
    return concatenate_datasets(list(by_domain.values()))


def format_table(summary: dict) -> str:
    """The summary as a fixed-width terminal table, one line per group; each rate carries its
    95 % Wilson score interval over the group's completions (phasegrpo.intervals)."""
    from phasegrpo.intervals import format_interval, rate_interval

    pass_keys = sorted({k for row in summary.values() for k in row.get("pass_at", {})}, key=int)
    rate_width = 18  # "0.38 [0.14, 0.69]"
    header = (f"{'domain':10s} {'rows':>5s} {'accuracy':>{rate_width}s} {'format':>{rate_width}s} "
              f"{'refusal':>{rate_width}s} {'tokens':>7s} {'reward':>7s}")
    header += "".join(f" {'pass@' + k:>7s}" for k in pass_keys)
    lines = [header, "-" * len(header)]
    for name, row in summary.items():
        trials = int(row.get("completions", row["rows"]))
        rates = [
            f"{row[metric]:.2f} {format_interval(*rate_interval(row[metric], trials))}"
            for metric in ("accuracy", "exact_format_rate", "refusal_rate")
        ]
        line = (
            f"{name:10s} {row['rows']:5d} " + " ".join(f"{rate:>{rate_width}s}" for rate in rates)
            + f" {row['mean_completion_tokens']:7.1f} {row['mean_reward']:7.2f}"
        )
        line += "".join(f" {row.get('pass_at', {}).get(k, float('nan')):7.2f}" for k in pass_keys)
        lines.append(line)
    lines.append("[low, high]: 95 % Wilson score interval of the rate over the group's completions.")
    return "\n".join(lines)


def write_result(path: str | Path, result: dict) -> Path:
    """Write an eval result as JSON (atomically: a kill leaves the old file or the new one)."""
    from phasegrpo.run_folder import write_json_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, result)
    return path


def eval_device(requested: str = "auto"):
    """The device evaluation runs on: `auto` is this process's GPU when torch sees one (under a
    multi-process launcher, the one of LOCAL_RANK), else the CPU; anything else as given."""
    import os

    import torch

    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")


def default_batch_size(device) -> int:
    """Completions generated together on `device`. A decode step reads every weight once for the
    whole batch, so rows are nearly free up to ~16 on a CPU (per-row cost at 8 / 16 / 32 rows:
    17 / 11 / 9 ms on 2 cores); a GPU holds far more."""
    import torch

    return GPU_EVAL_BATCH_SIZE if torch.device(device).type == "cuda" else CPU_EVAL_BATCH_SIZE


def place_for_eval(model, device: str = "auto"):
    """`model` on the evaluation device: a model on the CPU moves to the GPU when there is one;
    a model already on an accelerator (a trainer's, perhaps sharded) stays where it is."""
    target = eval_device(device)
    current = next(model.parameters()).device
    if current.type == "cpu" and target.type != "cpu":
        model = model.to(target)
    return model


def load_for_eval(model_name: str, adapter: str | Path | None = None, dtype: str = "auto", device: str = "auto"):
    """A model and tokenizer ready to evaluate, with a LoRA adapter applied when given, on the
    evaluation device (`eval_device`)."""
    from phasegrpo.models import declare_end_of_turn, load_model, load_tokenizer

    tokenizer = load_tokenizer(model_name)
    model = load_model(model_name, dtype)
    declare_end_of_turn(model, tokenizer)
    if adapter:
        if not Path(adapter, "adapter_config.json").exists():
            raise FileNotFoundError(f"No LoRA adapter at {adapter} (no adapter_config.json). Pass a run's adapter folder, e.g. runs/demo/adapter.")
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    return place_for_eval(model, device), tokenizer


def _progress_bar(total: int, show: bool):
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="eval", unit="completion", dynamic_ncols=True)


def _mean(values) -> float:
    values = [float(v) for v in values]
    return sum(values) / len(values) if values else 0.0


__all__ = [
    "evaluate_rows", "summarize", "pass_at_k", "load_eval_rows", "format_table", "write_result", "load_for_eval",
    "eval_device", "default_batch_size", "place_for_eval", "METRICS",
]
