"""The `seed` run scaled to 8 GPUs with DeepSpeed ZeRO-2, through accelerate.

    pip install -e ".[deepspeed]"
    accelerate launch --config_file accelerate_configs/zero2.yaml --num_processes 8 \
        -m phasegrpo train --config examples/seed_8gpu_deepspeed.py

accelerate_configs/zero2.yaml (in the repository) is accelerate's config with
`distributed_type: DEEPSPEED` and `deepspeed_config: {zero_stage: 2}`. Every process loads this
file, so a reward registered here is registered on every rank.

The batch sizes are per GPU: each process draws prompts_per_step prompts and samples
num_generations completions of each, split into gradient_accumulation_steps micro-batches of
prompts_per_step x num_generations / gradient_accumulation_steps = 16 completions. One optimizer
step therefore sees 8 GPUs x 8 prompts = 64 prompts, 512 completions.
"""

from phasegrpo import preset

config = preset(
    "seed",
    output_dir="runs/seed_8gpu",
    dtype="bfloat16",
    prompts_per_step=8,
    num_generations=8,
    gradient_accumulation_steps=4,
    gradient_checkpointing=True,
    max_steps=500,
    save_steps=25,
    report_to="tensorboard",
    trl_args={
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0.03,
        "max_grad_norm": 0.5,
        "save_total_limit": 3,
        "ddp_timeout": 7200,  # long rollouts on a slow rank must not time out the others
    },
)
