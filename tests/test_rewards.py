"""The five reward functions: every rule as a table, the traps, the value table, robustness."""

import math
import pickle
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import phasegrpo.rewards as rewards
from phasegrpo import sandbox
from phasegrpo.formats import render
from phasegrpo.rewards import (
    DEFAULT_REWARD_VALUES as V,
)
from phasegrpo.rewards import (
    RewardValues,
    check_answer,
    match_format_approximately,
    match_format_exactly,
    penalize_length_and_rambling,
    punish_refusal,
    reward_functions,
    reward_values_from,
)
from phasegrpo.rewards.values import markdown_table

FIVE = (punish_refusal, match_format_exactly, match_format_approximately, check_answer, penalize_length_and_rambling)
FULL = V.correct_reward


def reply(answer, reasoning="Working it out step by step."):
    return render(reasoning, answer)


def score(function, completion, **row):
    return function([completion], **{key: [value] for key, value in row.items()})[0]


def test_exports_exactly_the_contract_names():
    for name in ("punish_refusal", "match_format_exactly", "match_format_approximately", "check_answer", "penalize_length_and_rambling"):
        assert callable(getattr(rewards, name)) and getattr(rewards, name).__name__ == name
    assert set(rewards.REWARD_FUNCTIONS) == {function.__name__ for function in FIVE}


# --- punish_refusal ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, is_refusal",
    [
        ("", True),
        ("   \n\t ", True),
        ("<reasoning>Easy.</reasoning><answer></answer>", True),
        ("<reasoning>Easy.</reasoning><answer>\n  \n</answer>", True),
        ("<reasoning>Easy.</reasoning>\n<answer>", True),
        ("I can't help with that.", True),
        ("I cannot assist with this request.", True),
        ("As an AI, I don't do homework.", True),
        ("I\u2019m sorry, but I can\u2019t answer that.", True),  # curly apostrophes
        ("I'M SORRY, BUT no.", True),
        (reply("I'm sorry, but I cannot answer this."), True),  # refusal in the answer block
        ("<reasoning>I am unable to solve this.</reasoning>", True),  # no answer block
        (reply("N/A"), True),  # placeholder answers decline while looking filled in
        (reply("Unknown."), True),
        (reply("**I don't know**"), True),
        (reply("?"), True),
        (reply("none"), False),  # can be a real answer
        (reply("-5"), False),
        (reply("No"), False),
        # traps: the words inside a real answer are not a refusal
        (reply("72", reasoning="I can't be sure, but 40 + 32 = 72."), False),
        (reply("72", reasoning="I'm sorry, but the first try was wrong. I can't help noticing 40 + 32 = 72."), False),
        (reply("72", reasoning="x " * 200 + "As an AI I computed 72."), False),
        ("Adding 40 and 32. " * 10 + "I can't help noticing it is 72.", False),  # no answer block, phrase far in
        (reply("72 in all, counted twice to be certain of it; " * 4 + "I can't help but note it."), False),
        (reply("72"), False),
        ("The answer is 72.", False),
        ("I can't be sure, but 40 + 32 = 72.", False),
        ("Sorry for the delay: 72.", False),
        (reply("As an aide to the king, Bob paid 72."), False),  # whole words only
    ],
)
def test_punish_refusal(completion, is_refusal):
    assert score(punish_refusal, completion) == (V.refusal_penalty if is_refusal else 0.0)


def test_refusal_is_the_strongest_signal():
    strongest_other = max(V.exact_format_reward, 4 * V.tag_once_reward, V.correct_reward, -4 * V.tag_duplicate_penalty)
    worst_length = V.length_penalty_max + V.trailing_text_penalty + V.rambling_penalty_max + V.repetition_penalty_max
    assert -V.refusal_penalty > strongest_other and V.refusal_penalty < worst_length


# --- format -------------------------------------------------------------------------------

PROSE = "The answer is 72 because 40 + 32 = 72."
NEAR_MISS = "Here: <reasoning>40 + 32</reasoning> so <answer>72</answer> done"


