"""The mixing sampler: TRL RepeatSampler structure, proportions, heterogeneity, schedules, errors."""

import json
from collections import Counter

import pytest

from phasegrpo.data import (
    AdaptiveMix,
    ConstantMix,
    DomainMixSampler,
    LinearMix,
    concat_domains,
    load_domain,
    make_mix_schedule,
    normalize_weights,
)
from phasegrpo.domains import reference_weights

REFERENCE_WEIGHTS = reference_weights()  # the default mix: math 0.35, code 0.30, science 0.20, logic 0.15
# Unequal domain sizes, so proportions cannot come from the dataset's own make-up.
DOMAINS_OF_ROWS = ["math"] * 300 + ["code"] * 40 + ["science"] * 500 + ["logic"] * 25


def sampler(weights=REFERENCE_WEIGHTS, **options):
    options = {"mini_repeat_count": 2, "batch_size": 4, "repeat_count": 3, "seed": 7, **options}
    return DomainMixSampler(DOMAINS_OF_ROWS, weights, **options)


def chunks_of(indices, mini_repeat_count, batch_size, repeat_count):
    """Undo the repeat structure, checking it on the way."""
    block = batch_size * mini_repeat_count * repeat_count
    assert len(indices) % block == 0
    chunks = []
    for start in range(0, len(indices), block):
        part = indices[start : start + block]
        first = part[: batch_size * mini_repeat_count]
        assert part == first * repeat_count  # the chunk repeats repeat_count times
        chunk = first[::mini_repeat_count]
        assert first == [index for index in chunk for _ in range(mini_repeat_count)]  # each index k times in a row
        assert len(set(chunk)) == batch_size  # distinct prompts in a chunk
        chunks.append(chunk)
    return chunks


def test_repeat_sampler_structure_and_length():
    mix = sampler(num_chunks=50)
    indices = list(mix)
    assert len(indices) == len(mix) == 50 * 4 * 2 * 3
    assert len(chunks_of(indices, 2, 4, 3)) == 50


