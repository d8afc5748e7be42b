"""Two processes give one run: a real `accelerate launch` of 2 CPU processes (gloo) with the
shipped accelerate_configs/ddp.yaml, training the tiny model of tests/tiny.py through
`phasegrpo.train` (tests/multiprocess_train.py) for 4 steps.

The first launch overwrites a stale run folder; rank 1 alone gets a SIGINT as step 2 begins, so
both ranks must stop after step 2 with one checkpoint (rank 1 writes its RNG state late: the
checkpoint must be marked complete only after it). A second 2-process launch resumes it to step
4. Every rank logs what its router scored, and the per-domain metrics of metrics.jsonl must be
the means over both ranks' completions, as one process would compute them.
"""

import json
from collections import defaultdict
from pathlib import Path

import pytest
from launcher import PROCESSES, ROOT
from launcher import launch as launch_script

from phasegrpo import run_folder

COMPLETIONS_PER_RANK = 2 * 4  # the demo preset: prompts_per_step 2, num_generations 4


def launch(run_dir: Path, log_dir: Path, *options: str):
    return launch_script(ROOT / "tests" / "multiprocess_train.py", str(run_dir), str(log_dir), *options)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("two_processes")
    run_dir, log_dir = base / "run", base / "logs"
    run_dir.mkdir()
    (run_dir / "stale.txt").write_text("from an older run\n")
    first = launch(run_dir, log_dir, "--overwrite", "--interrupt-rank", "1", "--interrupt-at-step", "1", "--slow-rng-rank", "1")
    after_first = {
        "results": [json.loads((log_dir / f"result{rank}.json").read_text()) for rank in range(PROCESSES)],
        "checkpoints": sorted(path.name for path in (run_dir / "checkpoints").glob("checkpoint-*")),
        "complete": run_folder.latest_complete_checkpoint(run_dir),
    }
    second = launch(run_dir, log_dir, "--resume")
    return {"base": base, "run_dir": run_dir, "log_dir": log_dir, "first": first, "second": second, "after_first": after_first,
            "results": [json.loads((log_dir / f"result{rank}.json").read_text()) for rank in range(PROCESSES)]}


def rank_batches(log_dir: Path) -> dict[int, list[dict]]:
    """step -> what each rank's router scored at that step (rank order)."""
    by_step = defaultdict(list)
    for rank in range(PROCESSES):
        records, malformed = run_folder.read_jsonl(log_dir / f"rank{rank}.jsonl")
        assert malformed == 0
        for record in records:
            by_step[record["step"]].append(record)
    return dict(by_step)


def one_process_domain_stats(batches: list[dict]) -> dict[str, dict[str, float]]:
    """Per-domain count, mean total reward and exact-format rate over all ranks' completions."""
    values = defaultdict(lambda: {"totals": [], "exact": []})
    for batch in batches:
        for domain, total, is_exact in zip(batch["domains"], batch["totals"], batch["exact"], strict=True):
            values[domain]["totals"].append(total)
            values[domain]["exact"].append(float(is_exact))
    return {domain: {"count": len(v["totals"]), "reward": sum(v["totals"]) / len(v["totals"]),
                     "exact_rate": sum(v["exact"]) / len(v["exact"])} for domain, v in values.items()}


def test_two_processes_write_one_run_folder(two_process_run):
    run_dir = two_process_run["run_dir"]
    assert sorted(path.name for path in two_process_run["base"].iterdir()) == ["logs", "run"]
    assert not (run_dir / "stale.txt").exists()  # --overwrite emptied it once, before anything was written
    for name in ("config.json", "eval_before.json", "metrics.jsonl", "report.html", "adapter/adapter_model.safetensors"):
        assert (run_dir / name).exists(), name
    assert not list(run_dir.glob(".*.tmp")) and not (run_dir / ".adapter.tmp").exists()
    records, malformed = run_folder.read_jsonl(run_dir / "metrics.jsonl")
    assert malformed == 0 and [record["step"] for record in records] == [1, 2, 3, 4]
    assert [result["global_step"] for result in two_process_run["results"]] == [4, 4]
    assert all(result["adapter_dir"] == str(run_dir / "adapter") for result in two_process_run["results"])


