"""Sharing a trained run: a merged transformers folder, a GGUF file, and an upload to the Hub.

    phasegrpo export runs/demo --merged runs/demo/merged --gguf runs/demo/model.gguf
    phasegrpo export runs/demo --push-to-hub you/demo-grpo            # the adapter and its card
    phasegrpo export runs/demo --merged out --push-to-hub you/demo    # the merged folder

The merged folder is the base model with the LoRA adapter folded in (PEFT `merge_and_unload`),
its tokenizer with the run's chat template and a generation config that stops at
`<end_of_turn>`: plain `AutoModelForCausalLM.from_pretrained(folder)` loads it, no phasegrpo
needed. The GGUF is written from the merged weights (phasegrpo.gguf_export).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from phasegrpo import run_folder
from phasegrpo.model_card import MODEL_CARD_FILE, model_card, set_portable_base, write_model_card

NOT_LOGGED_IN = "Not logged in to the Hugging Face Hub: run `hf auth login` (or set HF_TOKEN)."


def merged_model(run_dir: str | Path, dtype: str = "float32"):
    """The run's base model with its adapter merged in (a plain transformers model) and its tokenizer."""
    from phasegrpo.inference import load

    peft_model, tokenizer = load(run_dir, dtype=dtype)
    return peft_model.merge_and_unload(), tokenizer


def export_merged(run_dir: str | Path, output_dir: str | Path, dtype: str = "float32", model_and_tokenizer=None) -> Path:
    """Write the merged model, its tokenizer and a model card to `output_dir` (replaced atomically)."""
    model, tokenizer = model_and_tokenizer or merged_model(run_dir, dtype)
    target = Path(output_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    # A name any machine understands, not this machine's cache folder or the run folder.
    model.config.name_or_path = target.name
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / MODEL_CARD_FILE).write_text(model_card(run_dir, merged=True), encoding="utf-8")
    run_folder.replace_dir_atomic(staging, target)
    return target


def export_gguf(run_dir: str | Path, output_path: str | Path, tensor_type: str = "f16", model_and_tokenizer=None) -> Path:
    """Write the merged model as one GGUF file (gemma3 architecture, llama.cpp tensor names)."""
    from phasegrpo.gguf_export import write_gguf

    model, tokenizer = model_and_tokenizer or merged_model(run_dir, "float32")
    return write_gguf(model, tokenizer, output_path, tensor_type=tensor_type)


def refresh_adapter_metadata(run_dir: str | Path) -> Path:
    """Give a run's adapter its portable base name and its model card (runs trained before both existed)."""
    from phasegrpo.inference import adapter_folder, run_config

    adapter = adapter_folder(run_dir)
    set_portable_base(adapter, run_config(run_dir))
    write_model_card(adapter, run_dir)
    return adapter


def hub_token() -> str:
    """The Hub token of `hf auth login` or HF_TOKEN; the fix when there is none."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise PermissionError(NOT_LOGGED_IN)
    return token


def push_folder(folder: str | Path, repo_id: str, *, private: bool = False, commit_message: str | None = None,
                endpoint: str | None = None) -> str:
    """Create `repo_id` on the Hub (if needed) and upload `folder` to it; returns the repo's URL."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Nothing to upload: {folder} is not a folder.")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"Hub repo {repo_id!r} must be NAMESPACE/NAME, e.g. your-user/phasegrpo-demo.")
    api = HfApi(endpoint=endpoint, token=hub_token())
    url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=str(folder),
                      commit_message=commit_message or f"Upload {folder.name} from phasegrpo",
                      ignore_patterns=[".*", "**/.*"])
    return str(url)


def push_run(run_dir: str | Path, repo_id: str, *, folder: str | Path | None = None, private: bool = False,
             endpoint: str | None = None) -> str:
    """Upload a run to the Hub: `folder` (e.g. an exported merged model) or else the run's adapter,
    after giving the adapter its portable base name and card."""
    hub_token()  # fail before any work when not logged in
    if folder is None:
        folder = refresh_adapter_metadata(run_dir)
    return push_folder(folder, repo_id, private=private, endpoint=endpoint)
