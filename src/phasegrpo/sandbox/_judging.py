"""The judge process: the worker side of each test, evaluated on the program's values under limits.

The values a program returns are plain data, but hostile plain data can still be expensive to
compare (huge numbers, sets of colliding hashes, deep structures). So the worker does not judge
in its own process: a child of the worker (forked once, replaced after a kill) decodes the values
and evaluates the test's trusted remainder (`_judge.plan_test`), with an address-space limit and
no capabilities, and the worker gives it only what is left of the test's budget. A judge that
overruns is killed and the test times out; one that dies makes the test crash. Either way the
program pays with its own verdict, never the worker's time. Worker-only module.
"""

from __future__ import annotations

import math
import os
import reprlib
import resource
import select
import signal

import _isolation
import _judge
import _protocol

JUDGE_MEMORY_MB = 1024
GRACE_S = 0.25  # scheduling slack, so that an honest program is never timed out by the judge's own latency
_CACHE_LIMIT = 4096


class Judge:
    """The worker's handle on its judge process, started on first use."""

    def __init__(self):
        self.pid: int | None = None
        self.requests = self.answers = -1
        self.counter = 0

    def _start(self) -> None:
        request_r, self.requests = os.pipe()
        self.answers, answer_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.dup2(request_r, 0)
                os.dup2(answer_w, 1)
                os.closerange(3, 1 << 16)
                _confine()
                _serve(0, 1)
            finally:
                os._exit(1)
        os.close(request_r)
        os.close(answer_w)

    def stop(self) -> None:
        """Kill the judge (a request may be pending); the next request starts a fresh one."""
        if self.pid is None:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.requests)
        os.close(self.answers)
        self.pid, self.requests, self.answers = None, -1, -1

    def judge(self, judge_steps: list, values: list, budget_s: float) -> tuple[str, str]:
        """Run one test's worker-side steps on the runner's encoded values within `budget_s` (+ grace)."""
        if self.pid is None:
            self._start()
        self.counter += 1
        try:
            _protocol.write_message(self.requests, {"id": self.counter, "steps": judge_steps, "values": values})
            ready, _, _ = select.select([self.answers], [], [], max(0.0, budget_s) + GRACE_S)
            answer = _protocol.read_message(self.answers) if ready else None
        except BaseException:
            self.stop()
            raise
        if not ready:
            self.stop()
            return "timeout", "judging the program's values took longer than the test's budget"
        if type(answer) is not list or len(answer) != 3 or answer[0] != self.counter:
            self.stop()
            return "crashed", "judging the program's values used too much memory"
        return answer[1], answer[2]


def _confine() -> None:
    _isolation.prctl(_isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_AS, (JUDGE_MEMORY_MB * 2**20,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _isolation.drop_privileges(None, drop_groups=False)


def _serve(requests: int, answers: int) -> None:
    cache: dict[tuple[str, str], object] = {}
    while True:
        request = _protocol.read_message(requests)
        if request is None:
            os._exit(0)
        try:
            outcome = evaluate(request["steps"], request["values"], cache)
        except MemoryError:
            outcome = ("failed", "MemoryError while judging the values")
        _protocol.write_message(answers, [request["id"], *outcome])


def _compiled(kind: str, source: str, cache: dict):
    key = (kind, source)
    if key not in cache:
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        cache[key] = compile(source, "<test>", "exec" if kind == "let" else "eval")
    return cache[key]


def _describe(values: list) -> str:
    try:
        return f"values: {reprlib.repr(values)}"[:200]
    except Exception:  # noqa: BLE001 - e.g. an int too long to print
        return "values: (too large to show)"


def evaluate(judge_steps: list, values: list, cache: dict) -> tuple[str, str]:
    """One test's outcome: its lets and checks, in order, on the decoded values (the runner's, untrusted)."""
    if type(values) is not list or len(values) != sum(kind == "check" for kind, _ in judge_steps):
        return "crashed", "malformed test record"
    namespace = {"__builtins__": _judge.judge_builtins(), "math": math}
    checks = iter(values)
    for kind, source in judge_steps:
        code = _compiled(kind, source, cache)
        if kind == "let":
            try:
                exec(code, namespace)  # noqa: S102 - the test's own statement, trusted
            except Exception as error:  # noqa: BLE001
                return "error", f"the test itself failed: {type(error).__name__}: {error}"[:300]
            continue
        leaves = next(checks)
        decoded: list = []
        try:
            if type(leaves) is not list:
                raise ValueError("malformed leaves")
            decoded = [_judge.decode(leaf) for leaf in leaves]
            namespace.update((f"_leaf{index}", value) for index, value in enumerate(decoded))
            if not eval(code, namespace):  # noqa: S307 - trusted expression on plain values
                return "failed", _describe(decoded)
        except Exception as error:  # noqa: BLE001 - hostile values may make any trusted expression raise
            return "failed", f"{type(error).__name__}: {str(error)[:150]}"
    return "passed", ""
