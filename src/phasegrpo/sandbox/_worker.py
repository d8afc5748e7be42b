"""Sandbox worker: a fresh interpreter the pool starts with `python -I -S _worker.py`, one per core.

Start-up (once): enter new user/mount/network/IPC/UTS/PID namespaces, fork once so that the worker
is PID 1 of its own PID namespace, and pivot into a read-only root that holds only the
interpreter. Per program: a clean "zygote" child is forked *before* the job is read (so the
expected values never exist in any memory the program can reach); for each attempt the zygote
forks a runner that drops all privileges, installs rlimits and seccomp, and runs the code and the
tests, sending back plain-data values that this process judges (see `_judge`). Afterwards one
`kill(-1, SIGKILL)` from PID 1 ends everything the program started.

Protocol with the pool, on stdin/stdout: 4-byte little-endian length + JSON, one job at a time.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _isolation  # noqa: E402
import _judge  # noqa: E402

_HEADER = struct.Struct("<I")
_MAX_RECORD_BYTES = 4 * 2**20
_OUTPUT_HEAD_BYTES = 2000
_RECORDS_FD = 3
# Imported once per worker so that programs do not pay for them (and can use them where the
# interpreter's own folder is unreadable to the sandbox user).
_PRELOAD = (
    "array bisect cmath collections copy datetime decimal fractions functools hashlib heapq itertools json math "
    "operator random re socket statistics string sys threading time typing unicodedata"
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

def start(force_fallback: bool) -> tuple[dict, socket.socket]:
    """Enter the namespaces (or not) and start the template; returns the isolation report and the
    socket to the template. In namespace mode the calling process becomes the template (outside the
    new PID namespace, whose PID 1 is the forked worker, the only one that returns here)."""
    template_end, worker_end = socket.socketpair()
    if force_fallback:
        return _start_template({"isolation": "fallback", "reason": "namespaces disabled by the caller"},
                               template_end, worker_end)
    new_root = tempfile.mkdtemp(prefix="phasegrpo-sandbox-")
    read_only = ["/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32", "/etc/ld.so.cache",
                 os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)]
    try:
        _isolation.enter_user_namespace()
    except OSError as error:
        os.rmdir(new_root)
        return _start_template({"isolation": "fallback", "reason": f"user namespaces unavailable ({error})"},
                               template_end, worker_end)
    host_tmp = os.open(os.path.dirname(new_root), os.O_RDONLY)
    os.chdir("/")  # so that the pivot below moves this process's working folder too
    worker = os.fork()
    if worker:
        worker_end.close()
        for fd in range(3, 64):
            if fd not in (template_end.fileno(), host_tmp):
                _close_quietly(fd)
        template(template_end, is_fallback=False, worker=worker)
        try:
            os.rmdir(os.path.basename(new_root), dir_fd=host_tmp)
        except OSError:
            pass
        os._exit(0)
    template_end.close()
    os.close(host_tmp)
    _isolation.prctl(_isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        _isolation.build_root(new_root, read_only, tmp_size_mb=64)
    except OSError as error:
        return {"isolation": "partial", "reason": f"no private filesystem view ({error})",
                "host_folder": new_root}, worker_end
    return {"isolation": "namespaces", "reason": "", "host_folder": new_root}, worker_end


def _start_template(report: dict, template_end: socket.socket, worker_end: socket.socket):
    # Program folders live in one folder per worker, which the pool removes if the worker is killed.
    report["host_folder"] = tempfile.mkdtemp(prefix="phasegrpo-sandbox-")
    os.chmod(report["host_folder"], 0o711)
    if os.fork() == 0:
        worker_end.close()
        _isolation.prctl(_isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
        _isolation.prctl(_isolation.PR_SET_CHILD_SUBREAPER, 1)  # a killed zygote's runner comes back here
        for fd in (0, 1):
            _close_quietly(fd)
        template(template_end, is_fallback=True, worker=None)
        os._exit(0)
    template_end.close()
    return report, worker_end


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def template(connection: socket.socket, is_fallback: bool, worker: int | None) -> None:
    """Fork a zygote per request and hand its pipes to the worker. This process never sees a job, so
    nothing a program can find in its memory comes from another program or from any test."""

    def reap(*_):
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == worker:
                os._exit(0)

    signal.signal(signal.SIGCHLD, reap)
    while True:
        try:
            request = connection.recv(16)
        except OSError:
            request = b""
        if not request:
            return
        control, events, records, output = os.pipe(), os.pipe(), os.pipe(), os.pipe()
        zygote_pid = os.fork()
        if zygote_pid == 0:
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                connection.close()
                for fd in (control[1], events[0], records[0], output[0]):
                    os.close(fd)
                zygote(control[0], events[1], records[1], output[1], is_fallback)
            finally:
                os._exit(1)
        ends = [control[1], events[0], records[0], output[0]]
        socket.send_fds(connection, [str(zygote_pid).encode()], ends)
        for fd in (*ends, control[0], events[1], records[1], output[1]):
            os.close(fd)


# ---- the runner: the only place untrusted code runs ----

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


def run_program(job: dict, first_test: int, workdir: str, is_fallback: bool) -> None:
    """Confine this process, run setup + code, then tests from `first_test`; never returns."""
    import builtins

    os.setsid()
    _isolation.set_limits(cpu_s=job["cpu_s"], memory_mb=job["memory_mb"], file_size_mb=job["file_size_mb"],
                          max_processes=None if is_fallback else job["max_processes"])
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"})
    tempfile.tempdir = workdir
    _isolation.drop_privileges(is_fallback)
    if _isolation.seccomp_available():
        _isolation.install_seccomp(is_fallback)
    pristine = dict(builtins.__dict__)
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compile(job["setup"] + "\n" + job["code"], "<program>", "exec"), namespace)  # noqa: S102
    except BaseException as error:  # noqa: BLE001 - SystemExit and friends are failures too
        _send({"load": "error", "detail": _describe(error)})
        os._exit(0)
    _send({"load": "ok"})
    for index in range(first_test, len(job["tests"])):
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


def zygote(control_fd: int, events_fd: int, records_fd: int, output_fd: int, is_fallback: bool):
    """Clean child of the template: receives one program, forks one runner per attempt, reports pid and exit."""
    _isolation.prctl(_isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    null = os.open(os.devnull, os.O_RDWR)
    job = read_message(control_fd)
    while job is not None:
        command = read_message(control_fd)
        if command is None:
            break
        runner = os.fork()
        if runner == 0:
            try:
                _isolation.prctl(_isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
                os.dup2(null, 0)
                os.dup2(output_fd, 1)
                os.dup2(output_fd, 2)
                os.dup2(records_fd, _RECORDS_FD)
                os.closerange(_RECORDS_FD + 1, 1 << 16)
                job["cpu_s"] = command["cpu_s"]
                run_program(job, command["first_test"], job["workdir"], is_fallback)
            finally:
                os._exit(1)
        write_message(events_fd, {"pid": runner})
        status = os.waitpid(runner, 0)[1]
        write_message(events_fd, {"exit": status})
    os._exit(0)


# ---- the worker: trusted, judges, enforces time ----

class _Job:
    """Pipes, folder and zygote for one program, made before the program is known."""

    def __init__(self, is_fallback: bool, template: socket.socket, folder: str):
        self.workdir = tempfile.mkdtemp(prefix="run-", dir=folder)
        if is_fallback and os.getuid() == 0:
            os.chown(self.workdir, _isolation.NOBODY, _isolation.NOBODY)
        template.send(b"zygote")
        message, fds, _, _ = socket.recv_fds(template, 32, 4)
        if len(fds) != 4:
            raise RuntimeError("the sandbox template process is gone")
        self.zygote = int(message)
        self.control_w, self.events_r, self.records_r, self.output_r = fds
        for fd in (self.records_r, self.output_r):
            os.set_blocking(fd, False)


class _Attempt:
    """Reads one runner's records and output; `phase` is "load" until the code has run."""

    def __init__(self, job: _Job, first_test: int, options: dict):
        self.job, self.current, self.phase = job, first_test, "load"
        self.buffer, self.output_bytes, self.runner = b"", 0, None
        self.output_limit = options["output_limit_bytes"]

    def drain_output(self) -> bool:
        """False once the program printed more than allowed."""
        while True:
            try:
                chunk = os.read(self.job.output_r, 1 << 16)
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
                chunk = os.read(self.job.records_r, 1 << 20)
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


