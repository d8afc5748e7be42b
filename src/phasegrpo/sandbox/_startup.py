"""Worker start-up, once: enter the namespaces (or fall back), fork the zygote, pivot into a private root.

In namespace mode: enter new user, mount, network, IPC, UTS and PID namespaces; fork so that the
worker is PID 1 of its own PID namespace; fork the zygote while nothing but the standard library
is in memory; pivot into a read-only root that holds only the interpreter. Worker-only module.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile

import _isolation
import _zygote

# Imported once per worker so that programs do not pay for them (and can use them where the
# interpreter's own folder is unreadable to the sandbox user). Kept to what MBPP-style code uses
# most: every preloaded module makes each fork dearer (measured: 9 modules 1.4 ms, 25 modules 2.9 ms).
PRELOAD = "bisect collections copy functools heapq itertools math operator re socket string".split()
# Where programs run as nobody and cannot read the interpreter's folder (root, no namespaces, Python
# under /root), these are the only other modules they can import.
_PRELOAD_UNREADABLE = (
    "array cmath datetime decimal fractions hashlib json random statistics threading time typing unicodedata"
).split()


def start(force_fallback: bool, protocol_fds: tuple[int, int]) -> tuple[dict, _zygote.Zygote]:
    """Enter the namespaces (or not) and fork the zygote; returns the isolation report and the zygote.

    In namespace mode the calling process stays outside, waiting; only the forked PID 1 returns."""
    if force_fallback or not _isolation.namespaces_possible():
        reason = "namespaces disabled by the caller" if force_fallback else "not Linux x86_64/aarch64"
        return _fallback({"isolation": "fallback", "reason": reason}, protocol_fds)
    new_root = tempfile.mkdtemp(prefix="phasegrpo-sandbox-")
    read_only = ["/usr", "/bin", "/lib", "/lib64", "/lib32", "/libx32", "/etc/ld.so.cache",
                 os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)]
    try:
        program_uid_mapped = _isolation.enter_user_namespace()
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
    zygote = _zygote.Zygote(False, pid_namespace_fd, protocol_fds)
    os.close(pid_namespace_fd)
    report = {"isolation": "namespaces", "reason": "", "host_folder": new_root,
              "program_uid": _isolation.PROGRAM_UID if program_uid_mapped else None}
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
        # Nor may programs become `nobody` there: it could not read an interpreter under /root.
        report.update(isolation="partial", reason=f"no private filesystem view ({error})",
                      host_folder=tempfile.mkdtemp(prefix="phasegrpo-sandbox-"), program_uid=None)
    finally:
        os.close(host_tmp)
    return report, zygote


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


def _fallback(report: dict, protocol_fds: tuple[int, int]) -> tuple[dict, _zygote.Zygote]:
    report["run_as_nobody"] = os.getuid() == 0 and _can_become_nobody()
    report["program_uid"] = _isolation.NOBODY if report["run_as_nobody"] else None
    if os.getuid() == 0 and not report["run_as_nobody"]:
        report["reason"] += "; programs run as this (root) user: nobody is not mapped here"
    if report["run_as_nobody"] and not _readable_by_others(os.__file__):
        for module in _PRELOAD_UNREADABLE:
            __import__(module)
        report["reason"] += (f"; {os.path.dirname(os.__file__)} is unreadable to nobody, so programs can import "
                             f"only preloaded modules: {' '.join(sorted(PRELOAD + _PRELOAD_UNREADABLE))}")
    # Program folders live in one folder per worker, which the pool removes if the worker is killed.
    report["host_folder"] = tempfile.mkdtemp(prefix="phasegrpo-sandbox-")
    os.chmod(report["host_folder"], 0o711)
    return report, _zygote.Zygote(True, None, protocol_fds)
