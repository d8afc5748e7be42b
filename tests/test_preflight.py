"""Bad input is refused first: one message naming the field and the fix, exit code 2, no run folder
created or changed. Offline and fast: the Hub is mocked, nothing is downloaded or loaded."""

import importlib.util
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest.mock import MagicMock

import pytest
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

from phasegrpo import run_folder
from phasegrpo.cli import main
from phasegrpo.config import preset
from phasegrpo.training import preflight as preflight_module
from phasegrpo.training import train
from phasegrpo.training.preflight import InputError

GATED = GatedRepoError("403 Client Error: access to model google/gemma-3-1b-it is restricted", response=MagicMock())
NOT_FOUND = RepositoryNotFoundError("401 Client Error: Repository Not Found", response=MagicMock())
NO_NETWORK = ConnectionError("[Errno -2] Name or service not known")
REAL_ACCESS_CHECK = preflight_module.hub_access_check  # the fixture `machine` replaces it

# (case, flags, how the Hub answers / "offline", the message's parts: the field and the fix)
CASES = [
    ("unknown reward in phase_rewards", ["--phase-rewards", '[["punish_refusal", "brevity"], [], ["x"]]'], None,
     ["phase_rewards (--phase-rewards) enables unknown reward(s) ['brevity'] in phase 0, ['x'] in phase 2",
      "known: check_answer", "register_reward('name', fn)", "reward_functions="]),
    ("unknown reward in reward_weights", ["--reward-weights", "brevity=2"], None,
     ["reward_weights (--reward-weights) names unknown reward(s) ['brevity']; known: check_answer"]),
    ("reward weight not a number", ["--reward-weights", "check_answer=high"], None,
     ["reward_weights (--reward-weights) needs a number per reward, or a list of one per phase, got {'check_answer': 'high'}"]),
    ("unknown name in reward_values", ["--reward-values", "correct_bonus=3"], None,
     ["reward_values (--reward-values): Unknown reward value(s) 'correct_bonus'"]),
    ("unknown loss_type", ["--loss-type", "ppo"], None,
     ["loss_type must be one of dapo, grpo, dr_grpo", "got 'ppo'"]),
    ("unknown vllm_mode", ["--vllm-mode", "remote"], None,
     ["vllm_mode must be colocate or server", "got 'remote'"]),
    ("use_vllm without a GPU", ["--use-vllm"], None,
     ["use_vllm (--use-vllm) needs a CUDA GPU", "drop --use-vllm"]),
    ("report_to tracker not installed", ["--report-to", "wandb"], None,
     ["report_to 'wandb' needs the wandb package", "pip install 'phasegrpo[wandb]'"]),
    ("unparsable domain weight", ["--domain-weights", "math=abc"], None,
     ["domain_weights (--domain-weights) needs a number per domain, got math='abc'", "--domain-weights math=0.5,code=0.5"]),
    ("unparsable --domain-weights JSON", ["--domain-weights", "{math: 1}"], None,
     ["argument --domain-weights: expected key=value pairs (math=0.5,code=0.5) or a JSON object, got '{math: 1}'"]),
    ("unknown domain in mix_end_weights", ["--mix-schedule", "linear", "--mix-end-weights", "poetry=1"], None,
     ["mix_end_weights has unknown domain(s) ['poetry']", "register_domain"]),
    ("model folder that does not exist", ["--model", "./models/no-such-model"], None,
     ["model folder './models/no-such-model' does not exist", "--model embedded"]),
    ("model not on the Hub", ["--model", "nobody/no-such-model"], NOT_FOUND,
     ["model 'nobody/no-such-model' does not exist on the Hugging Face Hub", "hf auth login", "--model embedded"]),
    ("gated model without a login", ["--model", "google/gemma-3-1b-it"], GATED,
     ["model 'google/gemma-3-1b-it' is gated", "https://huggingface.co/google/gemma-3-1b-it", "hf auth login"]),
    ("model offline and not cached", ["--model", "google/gemma-3-1b-it"], "offline",
     ["model 'google/gemma-3-1b-it' is not in the Hugging Face cache and HF_HUB_OFFLINE is set", "--model embedded"]),
    ("model with no network and not cached", ["--model", "google/gemma-3-1b-it"], NO_NETWORK,
     ["model 'google/gemma-3-1b-it' cannot be reached", "is not in the cache", "--model embedded"]),
    ("Hub dataset offline and not cached", ["--data-source", "hub"], "offline",
     ["data_source 'hub' reads openai/gsm8k (math), google-research-datasets/mbpp (code)",
      "not in the Hugging Face cache, and HF_HUB_OFFLINE is set", "--data-dir DIR", "--data-source synthetic"]),
    ("Hub dataset with no network and not cached", ["--data-source", "hub", "--domain-weights", "math=1"], NO_NETWORK,
     ["data_source 'hub' reads openai/gsm8k (math): out of reach of the Hugging Face Hub (ConnectionError",
      "DIR/gsm8k/*.jsonl", "--data-source synthetic"]),
]


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """This test's machine: no GPU, no wandb, empty Hugging Face caches, online unless a case says
    otherwise, and a Hub that a test must mock before anything asks it."""
    import datasets
    import huggingface_hub
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real_find_spec(name, *a))
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")

    def unexpected(repo_id, repo_type):
        pytest.fail(f"asked the Hub about {repo_type} {repo_id}")  # BaseException: the check does not swallow it

    monkeypatch.setattr(preflight_module, "hub_access_check", unexpected)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")  # a local model folder: the cases' other input is good
    monkeypatch.chdir(tmp_path)
    return model_dir


