"""The real `demo` preset on the embedded Gemma 3 270M, through the CLI (slow: converts the GGUF
once, ~2 minutes, then trains 2 steps)."""

import pytest

from phasegrpo import run_folder
from phasegrpo.cli import main


@pytest.mark.slow
def test_demo_preset_trains_two_steps_on_the_embedded_model(tmp_path, capsys):
    run_dir = tmp_path / "demo"
    code = main(["train", "--preset", "demo", "--max-steps", "2", "--no-eval-before-after", "--output-dir", str(run_dir)])
    assert code == 0
    records, malformed = run_folder.read_jsonl(run_dir / "metrics.jsonl")
    assert malformed == 0 and [r["step"] for r in records] == [1, 2]
    assert [r["phase"] for r in records] == [0, 1]
    for record in records:
        assert sum(record["domain_count"].values()) == 8  # 2 prompts x 4 generations
        assert 0 < record["completion_length"] <= 96
        assert record["step_time"] > 0
    assert "check_answer" in records[1]["reward_raw"] and "check_answer" not in records[0]["reward_raw"]
    assert (run_dir / "adapter" / "adapter_model.safetensors").exists()
    assert (run_dir / "plots" / "reward.png").exists()
    assert "Run folder:" in capsys.readouterr().out