def test_default_length_is_one_pass_over_the_dataset_and_passes_continue():
    mix = sampler(repeat_count=1, mini_repeat_count=1)
    assert len(mix) == (len(DOMAINS_OF_ROWS) // 4) * 4
    first, second = list(mix), list(mix)
    assert len(first) == len(second) == len(mix)
    assert first != second  # a Trainer re-iterating for more steps gets new batches


@pytest.mark.parametrize(
    "weights",
    [REFERENCE_WEIGHTS, {"math": 1, "code": 1, "science": 1, "logic": 1}, {"math": 7, "logic": 3}, {"code": 0.05, "science": 0.95}],
)
def test_mixing_proportions_over_10000_draws_within_2_percent(weights):
    mix = sampler(weights, mini_repeat_count=1, repeat_count=1, num_chunks=2500)
    drawn = Counter(DOMAINS_OF_ROWS[index] for index in mix)
    assert sum(drawn.values()) == 10_000
    expected = normalize_weights(weights)
    for domain, weight in expected.items():
        assert abs(drawn[domain] / 10_000 - weight) <= 0.02, (domain, drawn)
    assert set(drawn) == {domain for domain, weight in expected.items() if weight > 0}


def test_batches_are_heterogeneous_and_rows_cycle_without_replacement():
    mix = sampler(mini_repeat_count=1, repeat_count=1, num_chunks=400)
    chunks = chunks_of(list(mix), 1, 4, 1)
    mixed = sum(len({DOMAINS_OF_ROWS[i] for i in chunk}) >= 3 for chunk in chunks)
    assert mixed == len(chunks)  # 4 prompts over weights .35/.3/.2/.15: never fewer than 3 domains
    # Logic has 25 rows: every row appears before any repeats.
    logic = [i for chunk in chunks for i in chunk if DOMAINS_OF_ROWS[i] == "logic"]
    assert len(set(logic[:25])) == 25


def test_deterministic_given_seed_as_every_process_needs():
    assert list(sampler(num_chunks=30)) == list(sampler(num_chunks=30))
    assert list(sampler(num_chunks=30)) != list(sampler(num_chunks=30, seed=8))


def test_works_with_trl_batching_on_a_real_dataset():
    train, domains = concat_domains({d: load_domain(d, source="synthetic", limit=20) for d in ("math", "logic")})
    assert len(train) == 40 and domains == ["math"] * 20 + ["logic"] * 20
    mix = DomainMixSampler(domains, {"math": 1, "logic": 1}, mini_repeat_count=4, batch_size=2, repeat_count=2, seed=0)
    rows = [train[i] for i in list(mix)[:16]]
    assert {row["domain"] for row in rows} == {"math", "logic"}
    assert mix.domain_counts == {"math": 20, "logic": 20}


def test_linear_schedule_values():
    schedule = LinearMix({"math": 1, "code": 1}, {"math": 0, "code": 3, "logic": 1}, start_fraction=0.2, end_fraction=0.6)
    expected = {
        0.0: {"math": 0.5, "code": 0.5, "logic": 0.0},
        0.2: {"math": 0.5, "code": 0.5, "logic": 0.0},
        0.4: {"math": 0.25, "code": 0.625, "logic": 0.125},
        0.6: {"math": 0.0, "code": 0.75, "logic": 0.25},
        1.0: {"math": 0.0, "code": 0.75, "logic": 0.25},
    }
    for fraction, weights in expected.items():
        schedule.set_progress(fraction)
        assert schedule.weights() == pytest.approx(weights)


def test_sampler_follows_the_schedule_it_is_given():
    mix = DomainMixSampler(
        DOMAINS_OF_ROWS,
        make_mix_schedule("linear", {"math": 1}, end={"science": 1}),
        mini_repeat_count=1,
        batch_size=4,
        num_chunks=10,
    )
    assert mix.weights_in_force == pytest.approx({"math": 1.0, "science": 0.0})
    mix.next_chunk()
    assert mix.last_chunk_counts == {"math": 4}
    mix.set_progress(1.0)
    assert mix.weights_in_force == pytest.approx({"math": 0.0, "science": 1.0})
    mix.next_chunk()
    assert mix.last_chunk_counts == {"science": 4}


def test_adaptive_schedule_leans_toward_the_lowest_reward_with_a_floor():
    schedule = AdaptiveMix({"math": 1, "code": 1, "science": 1, "logic": 1}, temperature=0.1, floor=0.05, smoothing=0.0)
    assert schedule.weights() == pytest.approx(dict.fromkeys(("math", "code", "science", "logic"), 0.25))
    schedule.observe_rewards({"math": 2.0, "code": 0.0, "science": 2.0, "logic": 2.0})
    weights = schedule.weights()
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights["code"] > 0.8
    assert min(weights.values()) >= 0.05 - 1e-12
    schedule.observe_rewards({"code": 3.0})  # now code is best: weight moves away from it
    assert schedule.weights()["code"] == pytest.approx(0.05, abs=1e-3)


def test_adaptive_schedule_smooths_and_ignores_missing_or_nan():
    schedule = AdaptiveMix({"math": 1, "code": 1}, temperature=1.0, floor=0.0, smoothing=0.5)
    schedule.observe_rewards({"math": 1.0, "code": float("nan")})
    schedule.observe_rewards({"math": 0.0})
    assert schedule.recent_reward == {"math": 0.5}
    assert schedule.weights() == pytest.approx({"math": 0.5, "code": 0.5})  # code counts as the mean


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"math": 1, "poetry": 1}, "Unknown domain"),
        ({"math": -0.1, "code": 1}, ">= 0"),
        ({"math": 0, "code": 0.0}, "all zero"),
        ({}, "non-empty"),
        ({"math": float("nan")}, "finite"),
    ],
)
def test_bad_weights_are_clear_errors(weights, message):
    with pytest.raises(ValueError, match=message):
        ConstantMix(weights)


def test_bad_sampler_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="no rows of them"):
        DomainMixSampler(["math"] * 10, REFERENCE_WEIGHTS, mini_repeat_count=2, batch_size=2)
    with pytest.raises(ValueError, match="mini_repeat_count"):
        DomainMixSampler(["math"] * 10, {"math": 1}, mini_repeat_count=0, batch_size=2)
    with pytest.raises(ValueError, match="fewer than one batch"):
        DomainMixSampler(["math"] * 3, {"math": 1}, mini_repeat_count=2, batch_size=4)
    with pytest.raises(ValueError, match="Unknown mix schedule 'cosine'. Available: constant, linear, adaptive"):
        make_mix_schedule("cosine")
    with pytest.raises(ValueError, match="floor"):
        AdaptiveMix(floor=0.3)



# --- resume: the stream saved before a chunk continues as if never stopped ----------------------


def resumable_sampler(schedule):
    # Small domains, so the pools reshuffle, and 10 chunks per pass, so passes turn over.
    domains = ["math"] * 9 + ["code"] * 7 + ["science"] * 5 + ["logic"] * 3
    return DomainMixSampler(
        domains, schedule, mini_repeat_count=1, batch_size=2, repeat_count=1, seed=3, num_chunks=10,
        progress_of_chunk=lambda chunk: chunk / 30, reward_lag=1,
    )


def mixes():
    return [
        ConstantMix(),
        LinearMix({"math": 1, "code": 1}, {"science": 1, "logic": 1}),
        AdaptiveMix(temperature=0.2, floor=0.05, smoothing=0.5),
    ]


def reward_after(number):
    """A made-up mean reward per domain after `number` chunks, different each time."""
    return {domain: (number * 7 % 5) / 4 + (domain == "math") for domain in REFERENCE_WEIGHTS}


