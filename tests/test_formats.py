"""The reply format: parse, render, and linear time on hostile text."""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phasegrpo import formats
from phasegrpo.formats import (
    completion_text,
    count_tags,
    extract_answer,
    extract_reasoning,
    has_empty_answer,
    is_exact_format,
    render,
    text_after_answer,
)

EXACT = "<reasoning>\n40 + 32 = 72\n</reasoning>\n<answer>\n72\n</answer>"


@pytest.mark.parametrize(
    "text, expected",
    [
        (EXACT, True),
        ("  \n" + EXACT + "\n\n", True),
        ("<reasoning>r</reasoning><answer>a</answer>", True),
        ("<reasoning>r</reasoning>\n\n<answer>a</answer>", True),
        ("Sure! " + EXACT, False),  # text before
        (EXACT + " Hope this helps", False),  # text after
        ("<reasoning>r</reasoning> so <answer>a</answer>", False),  # text between
        ("<reasoning> \n </reasoning><answer>a</answer>", False),  # empty reasoning
        ("<reasoning>r</reasoning><answer>  </answer>", False),  # empty answer
        ("<answer>a</answer><reasoning>r</reasoning>", False),  # wrong order
        ("<reasoning>r</reasoning><answer>a</answer><answer>b</answer>", False),  # two answers
        ("<reasoning>r<reasoning>r</reasoning><answer>a</answer>", False),  # nested
        ("<reasoning>r</reasoning><answer>a <answer> b</answer>", False),
        ("<reasoning>r</reasoning><answer>a", False),  # unclosed
        ("", False),
        ("72", False),
    ],
)
def test_is_exact_format(text, expected):
    assert is_exact_format(text) is expected


@pytest.mark.parametrize(
    "text, expected",
    [
        (EXACT, "72"),
        ("<answer>1</answer> then <answer> 2 </answer>", "2"),  # the last block
        ("<answer>1</answer><answer>", "1"),  # an unclosed opening after it is ignored
        ("<answer>x<answer>y</answer>", "y"),  # innermost of repeated openings
        ("<answer>\n</answer>", ""),
        ("no tags", None),
        ("</answer><answer>", None),
        ("<answer>unclosed", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<answer></answer>", True),
        ("<reasoning>r</reasoning><answer>\n \n</answer>", True),
        ("<reasoning>r</reasoning><answer>   ", True),  # opened, nothing after
        ("<reasoning>r</reasoning><answer>7", False),
        (EXACT, False),
        ("no answer at all", False),
    ],
)
def test_has_empty_answer(text, expected):
    assert has_empty_answer(text) is expected


def test_reasoning_and_trailing_text():
    assert extract_reasoning(EXACT) == "40 + 32 = 72"
    assert extract_reasoning("<reasoning>open") is None
    assert text_after_answer(EXACT + "\nBye") == "\nBye"
    assert text_after_answer("none") == ""


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("plain", "plain"),
        ([{"role": "assistant", "content": "hi"}], "hi"),
        ([{"role": "assistant", "content": None}], ""),
        ([{"role": "assistant", "content": [{"type": "text", "text": "multi"}]}], "multi"),
        (None, ""),
        (72, "72"),
    ],
)
def test_completion_text(completion, expected):
    assert completion_text(completion) == expected


def test_count_tags():
    assert count_tags(EXACT + "<answer>").as_tuple() == (1, 1, 2, 1)


@settings(max_examples=150, deadline=None)
@given(
    st.text(min_size=1).filter(lambda s: s.strip() and all(t not in s for t in formats.TAGS)),
    st.text(min_size=1).filter(lambda s: s.strip() and all(t not in s for t in formats.TAGS)),
)
def test_render_is_exact_and_round_trips(reasoning, answer):
    text = render(reasoning, answer)
    assert is_exact_format(text)
    assert extract_answer(text) == answer.strip()
    assert extract_reasoning(text) == reasoning.strip()


@pytest.mark.parametrize(
    "hostile",
    [
        "<reasoning>" + "a" * 300_000 + "</reasoning>x<answer>1</answer>",
        "<answer>" * 100_000,
        "<answer>" + "</answer>" * 100_000,
        "<reasoning>" * 50_000 + "</reasoning>" * 50_000,
    ],
    ids=["long-block-then-junk", "many-openings", "many-closings", "nested-reasoning"],
)
def test_parsers_run_in_linear_time(hostile):
    start = time.perf_counter()
    is_exact_format(hostile), extract_answer(hostile), has_empty_answer(hostile), extract_reasoning(hostile)
    assert time.perf_counter() - start < 0.5
