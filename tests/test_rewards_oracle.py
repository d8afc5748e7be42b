"""Oracle tests on real rows (../shared/data, Hub schema): a gold reply in the exact format
earns full credit from every reward on every row; a wrong answer earns less."""

import json
from pathlib import Path

import pytest

from phasegrpo.domains.science import science_prompt
from phasegrpo.formats import render
from phasegrpo.rewards import (
    DEFAULT_REWARD_VALUES as V,
)
from phasegrpo.rewards import (
    check_answer,
    match_format_approximately,
    match_format_exactly,
    penalize_length_and_rambling,
    punish_refusal,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FULL = V.correct_reward
MBPP_ROWS = 15


def load_rows(relative_path: str) -> list[dict]:
    path = DATA / relative_path
    if not path.is_file():
        raise FileNotFoundError(
            f"Oracle data {path} is missing. These tests read the real rows in the `shared/data` folder "
            "beside the repository checkout (see shared/data/README.md); restore it rather than skipping."
        )
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def failing(ids, scores, predicate):
    return [(row_id, value) for row_id, value in zip(ids, scores, strict=True) if not predicate(value)]


def assert_gold_is_clean(completions, domain):
    """Gold replies: no refusal, exact format, every tag once, no length/rambling penalty."""
    columns = {"domain": [domain] * len(completions)}
    assert set(punish_refusal(completions, **columns)) == {0.0}
    assert set(match_format_exactly(completions, **columns)) == {V.exact_format_reward}
    assert set(match_format_approximately(completions, **columns)) == {4 * V.tag_once_reward}
    penalties = penalize_length_and_rambling(completions, **columns)
    assert [p for p in penalties if p != 0.0] == []


# --- math: GSM8K ---------------------------------------------------------------------------

GSM8K = load_rows("gsm8k/test.jsonl") + load_rows("gsm8k/train.jsonl")


def gsm8k_parts(row):
    solution, final = row["answer"].rsplit("####", 1)
    return solution.strip(), final.strip()


def number(final: str) -> float:
    return float(final.replace(",", ""))


@pytest.mark.parametrize(
    "dress",
    [
        "{}",
        "The answer is {}.",
        "\\boxed{{{}}}",
        "**{}**",
    ],
)
def test_gsm8k_gold_earns_full_credit(dress):
    parts = [gsm8k_parts(row) for row in GSM8K]
    completions = [render(solution, dress.format(final)) for solution, final in parts]
    scores = check_answer(completions, domain=["math"] * len(parts), answer=[final for _, final in parts])
    assert failing(range(len(parts)), scores, lambda value: value == FULL) == []
    if dress == "{}":
        assert_gold_is_clean(completions, "math")


def test_gsm8k_gold_in_dollars_and_thousands_earns_full_credit():
    parts = [gsm8k_parts(row) for row in GSM8K]
    completions = [render(solution, f"${int(number(final)):,}") for solution, final in parts]
    scores = check_answer(completions, domain=["math"] * len(parts), answer=[final for _, final in parts])
    assert failing(range(len(parts)), scores, lambda value: value == FULL) == []


@pytest.mark.parametrize(
    "wrong",
    [
        lambda final: str(number(final) + 1),  # off by one
        lambda final: str(-number(final)) if number(final) else "5",  # sign flipped
        lambda final: f"{final} or {number(final) + 1}",  # hedged
        lambda final: "",  # empty answer
    ],
    ids=["off-by-one", "sign", "hedge", "empty"],
)
def test_gsm8k_wrong_answers_earn_less(wrong):
    parts = [gsm8k_parts(row) for row in GSM8K]
    completions = [render(solution, wrong(final)) if wrong(final) else f"<reasoning>{solution}</reasoning><answer></answer>" for solution, final in parts]
    scores = check_answer(completions, domain=["math"] * len(parts), answer=[final for _, final in parts])
    assert failing(range(len(parts)), scores, lambda value: value < FULL * V.math_near_fraction + 1e-9) == []


def test_gsm8k_answer_only_in_reasoning_earns_nothing():
    parts = [gsm8k_parts(row) for row in GSM8K[:100]]
    completions = [f"<reasoning>{solution}\nSo the answer is {final}.</reasoning>" for solution, final in parts]
    assert set(check_answer(completions, domain=["math"] * 100, answer=[final for _, final in parts])) == {0.0}


# --- science: ARC-Easy ---------------------------------------------------------------------

ARC = load_rows("arc_easy/test.jsonl")


def arc_prompt(row, style):
    """The question with its choices as 'A) text' (the project's prompt), 'A. text', or
    the source's own labels (numeric on some rows)."""
    labels, texts = row["choices"]["label"], row["choices"]["text"]
    if style == "project":
        return science_prompt(row["question"], texts), "ABCDEFGH"[labels.index(row["answerKey"])]
    lines = "\n".join(f"{label}. {text}" for label, text in zip(labels, texts, strict=True))
    return [{"role": "user", "content": f"{row['question']}\n{lines}"}], row["answerKey"]


def arc_gold_text(row):
    return row["choices"]["text"][row["choices"]["label"].index(row["answerKey"])]


@pytest.mark.parametrize("style", ["project", "source-dotted"])
@pytest.mark.parametrize(
    "dress",
    ["{label}", "({label})", "{label}) {text}", "The answer is {label}.", "{text}", "{lower}"],
)
def test_arc_gold_earns_full_credit(style, dress):
    prompts, golds, completions, ids = [], [], [], []
    for row in ARC:
        prompt, gold = arc_prompt(row, style)
        if dress == "{lower}" and gold.isdigit():
            continue
        ids.append(row["id"])  # the rows kept, so a failure names the right row
        prompts.append(prompt)
        golds.append(gold)
        completions.append(render("Reasoning about the choices.", dress.format(label=gold, text=arc_gold_text(row), lower=gold.lower())))
    scores = check_answer(completions, domain=["science"] * len(golds), answer=golds, prompts=prompts)
    assert failing(ids, scores, lambda value: value == FULL) == []
    if dress == "{label}":
        assert_gold_is_clean(completions, "science")


@pytest.mark.parametrize("style", ["project", "source-dotted"])
def test_arc_wrong_and_hedged_answers_earn_less(style):
    prompts, golds, wrong, hedged, wrong_text = [], [], [], [], []
    for row in ARC:
        prompt, gold = arc_prompt(row, style)
        labels = "ABCDEFGH" if style == "project" else row["choices"]["label"]
        choices = list(labels[: len(row["choices"]["text"])])
        other = next(label for label in choices if label != gold)
        other_text = row["choices"]["text"][choices.index(other)]
        prompts.append(prompt)
        golds.append(gold)
        wrong.append(render("r", other))
        hedged.append(render("r", f"{gold} or {other}"))
        wrong_text.append(render("r", other_text))
    for completions in (wrong, hedged, wrong_text):
        scores = check_answer(completions, domain=["science"] * len(golds), answer=golds, prompts=prompts)
        assert failing([row["id"] for row in ARC], scores, lambda value: value < FULL) == []


# --- logic: StrategyQA ---------------------------------------------------------------------

STRATEGYQA = load_rows("strategyqa/train.jsonl")


@pytest.mark.parametrize("dress", ["{}", "{}.", "{title}", "{truth}", "The answer is {}."])
def test_strategyqa_gold_earns_full_credit_and_the_opposite_none(dress):
    golds = ["yes" if row["answer"] else "no" for row in STRATEGYQA]
    reasoning = [" ".join(row["facts"]) for row in STRATEGYQA]

    def dressed(word):
        return dress.format(word, title=word.title(), truth="true" if word == "yes" else "false")

    gold_replies = [render(facts, dressed(gold)) for facts, gold in zip(reasoning, golds, strict=True)]
    wrong_replies = [render(facts, dressed("no" if gold == "yes" else "yes")) for facts, gold in zip(reasoning, golds, strict=True)]
    ids = [row["qid"] for row in STRATEGYQA]
    # the reference as the loader writes it ("yes"/"no") and as the source stores it (a bool)
    for references in (golds, [row["answer"] for row in STRATEGYQA]):
        assert failing(ids, check_answer(gold_replies, domain=["logic"] * len(ids), answer=references), lambda value: value == FULL) == []
        assert set(check_answer(wrong_replies, domain=["logic"] * len(ids), answer=references)) == {0.0}
    if dress == "{}":
        assert_gold_is_clean(gold_replies, "logic")


# --- code: MBPP ----------------------------------------------------------------------------

MBPP = load_rows("mbpp/test.jsonl")[:MBPP_ROWS]
MBPP_SANITIZED = load_rows("mbpp/sanitized_test.jsonl")[:5]


def test_mbpp_gold_earns_full_credit_and_wrong_code_less():
    """One sandbox batch: gold code fenced and unfenced, and each row answered with the next
    row's (wrong) solution."""
    rows = MBPP + [
        {"task_id": row["task_id"], "code": row["code"], "test_list": row["test_list"], "test_setup_code": "\n".join(row["test_imports"])}
        for row in MBPP_SANITIZED
    ]
    count = len(rows)
    fenced = [render("Write the function.", f"```python\n{row['code']}\n```") for row in rows]
    unfenced = [render("Write the function.", row["code"]) for row in rows]
    wrong = [render("Write the function.", rows[(index + 1) % count]["code"]) for index in range(count)]
    scores = check_answer(
        fenced + unfenced + wrong,
        domain=["code"] * 3 * count,
        answer=[row["code"] for row in rows] * 3,
        tests=[row["test_list"] for row in rows] * 3,
        setup_code=[row["test_setup_code"] for row in rows] * 3,
    )
    ids = [row["task_id"] for row in rows]
    assert failing(ids * 2, scores[: 2 * count], lambda value: value == FULL) == []
    assert failing(ids, scores[2 * count :], lambda value: value < FULL) == []
    assert_gold_is_clean(fenced, "code")
    assert_gold_is_clean(unfenced, "code")


# --- the project's own synthetic rows (data.load_domain(source="synthetic")) ------------------


@pytest.mark.parametrize("domain, rows", [("math", 100), ("science", 100), ("logic", 100), ("code", 8)])
def test_synthetic_rows_gold_earns_full_credit(domain, rows):
    """The rows the demo trains on, through the contract's loader: the reference answer in the
    exact format earns full credit, with the prompt as TRL passes it."""
    from phasegrpo.data import load_domain

    dataset = load_domain(domain, source="synthetic", limit=rows)
    columns = {
        "domain": dataset["domain"],
        "answer": dataset["answer"],
        "tests": dataset["tests"],
        "setup_code": dataset["setup_code"],
        "prompts": dataset["prompt"],
    }
    completions = [render("Working it out.", answer) for answer in dataset["answer"]]
    scores = check_answer(completions, **columns)
    assert failing(dataset["id"], scores, lambda value: value == FULL) == []
    assert_gold_is_clean(completions, domain)
