"""Seconds per GRPO step: plain TRL GRPOTrainer + LoRA against phasegrpo, in one invocation.

Every variant trains the same model with the same group size (4), prompts per step (2), max
completion length, beta (0.08) and LoRA (r 16, all linear layers) for --steps steps, each in its
own child process (so its peak memory is its own), one after the other:

  trl          what a user writes by hand: TRL's GRPOTrainer, its own generation, short prompts,
               two simple rewards
  phasegrpo    the demo settings through phasegrpo.train (fast CPU rollouts, stop at </answer>), fp32
  fast         ... with the speed options the demo preset uses: rollout_dtype bfloat16, training_autocast bfloat16
  fast-nostop  ... and stop_at_answer_end off: it decodes as many tokens as TRL, so its ratio
               is the speed per token, without the gain of stopping early
  fast-noshare (not run by default) fast with share_prompt_prefix off: every row's prompt in
               every log-prob pass, as TRL does (what prompt sharing gives)

Prints the median seconds per step (wall, and CPU time of the process: the steadier measure
on a shared machine), generated tokens per second of step time, peak RSS and a
breakdown of the step (times from wrappers around TRL's and phasegrpo's methods, set here; the
package is not instrumented), and each variant's ratio to TRL. Usage:
    python benchmarks/bench_step.py [--steps 3] [--max-new-tokens 128] [--model embedded|tiny]
                                    [--variants trl,phasegrpo,fast,fast-nostop] [--rounds 1] [--save raw.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

VARIANTS = {
    "trl": None,
    "phasegrpo": {"rollout_dtype": "model", "training_autocast": "none"},
    "fast": {"rollout_dtype": "bfloat16", "training_autocast": "bfloat16"},
    "fast-nostop": {"rollout_dtype": "bfloat16", "training_autocast": "bfloat16", "stop_at_answer_end": False},
    "phasegrpo-nostop": {"rollout_dtype": "model", "training_autocast": "none", "stop_at_answer_end": False},
    "fast-noshare": {"rollout_dtype": "bfloat16", "training_autocast": "bfloat16", "share_prompt_prefix": False},
}
PROMPTS_PER_STEP, GROUP_SIZE, BETA = 2, 4, 0.08
# Breakdown rows, in the order they happen within a step.
PARTS = ("prefill", "decode", "generation other", "rewards/router", "reference log-probs", "policy forward",
         "policy backward", "optimizer", "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--model", default="embedded", choices=["embedded", "tiny"])
    parser.add_argument("--variants", default="trl,phasegrpo,fast,fast-nostop")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the variants this many times in turn and pool their steps (spreads the machine's drift)")
    parser.add_argument("--save", help="also write every step's raw figures to this JSON file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = run_variant(args.worker, args.model, args.steps, args.max_new_tokens)
        Path(args.result).write_text(json.dumps(result))
        return
    names = [name.strip() for name in args.variants.split(",") if name.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for round_number in range(1, args.rounds + 1):
            for name in names:
                path = Path(folder) / f"{name}.json"
                command = [sys.executable, __file__, "--worker", name, "--result", str(path), "--model", args.model,
                           "--steps", str(args.steps), "--max-new-tokens", str(args.max_new_tokens)]
                print(f"round {round_number}/{args.rounds}: running {name} ...", file=sys.stderr, flush=True)
                environment = {**os.environ, "HF_DATASETS_DISABLE_PROGRESS_BARS": "1"}
                subprocess.run(command, check=True, env=environment, stdout=subprocess.DEVNULL)
                results[name] = pooled(results.get(name), json.loads(path.read_text()))
    if args.save:
        Path(args.save).write_text(json.dumps(results, indent=1))
    rounds = f" in {args.rounds} rounds" if args.rounds > 1 else ""
    print(f"\nmodel {args.model}, {PROMPTS_PER_STEP} prompts x {GROUP_SIZE} generations, {args.max_new_tokens} max new "
          f"tokens, beta {BETA}, LoRA r16, {args.steps} steps each{rounds} (medians over steps)\n")
    print(format_table(results))
    print("\nseconds of each step, in the order run:")
    for name, result in results.items():
        print(f"  {name.ljust(max(map(len, results)))}  " + " ".join(f"{step['seconds']:.1f}" for step in result["steps"]))


def pooled(earlier: dict | None, result: dict) -> dict:
    """One variant's results over rounds: every step, the highest peak memory."""
    if earlier is None:
        return result
    return {**result, "steps": earlier["steps"] + result["steps"],
            "peak_rss_kb": max(earlier["peak_rss_kb"], result["peak_rss_kb"])}


