from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from phasegrpo.sandbox import _pool


@dataclass(frozen=True)
class Program:
    """Model-written `code`, run after `setup_code`, judged by each assert in `tests`.

    `setup_code` and `tests` come from the dataset and are trusted; `code` is not.
    """

    code: str
    tests: Sequence[str] = field(default_factory=tuple)
    setup_code: str = ""


@dataclass(frozen=True)
class Verdict:
    """What the sandbox concluded about one program.

    `status`: "ok" (every test ran and was judged, whatever the result), "error" (the code raised
    before any test could run), "timeout" (the code, or at least one test, ran out of time),
    "crashed" (the process died, broke a limit, or printed too much). `tests` gives each test's
    outcome: "passed", "failed", "error", "timeout", "crashed" or "unsupported" (a test shape the
    sandbox will not judge, such as an assert inside a loop). `isolation` is "namespaces",
    "partial" or "fallback" (see docs/sandbox.md).
    """

    passed: int
    total: int
    status: str
    detail: str = ""
    tests: tuple[str, ...] = ()
    isolation: str = ""

    @property
    def fraction(self) -> float:
        return self.passed / self.total if self.total else 0.0


def run_programs(
    programs: Sequence[Program],
    *,
    timeout_s: float = 5.0,
    memory_mb: int = 1024,
    output_limit_bytes: int = 2**20,
    file_size_mb: int = 16,
    max_processes: int = 32,
    program_timeout_s: float | None = None,
) -> list[Verdict]:
    """Run each program against its tests in the sandbox, in parallel; one Verdict per program, in input order.

    `timeout_s` is the wall-clock budget of the code and of each test separately, so one hanging test
    does not take the others' credit; `program_timeout_s` caps the whole program (default
    (1 + len(tests)) * timeout_s), after which its remaining tests time out. CPU time is capped too. `memory_mb` caps the
    address space, `file_size_mb` any file written, `output_limit_bytes` what it may print, and
    `max_processes` the processes and threads it may have at once (as root, programs run as a mapped
    non-root user so that the kernel applies it; where namespaces are unavailable, new processes are denied).
    """
    if program_timeout_s is not None and program_timeout_s <= 0:
        raise ValueError(f"program_timeout_s must be positive or None; got {program_timeout_s}.")
    if timeout_s <= 0 or memory_mb <= 0 or output_limit_bytes < 0 or file_size_mb < 0 or max_processes < 1:
        raise ValueError(
            f"run_programs needs timeout_s > 0, memory_mb > 0, output_limit_bytes >= 0, file_size_mb >= 0 and "
            f"max_processes >= 1; got timeout_s={timeout_s}, memory_mb={memory_mb}, output_limit_bytes="
            f"{output_limit_bytes}, file_size_mb={file_size_mb}, max_processes={max_processes}."
        )
    if not programs:
        return []
    jobs = [
        {
            "code": program.code, "setup": program.setup_code, "tests": list(program.tests), "timeout_s": timeout_s,
            "memory_mb": memory_mb, "output_limit_bytes": output_limit_bytes, "file_size_mb": file_size_mb,
            "max_processes": max_processes, "program_timeout_s": program_timeout_s,
        }
        for program in programs
    ]
    # The worker answers within (1 + tests) budgets plus kill and clean-up; past that it is hung.
    job_timeout_s = [(program_timeout_s or timeout_s * (len(job["tests"]) + 1)) + 15.0 for job in jobs]
    pool = _pool.get_pool()
    results = pool.run(jobs, job_timeout_s)
    isolation = pool.isolation["isolation"] if pool.isolation else ""
    return [
        Verdict(result["passed"], result["total"], result["status"], result["detail"], tuple(result["tests"]), isolation)
        for result in results
    ]
