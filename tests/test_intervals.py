"""95 % intervals and noise checks: hand-computed cases, and where they show up (eval table, run report)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from phasegrpo.evaluation import format_table
from phasegrpo.intervals import (
    crossed_bootstrap_difference,
    crossed_bootstrap_interval,
    difference_verdict,
    two_proportion_p_value,
    wilson_interval,
)
from phasegrpo.report import write_report
from phasegrpo.report.content import noise_lines

FIXTURE = Path(__file__).parent / "fixtures" / "run"


@pytest.mark.parametrize(
    ("successes", "trials", "expected"),
    [
        # p = 0.25, z = 1.96: centre (0.25 + 3.8416/64) / (1 + 3.8416/32) = 0.2768,
        # half width 1.96/1.12005 * sqrt(0.25*0.75/32 + 3.8416/4096) = 0.1443.
        (8, 32, (0.1325, 0.4211)),
        (0, 10, (0.0, 0.2775)),  # not zero-width at 0/n
        (10, 10, (0.7225, 1.0)),
        (16, 32, (0.3363, 0.6637)),
    ],
)
def test_wilson_interval_matches_hand_computed_values(successes, trials, expected):
    low, high = wilson_interval(successes, trials)
    assert low == pytest.approx(expected[0], abs=1e-4) and high == pytest.approx(expected[1], abs=1e-4)


def test_wilson_interval_refuses_impossible_counts_and_is_wide_open_without_data():
    with pytest.raises(ValueError, match="successes <= trials"):
        wilson_interval(5, 4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_two_proportion_test_matches_hand_computed_p_value():
    # 10/50 vs 20/50: pooled 0.3, se = sqrt(0.21 * 0.04) = 0.09165, z = 2.182, p = 0.0291.
    assert two_proportion_p_value(10, 50, 20, 50) == pytest.approx(0.0291, abs=2e-4)
    assert difference_verdict(0.2, 50, 0.4, 50)[0] == "higher"
    assert difference_verdict(0.4, 50, 0.2, 50)[0] == "lower"
    assert difference_verdict(0.25, 8, 0.5, 8) == ("within noise", pytest.approx(two_proportion_p_value(2, 8, 4, 8)))
    assert two_proportion_p_value(0, 8, 0, 8) == 1.0


def test_crossed_bootstrap_is_deterministic_and_brackets_the_mean():
    constant = [[1.0] * 6, [1.0] * 6]
    assert crossed_bootstrap_interval(constant) == (1.0, 1.0)
    table = [[0, 1, 0, 1, 1, 0, 0, 1], [1, 1, 0, 1, 1, 0, 1, 1], [0, 0, 0, 1, 1, 0, 0, 1]]
    low, high = crossed_bootstrap_interval(table)
    assert low < 0.5 < high and (low, high) == crossed_bootstrap_interval(table)
    # Every seed alike: only the rows vary, so the interval is the rows' bootstrap of the same values.
    assert crossed_bootstrap_difference(table, table)[0] < 0 < crossed_bootstrap_difference(table, table)[1]
    low, high = crossed_bootstrap_difference([[0.0] * 8] * 2, [[1.0] * 8] * 2)
    assert (low, high) == (1.0, 1.0)


def test_eval_table_prints_a_wilson_interval_next_to_every_rate():
    summary = {"overall": {"rows": 32, "completions": 32, "accuracy": 0.25, "exact_format_rate": 0.5, "refusal_rate": 0.0,
                           "mean_completion_tokens": 40.0, "mean_reward": 1.5}}
    table = format_table(summary)
    line = table.splitlines()[2]
    assert line.startswith("overall")
    assert "0.25 [0.13, 0.42]" in line and "0.50 [0.34, 0.66]" in line and "0.00 [0.00, 0.11]" in line
    assert "Wilson" in table


def test_noise_lines_say_plainly_which_changes_are_within_noise():
    before = {"summary": {"overall": {"rows": 32, "completions": 32, "accuracy": 0.25, "exact_format_rate": 0.25, "refusal_rate": 0.0}}}
    after = {"summary": {"overall": {"rows": 32, "completions": 32, "accuracy": 0.3125, "exact_format_rate": 0.75, "refusal_rate": 0.0}}}
    (line,) = noise_lines(before, after)
    assert "accuracy 0.25 → 0.31 is within noise" in line
    assert "exact format 0.25 → 0.75 is higher beyond noise" in line
    assert "refusals 0.00 → 0.00 is within noise" in line


def test_a_p_value_just_above_the_threshold_does_not_read_as_the_threshold():
    # The demo's code rows: exact format 5/8 -> 8/8 gives p just above 0.05, "within noise".
    before = {"summary": {"code": {"rows": 8, "completions": 8, "exact_format_rate": 0.625}}}
    after = {"summary": {"code": {"rows": 8, "completions": 8, "exact_format_rate": 1.0}}}
    (line,) = noise_lines(before, after)
    p_value = two_proportion_p_value(5, 8, 8, 8)
    assert 0.05 <= p_value < 0.055
    assert f"exact format 0.62 → 1.00 is within noise (p = {p_value:.3f})" in line and "(p = 0.05)" not in line


def test_run_report_shows_intervals_and_the_noise_verdict(tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURE, run_dir)
    report = write_report(run_dir)
    for page in (report.html.read_text(), report.markdown.read_text()):
        assert "95 % Wilson score interval" in page and "two-proportion z-test" in page
        assert "Is the change beyond noise?" in page and "within noise" in page
        assert " [0." in page  # an interval next to a rate