@pytest.mark.parametrize(
    "completion, expected",
    [
        (reply("72"), V.exact_format_reward),
        ("\n" + reply("72") + "\n", V.exact_format_reward),
        (NEAR_MISS, 0.0),
        (reply("72") + reply("72"), 0.0),
        ("<reasoning></reasoning><answer>72</answer>", 0.0),
        (PROSE, 0.0),
    ],
)
def test_match_format_exactly(completion, expected):
    assert score(match_format_exactly, completion) == expected


@pytest.mark.parametrize(
    "completion, expected",
    [
        (reply("72"), 4 * V.tag_once_reward),
        (NEAR_MISS, 4 * V.tag_once_reward),
        ("<reasoning>40 + 32</reasoning> 72", 2 * V.tag_once_reward),
        ("<answer>72</answer>", 2 * V.tag_once_reward),
        (PROSE, 0.0),
        (reply("72") + "<answer>74</answer>", 2 * V.tag_once_reward + 2 * V.tag_duplicate_penalty),
        ("<answer>" * 10, V.tag_duplicate_penalty),
    ],
)
def test_match_format_approximately(completion, expected):
    assert score(match_format_approximately, completion) == pytest.approx(expected)


def test_near_miss_ranks_between_prose_and_exact():
    def total(text):
        return score(match_format_exactly, text) + score(match_format_approximately, text)

    assert total(PROSE) < total(NEAR_MISS) < total(reply("72"))
    assert score(match_format_approximately, reply("72") * 2) < score(match_format_approximately, PROSE)


# --- check_answer: math -------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, reference, expected",
    [
        ("72", "72", FULL),
        ("$72", "72", FULL),
        ("\\$72", "72", FULL),
        ("72.0", "72", FULL),
        ("72.00 dollars", "72", FULL),
        ("1,234", "1234", FULL),
        ("1{,}234", "1234", FULL),
        ("1234", "1,234", FULL),
        ("\\boxed{72}", "72", FULL),
        ("$\\boxed{1,234}$", "1234", FULL),
        ("The answer is 72.", "72", FULL),
        ("**72** apples", "72", FULL),
        ("40 + 32 = 72", "72", FULL),
        ("72, because 8 boxes hold 9 each", "72", FULL),  # the justification's numbers are not candidates
        ("Since 40 + 32 = 72, the answer is 72.", "72", FULL),
        ("74 because 40 + 32 = 72", "72", 0.0),
        ("\\frac{3}{4}", "0.75", FULL),
        ("3/4", "0.75", FULL),
        ("0.5", "\\frac{1}{2}", FULL),
        ("2\\sqrt{2}", "2\\sqrt{2}", FULL),  # a symbolic reference goes to math-verify
        ("\\sqrt{8}", "2\\sqrt{2}", FULL),
        ("2", "2\\sqrt{2}", 0.0),  # not the plain number that its digits spell
        ("2^{10}", "1024", FULL),  # math-verify evaluates it
        ("\\text{72 km}", "72", FULL),
        ("-5", "-5", FULL),
        ("-$72", "-72", FULL),
        ("$-72$", "-72", FULL),
        ("-\\$72", "-72", FULL),
        ("1.2e3", "1200", FULL),
        ("1.2 \\times 10^{3}", "1200", FULL),  # math-verify
        ("\\sqrt{16}", "4", FULL),  # math-verify
        ("50%", "50", FULL),
        ("\u22125", "-5", FULL),  # unicode minus
        ("Full solution ... #### 72", "Janet sells 16 - 3 - 4 = 9 eggs ... #### 72", FULL),
        # sign matters
        ("-72", "72", 0.0),
        ("72", "-72", 0.0),
        # near: a fraction of full
        ("33.33", "33.333333", FULL * V.math_near_fraction),
        ("72.5", "72", FULL * V.math_near_fraction),
        # wrong
        ("74", "72", 0.0),
        ("7.2", "72", 0.0),
        ("seventy-something", "72", 0.0),
        # hedging: several different numbers is not full credit
        ("72 or 74", "72", FULL * V.hedge_fraction),
        ("Either 70, 72 or 74", "72", FULL * V.hedge_fraction),
        ("72 (or maybe 73)", "72", FULL * V.hedge_fraction),
        ("1, 2, 3, ..., 100", "72", 0.0),
    ],
)
def test_check_answer_math(answer, reference, expected):
    assert score(check_answer, reply(answer), domain="math", answer=reference) == pytest.approx(expected)


