"""Config files (`phasegrpo train --config FILE`) and the examples/ folder."""

import json
from pathlib import Path

import pytest

from phasegrpo.cli import main
from phasegrpo.config import Config, preset
from phasegrpo.config_files import load_config_file

EXAMPLES = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.py"))


def test_the_examples_folder_has_the_documented_examples():
    assert {path.name for path in EXAMPLES} >= {"seed_1gpu.py", "seed_8gpu_deepspeed.py", "custom_reward.py", "custom_data.py"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_every_example_is_a_config_that_trains(path, tmp_path):
    from phasegrpo.router import RewardRouter
    from phasegrpo.training.setup import grpo_args

    config = load_config_file(path)
    assert isinstance(config, Config)
    RewardRouter.from_config(config)  # every reward its phases enable is known (custom_reward registers its own)
    args = grpo_args(config, tmp_path)  # TRL accepts its settings, trl_args included
    for name, value in config.trl_args.items():
        assert getattr(args, name) == value


def test_custom_data_example_reads_its_local_folder():
    from phasegrpo.training.setup import load_training_rows

    config = load_config_file(Path(__file__).resolve().parent.parent / "examples" / "custom_data.py")
    rows, row_domains = load_training_rows(config)
    assert set(row_domains) == {"math", "science"} and len(rows) == len(row_domains) > 0
    assert {row["source"] for row in rows} == {"openai/gsm8k", "allenai/ai2_arc"}  # the local files, read as those datasets


def test_custom_reward_example_scores_through_the_router():
    from phasegrpo.formats import render
    from phasegrpo.router import RewardRouter

    config = load_config_file(Path(__file__).resolve().parent.parent / "examples" / "custom_reward.py")
    router = RewardRouter.from_config(config)
    row = {"domain": "math", "answer": "4", "tests": [], "setup_code": ""}
    explanation = router.explain(render("2 + 2 = 4", "4"), row, step=3, max_steps=4)  # phase 2
    line = {line.name: line for line in explanation.lines}["concise_reasoning"]
    assert line.is_enabled and line.contribution == pytest.approx(0.5)  # 5 words of reasoning: the full bonus


def test_a_saved_config_json_loads_back_equal(tmp_path):
    config = preset("seed", max_steps=17, trl_args={"max_grad_norm": 0.5})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config.to_dict()))
    assert load_config_file(path) == config


@pytest.mark.parametrize(
    "file_name, text, message",
    [
        ("no_config.py", "from phasegrpo import preset\nsettings = preset('demo')\n", r"defines no `config`; it defines: preset, settings"),
        ("wrong_type.py", "config = {'max_steps': 3}\n", r"`config` is a dict .* not a phasegrpo Config"),
        ("bad_field.json", '{"max_stepz": 3}', r"Unknown config field\(s\) \['max_stepz'\]"),
        ("list.json", "[1, 2]", r"holds a list; expected an object of config fields"),
        ("broken.json", "{", r"is not valid JSON"),
        ("settings.yaml", "max_steps: 3\n", r"expected a \.py file that defines `config`"),
    ],
)
def test_a_bad_config_file_is_a_clear_error(tmp_path, file_name, text, message):
    path = tmp_path / file_name
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_config_file(path)


def test_a_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_config_file(tmp_path / "nothing.py")


def test_a_config_file_may_import_a_module_beside_it(tmp_path):
    (tmp_path / "shared_settings.py").write_text("STEPS = 9\n")
    (tmp_path / "run.py").write_text("from phasegrpo import preset\nfrom shared_settings import STEPS\nconfig = preset('demo', max_steps=STEPS)\n")
    assert load_config_file(tmp_path / "run.py").max_steps == 9


# --- the command line -----------------------------------------------------------------------------


def write_config_file(tmp_path) -> Path:
    path = tmp_path / "my_run.py"
    path.write_text(
        "from phasegrpo import preset\n"
        "config = preset('seed', max_steps=600, learning_rate=1e-5, trl_args={'lr_scheduler_type': 'cosine'})\n"
    )
    return path


def printed_config(capsys, argv) -> dict:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_train_config_file_gives_its_values_and_only_given_flags_override(tmp_path, capsys):
    path = write_config_file(tmp_path)
    values = printed_config(capsys, ["train", "--config", str(path), "--print-config"])
    assert values["model"] == "google/gemma-3-1b-it"  # from the file's seed preset, not the demo default
    assert (values["max_steps"], values["learning_rate"], values["trl_args"]) == (600, 1e-5, {"lr_scheduler_type": "cosine"})

    values = printed_config(capsys, ["train", "--config", str(path), "--max-steps", "50", "--print-config"])
    assert values["max_steps"] == 50 and values["learning_rate"] == 1e-5  # the flag wins; the rest stays the file's


def test_train_config_json_reruns_a_saved_run(tmp_path, capsys):
    saved = preset("demo", max_steps=6, domain_weights={"math": 1.0}, trl_args={"save_total_limit": 1})
    path = tmp_path / "config.json"
    path.write_text(json.dumps(saved.to_dict()))
    values = printed_config(capsys, ["train", "--config", str(path), "--print-config"])
    assert values == saved.to_dict()


def test_train_refuses_preset_and_config_together(tmp_path, capsys):
    assert main(["train", "--preset", "seed", "--config", str(write_config_file(tmp_path)), "--print-config"]) == 2
    error = capsys.readouterr().err
    assert "--preset seed and --config" in error and "Pass one of them" in error


def test_train_config_file_errors_are_clear(tmp_path, capsys):
    path = tmp_path / "empty.py"
    path.write_text("x = 1\n")
    assert main(["train", "--config", str(path), "--print-config"]) == 2
    assert "defines no `config`" in capsys.readouterr().err


def test_train_help_shows_the_presets_values_not_none(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "(demo preset: 8; seed preset: 300)" in help_text  # --max-steps
    assert "(demo preset: embedded; seed preset: google/gemma-3-1b-it)" in help_text  # --model
    assert "(default: 0.08)" in help_text  # --beta: the same in every preset
    assert "default: None" not in help_text
    assert "--trl K=V,..., --trl-args K=V,..." in help_text and "--config FILE" in help_text


def test_resume_with_a_config_file_keeps_the_files_settings(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(preset("demo", output_dir=str(run_dir), max_steps=8).to_dict()))
    path = tmp_path / "my_run.py"
    path.write_text(f"from phasegrpo import preset\nconfig = preset('demo', output_dir={str(run_dir)!r}, max_steps=8, seed=7)\n")
    values = printed_config(capsys, ["train", "--config", str(path), "--resume", "--print-config"])
    assert values["seed"] == 7 and values["max_steps"] == 8  # the file's, not the saved run's seed 42
