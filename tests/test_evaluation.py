"""Evaluation: well-formed numbers on a tiny model, exact numbers on scripted completions."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from tiny import tiny_model, tiny_tokenizer

from phasegrpo import evaluation, sandbox
from phasegrpo.evaluation import evaluate_rows, format_table, load_eval_rows, pass_at_k, summarize
from phasegrpo.formats import render
from phasegrpo.router import RewardRouter

torch.set_num_threads(1)

RATES = ("accuracy", "exact_format_rate", "refusal_rate")


@pytest.fixture(scope="module")
def tiny():
    tokenizer = tiny_tokenizer()
    return tiny_model(tokenizer), tokenizer


@pytest.fixture(scope="module")
def rows():
    return load_eval_rows(source="synthetic", rows_per_domain=2, domains=("math", "science", "logic"))


def test_tiny_model_gives_well_formed_numbers_per_domain(tiny, rows):
    model, tokenizer = tiny
    result = evaluate_rows(model, tokenizer, rows, max_new_tokens=6, batch_size=4)
    summary = result["summary"]
    assert list(summary) == ["overall", "logic", "math", "science"]
    assert summary["overall"]["rows"] == 6 and all(summary[d]["rows"] == 2 for d in ("logic", "math", "science"))
    for numbers in summary.values():
        assert all(0.0 <= numbers[name] <= 1.0 for name in RATES)
        assert 1 <= numbers["mean_completion_tokens"] <= 6
        assert math.isfinite(numbers["mean_reward"])
        assert "pass_at" not in numbers
    assert len(result["samples"]) == 6
    assert result["settings"]["decoding"] == "greedy"
    json.dumps(result)  # the result goes to a JSON file as is
    assert format_table(summary).splitlines()[2].startswith("overall")


def _script(monkeypatch, tokenizer, texts_by_question: dict[str, list[str]]):
    """Make generation answer each prompt with the next scripted text for its question."""
    served: dict[str, int] = {}
    calls = []

    def fake_sample_completions(model, prompt_ids, **kwargs):
        calls.append((len(prompt_ids), kwargs))
        completions = []
        for ids in prompt_ids:
            prompt_text = tokenizer.decode(ids)
            question = next(q for q in texts_by_question if q in prompt_text)
            index = served.get(question, 0)
            served[question] = index + 1
            completions.append(tokenizer.encode(texts_by_question[question][index], add_special_tokens=False))
        return completions

    monkeypatch.setattr(evaluation, "sample_completions", fake_sample_completions)
    return calls


def test_numbers_are_right_for_scripted_completions(monkeypatch, tiny, rows):
    model, tokenizer = tiny
    math_rows = rows.filter(lambda row: row["domain"] == "math")
    logic_rows = rows.filter(lambda row: row["domain"] == "logic")
    questions = [row["prompt"][-1]["content"] for row in list(math_rows) + list(logic_rows)]
    answers = [row["answer"] for row in list(math_rows) + list(logic_rows)]
    wrong_logic = "yes" if answers[3] == "no" else "no"
    texts = [
        render("Multiply.", answers[0]),          # math: correct, exact format
        f"The answer is {answers[1]}",            # math: no tags, so not correct, not exact
        "I cannot help with that.",              # logic: a refusal
        render("Compare.", wrong_logic),         # logic: exact format, wrong
    ]
    _script(monkeypatch, tokenizer, {q: [t] for q, t in zip(questions, texts, strict=True)})
    from datasets import concatenate_datasets

    subset = concatenate_datasets([math_rows, logic_rows])
    result = evaluate_rows(model, tokenizer, subset, max_new_tokens=64, batch_size=3)
    summary = result["summary"]
    assert summary["math"]["accuracy"] == 0.5 and summary["math"]["exact_format_rate"] == 0.5
    assert summary["math"]["refusal_rate"] == 0.0
    assert summary["logic"]["accuracy"] == 0.0 and summary["logic"]["exact_format_rate"] == 0.5
    assert summary["logic"]["refusal_rate"] == 0.5
    assert summary["overall"]["accuracy"] == 0.25 and summary["overall"]["refusal_rate"] == 0.25
    lengths = [len(tokenizer.encode(t, add_special_tokens=False)) for t in texts]
    assert summary["overall"]["mean_completion_tokens"] == pytest.approx(sum(lengths) / 4)
    # The total reward is the reference router's score at the end of training (the last phase).
    router = RewardRouter()
    expected = router(
        prompts=subset["prompt"], completions=texts, trainer_state=SimpleNamespace(global_step=1, max_steps=1),
        **{name: subset[name] for name in subset.column_names if name != "prompt"},
    )
    assert [s["reward"] for s in result["samples"]] == pytest.approx(expected)
    assert summary["overall"]["mean_reward"] == pytest.approx(sum(expected) / 4)
    assert summary["math"]["mean_reward"] == pytest.approx(sum(expected[:2]) / 2)
    assert expected[0] > expected[1] and expected[3] > expected[2]
    assert result["samples"][0]["question"] == questions[0] and result["samples"][0]["reference"] == answers[0]


def test_scores_with_the_given_router_in_its_last_phase(monkeypatch, tiny, rows):
    """A run's router: its own last phase, weights and reward values. Correctness and refusal are
    still read when that phase leaves check_answer and punish_refusal off."""
    model, tokenizer = tiny
    math_rows = rows.filter(lambda row: row["domain"] == "math")
    questions = [row["prompt"][-1]["content"] for row in math_rows]
    texts = [render("Multiply.", math_rows[0]["answer"]), "I cannot help with that."]
    _script(monkeypatch, tokenizer, {q: [t] for q, t in zip(questions, texts, strict=True)})
    router = RewardRouter(
        phase_rewards=[["check_answer"], ["match_format_exactly"]],
        reward_weights={"match_format_exactly": [1.0, 2.0]},
        reward_values={"exact_format_reward": 1.5, "correct_reward": 2.0},
    )
    result = evaluate_rows(model, tokenizer, math_rows, max_new_tokens=64, router=router)
    assert [s["reward"] for s in result["samples"]] == [2.0 * 1.5, 0.0]  # phase 1: weight 2 x exact format 1.5
    assert [s["is_correct"] for s in result["samples"]] == [True, False]  # full credit is this table's 2.0
    assert [s["is_refusal"] for s in result["samples"]] == [False, True]


def test_code_runs_in_the_sandbox_once_per_completion(monkeypatch, tiny):
    model, tokenizer = tiny
    code_rows = load_eval_rows(source="synthetic", rows_per_domain=2, domains=("code",))
    questions = [row["prompt"][-1]["content"] for row in code_rows]
    texts = [render("Write it.", "```python\n" + (row["answer"] or "pass") + "\n```") for row in code_rows]
    _script(monkeypatch, tokenizer, {q: [t] for q, t in zip(questions, texts, strict=True)})
    programs_run = []

    def counting_run_programs(programs, **options):
        programs_run.extend(programs)
        return [sandbox.Verdict(len(program.tests), len(program.tests), "ok") for program in programs]

    monkeypatch.setattr(sandbox, "run_programs", counting_run_programs)
    result = evaluate_rows(model, tokenizer, code_rows, max_new_tokens=64, batch_size=2)
    assert len(programs_run) == 2
    assert [s["is_correct"] for s in result["samples"]] == [True, True]


def test_pass_at_k_with_sampling(monkeypatch, tiny, rows):
    model, tokenizer = tiny
    row = rows.filter(lambda r: r["domain"] == "math").select([0])
    question, answer = row[0]["prompt"][-1]["content"], row[0]["answer"]
    wrong = render("Guess.", str(int(answer) + 1))
    calls = _script(monkeypatch, tokenizer, {question: [wrong, render("Multiply.", answer), wrong, wrong]})
    result = evaluate_rows(model, tokenizer, row, max_new_tokens=32, samples_per_row=4, temperature=0.8, batch_size=4)
    assert calls[0][0] == 4 and calls[0][1]["temperature"] == 0.8  # the 4 samples of the row in one batch
    numbers = result["summary"]["math"]
    assert numbers["rows"] == 1 and numbers["completions"] == 4
    assert numbers["accuracy"] == 0.25
    assert numbers["pass_at"] == {"1": pytest.approx(0.25), "2": pytest.approx(0.5), "4": pytest.approx(1.0)}
    assert "pass@4" in format_table(result["summary"])
    assert result["settings"] == {**result["settings"], "decoding": "sampling", "samples_per_row": 4}


def test_greedy_pass_at_k_is_refused(tiny, rows):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="temperature > 0"):
        evaluate_rows(model, tokenizer, rows, max_new_tokens=4, samples_per_row=4)


@pytest.mark.parametrize(
    ("n", "correct", "k", "expected"),
    [(4, 0, 1, 0.0), (4, 1, 1, 0.25), (4, 1, 2, 0.5), (4, 1, 4, 1.0), (5, 2, 2, 0.7), (3, 3, 1, 1.0)],
)
def test_pass_at_k_estimator(n, correct, k, expected):
    assert pass_at_k(n, correct, k) == pytest.approx(expected)


def test_summary_of_no_samples_is_empty_overall():
    assert summarize([])["overall"]["rows"] == 0


def test_bf16_decode_generates_from_a_merged_copy_and_leaves_the_model_alone(monkeypatch, tiny, rows):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny
    policy = get_peft_model(tiny_model(tokenizer, seed=1), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    used = []
    real = evaluation.sample_completions

    def spy(model, prompt_ids, **kwargs):
        used.append(model)
        return real(model, prompt_ids, **kwargs)

    monkeypatch.setattr(evaluation, "sample_completions", spy)
    result = evaluate_rows(policy, tokenizer, rows, max_new_tokens=4, batch_size=8, decode_dtype="bfloat16")
    (decoder,) = set(map(id, used))
    assert decoder != id(policy) and not hasattr(used[0], "peft_config")  # a plain merged copy
    assert next(used[0].parameters()).dtype == torch.bfloat16
    assert next(policy.parameters()).dtype == torch.float32 and hasattr(policy, "peft_config")
    assert result["settings"]["decode_dtype"] == "bfloat16" and len(result["samples"]) == len(rows)
    with pytest.raises(ValueError, match="decode_dtype must be"):
        evaluate_rows(policy, tokenizer, rows, max_new_tokens=4, decode_dtype="half")
