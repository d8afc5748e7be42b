"""The `</answer>` stop rule on every generation path: the completion ends right after `</answer>`
with the end-of-turn token, so TRL counts only completions that really ran out of tokens as
truncated (clipped_ratio) and mask_truncated_completions keeps well-formed answers."""

import pytest
import torch

from phasegrpo import run_folder
from phasegrpo.config import preset
from phasegrpo.stop_rule import end_completions, generation_kwargs
from phasegrpo.training import train
from phasegrpo.training.setup import grpo_args

ANSWER_CLOSE = "</answer>"


def writes_answer_close(tokenizer, before="", confidence=12.0):
    """A tiny model that replies `before` (distinct characters), `</answer>`, then `x` forever."""
    from tiny import scripted_model

    reply = before + ANSWER_CLOSE
    successors = dict(zip(reply, reply[1:], strict=False))
    successors.update({"\n": reply[0], ">": "x", "x": "x"})
    return scripted_model(tokenizer, successors, otherwise="<", confidence=confidence)


def ids_of(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_end_completions_cuts_after_the_answer_and_appends_the_end_of_turn():
    from tiny import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    end_of_turn, eos, pad = (tokenizer.convert_tokens_to_ids(t) for t in ("<end_of_turn>", "<eos>", "<pad>"))
    stopped_then_padded = ids_of(tokenizer, "ok</answer>") + [pad, pad]  # generate pads rows that stopped early
    ended_by_the_model = ids_of(tokenizer, "hi") + [eos]
    out_of_tokens = ids_of(tokenizer, "<answer>4")
    ids, logprobs = end_completions(
        [stopped_then_padded, ended_by_the_model, out_of_tokens],
        [[-0.5] * 13, [-0.1] * 3, [-0.2] * 9],
        tokenizer=tokenizer, end_token_ids=[eos, end_of_turn], stop_token_id=end_of_turn,
    )
    assert ids == [ids_of(tokenizer, "ok</answer>") + [end_of_turn], ended_by_the_model, out_of_tokens]
    assert logprobs[0] == [-0.5] * 11 + [0.0]  # the appended token is forced: probability 1
    assert logprobs[1:] == [[-0.1] * 3, [-0.2] * 9]


def test_the_cpu_loop_ends_a_stopped_completion_with_the_end_of_turn(tiny):
    from phasegrpo.generation import sample_completions

    _, tokenizer = tiny
    model = writes_answer_close(tokenizer)
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    out = sample_completions(model, [ids_of(tokenizer, "q\n")], max_new_tokens=20, temperature=0.0, end_token_ids=[tokenizer.eos_token_id, end_of_turn],
                             pad_token_id=tokenizer.pad_token_id, tokenizer=tokenizer, stop_token_id=end_of_turn)
    assert out == [ids_of(tokenizer, ANSWER_CLOSE) + [end_of_turn]]


def test_trls_generation_paths_get_the_stop_in_their_own_words(tmp_path):
    assert generation_kwargs(use_vllm=False) == {"stop_strings": [ANSWER_CLOSE]}  # transformers GenerationConfig
    vllm_stop = {"stop": [ANSWER_CLOSE], "include_stop_str_in_output": True}  # vLLM SamplingParams
    assert generation_kwargs(use_vllm=True) == vllm_stop
    assert grpo_args(preset("demo", use_vllm=True), tmp_path).generation_kwargs == vllm_stop
    assert grpo_args(preset("demo", use_vllm=True, stop_at_answer_end=False), tmp_path).generation_kwargs is None
    # transformers' stop_strings need the tokenizer in generate(): the trainer adds them (the
    # training tests below), so the GRPOConfig also works with a plain GRPOTrainer.
    assert grpo_args(preset("demo"), tmp_path).generation_kwargs is None
    with_users = preset("demo", use_vllm=True, trl_args={"generation_kwargs": {"top_k": 20}})
    assert grpo_args(with_users, tmp_path).generation_kwargs == {**vllm_stop, "top_k": 20}


def test_trls_vllm_request_carries_the_stop_and_the_trainer_ends_its_completions(tmp_path, tiny):
    """TRL 1.16's vLLM client (server mode) sends SamplingParams built from generation_kwargs; vLLM
    is not installed here, so the HTTP call is stood in for, returning what vLLM returns with the
    stop: the tokens up to `</answer>`, no end token. The trainer's hook then ends them."""
    from types import SimpleNamespace

    from trl.generation.vllm_client import VLLMClient

    from phasegrpo.training.trainer import PhaseGRPOTrainer

    _, tokenizer = tiny
    answer = ids_of(tokenizer, "<answer>4</answer>")
    sent = []
    client = VLLMClient.__new__(VLLMClient)  # no server to connect to
    client.model, client.base_url = "policy", "http://vllm"
    client._post = lambda url, json: sent.append(json) or {"choices": [
        {"prompt_token_ids": [5], "token_ids": answer, "logprobs": {"content": [
            {"token": f"token_id:{t}", "logprob": -0.5, "top_logprobs": []} for t in answer]}}]}
    args = grpo_args(preset("demo", use_vllm=True, vllm_mode="server"), tmp_path)
    output = client.generate([[5]], n=1, max_tokens=args.max_completion_length, generation_kwargs=args.generation_kwargs)
    assert sent[0]["stop"] == [ANSWER_CLOSE] and sent[0]["include_stop_str_in_output"] is True

    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    trainer = SimpleNamespace(config=preset("demo", use_vllm=True), tokenizer=tokenizer, eos_token_ids=[tokenizer.eos_token_id, end_of_turn])
    logprobs = [[position[0] for position in sequence] for sequence in output["logprobs"]]  # as TRL keeps the top-1
    ids, logprobs = PhaseGRPOTrainer.finish_rollouts(trainer, output["completion_ids"], logprobs)
    assert ids == [answer + [end_of_turn]] and logprobs == [[-0.5] * len(answer) + [0.0]]


SEEN_COMPLETION_IDS: list[list[int]] = []


def record_completions(completions, completion_ids=None, **kwargs):
    SEEN_COMPLETION_IDS.extend(list(ids) for ids in completion_ids)
    return [float(len(ids)) for ids in completion_ids]


def stop_rule_run(tmp_path, tokenizer, before="", **overrides):
    SEEN_COMPLETION_IDS.clear()
    values = dict(
        model="tiny", output_dir=str(tmp_path / "run"), max_steps=1, max_completion_length=16, rows_per_domain=8,
        save_steps=100, eval_before_after=False, phase_rewards=[["record_completions"]] * 3,
    )
    values.update(overrides)
    result = train(preset("demo", **values), model=writes_answer_close(tokenizer, before), tokenizer=tokenizer,
                   reward_functions={"record_completions": record_completions}, show_progress=False)
    (record,), _ = run_folder.read_jsonl(result.run_dir / "metrics.jsonl")
    return record["trl"], list(SEEN_COMPLETION_IDS)


@pytest.mark.parametrize("fast_cpu_generation", [True, False], ids=["cpu-loop", "trl-transformers-generate"])
def test_a_training_step_ends_answers_with_the_end_of_turn_and_counts_none_clipped(tmp_path, tiny, fast_cpu_generation, monkeypatch):
    from transformers.models.gemma3.modeling_gemma3 import Gemma3TextModel

    from phasegrpo.gemma3_decoder import Gemma3Decoder

    _, tokenizer = tiny
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    decode_steps = []
    # Generation runs through transformers' forward (TRL's path) or the CPU loop's lean Gemma 3 one.
    for forward_owner in (Gemma3TextModel, Gemma3Decoder):
        def counting_forward(self, input_ids=None, *args, _real=forward_owner.forward, **kwargs):
            if input_ids is not None and input_ids.size(1) == 1:  # only generation feeds one token at a time
                decode_steps.append(1)
            return _real(self, input_ids, *args, **kwargs)

        monkeypatch.setattr(forward_owner, "forward", counting_forward)
    metrics, completions = stop_rule_run(tmp_path, tokenizer, fast_cpu_generation=fast_cpu_generation,
                                         trl_args={"mask_truncated_completions": True})
    # Generation itself stopped at `</answer>` (9 tokens), not at max_completion_length (16).
    assert len(decode_steps) == len(ANSWER_CLOSE) - 1
    texts = [tokenizer.decode(ids) for ids in completions]
    assert len(completions) == 8 and all(ids[-1] == end_of_turn for ids in completions), texts
    assert all(text.endswith(ANSWER_CLOSE + "<end_of_turn>") and text.count(ANSWER_CLOSE) == 1 for text in texts), texts
    assert metrics["completions/clipped_ratio"] == 0.0
    # mask_truncated_completions keeps them: the loss sees their tokens (a masked batch logs entropy 0).
    assert metrics["entropy"] > 0


@pytest.mark.parametrize("fast_cpu_generation", [True, False], ids=["cpu-loop", "trl-transformers-generate"])
def test_only_completions_that_run_out_of_tokens_count_as_clipped(tmp_path, tiny, fast_cpu_generation):
    _, tokenizer = tiny
    metrics, completions = stop_rule_run(tmp_path, tokenizer, before="0123456789", fast_cpu_generation=fast_cpu_generation)
    assert [tokenizer.decode(ids) for ids in completions] == ["0123456789</answ"] * 8  # 16 tokens: no room to close
    assert metrics["completions/clipped_ratio"] == 1.0


def test_trl_generate_gets_the_tokenizer_only_for_the_call(tiny):
    from peft import LoraConfig, get_peft_model

    from phasegrpo.training.trl_compat import generate_with_tokenizer

    _, tokenizer = tiny
    model = get_peft_model(writes_answer_close(tokenizer), LoraConfig(r=2, target_modules=["q_proj"]))
    prompt = torch.tensor([ids_of(tokenizer, "q\n")])
    with generate_with_tokenizer(model, tokenizer):
        out = model.generate(input_ids=prompt, max_new_tokens=12, do_sample=False, stop_strings=[ANSWER_CLOSE])
    assert tokenizer.decode(out[0, prompt.size(1):]) == ANSWER_CLOSE
    assert "generate" not in vars(model.get_base_model())
    with pytest.raises(ValueError, match="tokenizer"):
        model.generate(input_ids=prompt, max_new_tokens=12, do_sample=False, stop_strings=[ANSWER_CLOSE])


def test_the_forced_end_of_turn_carries_no_loss_and_nothing_else_changes():
    from tiny import tiny_tokenizer

    from phasegrpo.stop_rule import without_forced_end_tokens

    tokenizer = tiny_tokenizer()
    end_of_turn, eos, pad = (tokenizer.convert_tokens_to_ids(t) for t in ("<end_of_turn>", "<eos>", "<pad>"))
    rows = [
        ids_of(tokenizer, "ok</answer>") + [end_of_turn],  # stopped by the rule: the end token is forced
        ids_of(tokenizer, "hi") + [end_of_turn],  # the model ended its turn itself
        ids_of(tokenizer, "ok</answer>") + [eos],  # another end token after the answer: sampled
        ids_of(tokenizer, "<answer>4"),  # ran out of tokens
    ]
    width = max(len(ids) for ids in rows)
    completion_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in rows])
    completion_mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in rows])
    scored = without_forced_end_tokens(completion_ids, completion_mask, tokenizer=tokenizer, stop_token_id=end_of_turn)
    expected = completion_mask.clone()
    expected[0, len(rows[0]) - 1] = 0
    assert torch.equal(scored, expected)
    assert torch.equal(completion_mask[0], torch.tensor([1] * len(rows[0]) + [0] * (width - len(rows[0]))))  # input untouched


