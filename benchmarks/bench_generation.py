"""Rollout speed: phasegrpo's CPU sampling loop vs transformers' `generate`, side by side.

Also the loop on the decode copy of `rollout_dtype="bfloat16"` (the LoRA merged into bf16
weights; its one-time build is outside the timing, its re-merge after an optimizer step is
timed separately), through the lean Gemma 3 forward (`phasegrpo.gemma3_decoder`, what training
uses) and through the copy's own transformers forward. All decode the same prompts for the same number of new tokens (end tokens ignored, so the
work is identical) with the LoRA-wrapped policy, as in training. Prints seconds per decode
step for each and their ratio. Usage:
    python benchmarks/bench_generation.py [--model embedded] [--batch 8] [--new-tokens 64]
"""

import argparse
import time

import torch
from peft import LoraConfig, get_peft_model

from phasegrpo import gemma3_decoder
from phasegrpo.generation import sample_completions
from phasegrpo.models import load_model, load_tokenizer
from phasegrpo.rollout_copy import RolloutCopy


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    tokenizer = load_tokenizer(args.model)
    model = get_peft_model(load_model(args.model, "float32"), LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    model.eval()
    messages = [{"role": "user", "content": f"What is {i} + {i * 3}? Answer inside <answer></answer>."} for i in range(args.batch)]
    prompt_ids = [tokenizer.apply_chat_template([m], add_generation_prompt=True, tokenize=True) for m in messages]
    prompt_ids = [ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids for ids in prompt_ids]

    rollout_copy = RolloutCopy(torch.bfloat16)
    rollout_copy.model_for(model)

    def ours(decoder=model):
        sample_completions(
            decoder, prompt_ids, max_new_tokens=args.new_tokens, temperature=0.9, end_token_ids=[],
            pad_token_id=tokenizer.pad_token_id, tokenizer=None, stop_text=None,
        )

    input_ids = torch.nn.utils.rnn.pad_sequence([torch.tensor(ids).flip(0) for ids in prompt_ids], batch_first=True, padding_value=tokenizer.pad_token_id).flip(1)
    attention_mask = (input_ids != tokenizer.pad_token_id).long()

    def plain():
        with torch.no_grad():
            model.generate(
                input_ids=input_ids, attention_mask=attention_mask, do_sample=True, temperature=0.9, top_p=1.0, top_k=0,
                max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, pad_token_id=tokenizer.pad_token_id,
            )

    def ours_bf16_copy():
        ours(rollout_copy.model_for(model))

    def ours_bf16_copy_own_forward():
        supports, gemma3_decoder.supports = gemma3_decoder.supports, lambda model: False
        try:
            ours(rollout_copy.model_for(model))
        finally:
            gemma3_decoder.supports = supports

    variants = (
        ("transformers.generate", plain), ("phasegrpo.sample_completions", ours),
        ("... on the bf16 merged copy", ours_bf16_copy), ("... bf16 copy, transformers fwd", ours_bf16_copy_own_forward),
    )
    timings = {name: [] for name, _ in variants}
    for _ in range(args.repeats):  # interleaved, so machine noise hits each alike
        for name, function in variants:
            start = time.perf_counter()
            function()
            timings[name].append((time.perf_counter() - start) / args.new_tokens)
    best = {name: min(values) for name, values in timings.items()}
    for name, value in best.items():
        print(f"{name:32s} {value * 1000:8.1f} ms per decode step (batch {args.batch})")
    print(f"speed-up: {best['transformers.generate'] / best['phasegrpo.sample_completions']:.2f}x; bf16 merged copy vs the "
          f"policy: {best['phasegrpo.sample_completions'] / best['... on the bf16 merged copy']:.2f}x; lean Gemma 3 forward vs "
          f"transformers' on the copy: {best['... bf16 copy, transformers fwd'] / best['... on the bf16 merged copy']:.2f}x")
    with torch.no_grad():
        next(p for n, p in model.named_parameters() if "lora_B" in n).add_(1e-3)  # as an optimizer step would
    start = time.perf_counter()
    rollout_copy.model_for(model)
    print(f"re-merging the adapter into the bf16 copy: {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