def drive(sampler, chunks, until, placeholders=0):
    """Take chunks from `sampler` pass by pass into `chunks` until it holds `until`, observing a
    reward after each as the trainer does. The first pass may start with placeholders (checked).
    Returns the open iterator of the last pass."""
    while True:
        iterator = iter(sampler)
        for position in range(sampler.num_chunks):
            chunk = [next(iterator) for _ in range(sampler.batch_size)]
            if position < placeholders:
                assert chunk == list(range(sampler.batch_size))  # unread: the Trainer skips it
                continue
            chunks.append(chunk)
            sampler.observe_rewards(reward_after(len(chunks)))
            if len(chunks) == until:
                return iterator if position + 1 < sampler.num_chunks else None
        placeholders = 0


@pytest.mark.parametrize("schedule_index", [0, 1, 2])
@pytest.mark.parametrize("resume_after", [4, 13, 20])
def test_a_restored_sampler_continues_the_stream_across_passes(schedule_index, resume_after):
    uninterrupted = []
    drive(resumable_sampler(mixes()[schedule_index]), uninterrupted, until=30)

    before = []
    first = resumable_sampler(mixes()[schedule_index])
    iterator = drive(first, before, until=resume_after)
    if iterator is not None:
        for _ in range(first.batch_size):  # the dataloader has drawn the next chunk already
            next(iterator)
    state = json.loads(json.dumps(first.state_dict(resume_after)))  # as a checkpoint holds it
    restored = resumable_sampler(mixes()[schedule_index])
    restored.load_state_dict(state)
    after = list(before)
    drive(restored, after, until=30, placeholders=resume_after % 10)
    assert after == uninterrupted


def test_the_sampler_saves_the_state_before_a_chunk_it_has_drawn_ahead():
    mix = resumable_sampler(ConstantMix())
    for _ in range(12):
        mix.next_chunk()
    assert mix.state_dict(12)["chunk"] == 12 and mix.state_dict(5)["chunk"] == 5
    with pytest.raises(ValueError, match="keeps the state of the last 8"):
        mix.state_dict(2)


def test_a_sampler_state_of_other_data_is_refused():
    saved = resumable_sampler(ConstantMix()).state_dict(0)
    other = DomainMixSampler(["math"] * 9 + ["code"] * 7, {"math": 1, "code": 1}, mini_repeat_count=1, batch_size=2)
    with pytest.raises(ValueError, match="does not fit this run's data.*same data and batch settings"):
        other.load_state_dict(saved)


def test_the_adaptive_mix_gives_the_weights_after_an_earlier_observation():
    schedule = AdaptiveMix({"math": 1, "code": 1}, temperature=0.5, floor=0.0, smoothing=0.0)
    assert schedule.weights_after(0) == schedule.weights() == pytest.approx({"math": 0.5, "code": 0.5})
    schedule.observe_rewards({"math": 1.0, "code": 0.0})
    after_one = schedule.weights()
    schedule.observe_rewards({"math": 0.0, "code": 1.0})
    assert schedule.weights_after(1) == after_one and schedule.weights_after(2) == schedule.weights()
    assert schedule.weights_after(0) == pytest.approx({"math": 0.5, "code": 0.5})
    restored = AdaptiveMix({"math": 1, "code": 1}, temperature=0.5, floor=0.0, smoothing=0.0)
    restored.load_state_dict(json.loads(json.dumps(schedule.state_dict())))
    assert restored.weights_after(1) == after_one and restored.weights() == schedule.weights()


def test_a_domain_of_weight_0_is_dropped_not_a_crash():
    # Rows of math only, and code at weight 0: nothing to draw from code, so it needs no rows.
    mix = DomainMixSampler(["math"] * 8, {"math": 1, "code": 0}, mini_repeat_count=1, batch_size=4, num_chunks=3)
    assert set(mix.pools) == {"math"}
    assert len(list(mix)) == 12 and set(mix.domain_counts) == {"math"}
    assert ConstantMix({"math": 1, "code": 0}).drawn_domains == ("math",)


def test_a_linear_mix_anneals_towards_a_domain_that_starts_at_0():
    rows = ["math"] * 20 + ["code"] * 20
    schedule = make_mix_schedule("linear", {"math": 1, "code": 0, "logic": 0}, end={"code": 1})
    assert schedule.drawn_domains == ("math", "code")  # logic is 0 at both ends: dropped
    mix = DomainMixSampler(rows, schedule, mini_repeat_count=1, batch_size=4, num_chunks=10)
    mix.next_chunk()
    assert mix.last_chunk_counts == {"math": 4}
    mix.set_progress(1.0)
    mix.next_chunk()
    assert mix.last_chunk_counts == {"code": 4}
    with pytest.raises(ValueError, match="no rows of them"):  # a domain it anneals towards needs rows
        DomainMixSampler(["math"] * 20, schedule, mini_repeat_count=1, batch_size=4)