@pytest.mark.parametrize("fast_cpu_generation", [True, False], ids=["cpu-loop", "trl-transformers-generate"])
def test_a_training_step_scores_every_sampled_token_but_not_the_forced_end(tmp_path, tiny, fast_cpu_generation, monkeypatch):
    from phasegrpo.training.trainer import PhaseGRPOTrainer

    _, tokenizer = tiny
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    outputs = []
    real_after_scoring = PhaseGRPOTrainer.after_scoring

    def recording_after_scoring(self, inputs, output, step_metrics):
        real_after_scoring(self, inputs, output, step_metrics)
        outputs.append(output)

    monkeypatch.setattr(PhaseGRPOTrainer, "after_scoring", recording_after_scoring)
    metrics, completions = stop_rule_run(tmp_path, tokenizer, fast_cpu_generation=fast_cpu_generation)
    (output,) = outputs
    ids, mask = output["completion_ids"], output["completion_mask"]
    assert all(row[-1] == end_of_turn for row in completions)
    for row, completion in enumerate(completions):
        # Every token before the forced end is scored; the end token and the padding are not.
        assert mask[row].tolist() == [1] * (len(completion) - 1) + [0] * (ids.size(1) - len(completion) + 1)
    assert int(output["num_items_in_batch"]) == int(mask.sum())  # the loss divides by the scored tokens
    assert metrics["completions/clipped_ratio"] == 0.0  # still a terminated completion for TRL