# --- the table -----------------------------------------------------------------------------------
def summarize(result: dict) -> dict:
    steps = result["steps"]
    seconds = statistics.median(step["seconds"] for step in steps)
    cpu_seconds = statistics.median(step["cpu_seconds"] for step in steps)
    tokens = statistics.median(step["tokens"] for step in steps)
    tokens_per_second = statistics.median(step["tokens"] / step["seconds"] for step in steps)
    parts = {part: statistics.median(step["parts"].get(part, 0.0) for step in steps) for part in PARTS}
    return {"seconds": seconds, "cpu_seconds": cpu_seconds, "tokens": tokens, "tokens_per_second": tokens_per_second, "parts": parts,
            "peak_rss_gb": result["peak_rss_kb"] / 2**20, "has_breakdown": result["has_breakdown"]}


def format_table(results: dict) -> str:
    summaries = {name: summarize(result) for name, result in results.items()}
    reference = summaries.get("trl")
    header = ["", *summaries]
    rows = [
        ["s/step (median)", *(f"{s['seconds']:.2f}" for s in summaries.values())],
        ["CPU s/step (median)", *(f"{s['cpu_seconds']:.2f}" for s in summaries.values())],
        ["generated tokens/step", *(f"{s['tokens']:.0f}" for s in summaries.values())],
        ["generated tokens/s", *(f"{s['tokens_per_second']:.1f}" for s in summaries.values())],
        ["peak RSS (GB)", *(f"{s['peak_rss_gb']:.2f}" for s in summaries.values())],
    ]
    if reference is not None:
        rows.append(["speed-up vs trl (s/step)", *(f"{reference['seconds'] / s['seconds']:.2f}x" for s in summaries.values())])
        rows.append(["speed-up vs trl (CPU s/step)", *(f"{reference['cpu_seconds'] / s['cpu_seconds']:.2f}x" for s in summaries.values())])
        rows.append(["speed-up vs trl (tokens/s)",
                     *(f"{s['tokens_per_second'] / reference['tokens_per_second']:.2f}x" for s in summaries.values())])
    for part in PARTS:
        rows.append([f"  {part} (s)", *(f"{s['parts'][part]:.2f}" if s["has_breakdown"] or part in TRL_PARTS else "-"
                                       for s in summaries.values())])
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |" for row in [header, *rows]]
    lines.insert(1, "| " + " | ".join("-" * width for width in widths) + " |")
    return "\n".join(lines)


# TRL's own generation has no prefill/decode split here; it is all "generation other".
TRL_PARTS = ("generation other", "rewards/router", "reference log-probs", "policy forward", "policy backward", "optimizer", "other")


# --- one variant, in a child process --------------------------------------------------------------
class Timers:
    """Seconds spent per part in the current step, filled by wrapped methods."""

    def __init__(self):
        self.current = defaultdict(float)
        self.in_loss = False

    def wrap(self, owner, name, part_of):
        """Replace owner.name by a timed call; part_of(args) names the part (or None: untimed)."""
        original = getattr(owner, name)
        timers = self

        def timed(*args, **kwargs):
            part = part_of(args, kwargs)
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                if part is not None:
                    timers.current[part] += time.perf_counter() - start

        setattr(owner, name, timed)


def install_timers(timers: Timers) -> None:
    from trl import GRPOTrainer

    import phasegrpo.generation as generation
    import phasegrpo.training.trainer as trainer_module

    timers.wrap(GRPOTrainer, "_generate", lambda a, k: "generation")
    timers.wrap(GRPOTrainer, "_calculate_rewards", lambda a, k: "rewards/router")
    from phasegrpo.training.trl_compat import TRLSeams

    def log_prob_part(args, kwargs):
        return "policy forward" if timers.in_loss else "reference log-probs"

    # phasegrpo's override (prompt sharing) may not call TRL's: time the outer one, TRL's only for plain TRL.
    timers.wrap(TRLSeams, "_get_per_token_logps_and_entropies", log_prob_part)
    timers.wrap(GRPOTrainer, "_get_per_token_logps_and_entropies",
                lambda a, k: None if isinstance(a[0], TRLSeams) else log_prob_part(a, k))
    original_loss = GRPOTrainer._compute_loss

    def compute_loss(self, *args, **kwargs):
        timers.in_loss = True
        try:
            return original_loss(self, *args, **kwargs)
        finally:
            timers.in_loss = False

    GRPOTrainer._compute_loss = compute_loss
    timers.wrap(GRPOTrainer, "training_step", lambda a, k: "training_step")
    timers.wrap(GRPOTrainer, "_prepare_inputs", lambda a, k: "prepare_inputs")
    for decoder in (generation._ModelDecoder, generation._LeanGemma3Decoder):  # called as decoder(input_ids, mask, positions)
        timers.wrap(decoder, "__call__", lambda a, k: "prefill" if a[1].size(1) > 1 else "decode forward")
    timers.wrap(trainer_module, "sample_completions", lambda a, k: "sampling loop")


