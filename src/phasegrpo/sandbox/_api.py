from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Program:
    """Model-written `code`, run after `setup_code`, judged by each assert in `tests`."""

    code: str
    tests: Sequence[str] = field(default_factory=tuple)
    setup_code: str = ""


@dataclass(frozen=True)
class Verdict:
    passed: int
    total: int
    status: str  # "ok" (ran to the end), "timeout", "error", "crashed"
    detail: str = ""

    @property
    def fraction(self) -> float:
        return self.passed / self.total if self.total else 0.0


_RUNNER = r"""
import json, sys
payload = json.loads(sys.stdin.read())
env = {"__name__": "__main__"}
results = []
try:
    exec(compile(payload["setup"] + "\n" + payload["code"], "<program>", "exec"), env)
    ok = True
except BaseException:
    ok = False
for test in payload["tests"]:
    if not ok:
        results.append(False); continue
    try:
        exec(compile(test, "<test>", "exec"), env)
        results.append(True)
    except BaseException:
        results.append(False)
sys.__stdout__.write("\n" + payload["marker"] + json.dumps(results) + "\n")
sys.__stdout__.flush()
"""


def _limit_resources(memory_mb: int) -> None:
    os.setsid()
    resource.setrlimit(resource.RLIMIT_AS, (memory_mb * 2**20, memory_mb * 2**20))
    resource.setrlimit(resource.RLIMIT_FSIZE, (2**20, 2**20))


def _run_one(program: Program, timeout_s: float, memory_mb: int) -> Verdict:
    total = len(program.tests)
    marker = "@@RESULT@@" + os.urandom(8).hex()
    payload = json.dumps({"code": program.code, "tests": list(program.tests), "setup": program.setup_code, "marker": marker})
    with tempfile.TemporaryDirectory(prefix="phasegrpo-sandbox-") as workdir:
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-c", _RUNNER],
                input=payload.encode("utf-8", "replace"),
                capture_output=True,
                timeout=timeout_s,
                cwd=workdir,
                env={"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir},
                preexec_fn=lambda: _limit_resources(memory_mb),
            )
        except subprocess.TimeoutExpired:
            return Verdict(0, total, "timeout")
    stdout = done.stdout.decode("utf-8", "replace")
    if marker not in stdout:
        return Verdict(0, total, "crashed", done.stderr.decode("utf-8", "replace")[-300:])
    results = json.loads(stdout.rsplit(marker, 1)[1].splitlines()[0])
    return Verdict(sum(bool(r) for r in results), total, "ok")


def run_programs(programs: Sequence[Program], *, timeout_s: float = 5.0, memory_mb: int = 1024) -> list[Verdict]:
    """Run each program against its tests; one Verdict per program, in input order."""
    return [_run_one(program, timeout_s, memory_mb) for program in programs]
