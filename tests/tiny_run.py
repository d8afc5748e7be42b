"""A finished run folder without training: the tiny model saved as the run's base model, a
LoRA adapter built with PEFT (random, non-zero B so it changes the outputs) and config.json."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tiny import tiny_model, tiny_tokenizer

from phasegrpo import run_folder
from phasegrpo.config import preset
from phasegrpo.model_card import set_portable_base, write_model_card
from phasegrpo.training.setup import lora_config


def make_run(tmp_path: Path, **overrides) -> Path:
    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer)
    base_dir = tmp_path / "base"
    model.save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    config = preset("demo", model=str(base_dir), output_dir=str(tmp_path / "run"), **overrides)
    run_dir = Path(config.output_dir)
    run_dir.mkdir(parents=True)
    run_folder.write_json_atomic(run_dir / run_folder.CONFIG_FILE, config.to_dict())
    from peft import get_peft_model

    policy = get_peft_model(model, lora_config(config))
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    policy.save_pretrained(run_dir / run_folder.ADAPTER_DIR)
    set_portable_base(run_dir / run_folder.ADAPTER_DIR, config)
    write_model_card(run_dir / run_folder.ADAPTER_DIR, run_dir)
    return run_dir


def write_eval(run_dir: Path, name: str, accuracy: float) -> None:
    summary = {group: {"rows": 2, "accuracy": accuracy, "exact_format_rate": 0.5, "refusal_rate": 0.0,
                       "mean_completion_tokens": 40.0, "mean_reward": 1.25} for group in ("overall", "math")}
    (run_dir / name).write_text(json.dumps({"summary": summary, "samples": [], "settings": {"decoding": "greedy"}}))
