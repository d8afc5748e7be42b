"""Evaluation through vLLM (`phasegrpo eval --use-vllm`): the base model, the run's LoRA adapter
as a vLLM LoRA request, and the `</answer>` stop as SamplingParams `stop`.

    engine = VLLMEngine("embedded", adapter="runs/demo/adapter")
    result = evaluate_rows(engine, tokenizer, rows, max_new_tokens=256)

Prompts go in as token ids made with phasegrpo's own tokenizer and chat template, so vLLM sees
exactly what the transformers path sees. vLLM needs a CUDA machine; it is an optional install.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from phasegrpo.stop_rule import STOP_TEXT, end_completions

INSTALL_HINT = "pip install vllm (on a machine with a CUDA GPU; vLLM does not run on CPU-only torch)"


def import_vllm():
    """The vllm module, or a clear error saying how to get it."""
    try:
        import vllm
    except ImportError as error:
        raise RuntimeError(f"--use-vllm needs vLLM, which is not installed here ({error}). Install it with: {INSTALL_HINT}, "
                           "or leave out --use-vllm to generate with transformers.") from error
    return vllm


class VLLMEngine:
    """A vLLM `LLM` that `evaluation.evaluate_rows` generates with (in place of a transformers model)."""

    is_vllm_engine = True

    def __init__(self, model_name: str, adapter: str | Path | None = None, *, dtype: str = "auto",
                 gpu_memory_utilization: float = 0.5, max_model_length: int | None = None):
        from phasegrpo.models import resolve_model_path

        vllm = import_vllm()
        lora_rank = _adapter_rank(adapter) if adapter else None
        options = dict(model=resolve_model_path(model_name), dtype=dtype, gpu_memory_utilization=gpu_memory_utilization, seed=0)
        if max_model_length is not None:
            options["max_model_len"] = max_model_length
        if lora_rank is not None:
            options.update(enable_lora=True, max_lora_rank=max(8, lora_rank))
        self.vllm = vllm
        self.llm = vllm.LLM(**options)
        self.lora_request = None
        if adapter:
            from vllm.lora.request import LoRARequest

            self.lora_request = LoRARequest("adapter", 1, str(adapter))

    def complete(self, prompt_ids: Sequence[Sequence[int]], *, max_new_tokens: int, temperature: float, top_p: float,
                 seeds: Sequence[int], tokenizer, end_token_ids: Sequence[int], stop_token_id: int) -> list[list[int]]:
        """One completion per prompt, stopped at an end token or `</answer>` (then ended with `stop_token_id`)."""
        sampling = [
            self.vllm.SamplingParams(
                max_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                stop=[STOP_TEXT], include_stop_str_in_output=True, stop_token_ids=list(end_token_ids),
            )
            for seed in seeds
        ]
        prompts = [{"prompt_token_ids": list(ids)} for ids in prompt_ids]
        outputs = self.llm.generate(prompts, sampling, lora_request=self.lora_request, use_tqdm=False)
        completion_ids = [list(output.outputs[0].token_ids) for output in outputs]
        completion_ids, _ = end_completions(completion_ids, None, tokenizer=tokenizer, end_token_ids=end_token_ids,
                                            stop_token_id=stop_token_id)
        return completion_ids


def _adapter_rank(adapter: str | Path) -> int:
    config = Path(adapter, "adapter_config.json")
    if not config.exists():
        raise FileNotFoundError(f"No LoRA adapter at {adapter} (no adapter_config.json). Pass a run's adapter folder, e.g. runs/demo/adapter.")
    return int(json.loads(config.read_text()).get("r", 8))


__all__ = ["VLLMEngine", "import_vllm", "INSTALL_HINT"]
