"""The CPU rollout loop samples from exactly the model's distribution and stops where it should."""

import pytest
import torch

from phasegrpo import gemma3_decoder, generation
from phasegrpo.generation import _sample, sample_completions


@pytest.fixture(params=["lean-gemma3", "model-forward"])
def decoder_kind(request, monkeypatch):
    """Run a test through each of the loop's decoders: the lean Gemma 3 forward and the model's own."""
    if request.param == "model-forward":
        monkeypatch.setattr(gemma3_decoder, "supports", lambda model: False)
    used = []
    original = generation._decoder_for
    monkeypatch.setattr(generation, "_decoder_for", lambda model, capacity: used.append(original(model, capacity)) or used[-1])
    yield used
    assert {type(decoder).__name__ for decoder in used} == {
        "lean-gemma3": {"_LeanGemma3Decoder"}, "model-forward": {"_ModelDecoder"}}[request.param]


def test_inverse_cdf_sampling_matches_the_softmax_distribution():
    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0, -40.0]]).repeat(40_000, 1)
    draws = _sample(logits, temperature=0.9, top_p=1.0, generator=torch.Generator().manual_seed(0))
    empirical = torch.bincount(draws, minlength=5).double() / len(draws)
    expected = torch.softmax(logits[0].double() / 0.9, dim=-1)
    assert torch.allclose(empirical, expected, atol=0.01)
    assert empirical[4] == 0  # effectively impossible tokens are never drawn


def test_sampling_over_many_blocks_matches_the_distribution_and_never_draws_a_zero_weight():
    # 5,000 entries: the two-level sampler's blocks of 1,024, the last one padded.
    logits = torch.full((5_000,), -float("inf"))
    support = torch.tensor([0, 1023, 1024, 3000, 4095, 4999])  # block edges and the padded block
    logits[support] = torch.tensor([0.5, 1.0, 0.0, 2.0, -0.5, 1.5])
    draws = _sample(logits.repeat(60_000, 1), temperature=0.9, top_p=1.0, generator=torch.Generator().manual_seed(3))
    assert set(draws.tolist()) <= set(support.tolist())
    empirical = torch.bincount(draws, minlength=5_000)[support].double() / len(draws)
    expected = torch.softmax(logits[support].double() / 0.9, dim=-1)
    assert torch.allclose(empirical, expected, atol=0.006)


def test_nucleus_filter_keeps_the_smallest_set_above_top_p_and_renormalises():
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1]])).repeat(20_000, 1)
    draws = _sample(logits, temperature=1.0, top_p=0.8, generator=torch.Generator().manual_seed(1))
    empirical = torch.bincount(draws, minlength=3).double() / len(draws)
    assert empirical[2] == 0 and abs(empirical[0] - 2 / 3) < 0.015


def test_greedy_loop_equals_transformers_generate_with_left_padding(tiny, decoder_kind):
    model, tokenizer = tiny
    prompts = ["<start_of_turn>user\nhi<end_of_turn>\n", "<start_of_turn>user\nwhat is 12 + 30 exactly?<end_of_turn>\n"]
    prompt_ids = [tokenizer(p)["input_ids"] for p in prompts]
    ours = sample_completions(model, prompt_ids, max_new_tokens=12, temperature=0.0, end_token_ids=[],
                              pad_token_id=tokenizer.pad_token_id, stop_text=None)
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        reference = model.generate(**batch, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                   eos_token_id=None)
    assert ours == reference[:, batch["input_ids"].size(1):].tolist()


class ScriptedModel(torch.nn.Module):
    """Emits a fixed token sequence per row, whatever the input, through the model call interface."""

    def __init__(self, scripts, vocab_size):
        super().__init__()
        self.scripts, self.vocab_size, self.position = scripts, vocab_size, 0
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, cache=None, **kwargs):
        logits = torch.full((input_ids.size(0), 1, self.vocab_size), -1e9)
        for row, script in enumerate(self.scripts):
            logits[row, 0, script[min(self.position, len(script) - 1)]] = 0.0
        self.position += 1
        return type("Output", (), {"logits": logits, "cache": None})()


def test_rows_stop_at_their_end_token_or_after_closing_answer(tiny):
    _, tokenizer = tiny
    def ids(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    end = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    scripts = [ids("ab") + [end] + ids("zzzz"), ids("<answer>7</answer>") + ids("more text"), ids("x" * 40)]
    model = ScriptedModel(scripts, len(tokenizer))
    out = sample_completions(model, [[5], [6, 7], [8]], max_new_tokens=30, temperature=1.0, end_token_ids=[end],
                             pad_token_id=tokenizer.pad_token_id, tokenizer=tokenizer)
    assert out[0] == ids("ab") + [end]
    assert tokenizer.decode(out[1]) == "<answer>7</answer>"
    assert len(out[2]) == 30


def test_a_repeated_prompt_is_prefilled_once_and_decodes_as_if_it_were_not(tiny, decoder_kind):
    model, tokenizer = tiny
    prompts = ["<start_of_turn>user\nhi<end_of_turn>\n", "<start_of_turn>user\nwhat is 12 + 30 exactly?<end_of_turn>\n"]
    order = [0, 1, 1, 0, 1]
    prompt_ids = [tokenizer(prompts[i])["input_ids"] for i in order]
    ours = sample_completions(model, prompt_ids, max_new_tokens=12, temperature=0.0, end_token_ids=[],
                              pad_token_id=tokenizer.pad_token_id, stop_text=None)
    prefill = [row_count for row_count, width in decoder_kind[-1].call_shapes if width > 1]
    assert prefill == [2]  # two distinct prompts, not five rows
    batch = tokenizer([prompts[i] for i in order], return_tensors="pt", padding=True)
    with torch.no_grad():
        reference = model.generate(**batch, max_new_tokens=12, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                   eos_token_id=None)
    assert ours == reference[:, batch["input_ids"].size(1):].tolist()
    assert ours[0] != ours[1]  # the rows really got their own prompt's cache


@pytest.fixture(autouse=True)
def _record_decoder_calls(monkeypatch):
    """Record (rows, new tokens) of every call the loop makes to its decoder."""
    for kind in (generation._ModelDecoder, generation._LeanGemma3Decoder):
        original = kind.__call__

        def recorded(self, input_ids, attention_mask, position_ids, _original=original):
            self.__dict__.setdefault("call_shapes", []).append(tuple(input_ids.shape))
            return _original(self, input_ids, attention_mask, position_ids)

        monkeypatch.setattr(kind, "__call__", recorded)