def _wait_event(job: _Job, timeout_s: float):
    ready, _, _ = select.select([job.events_r], [], [], timeout_s)
    return read_message(job.events_r) if ready else None


def run_job(job: _Job, message: dict) -> dict:
    tests = message["tests"]
    plans, outcomes = [], [None] * len(tests)
    for index, source in enumerate(tests):
        try:
            plans.append(_judge.plan_test(source))
        except (SyntaxError, ValueError) as error:
            plans.append(None)
            outcomes[index] = ("error", f"test does not parse: {error}"[:300])
    timeout_s = message["timeout_s"]
    child_job = {key: message[key] for key in ("setup", "code", "memory_mb", "file_size_mb", "max_processes")}
    child_job["tests"] = [plan.steps if plan else [("exec", "raise SyntaxError")] for plan in plans]
    failure, first_test = None, 0  # failure: (status, detail) for every test not judged yet
    child_job["workdir"] = job.workdir
    try:
        write_message(job.control_w, child_job)
        while first_test < len(tests):
            remaining = len(tests) - first_test
            write_message(job.control_w, {"first_test": first_test, "cpu_s": int(timeout_s * (remaining + 1)) + 1})
            event = _wait_event(job, 10.0)
            if not event or "pid" not in event:
                failure = ("crashed", "the sandbox could not start the program")
                break
            attempt = _Attempt(job, first_test, message)
            attempt.runner = event["pid"]
            ended, reason = _follow(attempt, plans, outcomes, timeout_s)
            if ended == "done":
                break
            if attempt.phase == "load":
                failure = (ended, reason)  # the code itself fails: no test can pass
                break
            outcomes[attempt.current] = (ended, reason)
            first_test = attempt.current + 1
    except OSError:  # the program killed its zygote
        failure = ("crashed", "the program killed its sandbox process")
    outcomes = [outcome or failure or ("crashed", "") for outcome in outcomes]
    return _verdict(outcomes, failure)