@pytest.mark.parametrize(
    "completion",
    [
        "<reasoning>40 + 32 = 72</reasoning><answer>74</answer>",  # right number only in the reasoning
        "<reasoning>40 + 32 = 72</reasoning>",
        "40 + 32 = 72",
        "<reasoning>40 + 32 = 72</reasoning><answer>72",  # unclosed: no answer block
    ],
)
def test_math_answer_only_in_reasoning_is_not_credited(completion):
    assert score(check_answer, completion, domain="math", answer="72") < FULL


def test_math_reads_the_last_answer_block():
    assert score(check_answer, "<answer>74</answer><answer>72</answer>", domain="math", answer="72") == FULL
    assert score(check_answer, "<answer>72</answer><answer>74</answer>", domain="math", answer="72") == 0.0


# --- check_answer: science ----------------------------------------------------------------

SCIENCE_PROMPT = [
    {"role": "system", "content": "Answer in the format."},
    {
        "role": "user",
        "content": "Which gas do plants take in?\nA) oxygen\nB) carbon dioxide\nC) nitrogen\nD) helium\nAnswer with the letter.",
    },
]
DOTTED_PROMPT = "Which gas do plants take in?\nA. oxygen\nB. carbon dioxide\nC. nitrogen\nD. helium"


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("B", FULL),
        ("b", FULL),
        ("(B)", FULL),
        ("(b)", FULL),
        ("B.", FULL),
        ("B) carbon dioxide", FULL),
        ("B. carbon dioxide", FULL),
        ("The answer is B", FULL),
        ("The correct answer is (B).", FULL),
        ("Answer: B", FULL),
        ("Option B", FULL),
        ("**B**", FULL),
        ("\\boxed{B}", FULL),
        ("carbon dioxide", FULL),  # the choice's text
        ("Carbon Dioxide.", FULL),
        ("Plants take in carbon dioxide", FULL),
        ("B, because plants use carbon dioxide, not oxygen", FULL),  # other choices in the explanation
        ("B because 2 of the gases are inert", FULL),
        ("B, because A is what animals need", FULL),
        ("A", 0.0),
        ("oxygen", 0.0),
        ("A) oxygen", 0.0),
        # hedging
        ("A or B", FULL * V.hedge_fraction),
        ("B or C", FULL * V.hedge_fraction),
        ("(A) (B)", FULL * V.hedge_fraction),
        ("oxygen or carbon dioxide", FULL * V.hedge_fraction),
        ("A) carbon dioxide", FULL * V.hedge_fraction),  # label of one choice, text of another
        ("", 0.0),
    ],
)
def test_check_answer_science(answer, expected):
    assert score(check_answer, reply(answer) if answer else "<answer></answer>", domain="science", answer="B", prompts=SCIENCE_PROMPT) == expected


@pytest.mark.parametrize(
    "answer, expected",
    [("B", FULL), ("carbon dioxide", FULL), ("B. carbon dioxide", FULL), ("nitrogen", 0.0), ("A or B", FULL * V.hedge_fraction)],
)
def test_check_answer_science_dotted_string_prompt(answer, expected):
    assert score(check_answer, reply(answer), domain="science", answer="B", prompts=DOTTED_PROMPT) == expected


@pytest.mark.parametrize(
    "answer, expected",
    [
        ("B", FULL),
        ("The answer is (b)", FULL),
        ("B) carbon dioxide", FULL),
        ("B, since 2 of the 4 gases are inert", FULL),  # a number is not a label when labels are letters
        ("C", 0.0),
        ("A or B", FULL * V.hedge_fraction),
    ],
)
def test_check_answer_science_without_known_choices(answer, expected):
    assert score(check_answer, reply(answer), domain="science", answer="B") == expected


def test_check_answer_science_numeric_labels_and_choices_column():
    prompt = "Pick one:\n1) ice\n2) steam\n3) water"
    assert score(check_answer, reply("2"), domain="science", answer="2", prompts=prompt) == FULL
    assert score(check_answer, reply("steam"), domain="science", answer="2", prompts=prompt) == FULL
    choices = {"text": ["ice", "steam"], "label": ["A", "B"]}
    assert score(check_answer, reply("steam"), domain="science", answer="B", choices=choices) == FULL


