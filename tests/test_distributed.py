"""The pieces that keep many processes one run, on one process: per-domain means over every
rank's completions, the run-folder work of the main process, Ctrl-C, and the DeepSpeed check.
The real 2-process run is tests/test_multiprocess.py."""

import os
import signal

import pytest

from phasegrpo import metric_keys
from phasegrpo.router import RewardRouter
from phasegrpo.training import distributed
from phasegrpo.training.callbacks import StopOnInterrupt


def length_reward(completions, **kwargs):
    return [float(len(c)) for c in completions]


def router_for_test():
    return RewardRouter(phase_rewards=[["length_reward"]], reward_functions={"length_reward": length_reward},
                        domain_scales={"math": 1.0, "code": 1.0})


def scored_metrics(router, completions, domains):
    logged = {}
    router(completions=completions, domain=domains, log_metric=logged.__setitem__)
    return logged


def test_domain_means_and_counts_are_over_every_ranks_completions():
    """The issue's case: rank 0 holds 4 math + 4 code, rank 1 holds 8 math. True math count 12 and
    mean reward (4 x 1 + 8 x 0) / 12 = 0.333, not a mean of rank means (6 and 0.5)."""
    rank1_router, rank0_router = router_for_test(), router_for_test()
    rank1_totals = {}

    def keep_rank1(local):
        rank1_totals.update(local)
        return dict(local)

    rank1_router.totals_across_processes = keep_rank1
    scored_metrics(rank1_router, [""] * 8, ["math"] * 8)  # reward 0 each

    def add_rank1(local):  # what sum_across_processes returns on rank 0 of two
        names = set(local) | set(rank1_totals)
        zero = (0.0, 0.0)
        return {name: tuple(a + b for a, b in zip(local.get(name, zero), rank1_totals.get(name, zero), strict=True))
                for name in sorted(names)}

    rank0_router.totals_across_processes = add_rank1
    metrics = scored_metrics(rank0_router, ["x"] * 4 + ["xx"] * 4, ["math"] * 4 + ["code"] * 4)

    assert metrics[metric_keys.domain_stat("math", "count")] == 12
    assert metrics[metric_keys.domain_stat("code", "count")] == 4
    assert metrics[metric_keys.domain_stat("math", "reward")] == pytest.approx(4 / 12)
    assert metrics[metric_keys.domain_stat("code", "reward")] == pytest.approx(2.0)
    assert metrics[metric_keys.reward("length_reward", "raw")] == pytest.approx((4 + 8) / 16)
    assert metrics[metric_keys.reward("length_reward", "raw", "math")] == pytest.approx(4 / 12)


def test_one_process_logs_what_it_always_logged():
    metrics = scored_metrics(router_for_test(), ["x", "xyz", "ab"], ["math", "math", "code"])
    assert metrics[metric_keys.domain_stat("math", "reward")] == 2.0
    assert metrics[metric_keys.domain_stat("math", "count")] == 2.0
    assert metrics[metric_keys.domain_stat("code", "exact_rate")] == 0.0
    assert metrics[metric_keys.reward("length_reward", "contribution")] == 2.0


def test_helpers_on_one_process_do_the_work_here():
    assert not distributed.is_distributed() and distributed.is_main_process() and distributed.process_count() == 1
    assert distributed.run_on_main_process(lambda: 42) == 42
    with pytest.raises(FileExistsError, match="exists"):
        distributed.run_on_main_process(lambda: (_ for _ in ()).throw(FileExistsError("exists")))
    assert distributed.any_process(True) and not distributed.any_process(False)
    assert distributed.sum_across_processes({"a": (1, 2)}) == {"a": (1.0, 2.0)}
    distributed.barrier()


class NeedsAResponse(Exception):
    """Like huggingface_hub's HTTP errors: a keyword its pickled arguments do not carry."""

    def __init__(self, message, *, response):
        super().__init__(message)
        self.response = response


def test_an_error_the_main_process_hands_on_keeps_its_message_even_when_it_cannot_be_pickled():
    readable = FileExistsError("Run folder runs/demo already exists")
    assert distributed.transferable_error(readable) is readable
    handed_on = distributed.transferable_error(NeedsAResponse("503 from the Hub", response=object()))
    assert isinstance(handed_on, RuntimeError) and str(handed_on) == "NeedsAResponse: 503 from the Hub"


@pytest.mark.parametrize("environment, trl_args", [({"ACCELERATE_USE_DEEPSPEED": "true"}, {}), ({}, {"deepspeed": "ds.json"})])
def test_deepspeed_without_the_package_is_refused_with_the_install_command(monkeypatch, environment, trl_args):
    monkeypatch.setattr(distributed, "_is_installed", lambda package: False)
    with pytest.raises(ValueError, match=r"deepspeed package is not installed.*\.\[deepspeed\]"):
        distributed.check_backend_installed(trl_args, environment)
    distributed.check_backend_installed({}, {"ACCELERATE_USE_DEEPSPEED": "false"})  # not asked for: fine


def test_the_cli_refuses_deepspeed_before_the_run_folder(monkeypatch, tmp_path, capsys):
    from phasegrpo.cli import main

    monkeypatch.setattr(distributed, "_is_installed", lambda package: False)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    code = main(["train", "--preset", "demo", "--output-dir", str(tmp_path / "run")])
    assert code == 2 and "pip install -e \".[deepspeed]\"" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


class _Control:
    should_save = should_training_stop = False


def _send_sigint_twice(interrupt: StopOnInterrupt) -> None:
    interrupt.install()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
    finally:
        interrupt.restore()


def test_a_launchers_forwarded_ctrl_c_is_the_same_ctrl_c(monkeypatch):
    """torchrun's agent forwards the terminal's Ctrl-C to ranks that already got it: not an abort."""
    monkeypatch.setenv("LOCAL_RANK", "0")
    interrupt = StopOnInterrupt()
    _send_sigint_twice(interrupt)
    assert interrupt.has_received_signal and not interrupt.is_interrupted  # stops at the step end
    control = _Control()
    interrupt.on_step_end(None, None, control)
    assert interrupt.is_interrupted and control.should_save and control.should_training_stop


def test_a_second_ctrl_c_aborts_without_a_launcher(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    with pytest.raises(KeyboardInterrupt):
        _send_sigint_twice(StopOnInterrupt())
