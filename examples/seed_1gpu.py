"""The reference `seed` run on one GPU: Gemma-3 1B Instruct on GSM8K, MBPP, ARC-Easy and StrategyQA.

    huggingface-cli login          # Gemma is gated: accept its licence on the Hub first
    phasegrpo train --config examples/seed_1gpu.py
    phasegrpo train --config examples/seed_1gpu.py --max-steps 600 --output-dir runs/seed_600   # flags still win

A 1B model with a LoRA policy, 4 prompts x 4 generations and 512 new tokens fits a 24 GB GPU in
bf16; gradient checkpointing makes room for longer completions on smaller cards.
"""

from phasegrpo import preset

config = preset(
    "seed",
    output_dir="runs/seed_1gpu",
    dtype="bfloat16",
    report_to="tensorboard",
    eval_before_after=True,
    # TRL settings phasegrpo has no field for: a short warmup, then cosine decay; keep 2 checkpoints.
    trl_args={"lr_scheduler_type": "cosine", "warmup_steps": 0.05, "save_total_limit": 2},
)
