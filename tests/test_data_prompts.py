"""Prompts and the base-model chat template."""

import jinja2
import pytest

from phasegrpo.data import BASE_MODEL_CHAT_TEMPLATE, SYSTEM_PROMPT
from phasegrpo.data.prompts import code_prompt, function_signature, science_prompt
from phasegrpo.formats import FORMAT_INSTRUCTION


def render(messages, add_generation_prompt):
    # transformers renders chat templates with jinja2 and these options.
    environment = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return environment.from_string(BASE_MODEL_CHAT_TEMPLATE).render(
        messages=messages, add_generation_prompt=add_generation_prompt, bos_token="<bos>"
    )


def test_system_prompt_states_the_format():
    assert FORMAT_INSTRUCTION in SYSTEM_PROMPT


def test_template_folds_system_into_first_user_turn_and_ends_with_the_model_turn():
    messages = [{"role": "system", "content": "SYS"}, {"role": "user", "content": "Q?"}]
    assert render(messages, True) == "<bos><start_of_turn>user\nSYS\n\nQ?<end_of_turn>\n<start_of_turn>model\n"
    assert render(messages, False) == "<bos><start_of_turn>user\nSYS\n\nQ?<end_of_turn>\n"
    conversation = messages + [{"role": "assistant", "content": "A"}, {"role": "user", "content": "again"}]
    assert render(conversation, False) == (
        "<bos><start_of_turn>user\nSYS\n\nQ?<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n"
        "<start_of_turn>user\nagain<end_of_turn>\n"
    )
    assert render([{"role": "user", "content": "Q?"}], True) == "<bos><start_of_turn>user\nQ?<end_of_turn>\n<start_of_turn>model\n"


def test_template_works_in_a_tokenizer():
    from transformers import PreTrainedTokenizerFast
    from tokenizers import Tokenizer, models, pre_tokenizers

    backend = Tokenizer(models.WordLevel({"<unk>": 0, "<bos>": 1}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", unk_token="<unk>")
    tokenizer.chat_template = BASE_MODEL_CHAT_TEMPLATE
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<bos><start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\n"


def test_science_prompt_letters_the_choices():
    user = science_prompt("Which is a gas?", ["rock", "helium", "milk"])[1]["content"]
    assert "A) rock\nB) helium\nC) milk" in user


@pytest.mark.parametrize(
    ("test", "reference", "expected"),
    [
        ('assert remove_Occ("hello","l") == "heo"', "def remove_Occ(s,ch): \r\n    return s", "remove_Occ(s, ch)"),
        ('assert remove_Occ("hello","l") == "heo"', "", "remove_Occ(arg1, arg2)"),
        ("assert set(similar_elements((3, 4), (5, 4))) == set((4, 5))", "def similar_elements(a, b):\n  pass", "similar_elements(a, b)"),
        ("assert set(similar_elements((3, 4), (5, 4))) == set((4, 5))", "", "similar_elements(arg1, arg2)"),
        ("assert math.isclose(area(2), 12.56, rel_tol=0.01)", "", "area(arg1)"),
        ("assert f(1, key=2) == 3", "", "f(arg1, key)"),
    ],
)
def test_function_signature_from_the_first_test(test, reference, expected):
    assert function_signature(test, reference) == expected


def test_code_prompt_shows_signature_and_first_test():
    user = code_prompt("Write a function to add.", ["assert add(1, 2) == 3", "assert add(0, 0) == 0"])[1]["content"]
    assert "Function: add(arg1, arg2)" in user and "assert add(1, 2) == 3" in user and "add(0, 0)" not in user


@pytest.mark.parametrize("test", ["assert len('x') == 1", "assert (", ""])
def test_code_prompt_needs_a_user_function(test):
    with pytest.raises(ValueError):
        code_prompt("task", [test] if test else [])


@pytest.mark.parametrize("domain", ["math", "code", "science", "logic"])
def test_worked_example_is_a_solved_turn_of_the_same_domain_before_the_question(domain):
    from phasegrpo import rewards
    from phasegrpo.data import load_domain
    from phasegrpo.data.prompts import _worked_examples, with_worked_example

    row = load_domain(domain, source="synthetic", limit=1)[0]
    prompt = with_worked_example(row["prompt"], domain)
    assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user"]
    assert prompt[0] == row["prompt"][0] and prompt[-1] == row["prompt"][-1]
    example_prompt, reply = _worked_examples()[domain]
    answers = {"math": "7", "logic": "yes", "science": "B", "code": ""}
    tests = {"code": ["assert double(3) == 6"]}.get(domain, [])
    score = rewards.check_answer([reply], prompts=[example_prompt], domain=[domain], answer=[answers[domain]], tests=[tests], setup_code=[""])
    assert score == [rewards.DEFAULT_REWARD_VALUES.correct_reward]  # the example itself is right
    assert rewards.match_format_exactly([reply]) == [rewards.DEFAULT_REWARD_VALUES.exact_format_reward]
    with pytest.raises(ValueError, match="No worked example"):
        with_worked_example(row["prompt"], "poetry")
