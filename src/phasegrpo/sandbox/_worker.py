"""Sandbox worker: a fresh interpreter the pool starts with `python -I -S _worker.py`, one per core.

Start-up, once: enter new user, mount, network, IPC, UTS and PID namespaces; fork so that this
worker is PID 1 of its own PID namespace; fork the zygote while nothing but the standard library
is in memory; pivot into a read-only root that holds only the interpreter.

Per program: the worker writes the program to a fresh folder and asks the zygote for a runner.
The zygote forks it as PID 1 of a new PID namespace; the runner drops every privilege, installs
rlimits and seccomp, reads the program, runs it and the tests, and sends back plain-data values,
which the worker judges (`_judge`). The zygote never reads a program or a test, so no runner can
find another program, or any expected value, in its memory. Killing the runner (PID 1 of its
namespace) ends every process the program started.

Protocol with the pool, on stdin/stdout: 4-byte little-endian length + JSON, one job at a time.
"""

from __future__ import annotations

import gc
import os
import select
import signal
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _isolation  # noqa: E402
import _judge  # noqa: E402

_HEADER = struct.Struct("<I")
_MAX_RECORD_BYTES = 4 * 2**20
_RECORDS_FD = 3
_JOB_FILE = ".program.json"


def _is_root_outside() -> bool:
    """True if this user is root, or maps to root one level up (a container's user namespace)."""
    if os.getuid() == 0:
        return True
    try:
        with open("/proc/self/uid_map") as handle:
            for line in handle:
                inside, outside, count = map(int, line.split())
                if inside <= os.getuid() < inside + count:
                    return outside + os.getuid() - inside == 0
    except (OSError, ValueError):
        pass
    return False


_IS_ROOT_OUTSIDE = _is_root_outside()  # read before entering the user namespace
# Imported once per worker so that programs do not pay for them (and can use them where the
# interpreter's own folder is unreadable to the sandbox user). Kept to what MBPP-style code uses
# most: every preloaded module makes each fork dearer (measured: 9 modules 1.4 ms, 25 modules 2.9 ms).
_PRELOAD = "bisect collections copy functools heapq itertools math operator re socket string".split()
# Where programs run as nobody and cannot read the interpreter's folder (root, no namespaces, Python
# under /root), these are the only other modules they can import.
_PRELOAD_UNREADABLE = (
    "array cmath datetime decimal fractions hashlib json random statistics threading time typing unicodedata"
).split()


# ---- framing ----

def write_message(fd: int, obj) -> None:
    data = _judge.dumps(obj)
    data = _HEADER.pack(len(data)) + data
    while data:
        data = data[os.write(fd, data):]


def _read_exact(fd: int, size: int) -> bytes | None:
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_message(fd: int):
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    body = _read_exact(fd, _HEADER.unpack(header)[0])
    return None if body is None else _judge.loads(body)


# ---- start-up ----

class _Zygote:
    """Pipes to the zygote: commands in; runner pids and exit statuses, records, output out."""

    def __init__(self, is_fallback: bool, pid_namespace_fd: int | None, protocol_fds: tuple[int, int],
                 run_as_nobody: bool = False):
        command_r, self.command_w = os.pipe()
        self.events_r, events_w = os.pipe()
        self.records_r, records_w = os.pipe()
        self.output_r, output_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                for fd in (*protocol_fds, self.command_w, self.events_r, self.records_r, self.output_r):
                    os.close(fd)
                zygote(command_r, events_w, records_w, output_w, is_fallback, pid_namespace_fd, run_as_nobody)
            finally:
                os._exit(1)
        for fd in (command_r, events_w, records_w, output_w):
            os.close(fd)
        for fd in (self.records_r, self.output_r):
            os.set_blocking(fd, False)


