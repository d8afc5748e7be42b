"""Evaluation's generation: the device it runs on (GPU mocked: none here), its batch size, the
vLLM path (vLLM stood in for), the `</answer>` stop, and the cached decoding it relies on."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from tiny import tiny_model, tiny_tokenizer

from phasegrpo import evaluation
from phasegrpo.cli import main
from phasegrpo.evaluation import default_batch_size, eval_device, evaluate_rows, load_eval_rows

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    tokenizer = tiny_tokenizer()
    return tiny_model(tokenizer), tokenizer


@pytest.fixture(scope="module")
def rows():
    return load_eval_rows(source="synthetic", rows_per_domain=17, domains=("math", "science", "logic", "code"))


@pytest.fixture
def gpu_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("LOCAL_RANK", raising=False)


def test_eval_device_is_the_gpu_when_torch_sees_one(monkeypatch, gpu_visible):
    assert eval_device() == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_RANK", "1")  # one process per GPU under torchrun / accelerate launch
    assert eval_device() == torch.device("cuda", 1)
    assert eval_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert eval_device() == torch.device("cpu")
    assert default_batch_size("cuda") == 64 and default_batch_size("cpu") == 16


def spy_on_generation(monkeypatch):
    batches = []
    real = evaluation.sample_completions

    def recording(model, prompt_ids, **kwargs):
        batches.append(len(prompt_ids))
        return real(model, prompt_ids, **kwargs)

    monkeypatch.setattr(evaluation, "sample_completions", recording)
    return batches


def record_moves(monkeypatch, model):
    """The tiny model stays on the CPU (no GPU here); what it was asked to move to is recorded."""
    moves = []
    monkeypatch.setattr(model, "to", lambda device, *a, **k: moves.append(torch.device(device)) or model, raising=False)
    return moves


def test_a_cpu_model_moves_to_the_gpu_and_batches_for_it(monkeypatch, tiny, rows, gpu_visible):
    model, tokenizer = tiny
    moves, batches = record_moves(monkeypatch, model), spy_on_generation(monkeypatch)
    result = evaluate_rows(model, tokenizer, rows, max_new_tokens=2)
    assert moves == [torch.device("cuda", 0)]
    assert batches == [64, 4] and result["settings"]["batch_size"] == 64


def test_device_cpu_keeps_the_model_on_the_cpu(monkeypatch, tiny, rows, gpu_visible):
    model, tokenizer = tiny
    moves, batches = record_moves(monkeypatch, model), spy_on_generation(monkeypatch)
    result = evaluate_rows(model, tokenizer, rows.select(range(20)), max_new_tokens=2, device="cpu")
    assert moves == [] and batches == [16, 4]
    assert result["settings"]["generation"] == "cpu"


def test_load_for_eval_places_the_model(monkeypatch, gpu_visible):
    import phasegrpo.models as models

    tokenizer = tiny_tokenizer()
    model = tiny_model(tokenizer)
    moves = record_moves(monkeypatch, model)
    monkeypatch.setattr(models, "load_tokenizer", lambda name: tokenizer)
    monkeypatch.setattr(models, "load_model", lambda name, dtype: model)
    evaluation.load_for_eval("tiny")
    assert moves == [torch.device("cuda", 0)]


@pytest.mark.parametrize("lean_decoder", [True, False], ids=["lean-gemma3", "model-forward"])
def test_decoding_prefills_once_and_then_feeds_one_token_per_row_with_the_cache(monkeypatch, tiny, rows, lean_decoder):
    """Eval speed: a batch is prefilled once, then every step feeds one new token per row and
    extends the same cache; re-running the batch or dropping the cache multiplies the cost."""
    from phasegrpo import gemma3_decoder, generation

    if not lean_decoder:
        monkeypatch.setattr(gemma3_decoder, "supports", lambda model: False)
    model, tokenizer = tiny
    decoders, calls = [], []
    make_decoder = generation._decoder_for
    monkeypatch.setattr(generation, "_decoder_for", lambda *args, **kwargs: decoders.append(make_decoder(*args, **kwargs)) or decoders[-1])
    for kind in (generation._ModelDecoder, generation._LeanGemma3Decoder):
        def counted(self, input_ids, attention_mask, position_ids, _call=kind.__call__):
            calls.append(tuple(input_ids.shape))
            return _call(self, input_ids, attention_mask, position_ids)

        monkeypatch.setattr(kind, "__call__", counted)
    subset = rows.select(range(8))
    result = evaluate_rows(model, tokenizer, subset, max_new_tokens=10, batch_size=8, device="cpu")
    longest = max(sample["completion_tokens"] for sample in result["samples"])
    (decoder,) = decoders
    assert type(decoder).__name__ == ("_LeanGemma3Decoder" if lean_decoder else "_ModelDecoder")
    prefill_shape, *decode = calls
    assert prefill_shape[0] == 8 and prefill_shape[1] > 1
    assert decode == [(8, 1)] * (longest - 1)  # one forward per new token after the first: no re-runs
    cached = decoder.decoder.length if lean_decoder else decoder.cache.get_seq_length()
    assert cached == prefill_shape[1] + longest - 1  # one cache, extended by every step


class FakeVLLM:
    """Stands in for the vllm package: records what phasegrpo asks of it; every completion is
    `<answer>4</answer>` as vLLM returns it with the `</answer>` stop (no end token)."""

    def __init__(self, tokenizer):
        self.tokenizer, self.llm_options, self.sampling, self.requests = tokenizer, None, [], []
        fake = self

        class LLM:
            def __init__(self, **options):
                fake.llm_options = options

            def generate(self, prompts, sampling, lora_request=None, use_tqdm=True):
                fake.sampling.extend(sampling)
                fake.requests.append(lora_request)
                ids = tokenizer("<answer>4</answer>", add_special_tokens=False)["input_ids"]
                return [types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=ids)]) for _ in prompts]

        self.module = types.ModuleType("vllm")
        self.module.LLM = LLM
        self.module.SamplingParams = lambda **kwargs: kwargs
        self.lora = types.ModuleType("vllm.lora")
        self.request = types.ModuleType("vllm.lora.request")
        self.request.LoRARequest = lambda name, index, path: ("lora", name, index, path)

    def install(self, monkeypatch):
        for name, module in (("vllm", self.module), ("vllm.lora", self.lora), ("vllm.lora.request", self.request)):
            monkeypatch.setitem(sys.modules, name, module)


def test_vllm_engine_generates_with_the_stop_and_the_adapter(monkeypatch, tmp_path, tiny, rows):
    from phasegrpo.vllm_eval import VLLMEngine

    _, tokenizer = tiny
    fake = FakeVLLM(tokenizer)
    fake.install(monkeypatch)
    (tmp_path / "adapter_config.json").write_text('{"r": 16}')
    engine = VLLMEngine("some/model", adapter=tmp_path)
    assert fake.llm_options["model"] == "some/model" and fake.llm_options["enable_lora"] and fake.llm_options["max_lora_rank"] == 16
    result = evaluate_rows(engine, tokenizer, rows.select(range(3)), max_new_tokens=32)
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert all(params["stop"] == ["</answer>"] and params["include_stop_str_in_output"] for params in fake.sampling)
    assert all(end_of_turn in params["stop_token_ids"] and params["max_tokens"] == 32 for params in fake.sampling)
    assert fake.requests == [("lora", "adapter", 1, str(tmp_path))]
    answer_tokens = len(tokenizer("<answer>4</answer>", add_special_tokens=False)["input_ids"])
    assert [s["completion_tokens"] for s in result["samples"]] == [answer_tokens + 1] * 3  # + the end of turn
    assert result["settings"]["generation"] == "vllm"


def test_eval_use_vllm_without_vllm_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm raises ImportError
    assert main(["eval", "--use-vllm", "--model", "some/model", "--no-progress"]) == 2
    error = capsys.readouterr().err
    assert "--use-vllm needs vLLM" in error and "pip install vllm" in error
