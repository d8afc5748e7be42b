"""Using a trained run: the base model with the run's adapter, and a completion for a prompt.

    model, tokenizer = phasegrpo.load("runs/demo")
    print(phasegrpo.inference.generate(model, tokenizer, "What is 7 * 8?", domain="math",
                                       worked_example=True))

`load` reads the run's `config.json` for the base model (`embedded`, a Hub id or a local folder)
and applies `RUN_DIR/adapter`; the tokenizer carries the chat template the run trained with.
Prompts are wrapped as in training: the system prompt with the reply format, and, when the run
showed worked examples (the demo does), one solved item of the chosen domain first.
"""

from __future__ import annotations

import json
from pathlib import Path

from phasegrpo import run_folder
from phasegrpo.config import Config, from_dict


def run_config(run_dir: str | Path) -> Config:
    """The Config a run folder was trained with; a clear error when it is not a run folder."""
    path = Path(run_dir) / run_folder.CONFIG_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: {run_dir} is not a run folder. Pass the --output-dir of a training run, e.g. runs/demo.")
    return from_dict(json.loads(path.read_text()))


def adapter_folder(run_dir: str | Path) -> Path:
    """The run's final adapter folder; a clear error when training has not written one."""
    folder = Path(run_dir) / run_folder.ADAPTER_DIR
    if not (folder / "adapter_config.json").exists():
        raise FileNotFoundError(
            f"{folder} holds no LoRA adapter (no adapter_config.json): the run has not finished. "
            f"Finish it with `phasegrpo train --resume --output-dir {run_dir}`."
        )
    return folder


def load(run_dir: str | Path, *, dtype: str = "auto", device: str | None = None):
    """The run's base model with its LoRA adapter (a PeftModel in eval mode) and its tokenizer."""
    from peft import PeftModel

    from phasegrpo.models import declare_end_of_turn, load_model, load_tokenizer

    config = run_config(run_dir)
    adapter = adapter_folder(run_dir)
    tokenizer = load_tokenizer(config.model)
    model = load_model(config.model, dtype)
    declare_end_of_turn(model, tokenizer)
    model = PeftModel.from_pretrained(model, str(adapter))
    if device is not None:
        model = model.to(device)
    return model.eval(), tokenizer


def prompt_messages(prompt: str, *, domain: str | None = None, worked_example: bool = False) -> list[dict[str, str]]:
    """The chat messages the model sees for a free-text `prompt`, as in training."""
    from phasegrpo.data.prompts import conversation, with_worked_example

    messages = conversation(prompt)
    if worked_example:
        if domain is None:
            raise ValueError("This run trained with worked examples: pass a domain (e.g. --domain math) to show one of its solved items first.")
        messages = with_worked_example(messages, domain)
    return messages


def generate(
    model,
    tokenizer,
    prompt: str,
    *,
    domain: str | None = None,
    worked_example: bool = False,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
) -> str:
    """The model's completion for `prompt` (greedy unless `temperature` > 0)."""
    import torch

    from phasegrpo.generation import sample_completions
    from phasegrpo.models import end_of_turn_id

    messages = prompt_messages(prompt, domain=domain, worked_example=worked_example)
    prompt_ids = list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"])
    end_ids = model.generation_config.eos_token_id
    end_ids = [end_ids] if isinstance(end_ids, int) else list(end_ids or [tokenizer.eos_token_id])
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_ids[0]
    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed) if temperature > 0 else None
    with torch.no_grad():
        (completion,) = sample_completions(
            model, [prompt_ids], max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
            end_token_ids=end_ids, pad_token_id=pad_id, tokenizer=tokenizer, stop_token_id=end_of_turn_id(tokenizer),
            generator=generator,
        )
    return tokenizer.decode(completion, skip_special_tokens=True)


def generate_for_run(run_dir: str | Path, prompt: str, *, domain: str | None = None, max_new_tokens: int = 256,
                     temperature: float = 0.0, dtype: str = "auto") -> str:
    """`generate` with the run's model, adapter and prompt format (worked example when it trained with one)."""
    config = run_config(run_dir)
    if domain is not None:
        from phasegrpo.domains import get_domain

        get_domain(domain)  # an unknown domain fails naming the known ones, before the model loads
    model, tokenizer = load(run_dir, dtype=dtype)
    return generate(model, tokenizer, prompt, domain=domain, worked_example=config.worked_example and domain is not None,
                    max_new_tokens=max_new_tokens, temperature=temperature, seed=config.seed)