# --- check_answer: logic ------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, reference, expected",
    [
        ("yes", "yes", FULL),
        ("Yes.", "yes", FULL),
        ("YES!", "yes", FULL),
        ("**Yes**", "yes", FULL),
        ("True", "yes", FULL),
        ("true", True, FULL),
        ("The answer is yes", "yes", FULL),
        ("Yes, because it is taller.", "yes", FULL),
        ("Yes, because no one lived that long.", "yes", FULL),  # the explanation is not a verdict
        ("No, since it is not true that it floats.", "no", FULL),
        ("No. Yes.", "yes", FULL * V.hedge_fraction),
        ("y", "yes", FULL),
        ("No", "no", FULL),
        ("false", "no", FULL),
        ("no.", False, FULL),
        ("No", 0, FULL),
        ("Yes", 1, FULL),
        ("no", "yes", 0.0),
        ("False", "yes", 0.0),
        ("maybe", "yes", 0.0),
        ("yes and no", "yes", FULL * V.hedge_fraction),
        ("Yes or no", "no", FULL * V.hedge_fraction),
        ("true/false", "yes", FULL * V.hedge_fraction),
        ("Yesterday", "yes", 0.0),  # a word that merely starts with yes
        ("Nothing", "no", 0.0),
    ],
)
def test_check_answer_logic(answer, reference, expected):
    assert score(check_answer, reply(answer), domain="logic", answer=reference) == expected


@pytest.mark.parametrize(
    "domain, answer, reference",
    [
        ("math", "72 or 74", "72"),
        ("math", "Either 70, 72 or 74", "72"),
        ("math", "72 (or maybe 73)", "72"),
        ("science", "A or B", "B"),
        ("science", "B/C", "B"),
        ("science", "(A) (B)", "B"),
        ("science", "oxygen or carbon dioxide", "B"),
        ("science", "A) carbon dioxide", "B"),
        ("logic", "yes and no", "yes"),
        ("logic", "true/false", "no"),
        ("logic", "No. Yes.", "yes"),
    ],
)
def test_hedges_earn_exactly_the_hedge_share(domain, answer, reference):
    """With a non-zero hedge share, a hedge that includes the right answer is told apart from a
    wrong answer (0) and a committed right one (full)."""
    hedging = reward_functions({"hedge_fraction": 0.5})["check_answer"]
    assert score(hedging, reply(answer), domain=domain, answer=reference, prompts=SCIENCE_PROMPT) == 0.5 * FULL


# --- check_answer: code (through the sandbox) ----------------------------------------------

ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0", "assert add(2, 2) == 4"]
ADD = "def add(a, b):\n    return a + b"


@pytest.mark.parametrize(
    "answer, expected",
    [
        (ADD, FULL),  # unfenced
        (f"```python\n{ADD}\n```", FULL),  # fenced
        (f"```\n{ADD}\n```", FULL),  # fenced, no language
        (f"Here is the code:\n```py\n{ADD}\n```\nIt adds.", FULL),  # fenced with prose around
        (f"```python\n{ADD}", FULL),  # unclosed fence
        ("def add(a, b):\n    return 3", FULL / 3),  # one of three tests passes
        ("def add(a, b):\n    return a - b", FULL / 3),  # add(-1, 1) == 0? no; add(1,2)? no -> see below
        ("def add(a, b) return", 0.0),  # syntax error
        # attempts to fool the tests
        ("import sys\nsys.exit(0)", 0.0),
        ("import os\nos._exit(0)", 0.0),
        ("class AlwaysEqual:\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return AlwaysEqual()", 0.0),
        ("def add(a, b):\n    raise SystemExit(0)", 0.0),
    ],
)
def test_check_answer_code(answer, expected):
    if "a - b" in answer:
        expected = 0.0  # 1-2, -1-1, 2-2 -> no test passes
    got = score(check_answer, reply(answer), domain="code", answer="", tests=ADD_TESTS, setup_code="")
    assert got == pytest.approx(expected)