def _follow(attempt: _Attempt, plans, outcomes, timeout_s: float) -> tuple[str, str]:
    """Watch one runner until it finishes, dies, times out, or breaks a limit; judge its records."""
    job = attempt.job
    deadline = time.monotonic() + timeout_s
    runner_exit = None

    def stop() -> None:
        _kill(attempt.runner)
        if runner_exit is None and _wait_event(job, 2.0) is None:
            raise OSError("the sandbox process did not report")

    while True:
        now = time.monotonic()
        if runner_exit is None and now >= deadline:
            stop()
            return "timeout", f"no answer within {timeout_s:g} s"
        wait_s = max(0.0, deadline - now) if runner_exit is None else 0.0
        ready, _, _ = select.select([job.events_r, job.records_r, job.output_r], [], [], wait_s)
        if job.output_r in ready and not attempt.drain_output():
            stop()
            return "crashed", f"printed more than {attempt.output_limit} bytes"
        if job.events_r in ready and runner_exit is None:
            runner_exit = read_message(job.events_r)
            if runner_exit is None:
                raise OSError("the sandbox process died")
        records = attempt.records()
        if records is None:
            stop()
            return "crashed", "malformed result stream"
        for record in records:
            if attempt.phase == "load":
                if record.get("load") == "ok":
                    attempt.phase = "tests"
                    deadline = time.monotonic() + timeout_s
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
            deadline = time.monotonic() + timeout_s
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


def _cleanup(job: _Job, is_pid_one: bool) -> None:
    """Kill everything the program started, reap it, remove its folder."""
    os.close(job.control_w)
    if is_pid_one:
        try:
            os.kill(-1, signal.SIGKILL)  # as PID 1: every process in this namespace but us
        except ProcessLookupError:
            pass
    else:
        _kill(job.zygote)  # its runner follows (parent-death signal; no process can fork here)
    deadline = time.monotonic() + 5.0
    while is_pid_one and time.monotonic() < deadline:  # orphans of the program, reparented to us
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            time.sleep(0.0005)
    for fd in (job.events_r, job.records_r, job.output_r):
        os.close(fd)
    _remove_tree(job.workdir)


def _remove_tree(path: str) -> None:
    import shutil

    def make_writable_and_retry(function, failed_path, _):
        try:
            os.chmod(os.path.dirname(failed_path), 0o700)
            os.chmod(failed_path, 0o700)
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
    report, template_connection = start(force_fallback="--no-namespaces" in sys.argv)
    is_fallback = report["isolation"] == "fallback"
    is_pid_one = os.getpid() == 1
    _isolation.prctl(_isolation.PR_SET_DUMPABLE, 0)
    report["seccomp"] = _isolation.seccomp_available()
    write_message(protocol_out, report)
    while True:
        job = _Job(is_fallback, template_connection, "/tmp" if is_pid_one else report["host_folder"])
        message = read_message(protocol_in)
        if message is None:
            _cleanup(job, is_pid_one)
            return
        try:
            verdict = run_job(job, message)
        except Exception as error:  # noqa: BLE001 - report, keep serving
            verdict = {"passed": 0, "total": len(message.get("tests", [])), "status": "crashed",
                       "detail": f"sandbox error: {type(error).__name__}: {error}"[:300], "tests": []}
        _cleanup(job, is_pid_one)
        write_message(protocol_out, verdict)


if __name__ == "__main__":
    main()
