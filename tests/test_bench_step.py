"""benchmarks/bench_step.py runs plain TRL and phasegrpo side by side and prints its table (tiny model)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_benchmark_prints_every_row_for_trl_and_phasegrpo(tmp_path):
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_step.py"), "--model", "tiny", "--steps", "1",
         "--max-new-tokens", "16", "--variants", "trl,fast-nostop", "--rounds", "2", "--save", str(tmp_path / "raw.json")],
        capture_output=True, text=True, env=environment, timeout=900, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in result.stdout.splitlines() if line.startswith("|")}
    assert rows[""] == ["trl", "fast-nostop"]
    for name in ("s/step (median)", "CPU s/step (median)", "generated tokens/s", "peak RSS (GB)",
                 "speed-up vs trl (s/step)", "speed-up vs trl (tokens/s)"):
        assert all(cell and cell != "-" for cell in rows[name]), name
    assert rows["speed-up vs trl (s/step)"][0] == "1.00x"
    for part in ("prefill (s)", "decode (s)", "rewards/router (s)", "reference log-probs (s)", "policy forward (s)",
                 "policy backward (s)", "optimizer (s)", "other (s)"):
        assert float(rows[part][1]) >= 0, part  # phasegrpo's breakdown is measured
    for part in ("reference log-probs (s)", "policy forward (s)", "policy backward (s)"):
        assert float(rows[part][1]) > 0, part  # timed on phasegrpo's own (prompt-sharing) path too
    raw = json.loads((tmp_path / "raw.json").read_text())
    assert [len(raw[name]["steps"]) for name in ("trl", "fast-nostop")] == [2, 2]  # one step from each round
    assert rows["prefill (s)"][0] == "-" and float(rows["generated tokens/step"][1]) > 0