def start(force_fallback: bool, protocol_fds: tuple[int, int]) -> tuple[dict, _Zygote]:
    """Enter the namespaces (or not) and fork the zygote; returns the isolation report and the zygote.

    In namespace mode the calling process stays outside, waiting; only the forked PID 1 returns."""
    if force_fallback or not _isolation.namespaces_possible():
        reason = "namespaces disabled by the caller" if force_fallback else "not Linux x86_64/aarch64"
        return _fallback({"isolation": "fallback", "reason": reason}, protocol_fds)
    new_root = tempfile.mkdtemp(prefix="phasegrpo-sandbox-")
    read_only = ["/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32", "/etc/ld.so.cache",
                 os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)]
    try:
        _isolation.enter_user_namespace()
    except OSError as error:
        os.rmdir(new_root)
        return _fallback({"isolation": "fallback", "reason": f"user namespaces unavailable ({error})"}, protocol_fds)
    worker = os.fork()
    if worker:  # outside the new PID namespace: wait, and exit with the worker
        for fd in protocol_fds:
            os.close(fd)
        os._exit(os.waitstatus_to_exitcode(os.waitpid(worker, 0)[1]) & 0xFF)
    _isolation.prctl(_isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
    pid_namespace_fd = os.open("/proc/self/ns/pid", os.O_RDONLY)
    os.chdir("/")  # the pivot below moves the zygote's root and working folder along with ours
    zygote_handle = _Zygote(False, pid_namespace_fd, protocol_fds)
    os.close(pid_namespace_fd)
    report = {"isolation": "namespaces", "reason": "", "host_folder": new_root}
    host_tmp = os.open(os.path.dirname(new_root), os.O_RDONLY)  # still reachable after the pivot
    try:
        if "--no-private-root" in sys.argv:
            raise OSError("disabled by the caller")
        _isolation.build_root(new_root, read_only, tmp_size_mb=64)
        os.rmdir(os.path.basename(new_root), dir_fd=host_tmp)  # only the mount point, now unused
    except OSError as error:
        _isolation.unmount_quietly(new_root)
        try:
            os.rmdir(new_root)
        except OSError:
            pass
        # The host's files stay visible: program folders go to a folder of our own, as in fallback.
        report.update(isolation="partial", reason=f"no private filesystem view ({error})",
                      host_folder=tempfile.mkdtemp(prefix="phasegrpo-sandbox-"))
    finally:
        os.close(host_tmp)
    return report, zygote_handle


def _readable_by_others(path: str) -> bool:
    folders = []
    while path != os.path.dirname(path):
        path = os.path.dirname(path)
        folders.append(path)
    return all(os.stat(folder).st_mode & 0o001 for folder in folders)


def _can_become_nobody() -> bool:
    """False in containers that map only uid 0, where setuid(nobody) fails."""
    child = os.fork()
    if child == 0:
        try:
            os.setgid(_isolation.NOBODY)
            os.setuid(_isolation.NOBODY)
            os._exit(0)
        finally:
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0


def _fallback(report: dict, protocol_fds: tuple[int, int]) -> tuple[dict, _Zygote]:
    report["run_as_nobody"] = os.getuid() == 0 and _can_become_nobody()
    if os.getuid() == 0 and not report["run_as_nobody"]:
        report["reason"] += "; programs run as this (root) user: nobody is not mapped here"
    if report["run_as_nobody"] and not _readable_by_others(os.__file__):
        for module in _PRELOAD_UNREADABLE:
            __import__(module)
        report["reason"] += (f"; {os.path.dirname(os.__file__)} is unreadable to nobody, so programs can import "
                             f"only preloaded modules: {' '.join(sorted(_PRELOAD + _PRELOAD_UNREADABLE))}")
    # Program folders live in one folder per worker, which the pool removes if the worker is killed.
    report["host_folder"] = tempfile.mkdtemp(prefix="phasegrpo-sandbox-")
    os.chmod(report["host_folder"], 0o711)
    return report, _Zygote(True, None, protocol_fds, report["run_as_nobody"])


# ---- the zygote and the runner: the only places untrusted code runs ----

def _describe(error: BaseException) -> str:
    try:
        name = type.__dict__["__name__"].__get__(type(error))
        return f"{name}: {str(error)[:300]}"
    except BaseException:  # noqa: BLE001 - the program owns the exception object
        return "exception"


def _send(obj) -> None:
    data = _judge.dumps(obj)
    data = _HEADER.pack(len(data)) + data
    while data:
        data = data[os.write(_RECORDS_FD, data):]


def zygote(command_fd: int, events_fd: int, records_fd: int, output_fd: int, is_fallback: bool,
           pid_namespace_fd: int | None, run_as_nobody: bool) -> None:
    """Fork one runner per command and report its pid and exit status; never reads a program."""
    _isolation.prctl(_isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    null = os.open(os.devnull, os.O_RDWR)
    deny_processes = is_fallback or _IS_ROOT_OUTSIDE
    seccomp_filter = _isolation.seccomp_filter(is_fallback, deny_processes) if _isolation.seccomp_available() else None
    gc.freeze()  # runners then do not touch (and copy) every inherited object when they collect
    while True:
        command = read_message(command_fd)
        if command is None:
            os._exit(0)
        if pid_namespace_fd is not None:
            _isolation.setns(pid_namespace_fd, _isolation.CLONE_NEWPID)  # back to our own, then a new one
            # The runner will be PID 1 of a new PID namespace, with SysV IPC of its own.
            _isolation.unshare(_isolation.CLONE_NEWPID | _isolation.CLONE_NEWIPC)
        runner = os.fork()
        if runner == 0:
            try:
                _isolation.prctl(_isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                os.dup2(null, 0)
                os.dup2(output_fd, 1)
                os.dup2(output_fd, 2)
                os.dup2(records_fd, _RECORDS_FD)
                os.closerange(_RECORDS_FD + 1, 1 << 16)
                run_program(command, is_fallback, run_as_nobody, seccomp_filter)
            finally:
                os._exit(1)
        write_message(events_fd, {"pid": runner})
        status = os.waitpid(runner, 0)[1]
        write_message(events_fd, {"exit": status})


def run_program(command: dict, is_fallback: bool, run_as_nobody: bool, seccomp_filter: bytes | None) -> None:
    """Confine this process, read the program, run setup + code, then the tests; never returns."""
    import builtins

    workdir = command["workdir"]
    if is_fallback:
        os.setsid()
    _isolation.set_limits(cpu_s=command["cpu_s"], memory_mb=command["memory_mb"],
                          file_size_mb=command["file_size_mb"],
                          max_processes=None if is_fallback else command["max_processes"])
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"})
    tempfile.tempdir = workdir
    _isolation.drop_privileges(run_as_nobody)
    if seccomp_filter is not None:
        _isolation.install_seccomp(seccomp_filter)
    with open(_JOB_FILE, "rb") as handle:
        job = _judge.loads(handle.read())
    os.unlink(_JOB_FILE)
    pristine = dict(builtins.__dict__)
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compile(job["setup"] + "\n" + job["code"], "<program>", "exec"), namespace)  # noqa: S102
    except BaseException as error:  # noqa: BLE001 - SystemExit and friends are failures too
        _send({"load": "error", "detail": _describe(error)})
        os._exit(0)
    _send({"load": "ok"})
    for index in range(command["first_test"], len(job["tests"])):
        scope = dict(namespace)
        scope["__builtins__"] = dict(pristine)
        try:
            asserts = []
            for kind, payload in job["tests"][index]:
                if kind == "exec":
                    exec(compile(payload, "<test>", "exec"), scope)  # noqa: S102
                else:
                    asserts.append([_judge.encode(eval(compile(leaf, "<test>", "eval"), scope)) for leaf in payload])
            _send({"test": index, "asserts": asserts})
        except BaseException as error:  # noqa: BLE001
            _send({"test": index, "error": _describe(error)})
    os._exit(0)


class _Attempt:
    """Reads one runner's records and output; `phase` is "load" until the code has run."""

    def __init__(self, zygote_handle: _Zygote, first_test: int, options: dict):
        self.zygote, self.current, self.phase = zygote_handle, first_test, "load"
        self.buffer, self.output_bytes, self.runner = b"", 0, None
        self.output_limit = options["output_limit_bytes"]

    def drain_output(self) -> bool:
        """False once the program printed more than allowed."""
        while True:
            try:
                chunk = os.read(self.zygote.output_r, 1 << 16)
            except BlockingIOError:
                return True
            if not chunk:
                return True
            self.output_bytes += len(chunk)
            if self.output_bytes > self.output_limit:
                return False

    def records(self) -> list | None:
        """Complete records read so far; None if the stream is malformed or too large."""
        while True:
            try:
                chunk = os.read(self.zygote.records_r, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buffer += chunk
            if len(self.buffer) > _MAX_RECORD_BYTES + _HEADER.size:
                break
        found = []
        while len(self.buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self.buffer)
            if size > _MAX_RECORD_BYTES:
                return None
            if len(self.buffer) < _HEADER.size + size:
                break
            body, self.buffer = self.buffer[_HEADER.size:_HEADER.size + size], self.buffer[_HEADER.size + size:]
            try:
                record = _judge.loads(body)
            except (ValueError, RecursionError):
                return None
            if type(record) is not dict:
                return None
            found.append(record)
        return found


def _judge_test(plan: _judge.TestPlan, record: dict) -> tuple[str, str]:
    if "error" in record:
        return "error", str(record["error"])[:300]
    asserts = record.get("asserts")
    if type(asserts) is not list or len(asserts) != len(plan.judges):
        return "crashed", "malformed test record"
    for compiled, leaves in zip(plan.judges, asserts):
        try:
            if type(leaves) is not list:
                raise ValueError("malformed leaves")
            if not _judge.judge(compiled, [_judge.decode(leaf) for leaf in leaves]):
                return "failed", repr([_judge.decode(leaf) for leaf in leaves])[:2000]
        except (ValueError, TypeError, ArithmeticError, RecursionError, MemoryError, AttributeError) as error:
            return "failed", f"{type(error).__name__}: {error}"[:300]
    return "passed", ""


# ---- the worker: trusted, judges, enforces time ----

def _judge_test(plan: _judge.TestPlan, record: dict) -> tuple[str, str]:
    if "error" in record:
        return "error", str(record["error"])[:300]
    asserts = record.get("asserts")
    if type(asserts) is not list or len(asserts) != len(plan.judges):
        return "crashed", "malformed test record"
    for compiled, leaves in zip(plan.judges, asserts):
        try:
            if type(leaves) is not list:
                raise ValueError("malformed leaves")
            values = [_judge.decode(leaf) for leaf in leaves]
            if not _judge.judge(compiled, values):
                return "failed", f"values: {values!r}"[:200]
        except (ValueError, TypeError, ArithmeticError, RecursionError, MemoryError, AttributeError) as error:
            return "failed", f"{type(error).__name__}: {error}"[:200]
    return "passed", ""


def _wait_event(job, timeout_s: float):
    ready, _, _ = select.select([job.events_r], [], [], timeout_s)
    if not ready:
        return None
    event = read_message(job.events_r)
    if event is None:
        raise _ZygoteLost("the zygote died")
    return event


class _ZygoteLost(RuntimeError):
    pass


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 1 << 16):
            pass
    except BlockingIOError:
        pass


_plans: dict[tuple[str, frozenset], _judge.TestPlan | str] = {}


def _plan(source: str, shadowed: frozenset[str]) -> _judge.TestPlan | str:
    """The plan for a test, or why it does not parse; cached, since a group's samples share tests."""
    key = (source, shadowed)
    if key not in _plans:
        if len(_plans) > 4096:
            _plans.clear()
        try:
            _plans[key] = _judge.plan_test(source, shadowed)
        except (SyntaxError, ValueError) as error:
            _plans[key] = f"test does not parse: {error}"[:300]
    return _plans[key]


def _write_job_file(path: str, data: bytes) -> None:
    """Write where an earlier attempt of the same program may have planted a symlink or folder."""
    _remove_tree(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)


def run_job(zygote_handle: _Zygote, message: dict, workdir: str) -> dict:
    tests = message["tests"]
    plans, outcomes = [], [None] * len(tests)
    shadowed = _judge.shadowed_builtins(message["setup"]) | _judge.shadowed_builtins(message["code"])
    for index, source in enumerate(tests):
        plan = _plan(source, shadowed)
        if isinstance(plan, str):
            plans.append(None)
            outcomes[index] = ("error", plan)
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
        _write_job_file(os.path.join(workdir, _JOB_FILE), job_bytes)
        for fd in (zygote_handle.records_r, zygote_handle.output_r):
            _drain(fd)  # nothing of an earlier attempt may be read as this one's
        cpu_s = int(timeout_s * (len(tests) - first_test + 1)) + 1
        write_message(zygote_handle.command_w, {"first_test": first_test, "cpu_s": cpu_s, "workdir": workdir, **limits})
        event = _wait_event(zygote_handle, 10.0)
        if not event or "pid" not in event:
            raise _ZygoteLost("the zygote did not start a runner")
        attempt = _Attempt(zygote_handle, first_test, message)
        attempt.runner = event["pid"]
        ended, reason = _follow(attempt, plans, outcomes, timeout_s, program_deadline)
        if ended == "done":
            break
        if attempt.phase == "load":
            failure = (ended, reason)  # the code itself fails: no test can pass
            break
        outcomes[attempt.current] = (ended, reason)
        first_test = attempt.current + 1
    outcomes = [outcome or failure or ("crashed", "") for outcome in outcomes]
    return _verdict(outcomes, failure)


def _follow(attempt: _Attempt, plans, outcomes, timeout_s: float, program_deadline: float) -> tuple[str, str]:
    """Watch one runner until it finishes, dies, times out, or breaks a limit; judge its records."""
    zygote_handle = attempt.zygote
    deadline = min(time.monotonic() + timeout_s, program_deadline)
    runner_exit = None

    def stop() -> None:
        _kill(attempt.runner)
        if runner_exit is None and _wait_event(zygote_handle, 5.0) is None:
            raise _ZygoteLost("the zygote did not report the runner's exit")

    while True:
        now = time.monotonic()
        if runner_exit is None and now >= deadline:
            stop()
            return "timeout", f"no answer within {timeout_s:g} s"
        wait_s = max(0.0, deadline - now) if runner_exit is None else 0.0
        ready, _, _ = select.select([zygote_handle.events_r, zygote_handle.records_r, zygote_handle.output_r], [], [], wait_s)
        if zygote_handle.output_r in ready and not attempt.drain_output():
            stop()
            return "crashed", f"printed more than {attempt.output_limit} bytes"
        if zygote_handle.events_r in ready and runner_exit is None:
            runner_exit = read_message(zygote_handle.events_r)
            if runner_exit is None:
                raise _ZygoteLost("the zygote died")
        records = attempt.records()
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
                outcomes[index] = _judge_test(plans[index], record)
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


def _verdict(outcomes: list[tuple[str, str]], failure) -> dict:
    names = [name for name, _ in outcomes]
    if failure is not None:
        status, detail = failure
    else:
        status = next((bad for bad in ("timeout", "crashed") if bad in names), "ok")
        detail = next((detail for name, detail in outcomes if detail and (status == "ok" or name == status)), "")
    return {"passed": names.count("passed"), "total": len(outcomes), "status": status, "detail": detail,
            "tests": names}


def _remove_tree(path: str) -> None:
    import shutil

    if not os.path.lexists(path):
        return
    if not os.path.isdir(path) or os.path.islink(path):
        try:
            os.unlink(path)
        except OSError:
            pass
        return

    def make_writable_and_retry(function, failed_path, _):
        try:
            for target in (os.path.dirname(failed_path), failed_path):
                if not os.path.islink(target):  # chmod follows links: never onto the host's files
                    os.chmod(target, 0o700)
            function(failed_path)
        except OSError:
            pass

    shutil.rmtree(path, onerror=make_writable_and_retry)
    if os.path.exists(path):
        shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    for module in _PRELOAD:
        __import__(module)
    protocol_in, protocol_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    report, zygote_handle = start("--no-namespaces" in sys.argv, (protocol_in, protocol_out))
    _isolation.prctl(_isolation.PR_SET_DUMPABLE, 0)
    report["seccomp"] = _isolation.seccomp_available()
    write_message(protocol_out, report)
    is_private_tmp = report["isolation"] == "namespaces"  # /tmp is then a tmpfs only this worker sees
    folder = "/tmp" if is_private_tmp else report["host_folder"]
    while True:
        message = read_message(protocol_in)
        if message is None:
            if not is_private_tmp:
                _remove_tree(report["host_folder"])
            return
        workdir = tempfile.mkdtemp(prefix="run-", dir=folder)
        if report.get("run_as_nobody"):
            os.chown(workdir, _isolation.NOBODY, _isolation.NOBODY)
        try:
            verdict = run_job(zygote_handle, message, workdir)
        except _ZygoteLost:
            sys.exit(3)  # the pool replaces this worker and retries the program once
        finally:
            _remove_tree(workdir)
            if is_private_tmp:  # nothing survives for the next program
                for entry in os.listdir(folder):
                    _remove_tree(os.path.join(folder, entry))
        write_message(protocol_out, verdict)


if __name__ == "__main__":
    main()
