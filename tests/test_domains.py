"""The domain registry: the built-in domains' prompts and worked examples, registering, and a
fifth domain added in this one file that loads, validates and trains like a built-in."""

import numpy as np
import pytest

from phasegrpo import rewards, run_folder
from phasegrpo.config import preset
from phasegrpo.data import load_domain, load_mixture, normalize_weights, sources_for
from phasegrpo.data.prompts import conversation, with_worked_example
from phasegrpo.data.synthetic import generate_row
from phasegrpo.domains import (
    Domain,
    domain_names,
    get_domain,
    reference_scales,
    reference_weights,
    register_domain,
    temporarily_registered,
    unregister_domain,
)
from phasegrpo.domains.code import code_prompt, function_signature
from phasegrpo.domains.science import science_prompt
from phasegrpo.formats import render

# --- the built-in domains ----------------------------------------------------------------------


def test_built_ins_in_the_reference_order_with_the_reference_weights_and_scales():
    assert domain_names() == ("math", "code", "science", "logic")
    assert reference_weights() == {"math": 0.35, "code": 0.30, "science": 0.20, "logic": 0.15}
    assert reference_scales() == {"math": 1.0, "code": 1.2, "science": 0.8, "logic": 0.7}
    # The seed keys the generated data was first made with: changing one changes every item.
    assert [get_domain(name).seed_key for name in domain_names()] == [0, 1, 2, 3]
    assert [get_domain(name).checker for name in domain_names()] == ["math", "code", "science", "logic"]
    assert set(rewards.CHECKERS) >= {get_domain(name).checker for name in domain_names()}


def test_unknown_domain_is_a_clear_error():
    with pytest.raises(ValueError, match=r"^Unknown domain 'poetry'\. Available: code, logic, math, science\. Register"):
        get_domain("poetry")
    with pytest.raises(ValueError, match="Unknown domain 'poetry'"):
        load_domain("poetry", source="synthetic")


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
    row = load_domain(domain, source="synthetic", limit=1)[0]
    prompt = with_worked_example(row["prompt"], domain)
    assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user"]
    assert prompt[0] == row["prompt"][0] and prompt[-1] == row["prompt"][-1]
    example_prompt, reply = get_domain(domain).worked_example
    answers = {"math": "7", "logic": "yes", "science": "B", "code": ""}
    tests = {"code": ["assert double(3) == 6"]}.get(domain, [])
    score = rewards.check_answer([reply], prompts=[example_prompt], domain=[domain], answer=[answers[domain]], tests=[tests], setup_code=[""])
    assert score == [rewards.DEFAULT_REWARD_VALUES.correct_reward]  # the example itself is right
    assert rewards.match_format_exactly([reply]) == [rewards.DEFAULT_REWARD_VALUES.exact_format_reward]


# --- registering -------------------------------------------------------------------------------


def parity_prompt(number: int) -> list[dict[str, str]]:
    return conversation(f"Is {number} an even number?\nAnswer yes or no.")


def generate_parity(rng: np.random.Generator) -> dict:
    number = int(rng.integers(1, 1000))
    return {"prompt": parity_prompt(number), "answer": "yes" if number % 2 == 0 else "no"}


# A fifth domain, whole: a generator, a prompt, a worked example, a checker and a scale.
PARITY = Domain(
    name="parity",
    checker="logic",
    generate=generate_parity,
    worked_example=(parity_prompt(4), render("4 = 2 x 2, so it is even.", "yes")),
    scale=0.5,
)


@pytest.fixture
def parity():
    with temporarily_registered(PARITY) as domain:
        yield domain
    assert "parity" not in domain_names()  # other tests never see it


def test_a_registered_domain_loads_validates_and_prompts_like_a_built_in(parity):
    assert domain_names()[-1] == "parity" and get_domain("parity") is parity
    rows = load_domain("parity", source="synthetic", limit=20)
    assert set(rows["domain"]) == {"parity"} and set(rows["source"]) == {"synthetic"}
    assert rows[0]["id"].startswith("parity-") and rows[0]["answer"] in ("yes", "no")
    assert generate_row("parity", 7) == generate_row("parity", 7)  # seeded per item by its stable seed_key
    assert list(load_mixture({"math": 1, "parity": 1}, source="synthetic", limit=3)) == ["math", "parity"]
    assert sources_for("parity") == ["synthetic"]  # no Hub dataset: source=None is a clear error
    with pytest.raises(ValueError, match="Unknown source None for domain 'parity'. Available: synthetic."):
        load_domain("parity")
    assert with_worked_example(rows[0]["prompt"], "parity")[1] == parity.worked_example[0][1]
    assert normalize_weights({"math": 1, "parity": 3}) == {"math": 0.25, "parity": 0.75}
    config = preset("demo", domain_weights={"math": 0.5, "parity": 0.5}, domain_betas={"parity": 0.1})
    assert config.domain_scales["parity"] == 0.5  # the domain's scale joins the defaults
    assert "parity" not in reference_weights()  # weight 0: in the default mix only when a config weights it


