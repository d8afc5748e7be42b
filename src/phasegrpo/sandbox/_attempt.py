"""Following one runner: its records and output, its deadlines, and judging each test it answers.

An attempt runs the code, then the tests from `first_test` on. It ends when every test is
answered, or with the first timeout, crash, excess output or malformed record; the worker then
starts a new attempt at the next test (`_worker.run_job`). Worker-only module.
"""

from __future__ import annotations

import os
import select
import signal
import time

import _judge
import _judging
import _protocol
import _zygote


class Attempt:
    """One runner's records and output; `phase` is "load" until the code has run."""

    def __init__(self, zygote: _zygote.Zygote, judge: _judging.Judge, runner: int, first_test: int, options: dict):
        self.zygote, self.judge, self.runner, self.current, self.phase = zygote, judge, runner, first_test, "load"
        self.records = _protocol.RecordStream(zygote.records_r)
        self.output_bytes, self.output_limit = 0, options["output_limit_bytes"]
        self.output_open = True  # until EOF: the runner's pipes are its own and end with it

    def watched(self) -> list[int]:
        """The descriptors worth waiting on: a pipe at EOF would wake select at once, forever."""
        return [fd for fd, is_open in ((self.zygote.output_r, self.output_open),
                                       (self.zygote.records_r, not self.records.at_end)) if is_open]

    def drain_output(self) -> bool:
        """False once the program printed more than allowed."""
        while True:
            try:
                chunk = os.read(self.zygote.output_r, 1 << 16)
            except BlockingIOError:
                return True
            if not chunk:
                self.output_open = False
                return True
            self.output_bytes += len(chunk)
            if self.output_bytes > self.output_limit:
                return False


def judge_test(judge: _judging.Judge, plan: _judge.TestPlan, record: dict, budget_s: float) -> tuple[str, str]:
    """A test's outcome from the runner's record: the values are untrusted, the judging is ours, and
    its time comes out of the test's remaining budget."""
    if "error" in record:
        return "error", str(record["error"])[:300]
    asserts = record.get("asserts")
    if type(asserts) is not list or len(asserts) != plan.checks:
        return "crashed", "malformed test record"
    return judge.judge(plan.judge_steps, asserts, budget_s)


def follow(attempt: Attempt, plans, outcomes, timeout_s: float, program_deadline: float) -> tuple[str, str]:
    """Watch one runner until it finishes, dies, times out, or breaks a limit; judge its records.

    Returns how it ended, ("done", "") or (outcome, detail) for the test (or code) it was at."""
    zygote = attempt.zygote
    deadline = min(time.monotonic() + timeout_s, program_deadline)
    runner_exit = None

    def stop() -> None:
        _kill(attempt.runner)
        if runner_exit is None and zygote.next_event(5.0) is None:
            raise _zygote.ZygoteLost("the zygote did not report the runner's exit")

    while True:
        now = time.monotonic()
        if runner_exit is None and now >= deadline:
            stop()
            return "timeout", f"no answer within {timeout_s:g} s"
        wait_s = max(0.0, deadline - now) if runner_exit is None else 0.0
        ready, _, _ = select.select([zygote.events_r, *attempt.watched()], [], [], wait_s)
        if zygote.output_r in ready and not attempt.drain_output():
            stop()
            return "crashed", f"printed more than {attempt.output_limit} bytes"
        if zygote.events_r in ready and runner_exit is None:
            runner_exit = zygote.next_event(0.0)
        records = attempt.records.read()
        if records is None:
            stop()
            return "crashed", "malformed result stream"
        for record in records:
            if attempt.phase == "load":
                if record.get("load") == "ok":
                    attempt.phase = "tests"
                    deadline = min(time.monotonic() + timeout_s, program_deadline)
                    continue
                stop()
                if record.get("load") == "error":
                    return "error", str(record.get("detail", ""))[:300]
                return "crashed", "malformed record"
            index = attempt.current
            if record.get("test") != index or index >= len(plans):
                stop()
                return "crashed", "malformed test record"
            if plans[index] is not None:
                outcomes[index] = judge_test(attempt.judge, plans[index], record, deadline - time.monotonic())
            attempt.current += 1
            deadline = min(time.monotonic() + timeout_s, program_deadline)
            if attempt.current == len(plans):
                stop()
                return "done", ""
        if runner_exit is not None:
            status = runner_exit.get("exit", 0)
            if os.WIFSIGNALED(status):
                number = os.WTERMSIG(status)
                name = signal.Signals(number).name if number in signal.Signals._value2member_map_ else number
                return "crashed", f"killed by signal {name}"
            return "crashed", f"exited with code {os.WEXITSTATUS(status)} before answering"


def _kill(pid: int | None) -> None:
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