def test_code_runs_setup_code_first_and_batches_in_one_sandbox_call(monkeypatch):
    calls = []
    real = sandbox.run_programs

    def spy(programs, **options):
        calls.append(list(programs))
        return real(programs, **options)

    monkeypatch.setattr(sandbox, "run_programs", spy)
    uses_setup = "def add(a, b):\n    return OFFSET + a + b"
    completions = [reply(uses_setup), reply(ADD), reply(ADD), reply("72")]
    scores = check_answer(
        completions,
        domain=["code", "code", "code", "math"],
        answer=["", "", "", "72"],
        tests=[ADD_TESTS, ADD_TESTS, ADD_TESTS, []],
        setup_code=["OFFSET = 0", "", "", ""],
    )
    assert scores == [FULL, FULL, FULL, FULL]
    assert len(calls) == 1 and len(calls[0]) == 2  # one call; the identical program ran once
    assert calls[0][0].setup_code == "OFFSET = 0"


@pytest.mark.parametrize("tests", [[], None])
def test_code_without_tests_scores_zero(tests):
    assert score(check_answer, reply(ADD), domain="code", tests=tests) == 0.0


def test_code_sandbox_failure_degrades_to_zero(monkeypatch):
    def broken(programs, **options):
        raise RuntimeError("sandbox down")

    monkeypatch.setattr(sandbox, "run_programs", broken)
    scores = check_answer([reply(ADD), reply("72")], domain=["code", "math"], answer=["", "72"], tests=[ADD_TESTS, []])
    assert scores == [0.0, FULL]  # the other domains still score


# --- check_answer: rows that cannot be checked ---------------------------------------------


@pytest.mark.parametrize(
    "row",
    [
        {},  # no columns at all
        {"domain": "math"},  # no reference answer
        {"domain": "poetry", "answer": "72"},  # unknown domain
        {"domain": None, "answer": "72"},
        {"domain": "math", "answer": None},
    ],
)
def test_check_answer_unscorable_rows_are_zero(row):
    assert score(check_answer, reply("72"), **row) == 0.0


def test_columns_may_be_numpy_arrays():
    import numpy
    scores = check_answer(
        [reply("72"), reply(ADD)],
        domain=numpy.array(["math", "code"], dtype=object),
        answer=numpy.array(["72", ""], dtype=object),
        tests=[[], numpy.array(ADD_TESTS)],
    )
    assert scores == [FULL, FULL]


def test_domain_spelling_is_forgiving():
    assert score(check_answer, reply("72"), domain=" Math ", answer="72") == FULL


# --- penalize_length_and_rambling ---------------------------------------------------------


@pytest.mark.parametrize(
    "completion, expected",
    [
        (reply("72", reasoning="40 + 32 = 72."), 0.0),
        ("The answer is 72.", 0.0),
        (reply("72") + "\n\n", 0.0),
        (reply("72") + " Hope this helps!", V.trailing_text_penalty + V.rambling_phrase_penalty),
        (reply("72") + " 74", V.trailing_text_penalty),
        (reply("72", reasoning="40 + 32 = 72. Wait, let me re-check. Yes."), V.rambling_phrase_penalty),
        (reply("72", reasoning="Hmm, 40 + 32. Let me double-check: 72. Let me know if you need more."), 3 * V.rambling_phrase_penalty),
        (reply("72", reasoning="hmm, " * 20), V.rambling_penalty_max),
        (reply("72", reasoning="We wait, nobody is late: 40 + 32 = 72."), 0.0),  # 'wait, no' is not in 'wait, nobody'
        (reply("72", reasoning="The sum of the two numbers is 72. " * 3), 2 * V.repeated_sentence_penalty),
        (reply("72", reasoning="We add the two numbers together now\nwe add the two numbers together now\nso 72"), V.repeated_sentence_penalty),
        (reply("72", reasoning="So 3 + 4 = 7.\nSo 3 + 4 = 7."), 0.0),  # short steps may recur
    ],
)
def test_penalize_length_and_rambling_rules(completion, expected):
    assert score(penalize_length_and_rambling, completion) == pytest.approx(expected)


def test_code_may_repeat_its_lines_but_its_prose_may_not():
    code = "def f(x):\n    total = total + x[0] * weight + offset\n    total = total + x[0] * weight + offset\n    return total"
    repeated_prose = "We loop over the list of numbers here. We loop over the list of numbers here."
    assert score(penalize_length_and_rambling, reply(f"```python\n{code}\n```"), domain="code") == 0.0
    assert score(penalize_length_and_rambling, reply(code), domain="code") == 0.0
    assert score(penalize_length_and_rambling, reply(code, reasoning=repeated_prose), domain="code") == V.repeated_sentence_penalty
    assert score(penalize_length_and_rambling, reply(code), domain="math") == V.repeated_sentence_penalty


