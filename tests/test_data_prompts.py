"""The prompt parts every domain shares: the system prompt and the base-model chat template.

Each domain's own prompt is tested in tests/test_domains.py."""

import jinja2

from phasegrpo.data import BASE_MODEL_CHAT_TEMPLATE, SYSTEM_PROMPT
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
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"<unk>": 0, "<bos>": 1}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", unk_token="<unk>")
    tokenizer.chat_template = BASE_MODEL_CHAT_TEMPLATE
    text = tokenizer.apply_chat_template(
        [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<bos><start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\n"
