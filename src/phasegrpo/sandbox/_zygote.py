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
import socket

import _isolation
import _judge
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

    def __init__(self, is_fallback: bool, pid_namespace_fd: int | None, protocol_fds: tuple[int, int]):
        # Commands travel with the runner's fresh pipe ends (SCM_RIGHTS), one datagram each.
        self.commands, zygote_commands = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.events_r, events_w = os.pipe()
        self.records_r = self.output_r = -1  # the current runner's pipes, fresh per runner
        self.runner_pid: int | None = None  # until its exit event is read
        self.pid = os.fork()
        if self.pid == 0:
            try:
                for fd in (*protocol_fds, self.commands.fileno(), self.events_r):
                    os.close(fd)
                _serve(zygote_commands, events_w, is_fallback, pid_namespace_fd)
            finally:
                os._exit(1)
        zygote_commands.close()
        os.close(events_w)

    def next_event(self, timeout_s: float) -> dict | None:
        """The zygote's next event (`{pid}` or `{exit}`), or None if none came within `timeout_s`."""
        ready, _, _ = select.select([self.events_r], [], [], timeout_s)
        if not ready:
            return None
        event = _protocol.read_message(self.events_r)
        if event is None:
            raise ZygoteLost("the zygote died")
        if "exit" in event:
            self.runner_pid = None
        return event

    def abandon_runner(self) -> None:
        """Kill the current runner, if any, and take its exit event, so the next runner starts clean."""
        if self.runner_pid is None:
            return
        try:
            os.kill(self.runner_pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        while self.runner_pid is not None:
            if self.next_event(5.0) is None:
                raise ZygoteLost("the zygote did not report the runner's exit")

    def close_pipes(self) -> None:
        """Close the last runner's pipes: whatever it did to them (flags, sizes, content) ends with it."""
        for fd in (self.records_r, self.output_r):
            if fd >= 0:
                os.close(fd)
        self.records_r = self.output_r = -1

    def start_runner(self, command: dict) -> int:
        """Ask for a runner for `command`, with pipes of its own for records and output; returns its pid."""
        self.close_pipes()
        self.records_r, records_w = os.pipe()
        self.output_r, output_w = os.pipe()
        for fd in (self.records_r, self.output_r):
            os.set_blocking(fd, False)
        try:
            socket.send_fds(self.commands, [_judge.dumps(command)], [records_w, output_w])
        except OSError as error:
            raise ZygoteLost(f"the zygote stopped taking commands ({error})") from error
        finally:
            os.close(records_w)
            os.close(output_w)
        event = self.next_event(10.0)
        if not event or "pid" not in event:
            raise ZygoteLost("the zygote did not start a runner")
        self.runner_pid = event["pid"]
        return event["pid"]


def _serve(commands: socket.socket, events_fd: int, is_fallback: bool, pid_namespace_fd: int | None) -> None:
    """Fork one runner per command and report its pid and exit status; never reads a program."""
    _isolation.prctl(_isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Where RLIMIT_NPROC cannot bound them, new processes are denied (threads stay allowed):
    # without namespaces, and for programs that would run as root outside.
    filters = {deny: _isolation.seccomp_filter(is_fallback, deny) if _isolation.seccomp_available() else None
               for deny in (False, True)}
    gc.freeze()  # runners then do not touch (and copy) every inherited object when they collect
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(commands, 1 << 16, 2)
        except OSError:
            os._exit(0)
        if not data:
            os._exit(0)
        command = _judge.loads(data)
        if len(fds) != 2:
            os._exit(1)
        records_fd, output_fd = fds
        if pid_namespace_fd is not None:
            _isolation.setns(pid_namespace_fd, _isolation.CLONE_NEWPID)  # back to our own, then a new one
            # The runner will be PID 1 of a new PID namespace, with SysV IPC of its own.
            _isolation.unshare(_isolation.CLONE_NEWPID | _isolation.CLONE_NEWIPC)
        runner = os.fork()
        if runner == 0:
            try:
                _isolation.prctl(_isolation.PR_SET_PDEATHSIG, signal.SIGKILL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                null = os.open(os.devnull, os.O_RDWR)  # its own: flags it sets end with it
                os.dup2(null, 0)
                os.dup2(output_fd, 1)
                os.dup2(output_fd, 2)
                os.dup2(records_fd, _protocol.RECORDS_FD)
                os.closerange(_protocol.RECORDS_FD + 1, 1 << 16)
                as_root = _IS_ROOT_OUTSIDE and command.get("program_uid") is None
                _runner.run_program(command, is_fallback, filters[is_fallback or as_root])
            finally:
                os._exit(1)
        os.close(records_fd)
        os.close(output_fd)
        _protocol.write_message(events_fd, {"pid": runner})
        status = os.waitpid(runner, 0)[1]
        _protocol.write_message(events_fd, {"exit": status})
