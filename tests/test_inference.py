"""`phasegrpo.load(run_dir)` and `phasegrpo generate`: the run's base, adapter and prompt format."""

import pytest
import torch
from tiny_run import make_run

import phasegrpo
from phasegrpo.cli import main
from phasegrpo.data.prompts import SYSTEM_PROMPT
from phasegrpo.domains import get_domain
from phasegrpo.inference import generate, prompt_messages


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("inference"))  # the demo preset: worked examples on


def test_load_applies_the_adapter_in_eval_mode_with_the_runs_chat_template(run_dir):
    from transformers import AutoModelForCausalLM

    model, tokenizer = phasegrpo.load(run_dir, dtype="float32")
    assert not model.training and type(model).__name__.startswith("PeftModel")
    ids = torch.tensor([[2, 10, 20, 30]])
    base = AutoModelForCausalLM.from_pretrained(str(run_dir.parent / "base")).eval()
    with torch.no_grad():
        assert not torch.allclose(model(input_ids=ids).logits, base(input_ids=ids).logits)  # the adapter is on
    text = tokenizer.apply_chat_template(prompt_messages("hi"), tokenize=False, add_generation_prompt=True)
    assert text.startswith("<bos><start_of_turn>user\n" + SYSTEM_PROMPT.strip()) and text.endswith("<start_of_turn>model\n")
    assert tokenizer.convert_tokens_to_ids("<end_of_turn>") in model.generation_config.eos_token_id


def test_prompt_messages_show_the_domains_worked_example_first():
    example_prompt, example_reply = get_domain("math").worked_example
    messages = prompt_messages("What is 7 * 8?", domain="math", worked_example=True)
    assert messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert messages[-2] == {"role": "assistant", "content": example_reply}
    assert messages[-1] == {"role": "user", "content": "What is 7 * 8?"}
    with pytest.raises(ValueError, match="pass a domain"):
        prompt_messages("x", worked_example=True)


def test_generate_command_prints_the_runs_greedy_completion(run_dir, capsys):
    model, tokenizer = phasegrpo.load(run_dir)
    expected = generate(model, tokenizer, "What is 7 * 8?", domain="math", worked_example=True, max_new_tokens=12)
    without_example = generate(model, tokenizer, "What is 7 * 8?", max_new_tokens=12)
    assert expected != without_example  # the worked example is really in the prompt
    assert main(["generate", str(run_dir), "--prompt", "What is 7 * 8?", "--domain", "math", "--max-new-tokens", "12"]) == 0
    assert capsys.readouterr().out == expected + "\n"


def test_generate_names_unknown_domains_and_missing_runs(run_dir, tmp_path, capsys):
    assert main(["generate", str(run_dir), "--prompt", "x", "--domain", "poetry"]) == 2
    assert "poetry" in capsys.readouterr().err
    assert main(["generate", str(tmp_path), "--prompt", "x"]) == 2
    assert "is not a run folder" in capsys.readouterr().err