def step_parts(raw: dict, seconds: float) -> dict:
    """The breakdown rows of one step from the raw timer totals."""
    parts = {part: raw.get(part, 0.0) for part in ("rewards/router", "reference log-probs", "policy forward", "optimizer")}
    parts["prefill"] = raw.get("prefill", 0.0)
    parts["decode"] = raw.get("sampling loop", 0.0) - parts["prefill"]
    parts["generation other"] = raw.get("generation", 0.0) - raw.get("sampling loop", 0.0)
    parts["policy backward"] = raw.get("training_step", 0.0) - raw.get("prepare_inputs", 0.0) - parts["policy forward"]
    parts["other"] = seconds - sum(parts.values())
    return parts


def make_callback(timers: Timers, steps: list):
    from transformers import TrainerCallback

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            timers.current.clear()
            self.start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            self.optimizer_start = time.perf_counter()

        def on_optimizer_step(self, args, state, control, **kwargs):
            timers.current["optimizer"] += time.perf_counter() - self.optimizer_start

        def on_step_end(self, args, state, control, **kwargs):
            seconds = time.perf_counter() - self.start
            steps.append({"seconds": seconds, "cpu_seconds": time.process_time() - self.cpu_start,
                          "parts": step_parts(dict(timers.current), seconds)})

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "completions/mean_length" in logs and steps and "tokens" not in steps[-1]:
                steps[-1]["tokens"] = logs["completions/mean_length"] * PROMPTS_PER_STEP * GROUP_SIZE

    return StepClock()


def load(model_name: str):
    import torch

    if model_name == "tiny":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from tiny import tiny_model, tiny_tokenizer

        tokenizer = tiny_tokenizer()
        return tiny_model(tokenizer), tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from phasegrpo.models import resolve_model_path

    path = resolve_model_path(model_name)
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), AutoTokenizer.from_pretrained(path)


def plain_trl_rows() -> list[dict]:
    """Short arithmetic prompts, as a user would write them."""
    return [{"prompt": [{"role": "user", "content": f"What is {a} + {b}? Think step by step, then give the number "
                                                      "inside <answer></answer>."}]}
            for a, b in [(17, 25), (38, 46), (120, 7), (9, 91), (55, 66), (73, 18), (14, 14), (300, 12)]]


def format_reward(completions, **kwargs):
    return [1.0 if "<answer>" in c[0]["content"] and "</answer>" in c[0]["content"] else 0.0 for c in completions]


def length_reward(completions, **kwargs):
    return [-len(c[0]["content"]) / 1000 for c in completions]


def run_variant(name: str, model_name: str, steps: int, max_new_tokens: int) -> dict:
    import resource

    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    timers = Timers()
    install_timers(timers)
    recorded: list = []
    clock = make_callback(timers, recorded)
    model, tokenizer = load(model_name)
    with tempfile.TemporaryDirectory() as folder:
        if VARIANTS[name] is None:
            run_plain_trl(model, tokenizer, folder, steps, max_new_tokens, clock)
        else:
            run_phasegrpo(model, tokenizer, folder, steps, max_new_tokens, clock, VARIANTS[name])
    for step in recorded:
        step.setdefault("tokens", 0.0)
    return {"steps": recorded, "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "has_breakdown": VARIANTS[name] is not None}


def run_plain_trl(model, tokenizer, folder, steps, max_new_tokens, clock) -> None:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    args = GRPOConfig(
        output_dir=folder, per_device_train_batch_size=PROMPTS_PER_STEP * GROUP_SIZE, num_generations=GROUP_SIZE,
        max_completion_length=max_new_tokens, beta=BETA, max_steps=steps, learning_rate=1e-4, logging_steps=1,
        save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True, seed=42,
    )
    trainer = GRPOTrainer(
        model=model, processing_class=tokenizer, reward_funcs=[format_reward, length_reward], args=args,
        train_dataset=Dataset.from_list(plain_trl_rows()), callbacks=[clock],
        peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    trainer.train()


def run_phasegrpo(model, tokenizer, folder, steps, max_new_tokens, clock, overrides: dict) -> None:
    from phasegrpo import preset, train

    config = preset("demo", max_steps=steps, max_completion_length=max_new_tokens, beta=BETA, lora_r=16,
                    prompts_per_step=PROMPTS_PER_STEP, num_generations=GROUP_SIZE, eval_before_after=False,
                    save_steps=10**6, output_dir=str(Path(folder) / "run"), **overrides)
    train(config, model=model, tokenizer=tokenizer, callbacks=[clock], show_progress=False)


if __name__ == "__main__":
    main()
