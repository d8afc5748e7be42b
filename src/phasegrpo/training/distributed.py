"""What a run does across processes (accelerate launch, torchrun; DDP, DeepSpeed, FSDP).

One process (no launcher) is the trivial case of every helper: nothing to wait for or combine.
Under a launcher every rank runs `train()`; these helpers keep them in step:

- the preflight checks (Hub requests included) and the run-folder work (exists check,
  --overwrite, config.json, metrics truncation) happen on the main process only
  (`run_on_main_process`), and every rank gets its result or its error;
- the per-domain metrics are sums and counts added across ranks (`sum_across_processes`), so a
  mean is over completions, not over ranks;
- the Ctrl-C flag is combined (`any_process`), so every rank stops after the same step;
- `barrier()` before a checkpoint is marked complete and before train() returns.

The process group is the one transformers' TrainingArguments starts (accelerate's PartialState);
call these after `grpo_args` has been built.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
from collections.abc import Callable, Mapping
from typing import TypeVar

import torch
import torch.distributed as torch_distributed

Result = TypeVar("Result")


def is_distributed() -> bool:
    """Whether this process is one of several in a started process group."""
    return torch_distributed.is_available() and torch_distributed.is_initialized() and torch_distributed.get_world_size() > 1


def is_main_process() -> bool:
    """Whether this process writes the run folder (rank 0, or the only process)."""
    return not is_distributed() or torch_distributed.get_rank() == 0


def process_count() -> int:
    return torch_distributed.get_world_size() if is_distributed() else 1


def _device() -> torch.device:
    # NCCL reduces CUDA tensors only; gloo CPU ones. accelerate's state knows this rank's device.
    from accelerate import PartialState

    return PartialState().device


def barrier() -> None:
    """Wait until every process gets here (no-op on one process)."""
    if is_distributed():
        from accelerate import PartialState

        PartialState().wait_for_everyone()


def run_on_main_process(function: Callable[[], Result]) -> Result:
    """`function()` on the main process only; every process returns its result or raises its error.

    The others wait meanwhile, so nothing reads the run folder while the main process prepares it,
    and an error (an existing folder, a changed max_steps) stops every rank instead of leaving them
    waiting for a process that has quit. The result and the error must pickle.
    """
    if not is_distributed():
        return function()
    outcome: list = [None]
    own_error = None
    if is_main_process():
        try:
            outcome[0] = ("result", function())
        except Exception as error:  # handed to every rank below, then raised everywhere
            own_error = error
            outcome[0] = ("error", transferable_error(error))
    torch_distributed.broadcast_object_list(outcome, src=0)
    kind, value = outcome[0]
    if kind == "error":
        raise own_error or value  # the main process raises the original, traceback and all
    return value


def transferable_error(error: Exception) -> Exception:
    """`error` if it survives pickling (what a broadcast does to it), else a RuntimeError with its
    type and message: an exception whose own arguments do not rebuild it (e.g. a required keyword)
    would fail on the receiving ranks, and they would raise that failure instead of the message."""
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def any_process(flag: bool) -> bool:
    """Whether `flag` is true on any process (every process must call this at the same point)."""
    if not is_distributed():
        return bool(flag)
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=_device())
    torch_distributed.all_reduce(value, op=torch_distributed.ReduceOp.MAX)
    return bool(value.item())


def sum_across_processes(totals: Mapping[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Per-name (sum, count) pairs added over every process; a name missing on a rank counts (0, 0).

    Every process must call this at the same point. The names are first united across ranks (a
    domain can be in one rank's batch and not in another's), then summed in sorted order.
    """
    if not is_distributed():
        return {name: (float(total), float(count)) for name, (total, count) in totals.items()}
    names_by_rank: list = [None] * process_count()
    torch_distributed.all_gather_object(names_by_rank, sorted(totals))
    names = sorted(set().union(*names_by_rank))
    local = torch.tensor([list(totals.get(name, (0.0, 0.0))) for name in names], dtype=torch.float64).reshape(-1, 2)
    local = local.to(_device())
    torch_distributed.all_reduce(local, op=torch_distributed.ReduceOp.SUM)
    return {name: (float(total), float(count)) for name, (total, count) in zip(names, local.tolist(), strict=True)}


def _is_installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def check_backend_installed(trl_args: Mapping | None = None, environment: Mapping[str, str] | None = None) -> None:
    """Refuse, before anything is written, a DeepSpeed run without the deepspeed package.

    DeepSpeed is asked for by `accelerate launch --config_file accelerate_configs/zero*.yaml`
    (which sets ACCELERATE_USE_DEEPSPEED) or by `--trl deepspeed=ds_config.json`.
    """
    environment = os.environ if environment is None else environment
    wants_deepspeed = environment.get("ACCELERATE_USE_DEEPSPEED", "").lower() in ("1", "true", "yes") or bool(
        (trl_args or {}).get("deepspeed")
    )
    if wants_deepspeed and not _is_installed("deepspeed"):
        raise ValueError(
            "This run asks for DeepSpeed (an accelerate config with distributed_type: DEEPSPEED, or trl_args "
            "deepspeed=...) but the deepspeed package is not installed. Install it with "
            "pip install -e \".[deepspeed]\" (needs a CUDA toolchain), or launch with "
            "accelerate_configs/ddp.yaml or accelerate_configs/fsdp.yaml instead."
        )