def test_length_penalty_grows_with_the_excess_and_is_capped():
    def penalty(characters):
        reasoning = " ".join(f"step{i} adds {i}." for i in range(characters))[:characters]
        return score(penalize_length_and_rambling, render(reasoning, "72"))

    assert penalty(V.soft_length_chars - 100) == 0.0
    just_over, further, far = penalty(V.soft_length_chars + 200), penalty(V.soft_length_chars + 600), penalty(50_000)
    assert 0.0 > just_over > further > far
    assert far == pytest.approx(V.length_penalty_max)


def test_loops_are_penalized_by_the_ngram_detector():
    loop = "then we add the apples to the basket and count again " * 20
    # no sentence breaks, so only the n-gram statistic can see the loop
    assert score(penalize_length_and_rambling, reply("72", reasoning=loop)) == pytest.approx(V.repetition_penalty_max)


# --- the value table and its overrides ----------------------------------------------------


def test_overrides_change_what_the_bound_functions_return_and_nothing_else():
    table = reward_values_from({"exact_format_reward": 1.5, "refusal_phrases": ["No way"], "correct_reward": 2})
    assert table.correct_reward == 2.0 and table.refusal_phrases == ("no way",)
    bound = reward_functions(table)
    assert set(bound) == set(rewards.REWARD_FUNCTIONS) and all(bound[name].__name__ == name for name in bound)
    assert score(bound["match_format_exactly"], reply("72")) == 1.5
    assert score(bound["punish_refusal"], "No way, do it yourself.") == V.refusal_penalty
    assert score(bound["punish_refusal"], "I can't help with that.") == 0.0
    assert score(bound["check_answer"], reply("72"), domain="math", answer="72") == 2.0
    # The module functions still use the defaults: binding changed no shared state.
    assert score(match_format_exactly, reply("72")) == V.exact_format_reward
    assert score(punish_refusal, "I can't help with that.") == V.refusal_penalty
    assert score(check_answer, reply("72"), domain="math", answer="72") == FULL
    # The keyword works on the module functions directly too.
    hedging = reward_values_from({"hedge_fraction": 0.25})
    assert check_answer([reply("72 or 74")], domain=["math"], answer=["72"], reward_values=hedging) == [pytest.approx(0.25 * FULL)]


def test_reward_functions_accepts_a_dict_of_overrides_and_defaults_to_the_module_functions():
    assert score(reward_functions({"soft_length_chars": 10})["penalize_length_and_rambling"], reply("72")) < 0.0
    assert reward_functions() == rewards.REWARD_FUNCTIONS
    assert reward_functions({}) == rewards.REWARD_FUNCTIONS
    assert reward_functions(V) == rewards.REWARD_FUNCTIONS


