"""Sandbox worker: a fresh interpreter the pool starts with `python -I -S _worker.py`, one per core.

Start-up, once (`_startup`): enter new user, mount, network, IPC, UTS and PID namespaces; fork so
that this worker is PID 1 of its own PID namespace; fork the zygote (`_zygote`) while nothing but
the standard library is in memory; pivot into a read-only root that holds only the interpreter.

Per program: the worker writes the program to a fresh folder and asks the zygote for a runner.
The zygote forks it as PID 1 of a new PID namespace; the runner (`_runner`) drops every privilege,
installs rlimits and seccomp, reads the program, runs it and the tests, and sends back plain-data
values, which the worker judges (`_attempt`, `_judge`, and the judge process `_judging`). The zygote never reads a program or a test,
so no runner can find another program, or any expected value, in its memory. Killing the runner
(PID 1 of its namespace) ends every process the program started.

With the pool, on stdin/stdout: one job in, one verdict out, framed as in `_protocol`.

`-I` leaves this folder off sys.path, so it is put first below, and the worker's modules import
each other by plain name (`import _judge`): all of them are imported here, before start-up, since
the private root may hide this folder afterwards.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _attempt  # noqa: E402
import _cleanup  # noqa: E402
import _isolation  # noqa: E402
import _judge  # noqa: E402
import _judging  # noqa: E402
import _protocol  # noqa: E402
import _startup  # noqa: E402
import _zygote  # noqa: E402

_plans: dict[tuple[str, frozenset], _judge.TestPlan | tuple[str, str]] = {}


def _plan(source: str, shadowed: frozenset[str]) -> _judge.TestPlan | tuple[str, str]:
    """The plan for a test, or its outcome when it cannot be judged; cached, since a group's samples share tests."""
    key = (source, shadowed)
    if key not in _plans:
        if len(_plans) > 4096:
            _plans.clear()
        try:
            _plans[key] = _judge.plan_test(source, shadowed)
        except _judge.UnsupportedTest as error:
            _plans[key] = ("unsupported", f"unsupported test: {error}"[:300])
        except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
            _plans[key] = ("error", f"test does not parse: {error}"[:300])
    return _plans[key]


def _write_job_file(path: str, data: bytes) -> None:
    """Write where an earlier attempt of the same program may have planted a symlink or folder,
    or renamed the folder away."""
    _cleanup.remove_tree(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        _protocol.write_all(fd, data)
    finally:
        os.close(fd)


def run_job(zygote: _zygote.Zygote, judge: _judging.Judge, message: dict, workdir: str) -> dict:
    """Run one program's code and tests, restarting after each test that hangs or crashes; its verdict."""
    tests = message["tests"]
    plans, outcomes = [], [None] * len(tests)
    shadowed = _judge.shadowed_builtins(message["setup"]) | _judge.shadowed_builtins(message["code"])
    for index, source in enumerate(tests):
        plan = _plan(source, shadowed)
        if isinstance(plan, tuple):
            plans.append(None)
            outcomes[index] = plan
        else:
            plans.append(plan)
    timeout_s = message["timeout_s"]
    child_job = {"setup": message["setup"], "code": message["code"],
                 "tests": [plan.steps if plan else [("exec", "raise SyntaxError")] for plan in plans]}
    job_bytes = _judge.dumps(child_job)
    limits = {key: message[key] for key in ("memory_mb", "file_size_mb", "max_processes")}
    failure, first_test = None, 0  # failure: (status, detail) for every test not judged yet
    program_budget_s = message.get("program_timeout_s") or timeout_s * (len(tests) + 1)
    program_deadline = time.monotonic() + program_budget_s
    while first_test < len(tests):
        if time.monotonic() >= program_deadline:
            failure = ("timeout", f"the program used its whole budget of {program_budget_s:g} s")
            break
        _prepare_folder(workdir, message.get("program_uid"))
        _write_job_file(os.path.join(workdir, _protocol.JOB_FILE), job_bytes)
        cpu_s = int(timeout_s * (len(tests) - first_test + 1)) + 1
        runner = zygote.start_runner({"first_test": first_test, "cpu_s": cpu_s, "workdir": workdir,
                                      "program_uid": message.get("program_uid"), **limits})
        attempt = _attempt.Attempt(zygote, judge, runner, first_test, message)
        ended, reason = _attempt.follow(attempt, plans, outcomes, timeout_s, program_deadline)
        if ended == "done":
            break
        if attempt.phase == "load":
            failure = (ended, reason)  # the code itself fails: no test can pass
            break
        outcomes[attempt.current] = (ended, reason)
        first_test = attempt.current + 1
    outcomes = [outcome or failure or ("crashed", "") for outcome in outcomes]
    return _verdict(outcomes, failure)


def _verdict(outcomes: list[tuple[str, str]], failure) -> dict:
    names = [name for name, _ in outcomes]
    if failure is not None:
        status, detail = failure
    else:
        status = next((bad for bad in ("timeout", "crashed") if bad in names), "ok")
        detail = next((detail for name, detail in outcomes if detail and (status == "ok" or name == status)), "")
    return {"passed": names.count("passed"), "total": len(outcomes), "status": status, "detail": detail,
            "tests": names}


def _prepare_folder(folder: str, owner: int | None = None) -> None:
    """`folder` as a fresh program expects it: a real folder, ours to write, whatever the last one did."""
    if os.path.islink(folder) or (os.path.lexists(folder) and not os.path.isdir(folder)):
        _cleanup.remove_tree(folder)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    if owner is not None:
        os.chown(folder, owner, owner)


def _crashed(message: dict, error: BaseException) -> dict:
    """The verdict when judging this program failed in the worker: it costs this verdict, nothing more."""
    detail = f"the sandbox could not judge this program ({type(error).__name__})"
    return {"passed": 0, "total": len(message.get("tests") or ()), "status": "crashed", "detail": detail,
            "tests": ["crashed"] * len(message.get("tests") or ())}


def main() -> None:
    for module in _startup.PRELOAD:
        __import__(module)
    protocol_in, protocol_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    report, zygote = _startup.start("--no-namespaces" in sys.argv, (protocol_in, protocol_out))
    _isolation.prctl(_isolation.PR_SET_DUMPABLE, 0)
    report["seccomp"] = _isolation.seccomp_available()
    _protocol.write_message(protocol_out, report)
    is_private_tmp = report["isolation"] == "namespaces"  # /tmp is then a tmpfs only this worker sees
    folder = "/tmp" if is_private_tmp else report["host_folder"]
    folder_mode = os.stat(folder).st_mode & 0o7777
    judge = _judging.Judge()
    owner = report.get("program_uid")  # programs run as this user where it is not the worker's
    while True:
        message = _protocol.read_message(protocol_in)
        if message is None:
            if not is_private_tmp:
                _cleanup.remove_tree(report["host_folder"])
            return
        try:
            os.chmod(folder, folder_mode)  # the last program may have changed it
            workdir = tempfile.mkdtemp(prefix="run-", dir=folder)
            message["program_uid"] = owner
            verdict = run_job(zygote, judge, message, workdir)
        except _zygote.ZygoteLost:
            sys.exit(3)  # the pool replaces this worker and retries the program once
        except Exception as error:  # noqa: BLE001 - a hostile program costs its own verdict, never the worker
            zygote.abandon_runner()
            judge.stop()
            verdict = _crashed(message, error)
        finally:
            zygote.close_pipes()
            _cleanup.empty_folder(folder)  # nothing survives for the next program
        verdict["job_id"] = message.get("job_id")
        _protocol.write_message(protocol_out, verdict)


if __name__ == "__main__":
    main()
