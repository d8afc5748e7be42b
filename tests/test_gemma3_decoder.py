"""The lean Gemma 3 forward computes what transformers' Gemma3ForCausalLM computes."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import Gemma3ForCausalLM, Gemma3TextConfig

from phasegrpo import gemma3_decoder
from phasegrpo.gemma3_decoder import Gemma3Decoder


def _model(**overrides) -> Gemma3ForCausalLM:
    torch.manual_seed(0)
    settings = dict(
        vocab_size=97, hidden_size=32, intermediate_size=48, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, max_position_embeddings=512, sliding_window=6,
        layer_types=["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
        query_pre_attn_scalar=16, pad_token_id=0,
    )
    settings.update(overrides)
    model = Gemma3ForCausalLM(Gemma3TextConfig(**settings)).eval()
    with torch.no_grad():  # transformers initialises the norms' (1 + weight) at 1: make them matter
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.normal_(0, 0.3)
    return model


def _reference_logits(model, input_ids, attention_mask, position_ids):
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids).logits[:, -1]


def test_prefill_and_decode_steps_give_transformers_logits_with_padding_finished_rows_and_a_sliding_window():
    model = _model()
    generator = torch.Generator().manual_seed(1)
    prompt_lengths = [11, 7, 11]  # longer than the sliding window of 6; row 1 left-padded
    width = max(prompt_lengths)
    input_ids = torch.randint(1, 97, (3, width), generator=generator)
    attention_mask = torch.zeros(3, width, dtype=torch.long)
    for row, length in enumerate(prompt_lengths):
        attention_mask[row, width - length :] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    decoder = Gemma3Decoder(model, capacity=width + 8)
    hidden = decoder.forward(input_ids, attention_mask, position_ids)
    logits = hidden @ model.lm_head.weight.T
    torch.testing.assert_close(logits, _reference_logits(model, input_ids, attention_mask, position_ids), atol=1e-5, rtol=1e-5)
    is_finished = torch.tensor([False, False, True])  # row 2 finished: its later slots are masked
    for _ in range(8):
        next_ids = torch.randint(1, 97, (3, 1), generator=generator)
        new_mask = (~is_finished).long()[:, None]
        next_positions = position_ids[:, -1:] + 1
        input_ids, attention_mask = torch.cat([input_ids, next_ids], 1), torch.cat([attention_mask, new_mask], 1)
        position_ids = torch.cat([position_ids, next_positions], 1)
        logits = decoder.forward(next_ids, new_mask, next_positions) @ model.lm_head.weight.T
        expected = _reference_logits(model, input_ids, attention_mask, position_ids)
        torch.testing.assert_close(logits[:2], expected[:2], atol=1e-5, rtol=1e-5)
        assert torch.isfinite(logits).all()
    assert decoder.length == width + 8


def test_selected_rows_decode_as_their_source_rows():
    model = _model()
    input_ids = torch.randint(1, 97, (2, 9), generator=torch.Generator().manual_seed(2))
    mask, positions = torch.ones_like(input_ids), torch.arange(9).repeat(2, 1)
    shared = Gemma3Decoder(model, capacity=12)
    shared.forward(input_ids, mask, positions)
    shared.select_rows(torch.tensor([1, 0, 1]))
    separate = Gemma3Decoder(model, capacity=12)
    separate.forward(input_ids[[1, 0, 1]], mask[[1, 0, 1]], positions[[1, 0, 1]])
    step = torch.tensor([[5], [6], [7]])
    torch.testing.assert_close(
        shared.forward(step, torch.ones_like(step), torch.full_like(step, 9)),
        separate.forward(step, torch.ones_like(step), torch.full_like(step, 9)),
    )


def test_a_request_beyond_the_buffer_names_the_capacity():
    decoder = Gemma3Decoder(_model(), capacity=4)
    ids = torch.ones(1, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="holds 4 slots; 5 were asked for"):
        decoder.forward(ids, torch.ones_like(ids), torch.arange(5)[None])


@pytest.mark.parametrize(
    ("overrides", "is_supported"),
    [
        ({}, True),
        ({"attn_logit_softcapping": 50.0}, False),
        ({"use_bidirectional_attention": True}, False),
        ({"rope_parameters": {"full_attention": {"rope_type": "dynamic", "rope_theta": 1e6, "factor": 2.0},
                              "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}}}, False),
    ],
)
def test_only_models_it_reproduces_are_supported(overrides, is_supported):
    assert gemma3_decoder.supports(_model(**overrides)) is is_supported


def test_a_peft_wrapped_policy_is_left_to_its_own_forward():
    # Its weights are the base weights plus LoRA products the lean forward would not see.
    policy = get_peft_model(_model(), LoraConfig(r=2, target_modules=["q_proj"]))
    assert not gemma3_decoder.supports(policy)
    assert gemma3_decoder.supports(policy.merge_and_unload())


def test_in_bf16_the_prepacked_weights_give_the_plain_product_and_the_logits_stay_close_to_transformers():
    model = _model().to(torch.bfloat16)
    linear = gemma3_decoder._Linear(model.lm_head.weight)
    states = torch.randn(8, 32, dtype=torch.bfloat16)
    assert linear.packed is not None  # oneDNN ships with every x86 PyTorch build
    torch.testing.assert_close(linear(states), torch.nn.functional.linear(states, model.lm_head.weight), atol=0, rtol=0)
    input_ids = torch.randint(1, 97, (2, 10), generator=torch.Generator().manual_seed(4))
    mask, positions = torch.ones_like(input_ids), torch.arange(10).repeat(2, 1)
    decoder = Gemma3Decoder(model, capacity=10)
    logits = decoder.logits(decoder.forward(input_ids, mask, positions)).float()
    expected = _reference_logits(model, input_ids, mask, positions).float()
    # Both round every layer's output to bf16 (8 bits of mantissa), in a different order of ops.
    assert (logits - expected).abs().max() <= 0.01 * expected.abs().max()
    assert (logits.argmax(-1) == expected.argmax(-1)).all()
