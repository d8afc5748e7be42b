"""Writing a Gemma-3 text model as a GGUF file for llama.cpp-family runtimes, with the `gguf`
package's writer (llama.cpp's convert_hf_to_gguf is not a Python dependency).

What llama.cpp expects, and this file writes (checked against the embedded model's own GGUF,
which llama.cpp's converter made):
- architecture `gemma3` with its hyperparameters (`gemma3.context_length`, `.block_count`, ...);
- tensor names from `gguf.get_tensor_name_map` (`token_embd`, `blk.N.attn_q`, `blk.N.ffn_norm`,
  ...), no `output` tensor when the head is tied to the embedding;
- every RMSNorm weight stored as `1 + w`: Gemma's norm multiplies by `1 + w` and llama.cpp's by
  the stored weight (transformers' GGUF reader subtracts the 1 again);
- 1-D tensors in f32, matrices in f16 (or f32 with `tensor_type="f32"`);
- a SentencePiece-style vocabulary (`tokenizer.ggml.model = llama`): every token, a score that
  orders merges as the BPE merge ranks do, a token type (control, user-defined, byte, normal),
  the special token ids, and the run's chat template.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

ARCHITECTURE = "gemma3"
TENSOR_TYPES = ("f16", "f32")
_BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")
_SPACE_MARKER = "\u2581"  # SentencePiece's visible space
_SPECIAL_SCORE = -1000.0  # what llama.cpp's converter gives control and user-defined tokens
# llama.cpp's gemma3 graph makes every 6th layer global and the rest sliding-window.
_LLAMA_CPP_GLOBAL_EVERY = 6


def write_gguf(model, tokenizer, path: str | Path, *, tensor_type: str = "f16", name: str | None = None) -> Path:
    """Write `model` (a Gemma3ForCausalLM, adapters merged) and its tokenizer to `path`."""
    import gguf

    if tensor_type not in TENSOR_TYPES:
        raise ValueError(f"GGUF tensor type {tensor_type!r} is not supported; use one of {', '.join(TENSOR_TYPES)}.")
    config = model.config
    if getattr(config, "model_type", None) != "gemma3_text":
        raise ValueError(
            f"GGUF export writes Gemma-3 text models; this model is {getattr(config, 'model_type', '?')!r}. "
            f"Export --merged and convert that folder with llama.cpp's convert_hf_to_gguf.py."
        )
    _warn_about_llama_cpp_differences(config)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    writer = gguf.GGUFWriter(str(temp), ARCHITECTURE)
    _add_hyperparameters(writer, config, name or path.stem, tensor_type)
    _add_vocabulary(writer, tokenizer, config.vocab_size)
    for tensor_name, array in gguf_tensors(model, tensor_type):
        writer.add_tensor(tensor_name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    temp.replace(path)  # a kill leaves no half-written GGUF under the final name
    return path


def gguf_tensor_names(model) -> dict[str, str]:
    """transformers parameter name → GGUF tensor name, for every tensor the GGUF holds."""
    import gguf

    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, model.config.num_hidden_layers)
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    names = {}
    for parameter_name in model.state_dict():
        stem, _, suffix = parameter_name.rpartition(".")
        if tied and stem == "lm_head":
            continue  # llama.cpp reuses token_embd as the output head
        gguf_name = name_map.get_name(stem)
        if gguf_name is None:
            raise ValueError(f"No GGUF name for tensor {parameter_name!r}: the model is not a plain Gemma-3 text model.")
        names[parameter_name] = f"{gguf_name}.{suffix}"
    return names


def gguf_tensors(model, tensor_type: str = "f16"):
    """(GGUF name, numpy array) for every tensor, norms shifted to `1 + w`, matrices in `tensor_type`."""
    state = model.state_dict()
    for parameter_name, gguf_name in gguf_tensor_names(model).items():
        array = state[parameter_name].detach().float().cpu().numpy()
        if gguf_name.endswith("norm.weight"):
            array = array + 1.0
        if array.ndim > 1 and tensor_type == "f16":
            array = array.astype(np.float16)
        yield gguf_name, np.ascontiguousarray(array, dtype=array.dtype)


def _add_hyperparameters(writer, config, name: str, tensor_type: str) -> None:
    import gguf

    writer.add_type("model")
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_sliding_window(int(config.sliding_window))
    full, sliding = _rope_parameters(config)
    writer.add_rope_freq_base(float(full.get("rope_theta", 1_000_000.0)))
    if sliding.get("rope_theta") is not None:
        writer.add_rope_freq_base_swa(float(sliding["rope_theta"]))
    if full.get("rope_type") == "linear" and full.get("factor"):
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(full["factor"]))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if tensor_type == "f16" else gguf.LlamaFileType.ALL_F32)


def _rope_parameters(config) -> tuple[dict, dict]:
    """(full-attention, sliding-attention) RoPE settings, from transformers 5's `rope_parameters`
    or the older `rope_theta` / `rope_local_base_freq` / `rope_scaling` fields."""
    parameters = getattr(config, "rope_parameters", None) or {}
    if "full_attention" in parameters:
        return dict(parameters["full_attention"]), dict(parameters.get("sliding_attention") or {})
    full = {"rope_theta": getattr(config, "rope_theta", 1_000_000.0), **(getattr(config, "rope_scaling", None) or {})}
    return full, {"rope_theta": getattr(config, "rope_local_base_freq", None)}


def _warn_about_llama_cpp_differences(config) -> None:
    layer_types = list(getattr(config, "layer_types", None) or [])
    expected = ["full_attention" if (index + 1) % _LLAMA_CPP_GLOBAL_EVERY == 0 else "sliding_attention" for index in range(len(layer_types))]
    if layer_types and layer_types != expected:
        logger.warning("This model's global/sliding layer pattern differs from llama.cpp's fixed Gemma-3 pattern; llama.cpp may compute it differently.")
    if getattr(config, "query_pre_attn_scalar", config.head_dim) != config.head_dim:
        logger.warning("query_pre_attn_scalar (%s) != head_dim (%s): llama.cpp scales attention by head_dim.",
                       config.query_pre_attn_scalar, config.head_dim)


def vocabulary(tokenizer, vocab_size: int) -> tuple[list[str], list[float], list[int]]:
    """(tokens, scores, token types) for ids 0..vocab_size-1, SentencePiece style.

    A normal token's score is minus the rank of the BPE merge that makes it (SentencePiece
    applies the highest-scoring merge first, as BPE applies the lowest rank); tokens no merge
    makes score below every merge. Added tokens are control (special) or user-defined; a
    user-defined token's visible-space markers become spaces, since llama.cpp matches them
    on the raw text.
    """
    import gguf

    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    model = backend.get("model", {})
    merges = model.get("merges") or []
    merge_rank: dict[str, int] = {}
    for rank, merge in enumerate(merges):
        left, right = merge if isinstance(merge, list) else merge.split(" ", 1)
        merge_rank.setdefault(left + right, rank)
    added = {token["id"]: token for token in backend.get("added_tokens", [])}
    marks_spaces = _SPACE_MARKER in json.dumps(backend.get("normalizer") or {})
    id_to_token = {index: token for token, index in tokenizer.get_vocab().items()}
    tokens, scores, types = [], [], []
    for index in range(vocab_size):
        token = id_to_token.get(index)
        if token is None:  # the embedding is larger than the vocabulary
            tokens.append(f"[PAD{index}]")
            scores.append(_SPECIAL_SCORE)
            types.append(gguf.TokenType.UNUSED)
        elif index in added:
            is_special = added[index].get("special", False)
            tokens.append(token if is_special or not marks_spaces else token.replace(_SPACE_MARKER, " "))
            scores.append(_SPECIAL_SCORE)
            types.append(gguf.TokenType.CONTROL if is_special else gguf.TokenType.USER_DEFINED)
        elif _BYTE_TOKEN.fullmatch(token):
            tokens.append(token)
            scores.append(0.0)
            types.append(gguf.TokenType.BYTE)
        else:
            tokens.append(token)
            scores.append(-float(merge_rank.get(token, len(merges) + index)))
            types.append(gguf.TokenType.NORMAL)
    return tokens, scores, [int(kind) for kind in types]


def _add_vocabulary(writer, tokenizer, vocab_size: int) -> None:
    tokens, scores, types = vocabulary(tokenizer, vocab_size)
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    for token_id, add in (
        (tokenizer.bos_token_id, writer.add_bos_token_id), (tokenizer.eos_token_id, writer.add_eos_token_id),
        (tokenizer.unk_token_id, writer.add_unk_token_id), (tokenizer.pad_token_id, writer.add_pad_token_id),
    ):
        if token_id is not None:
            add(int(token_id))
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    if isinstance(end_of_turn, int) and end_of_turn != tokenizer.unk_token_id:
        writer.add_eot_token_id(end_of_turn)  # the chat turn ends there, as generation_config says
    writer.add_add_bos_token(tokenizer.bos_token_id is not None)
    writer.add_add_eos_token(False)
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(tokenizer.chat_template)
