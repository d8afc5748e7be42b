"""Generated data: determinism, distinctness, disjoint splits, and every item solvable by its reference."""

import re

import pytest

from phasegrpo.data import COLUMNS, load_domain
from phasegrpo.data.synthetic import generate, generate_row
from phasegrpo.domains import domain_names
from phasegrpo.sandbox import Program, run_programs

COUNT = 2000
DOMAINS = domain_names()  # the built-ins, at collection time


@pytest.fixture(scope="module")
def train_rows():
    return {domain: generate(domain, "train", COUNT) for domain in DOMAINS}


@pytest.fixture(scope="module")
def test_rows():
    return {domain: generate(domain, "test", 100) for domain in DOMAINS}


def user_text(row):
    return row["prompt"][-1]["content"]


@pytest.mark.parametrize("domain", DOMAINS)
def test_rows_follow_the_contract(domain):
    dataset = load_domain(domain, source="synthetic", limit=5)
    assert len(dataset) == 5
    assert set(COLUMNS) <= set(dataset.column_names)
    row = dataset[0]
    assert [message["role"] for message in row["prompt"]] == ["system", "user"]
    assert "<reasoning>" in row["prompt"][0]["content"] and "<answer>" in row["prompt"][0]["content"]
    assert row["domain"] == domain and row["source"] == "synthetic" and row["answer"]
    assert bool(row["tests"]) == (domain == "code")


@pytest.mark.parametrize("domain", DOMAINS)
def test_deterministic_per_item(domain, train_rows):
    # Item i does not depend on how many were drawn before, nor on the process.
    assert generate(domain, "train", 50) == train_rows[domain][:50]
    index = int(train_rows[domain][40]["id"].split("-")[1])
    assert generate_row(domain, index) == train_rows[domain][40]
    assert generate(domain, "train", 50, seed=1) != train_rows[domain][:50]


@pytest.mark.parametrize("domain", DOMAINS)
def test_thousands_of_distinct_items_and_disjoint_splits(domain, train_rows, test_rows):
    train_prompts = {user_text(row) for row in train_rows[domain]}
    assert len(train_prompts) == COUNT
    assert len({row["id"] for row in train_rows[domain]}) == COUNT
    assert not train_prompts & {user_text(row) for row in test_rows[domain]}


def test_math_answers_are_the_computed_whole_numbers(train_rows):
    # Spot-check the arithmetic from the question text itself for two templates.
    checked = 0
    for row in train_rows["math"]:
        question = user_text(row)
        if match := re.match(r"\w+ has (\d+) \w[\w ]*\. \w+ gets (\d+) more\.", question):
            assert int(row["answer"]) == int(match[1]) + int(match[2])
            checked += 1
        elif match := re.match(r"\w+ buys (\d+) boxes with (\d+) ", question):
            assert int(row["answer"]) == int(match[1]) * int(match[2])
            checked += 1
        assert re.fullmatch(r"\d+", row["answer"]), row  # small non-negative integers
    assert checked > 100


def test_science_answers_name_a_listed_choice(train_rows):
    labels = set()
    for row in train_rows["science"]:
        lines = re.findall(r"^([A-D])\) ", user_text(row), flags=re.MULTILINE)
        assert 3 <= len(lines) <= 4 and lines == list("ABCD"[: len(lines)])
        assert row["answer"] in lines
        labels.add(row["answer"])
    assert labels == set("ABCD")


def test_logic_answers_are_balanced_yes_no(train_rows):
    answers = [row["answer"] for row in train_rows["logic"]]
    assert set(answers) == {"yes", "no"}
    assert 0.35 < answers.count("yes") / len(answers) < 0.65


def test_logic_number_questions_are_right(train_rows):
    for row in train_rows["logic"]:
        question = user_text(row)
        if match := re.match(r"Is (\d+) (greater|smaller) than (\d+)\?", question):
            a, word, b = int(match[1]), match[2], int(match[3])
            assert row["answer"] == ("yes" if (a > b if word == "greater" else a < b) else "no")
        elif match := re.match(r"Is (\d+) divisible by (\d+)\?", question):
            assert row["answer"] == ("yes" if int(match[1]) % int(match[2]) == 0 else "no")


def test_code_items_are_solved_by_their_reference_in_the_sandbox(train_rows):
    sample = train_rows["code"][::40]  # 50 items across all families
    verdicts = run_programs([Program(row["answer"], row["tests"], row["setup_code"]) for row in sample])
    failures = [(row["answer"], verdict) for row, verdict in zip(sample, verdicts, strict=True) if verdict.passed != verdict.total]
    assert not failures
    assert all(verdict.total == 3 for verdict in verdicts)
    # And the tests are not vacuous: a wrong solution fails them.
    wrong = [Program(re.sub(r"return .*", "return None", row["answer"]), row["tests"]) for row in sample[:10]]
    assert all(verdict.passed == 0 for verdict in run_programs(wrong))


def test_code_prompt_names_the_function_and_shows_a_test(train_rows):
    for row in train_rows["code"][:200]:
        name = re.match(r"def (\w+)\(", row["answer"])[1]
        assert f"Function: {name}(" in user_text(row)
        assert row["tests"][0] in user_text(row)


def test_prompts_are_short(train_rows):
    # ~4 characters per token: the whole conversation stays well under 120 tokens.
    longest = max(sum(len(m["content"]) for m in row["prompt"]) for rows in train_rows.values() for row in rows)
    assert longest < 440


def test_unknown_split_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown split 'validation' for synthetic data. Available: train, test"):
        load_domain("math", source="synthetic", split="validation")


def test_gold_replies_score_full_with_the_reward_and_wrong_ones_do_not(train_rows):
    from phasegrpo.formats import render
    from phasegrpo.rewards import check_answer

    rows = [row for domain in ("math", "science", "logic") for row in train_rows[domain][:40]] + train_rows["code"][:8]

    def score(answers):
        return check_answer(
            [render("Worked it out.", answer) for answer in answers],
            domain=[row["domain"] for row in rows],
            answer=[row["answer"] for row in rows],
            tests=[row["tests"] for row in rows],
            setup_code=[row["setup_code"] for row in rows],
        )

    gold = score([row["answer"] for row in rows])
    assert min(gold) == max(gold) > 0
    assert max(score(["zzz"] * len(rows))) < min(gold)