def test_per_domain_metrics_are_over_every_ranks_completions(two_process_run):
    records, _ = run_folder.read_jsonl(two_process_run["run_dir"] / "metrics.jsonl")
    batches = rank_batches(two_process_run["log_dir"])
    assert sorted(batches) == [1, 2, 3, 4] and all(len(batches[step]) == PROCESSES for step in batches)
    lines = []
    for record in records:
        expected = one_process_domain_stats(batches[record["step"]])
        assert sum(record["domain_count"].values()) == PROCESSES * COMPLETIONS_PER_RANK  # the global batch
        assert set(record["domain_count"]) == set(expected)
        for domain, stats in expected.items():
            assert record["domain_count"][domain] == stats["count"], (record["step"], domain)
            assert record["domain_reward"][domain] == pytest.approx(stats["reward"], rel=1e-5), (record["step"], domain)
            assert record["domain_exact_rate"][domain] == pytest.approx(stats["exact_rate"], abs=1e-6)
        per_rank = " | ".join(",".join(f"{d}:{batch['domains'].count(d)}" for d in sorted(set(batch["domains"])))
                              for batch in batches[record["step"]])
        lines.append(f"step {record['step']} phase {record['phase']} (ranks {per_rank}): " + ", ".join(
            f"{domain} n={record['domain_count'][domain]:.0f} reward={record['domain_reward'][domain]:.4f}"
            f" (1-process {expected[domain]['reward']:.4f})" for domain in sorted(expected)))
    print("\n" + "\n".join(lines))


def test_both_ranks_are_in_the_same_phase_every_step(two_process_run):
    records, _ = run_folder.read_jsonl(two_process_run["run_dir"] / "metrics.jsonl")
    batches = rank_batches(two_process_run["log_dir"])
    assert [record["phase"] for record in records] == [0, 1, 1, 2]
    for record in records:
        assert [batch["phase"] for batch in batches[record["step"]]] == [record["phase"]] * PROCESSES


def test_sigint_on_one_rank_stops_both_with_one_checkpoint_that_a_2_process_resume_continues(two_process_run):
    after_first = two_process_run["after_first"]
    assert [(r["global_step"], r["was_interrupted"]) for r in after_first["results"]] == [(2, True), (2, True)]
    assert after_first["checkpoints"] == ["checkpoint-2"] and after_first["complete"].name == "checkpoint-2"
    assert "Stopped at step 2; resume with" in two_process_run["first"].stdout
    assert [(r["global_step"], r["was_interrupted"]) for r in two_process_run["results"]] == [(4, False), (4, False)]
    # the second launch resumed: it scored steps 3 and 4 only, and the metrics rows are not doubled
    records, _ = run_folder.read_jsonl(two_process_run["log_dir"] / "rank0.jsonl")
    assert [record["step"] for record in records] == [1, 2, 3, 4]


def test_every_rank_takes_part_in_saving_the_adapter(two_process_run):
    """Under ZeRO-3 or FSDP the adapter is gathered from every rank; a save on rank 0 alone would hang."""
    saves, _ = run_folder.read_jsonl(two_process_run["log_dir"] / "saves.jsonl")
    assert sorted(save["rank"] for save in saves if save["folder"] == ".adapter.tmp") == [0, 1]


def test_a_checkpoint_is_marked_complete_after_every_rank_wrote_its_rng_state(two_process_run):
    marks, _ = run_folder.read_jsonl(two_process_run["log_dir"] / "marks.jsonl")
    # checkpoint-2: the interrupted launch, rank 1 2 s late; checkpoint-4: the end of the resumed one
    assert [mark["checkpoint"] for mark in marks] == ["checkpoint-2", "checkpoint-4"]
    assert all(mark["rng_files"] == ["rng_state_0.pth", "rng_state_1.pth"] for mark in marks)