def answer_hub(monkeypatch, answer):
    if answer == "offline":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    elif answer is not None:
        def access_check(repo_id, repo_type):
            raise answer

        monkeypatch.setattr(preflight_module, "hub_access_check", access_check)


def snapshot(folder: Path) -> dict:
    return {str(path.relative_to(folder)): path.read_bytes() if path.is_file() else None for path in sorted(folder.rglob("*"))}


def existing_run(run_dir: Path, model_dir: Path) -> dict:
    """A run folder from an earlier run of the same settings: config, metrics, a checkpoint."""
    config = preset("demo", model=str(model_dir), output_dir=str(run_dir))
    run_dir.mkdir()
    (run_dir / run_folder.CONFIG_FILE).write_text(json.dumps(config.to_dict()))
    (run_dir / run_folder.METRICS_FILE).write_text('{"step": 1}\n{"step": 2}\n')
    (run_dir / run_folder.CHECKPOINTS_DIR / "checkpoint-2").mkdir(parents=True)
    (run_dir / run_folder.CHECKPOINTS_DIR / "checkpoint-2" / "trainer_state.json").write_text("{}")
    return snapshot(run_dir)


@pytest.mark.parametrize("run_folder_state", ["new", "existing, --overwrite", "existing, --resume"])
@pytest.mark.parametrize(("case", "flags", "hub", "message"), CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_one_message_exit_2_and_no_run_folder_change(
    machine, tmp_path, monkeypatch, capsys, case, flags, hub, message, run_folder_state
):
    run_dir = tmp_path / "run"
    before = None if run_folder_state == "new" else existing_run(run_dir, machine)
    answer_hub(monkeypatch, hub)
    extra = {"new": [], "existing, --overwrite": ["--overwrite"], "existing, --resume": ["--resume"]}[run_folder_state]

    try:
        code = main(["train", "--preset", "demo", "--model", str(machine), "--output-dir", str(run_dir), *extra, *flags])
    except SystemExit as exit_:  # argparse: a flag's value it cannot parse
        code = exit_.code

    error = capsys.readouterr().err
    assert code == 2, error
    assert error.count("phasegrpo train: error:") == 1 and "Traceback" not in error
    assert "Cannot start the run" not in error  # one problem, one message
    for part in message:
        assert part in error
    if before is None:
        assert not run_dir.exists()
    else:
        assert snapshot(run_dir) == before  # byte-identical


@pytest.mark.parametrize(
    ("overrides", "hub", "message"),
    [
        ({"phase_rewards": [["brevity"], [], []]}, None, "enables unknown reward(s) ['brevity'] in phase 0"),
        ({"use_vllm": True}, None, "use_vllm (--use-vllm) needs a CUDA GPU"),
        ({"model": "google/gemma-3-1b-it"}, GATED, "is gated"),
        ({"data_source": "hub"}, "offline", "--data-source synthetic"),
    ],
)
def test_the_python_api_raises_input_error_before_the_run_folder(machine, tmp_path, monkeypatch, overrides, hub, message):
    answer_hub(monkeypatch, hub)
    config = preset("demo", **{"model": str(machine), "output_dir": str(tmp_path / "run"), **overrides})
    with pytest.raises(InputError) as raised:
        train(config)
    assert message in str(raised.value)
    assert isinstance(raised.value, ValueError)  # what Config's own checks raise, too
    assert not (tmp_path / "run").exists()


def test_a_reward_given_to_train_is_known_and_several_problems_are_listed_together(machine, tmp_path):
    config = preset("demo", model=str(machine), phase_rewards=[["brevity"], [], []], use_vllm=True)
    assert preflight_module.reward_problems(config, {"brevity": lambda completions, **kwargs: [0.0] * len(completions)}) == []
    with pytest.raises(InputError, match="Cannot start the run:\n  phase_rewards .*\n  use_vllm"):
        preflight_module.preflight(config)


@pytest.mark.parametrize(
    ("hub", "cached", "problems"),
    [
        (None, False, 0),  # the Hub lets this machine read it
        (NO_NETWORK, True, 0),  # no network, but transformers loads it from the cache
        ("offline", True, 0),
        (NO_NETWORK, False, 1),
    ],
)
def test_a_hub_model_in_the_cache_passes_without_the_network(machine, tmp_path, monkeypatch, hub, cached, problems):
    import huggingface_hub

    if hub is None:
        monkeypatch.setattr(preflight_module, "hub_access_check", lambda repo_id, repo_type: None)
    answer_hub(monkeypatch, hub)
    if cached:  # the cache's layout: models--NAMESPACE--NAME/{refs/main, snapshots/<commit>/config.json}
        repo = Path(huggingface_hub.constants.HF_HUB_CACHE) / "models--google--gemma-3-1b-it"
        (repo / "snapshots" / "abc123").mkdir(parents=True)
        (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text("abc123")
    assert len(preflight_module.model_problems("google/gemma-3-1b-it")) == problems


def test_the_command_exits_2_with_the_message_and_no_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "phasegrpo", "train", "--loss-type", "ppo", "--output-dir", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("  loss_type must be one of dapo")
    assert "Traceback" not in done.stderr and not (tmp_path / "run").exists()


class AuthCheckHub(BaseHTTPRequestHandler):
    """The Hub's auth-check route as huggingface_hub reads it: 200, or 403/404 with X-Error-Code."""

    answers = {"/api/models/google/gemma-3-1b-it/auth-check": (403, "GatedRepo"),
               "/api/models/nobody/no-such-model/auth-check": (404, "RepoNotFound"),
               "/api/datasets/openai/gsm8k/auth-check": (200, None)}

    def log_message(self, *args):
        pass

    def do_GET(self):
        status, error_code = self.answers.get(self.path, (500, None))
        self.send_response(status)
        if error_code:
            self.send_header("X-Error-Code", error_code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


@pytest.mark.parametrize(("repo_id", "repo_type", "status"), [
    ("google/gemma-3-1b-it", "model", ("gated", "")),
    ("nobody/no-such-model", "model", ("not found", "")),
    ("openai/gsm8k", "dataset", None),
])
def test_the_access_check_reads_the_hubs_answer(machine, monkeypatch, repo_id, repo_type, status):
    import huggingface_hub

    server = ThreadingHTTPServer(("127.0.0.1", 0), AuthCheckHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setattr(preflight_module, "hub_access_check", REAL_ACCESS_CHECK)
    try:
        assert preflight_module.hub_status(repo_id, repo_type, cached=lambda: False) == status
    finally:
        server.shutdown()


def test_loading_a_hub_dataset_offline_says_how_to_do_without_it(machine, monkeypatch):
    import datasets

    from phasegrpo.data import load_domain

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'openai/gsm8k' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match=r"OfflineModeIsEnabled\)\. The math rows come from openai/gsm8k .*"
                                           r"--data-dir DIR with DIR/gsm8k/\*\.jsonl.*--data-source synthetic"):
        load_domain("math")


def test_under_a_launcher_the_main_process_alone_asks_the_hub_and_every_rank_exits_2(tmp_path):
    """A real 2-process `accelerate launch` of the command, offline with empty caches: rank 0 makes
    the Hub check, rank 1 waits for its answer, and both stop with its message and exit code 2."""
    from launcher import PROCESSES, ROOT, launch

    model_dir, run_dir, log_file = tmp_path / "model", tmp_path / "run", tmp_path / "ranks.jsonl"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    caches = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
              "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets")}
    done = launch(
        ROOT / "tests" / "multiprocess_preflight.py", str(log_file), "train", "--preset", "demo", "--model", str(model_dir),
        "--data-source", "hub", "--domain-weights", "math=1", "--output-dir", str(run_dir),
        check=False, HF_HUB_OFFLINE="1", **caches,
    )
    output = done.stdout + done.stderr
    assert done.returncode != 0
    records, _ = run_folder.read_jsonl(log_file)
    assert [record for record in records if "repo" in record] == [{"rank": 0, "repo": "openai/gsm8k"}]
    assert sorted((record["rank"], record["exit_code"]) for record in records if "exit_code" in record) == [(0, 2), (1, 2)]
    message = "phasegrpo train: error: data_source 'hub' reads openai/gsm8k (math): not in the Hugging Face cache"
    assert output.count(message) == PROCESSES, output[-6000:]
    assert not run_dir.exists()
