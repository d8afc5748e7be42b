"""A CPU run keeps freed memory resident between steps (glibc malloc), so a step's fresh tensor
shapes do not fault their pages in again; `train()` sets it on a CPU-only machine."""

import subprocess
import sys
import textwrap

import pytest
from test_training import completion_length_reward, tiny_config

from phasegrpo.training import run as training_run

RESIDENT_AFTER_FREE = textwrap.dedent("""
    import os, sys
    import torch
    from phasegrpo.cpu_allocator import keep_freed_memory
    if sys.argv[1] == "keep":
        assert keep_freed_memory()
    def resident_mib():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    before = resident_mib()
    block = torch.ones(64 * 2**20 // 4)  # 64 MiB, written to: every page resident
    del block
    print(resident_mib() - before)
""")


def resident_mib_after_freeing(mode):
    done = subprocess.run([sys.executable, "-c", RESIDENT_AFTER_FREE, mode], capture_output=True, text=True, check=True)
    return float(done.stdout.split()[-1])


def test_freed_memory_stays_resident_only_when_kept():
    assert resident_mib_after_freeing("default") < 16  # glibc unmaps the block: its pages fault in again next time
    assert resident_mib_after_freeing("keep") > 60  # kept: the next allocation reuses resident pages


@pytest.mark.parametrize("keep", [True, False])
def test_train_keeps_freed_memory_on_a_cpu_only_machine_unless_turned_off(tmp_path, tiny, keep, monkeypatch):
    calls = []
    monkeypatch.setattr(training_run, "keep_freed_memory", lambda: calls.append(1) or True)
    model, tokenizer = tiny
    config = tiny_config(tmp_path, max_steps=1, keep_freed_memory=keep)
    training_run.train(config, model=model, tokenizer=tokenizer, show_progress=False,
                       reward_functions={"completion_length_reward": completion_length_reward})
    assert len(calls) == (1 if keep else 0)