def test_bound_functions_pickle_and_keep_their_values():
    bound = reward_functions({"exact_format_reward": 1.5, "correct_reward": 2.0})
    for name, function in bound.items():
        restored = pickle.loads(pickle.dumps(function))
        assert restored.__name__ == name
    restored = pickle.loads(pickle.dumps(bound["match_format_exactly"]))
    assert score(restored, reply("72")) == 1.5
    restored = pickle.loads(pickle.dumps(bound["check_answer"]))
    assert score(restored, reply("72"), domain="math", answer="72") == 2.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"exact_format_rewrd": 1.0}, "Unknown reward value(s) 'exact_format_rewrd'. Valid names: refusal_penalty"),
        ({"exact_format_reward": "high"}, "exact_format_reward must be a number"),
        ({"refusal_phrases": "i can't"}, "refusal_phrases must be a list of strings"),
        ({"soft_length_chars": 10.5}, "soft_length_chars must be a whole number"),
        ({"refusal_penalty": 5.0}, "refusal_penalty is a penalty and must be <= 0"),
        ({"hedge_fraction": 1.5}, "hedge_fraction is a share of full credit"),
        ({"correct_reward": float("nan")}, "correct_reward must be finite"),
    ],
)
def test_bad_overrides_fail_clearly(overrides, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        reward_values_from(overrides)


def test_reward_functions_rejects_what_is_not_a_table():
    with pytest.raises(TypeError, match="a mapping of overrides"):
        reward_functions([("correct_reward", 1.0)])
    with pytest.raises(ValueError, match="Unknown reward value"):
        reward_functions({"correct_rewrd": 1.0})


def test_the_documented_table_is_the_table():
    docs = (Path(__file__).resolve().parents[1] / "docs" / "rewards.md").read_text(encoding="utf-8")
    table = markdown_table()
    assert table in docs, "docs/rewards.md is out of date: regenerate its table from phasegrpo.rewards.values.markdown_table()"
    for name, _value, reason in RewardValues().table():
        assert reason.strip() and table.count(f"| `{name}` |") == 1, name


# --- every function: inputs, pickling, robustness -----------------------------------------


@pytest.mark.parametrize("function", FIVE, ids=lambda f: f.__name__)
def test_accepts_conversational_completions_and_ignores_unknown_kwargs(function):
    as_string = function([reply("72")], domain=["math"], answer=["72"])
    as_messages = function(
        [[{"role": "assistant", "content": reply("72")}]],
        domain=["math"],
        answer=["72"],
        prompts=[[{"role": "user", "content": "40 + 32?"}]],
        trainer_state=object(),
        completion_ids=[[1, 2, 3]],
        some_future_argument="x",
    )
    assert as_string == as_messages and len(as_string) == 1


@pytest.mark.parametrize("function", FIVE, ids=lambda f: f.__name__)
def test_functions_pickle_by_reference(function):
    assert pickle.loads(pickle.dumps(function)) is function


@pytest.mark.parametrize("function", FIVE, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "hostile",
    [
        "\x00" * 100,
        "<answer>\x00</answer>",
        "\U0001f600" * 1000 + "<answer>\U0001f4af</answer>",
        "<reasoning>" + "a" * 1_000_000 + "</reasoning><answer>72</answer>",
        "<answer>" * 50_000,
        "</answer>" * 50_000 + "<answer>1",
        "<reasoning><reasoning><answer><answer></answer></reasoning>",
        "<answer>" + "9" * 5000 + "</answer>",
        "<answer>" + "1/" * 2000 + "0</answer>",
        "<answer>\\frac{1}{0}</answer>",
        "<answer>\\boxed{" * 1000 + "</answer>",
        "<answer>1e999999 " + "\\sqrt{" * 200 + "</answer>",
        "<answer>" + "```" * 10_000 + "</answer>",
    ],
    ids=range(13),
)
def test_hostile_text_never_raises_and_is_fast(function, hostile, monkeypatch):
    monkeypatch.setattr(sandbox, "run_programs", lambda programs, **options: [sandbox.Verdict(0, len(p.tests), "ok") for p in programs])
    start = time.perf_counter()
    for domain in ("math", "science", "logic", "code"):
        scores = function([hostile], domain=[domain], answer=["72"], tests=[["assert True"]], setup_code=[""], prompts=[DOTTED_PROMPT])
        assert len(scores) == 1 and math.isfinite(scores[0])
    assert time.perf_counter() - start < 3.0


@pytest.mark.parametrize(
    "answer",
    ["9^{9^{9}}", "2^2^2^2^2", "10^{1000000}", "(10^{100})!", "\\binom{10^{9}}{10^{8}}", "\\prod_{k=1}^{10^{9}} k"],
)
def test_math_never_hangs_even_outside_the_main_thread(answer):
    """math-verify's timeout is a signal, unavailable in threads: the screen must catch these."""
    import threading

    result = []
    worker = threading.Thread(target=lambda: result.append(score(check_answer, reply(answer), domain="math", answer="1000")), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert result == [0.0]


def test_math_verify_handles_products_of_powers():
    assert score(check_answer, reply("2^3 \\cdot 3^2"), domain="math", answer="72") == FULL


@pytest.mark.parametrize("function", FIVE, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "call",
    [
        lambda f: f([]),
        lambda f: f(None),
        lambda f: f([None, 7, {"content": None}]),
        lambda f: f(["x"], domain="math", answer=None),  # columns that are not lists
        lambda f: f(["x", "y"], domain=["math"], answer=["1"]),  # columns shorter than completions
    ],
    ids=["empty", "none", "odd-items", "scalar-columns", "short-columns"],
)
def test_odd_arguments_never_raise(function, call):
    scores = call(function)
    assert all(isinstance(value, float) and math.isfinite(value) for value in scores)


_TAGGY_TEXT = st.lists(
    st.one_of(st.sampled_from(["<reasoning>", "</reasoning>", "<answer>", "</answer>", "\n", "72", "B", "yes", "```", "\\boxed{", "="]), st.text(max_size=20)),
    max_size=30,
).map("".join)
LOWER = {
    "punish_refusal": V.refusal_penalty,
    "match_format_exactly": 0.0,
    "match_format_approximately": 4 * V.tag_duplicate_penalty,
    "check_answer": 0.0,
    "penalize_length_and_rambling": V.length_penalty_max + V.trailing_text_penalty + V.rambling_penalty_max + V.repetition_penalty_max,
}
UPPER = {
    "punish_refusal": 0.0,
    "match_format_exactly": V.exact_format_reward,
    "match_format_approximately": 4 * V.tag_once_reward,
    "check_answer": V.correct_reward,
    "penalize_length_and_rambling": 0.0,
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(_TAGGY_TEXT, min_size=1, max_size=4), domain=st.sampled_from(["math", "science", "logic", "other"]), reference=st.sampled_from(["72", "B", "yes", "", "-1/2"]))
def test_property_finite_and_within_bounds(texts, domain, reference):
    for function in FIVE:
        scores = function(texts, domain=[domain] * len(texts), answer=[reference] * len(texts), prompts=[DOTTED_PROMPT] * len(texts))
        assert len(scores) == len(texts)
        for value in scores:
            assert math.isfinite(value)
            assert LOWER[function.__name__] - 1e-9 <= value <= UPPER[function.__name__] + 1e-9, (function.__name__, value)


@settings(max_examples=80, deadline=None)
@given(
    texts=st.lists(st.text(alphabet=st.characters(blacklist_categories=()), max_size=200), min_size=1, max_size=3),
    domain=st.sampled_from(["math", "science", "logic", "code"]),
)
def test_property_any_unicode_never_raises(texts, domain):
    """Any code points, lone surrogates and NUL included; the sandbox is stubbed (its own tests
    cover what runs inside it)."""
    from unittest import mock

    def stub(programs, **options):
        return [sandbox.Verdict(1, max(1, len(program.tests)), "ok") for program in programs]

    columns = {"domain": [domain] * len(texts), "answer": ["72"] * len(texts), "tests": [["assert f()"]] * len(texts)}
    with mock.patch.object(sandbox, "run_programs", stub):
        for function in FIVE:
            scores = function([f"<answer>{text}</answer>" for text in texts] + texts, **{k: v * 2 for k, v in columns.items()})
            assert len(scores) == 2 * len(texts)
            assert all(math.isfinite(value) for value in scores)


@settings(max_examples=60, deadline=None)
@given(
    reasoning=st.text(min_size=1, max_size=300).filter(lambda s: s.strip() and "<" not in s),
    answer=st.text(alphabet="0123456789abcdefxyz +-.,$", min_size=1, max_size=30).filter(str.strip),
)
def test_property_any_rendered_reply_is_exact_format(reasoning, answer):
    text = render(reasoning, answer)
    assert score(match_format_exactly, text) == V.exact_format_reward
    assert score(match_format_approximately, text) == 4 * V.tag_once_reward
    assert score(penalize_length_and_rambling, text) <= 0.0


@settings(max_examples=60, deadline=None)
@given(answer=st.integers(min_value=-10**9, max_value=10**9), wrong=st.integers(min_value=1, max_value=10**6))
def test_property_math_integers(answer, wrong):
    formatted = f"{answer:,}"
    assert score(check_answer, reply(formatted), domain="math", answer=str(answer)) == FULL
    assert score(check_answer, reply(f"${answer}"), domain="math", answer=str(answer)) == FULL
    assert score(check_answer, reply(str(answer + wrong * (1 + abs(answer)))), domain="math", answer=str(answer)) == 0.0
