"""The zygote: forked by the worker at start-up, it forks one runner per attempt.

It is forked while nothing but the standard library and the sandbox's own modules is in memory, and it never
reads a program or a test, so no runner can find another program, or any expected value, in its
memory. Forking a runner from it costs a fork, not a new interpreter. Worker-only module.
"""

from __future__ import annotations

import gc
import os
import select
import signal

import _isolation
import _protocol
import _runner


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


# Read at import, before the worker enters its user namespace. The kernel does not apply
# RLIMIT_NPROC to root, so runners of a root worker are denied fork by seccomp instead.
_IS_ROOT_OUTSIDE = _is_root_outside()


class ZygoteLost(RuntimeError):
    """The zygote died or stopped answering: the worker exits and the pool replaces it."""


class Zygote:
    """The worker's side of the zygote: commands in; runner pids and exit statuses, records, output out."""

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
                _serve(command_r, events_w, records_w, output_w, is_fallback, pid_namespace_fd, run_as_nobody)
            finally:
                os._exit(1)
        for fd in (command_r, events_w, records_w, output_w):
            os.close(fd)
        for fd in (self.records_r, self.output_r):
            os.set_blocking(fd, False)

    def next_event(self, timeout_s: float) -> dict | None:
        """The zygote's next event (`{pid}` or `{exit}`), or None if none came within `timeout_s`."""
        ready, _, _ = select.select([self.events_r], [], [], timeout_s)
        if not ready:
            return None
        event = _protocol.read_message(self.events_r)
        if event is None:
            raise ZygoteLost("the zygote died")
        return event

    def start_runner(self, command: dict) -> int:
        """Ask for a runner for `command`; returns its pid."""
        for fd in (self.records_r, self.output_r):
            _drain(fd)  # nothing of an earlier attempt may be read as this one's
        _protocol.write_message(self.command_w, command)
        event = self.next_event(10.0)
        if not event or "pid" not in event:
            raise ZygoteLost("the zygote did not start a runner")
        return event["pid"]


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 1 << 16):
            pass
    except BlockingIOError:
        pass


def _serve(command_fd: int, events_fd: int, records_fd: int, output_fd: int, is_fallback: bool,
           pid_namespace_fd: int | None, run_as_nobody: bool) -> None:
    """Fork one runner per command and report its pid and exit status; never reads a program."""
    _isolation.prctl(_isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    null = os.open(os.devnull, os.O_RDWR)
    deny_processes = is_fallback or _IS_ROOT_OUTSIDE
    seccomp_filter = _isolation.seccomp_filter(is_fallback, deny_processes) if _isolation.seccomp_available() else None
    gc.freeze()  # runners then do not touch (and copy) every inherited object when they collect
    while True:
        command = _protocol.read_message(command_fd)
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
                os.dup2(records_fd, _protocol.RECORDS_FD)
                os.closerange(_protocol.RECORDS_FD + 1, 1 << 16)
                _runner.run_program(command, is_fallback, run_as_nobody, seccomp_filter)
            finally:
                os._exit(1)
        _protocol.write_message(events_fd, {"pid": runner})
        status = os.waitpid(runner, 0)[1]
        _protocol.write_message(events_fd, {"exit": status})