def test_cli_explain_accepts_a_registered_domain_and_rejects_an_unknown_one(parity, capsys):
    from phasegrpo.cli import main

    completion = render("4 is even.", "yes")
    assert main(["rewards", "explain", "--completion", completion, "--domain", "parity", "--answer", "yes"]) == 0
    assert "domain parity" in capsys.readouterr().out
    assert main(["rewards", "explain", "--completion", completion, "--domain", "poetry"]) == 2
    assert "Unknown domain 'poetry'" in capsys.readouterr().err


def test_a_taken_name_or_seed_key_is_refused_unless_replacing(parity):
    with pytest.raises(ValueError, match="'parity' is already registered.*replace=True"):
        register_domain(PARITY)
    with pytest.raises(ValueError, match="seed_key 0, already used by 'math'"):
        register_domain(Domain(name="arithmetic", checker="math", seed_key=0))
    louder = Domain(name="parity", checker="logic", generate=generate_parity, scale=2.0)
    with temporarily_registered(louder, replace=True):
        assert get_domain("parity").scale == 2.0 and domain_names()[-1] == "parity"
    assert get_domain("parity") is parity  # restored


def test_unregister_and_the_default_seed_key():
    domain = register_domain(Domain(name="riddles", checker="logic", weight=0.1))
    try:
        assert reference_weights()["riddles"] == 0.1  # a declared weight joins the default mix
        assert domain.seed_key == Domain(name="riddles", checker="logic").seed_key > 3  # stable, from the name
        assert domain.data_dir_folders == ("riddles",)
    finally:
        assert unregister_domain("riddles") is domain
    assert "riddles" not in domain_names() and "riddles" not in reference_weights()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "Word Problems"}, "lowercase word"),
        ({"name": "x", "checker": 3}, "checker must be"),
        ({"name": "x", "weight": -1.0}, "weight must be >= 0"),
        ({"name": "x", "scale": float("nan")}, "scale must be a finite number"),
        ({"name": "x", "hub_datasets": (get_domain("math").reference_dataset,)}, "Hub dataset 'gsm8k' of domain 'math'"),
    ],
)
def test_a_malformed_domain_is_refused_when_made(fields, message):
    with pytest.raises((ValueError, TypeError), match=message):
        Domain(**{"checker": "math", **fields})


def test_a_generator_returning_other_fields_is_a_clear_error():
    broken = Domain(name="broken", checker="math", generate=lambda rng: {"question": "1 + 1?", "answer": "2"})
    with temporarily_registered(broken), pytest.raises(ValueError, match="returned fields \\['answer', 'question'\\]"):
        load_domain("broken", source="synthetic", limit=1)


# --- a fifth domain, end to end ------------------------------------------------------------------


def completion_length_reward(completions, **kwargs):
    """Varies within every group, so the tiny random model always has a learning signal."""
    return [len(str(c)) / 10.0 for c in completions]


def test_training_mixes_a_registered_fifth_domain(tmp_path, tiny, parity):
    from phasegrpo.training import train

    model, tokenizer = tiny
    config = preset(
        "demo", model="tiny", output_dir=str(tmp_path / "run"), max_steps=2, max_completion_length=16,
        rows_per_domain=40, save_steps=2, eval_before_after=False, learning_rate=1e-2,
        domain_weights={"math": 0.5, "parity": 0.5},
        phase_rewards=[["completion_length_reward"]] * 2 + [["completion_length_reward", "check_answer"]],
    )
    result = train(config, model=model, tokenizer=tokenizer,
                   reward_functions={"completion_length_reward": completion_length_reward}, show_progress=False)

    assert result.global_step == 2
    records, _ = run_folder.read_jsonl(result.run_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2]
    for record in records:
        # 2 prompts per step, weights 0.5/0.5: one of each domain, 4 completions each.
        assert record["domain_count"] == {"math": 4, "parity": 4}
        assert set(record["domain_reward"]) == {"math", "parity"}


def test_check_answer_scores_a_registered_domain_with_its_checker(parity):
    right, wrong = render("4 is even.", "yes"), render("4 is even.", "no")
    scores = rewards.check_answer([right, wrong], domain=["parity", "parity"], answer=["yes", "yes"])
    assert scores == [rewards.DEFAULT_REWARD_VALUES.correct_reward, 0.0]  # "logic": yes/no


def test_a_domain_may_bring_its_own_checker_and_unknown_names_are_refused():
    def exact_text(cases, values):
        return [values.correct_reward if case.answer.strip() == case.reference else 0.0 for case in cases]

    with temporarily_registered(Domain(name="echo", checker=exact_text, seed_key=77)):
        assert rewards.check_answer([render("r", "hi"), render("r", "ho")], domain=["echo"] * 2, answer=["hi"] * 2) == [3.0, 0.0]
    assert rewards.check_answer([render("r", "hi")], domain=["echo"], answer=["hi"]) == [0.0]  # unregistered: unchecked
    with pytest.raises(ValueError, match="unknown checker 'poetry'. Available: math, code, science, logic"):
        register_domain(Domain(name="verse", checker="poetry", seed_key=78))
