import json
import subprocess
import sys

import pytest

from phasegrpo.cli import main


@pytest.mark.parametrize("command", [[], ["train"], ["eval"], ["report"]])
def test_help_works_for_every_command(command):
    done = subprocess.run([sys.executable, "-m", "phasegrpo", *command, "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: phasegrpo" in done.stdout


def test_every_config_field_is_a_train_flag_and_overrides_the_preset(capsys):
    code = main(["train", "--preset", "seed", "--max-steps", "7", "--domain-weights", "math=0.5,logic=0.5",
                 "--no-stop-at-answer-end", "--phase-boundaries", "[0.1, 0.9]", "--print-config"])
    assert code == 0
    config = json.loads(capsys.readouterr().out)
    assert config["model"] == "google/gemma-3-1b-it"
    assert config["max_steps"] == 7 and config["domain_weights"] == {"math": 0.5, "logic": 0.5}
    assert config["stop_at_answer_end"] is False and config["phase_boundaries"] == [0.1, 0.9]


def test_bad_config_is_a_clear_error_not_a_traceback(capsys):
    assert main(["train", "--domain-weights", "math=1,poetry=2", "--print-config"]) == 2
    error = capsys.readouterr().err
    assert "unknown domain" in error and "poetry" in error and "math, code, science, logic" in error
