"""The sandbox against kinds of attack found by a red-team pass (issue 15): wrong verdicts, limits
that did not apply, programs that broke the pool, state shared between programs, isolation gaps.

Each isolation mode runs one batch on a one-worker pool, so every hostile program is followed on
the same worker by an honest one, which must behave as on a fresh worker."""

from __future__ import annotations

import os
import textwrap
import time

import pytest
from namespaces import isolation_unchecked

from phasegrpo.sandbox import Program, _cleanup, _pool, run_programs

TIMEOUT_S = 1.0
MAX_PROCESSES = 16
SQUARE_TESTS = ("assert f(2) == 4", "assert f(3) == 9", "assert f(-1) == 1")
HONEST = "def f(x):\n    print('y' * 100000)\n    return x * x"  # prints more than a shrunken pipe holds


def _code(source: str) -> str:
    return textwrap.dedent(source).strip() + "\n"


# name -> (code, tests, expected outcomes per mode: {"namespaces": (...), "fallback": (...)} or one tuple for both).
# `...`: any outcome (only the next program and the worker matter). A mode missing from the dict
# does not run the case (the inode flood would write to the host's /tmp).
# PID 1 of a namespace ignores its own SIGKILL/SIGSTOP; without namespaces seccomp denies kill.
CASES = {
    # ---- wrong verdicts: every part of a test but the program's calls is judged on the worker side ----
    "tolerance_with_lying_subtraction": (_code("""
        class Close:
            def __sub__(self, other):
                return 0.0
            __rsub__ = __sub__
        def f(x):
            return Close()
    """), ("assert abs(f(1) - 2.5) < 1e-9",), ("error",)),  # not plain data
    "tolerance_honest": ("def f(x):\n    return 2.5 + 1e-12", ("assert abs(f(1) - 2.5) < 1e-9",), ("passed",)),
    "expected_value_from_shadowed_range": (_code("""
        def range(n):
            return [7]
        def f(x):
            return {7}
    """), ("assert f(1) == set(range(3))",), ("failed",)),
    "expected_value_from_shadowed_list_in_a_statement": (_code("""
        list = lambda *args: 5
        def f(x):
            return 5
    """), ("expected = list(range(3))\nassert f(1) == expected",), ("failed",)),
    "expected_value_honest": ("def f(x):\n    return {0, 1, 2}", ("assert f(1) == set(range(3))",
                              "expected = list(range(3))\nassert sorted(f(1)) == expected"), ("passed", "passed")),
    "method_on_a_lying_object": (_code("""
        class Text:
            def lower(self):
                return 'a'
        def f(x):
            return Text()
    """), ("assert f(1).lower() == 'a'",), ("error",)),  # not plain data
    "method_honest": ("def f(x):\n    return 'A'", ("assert f(1).lower() == 'a'", "assert f(1)[0] == 'A'"), ("passed", "passed")),
    "assert_in_a_loop_is_refused": ("def range(n):\n    return []\ndef f(x):\n    return None",
                                    ("for i in range(3):\n    assert f(i) == i",), ("unsupported",)),
    "value_slow_to_judge": (_code("""
        def f(x):
            return [i * (2 ** 61 - 1) for i in range(1, 40000)]
    """), ("assert set(f(0)) == {0}",), ("timeout",)),
    # ---- limits that apply: processes and threads, memory outside the address-space limit ----
    "threads_are_bounded": (_code("""
        import threading, time
        threading.stack_size(65536)
        count = 0
        try:
            for _ in range(200):
                threading.Thread(target=time.sleep, args=(3,), daemon=True).start()
                count += 1
        except RuntimeError:
            pass
        def f(x):
            return count
    """), (f"assert f(0) < {MAX_PROCESSES}",), {"namespaces": ("passed",), "fallback": ("failed",)}),
    "processes_are_bounded": (_code("""
        import os, time
        count = 0
        for _ in range(100):
            try:
                if os.fork() == 0:
                    time.sleep(3)
                    os._exit(0)
                count += 1
            except OSError:
                break
        def f(x):
            return count
    """), (f"assert f(0) < {MAX_PROCESSES}",), ("passed",)),
    "memory_outside_the_limit": (_code("""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        try:
            os.memfd_create('m')
            memfd = True
        except OSError:
            memfd = False
        shm = libc.shmget(0, 1 << 20, 0o1600) >= 0
        queue = libc.msgget(0, 0o1600) >= 0
        def f(x):
            return (memfd, shm, queue)
    """), ("assert f(0) == (False, False, False)",), ("passed",)),
    "inode_flood_on_tmp": (_code("""
        count = 0
        try:
            for i in range(6000):
                open('/tmp/i%d' % i, 'w').close()
                count += 1
        except OSError:
            pass
        def f(x):
            return count
    """), ("assert f(0) <= 4096",), {"namespaces": ("passed",)}),
    # ---- isolation: no new namespaces, no socket families beyond unix and inet ----
    "new_namespaces": (_code("""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        child = libc.syscall(56, 0x10000000 | 17, 0, 0, 0, 0)  # clone(CLONE_NEWUSER | SIGCHLD)
        if child == 0:
            os._exit(0)
        if child > 0:
            os.waitpid(child, 0)
        unshared = libc.unshare(0x10000000) == 0
        def f(x):
            return (child > 0, unshared)
    """), ("assert f(0) == (False, False)",), ("passed",)),
    "socket_families": (_code("""
        import socket
        opened = []
        for family in (socket.AF_NETLINK, socket.AF_PACKET, 38, 40):  # 38 AF_ALG, 40 AF_VSOCK
            try:
                socket.socket(family, socket.SOCK_RAW if family != 38 else socket.SOCK_SEQPACKET, 0).close()
                opened.append(family)
            except OSError:
                pass
        def f(x):
            return opened
    """), ("assert f(0) == []",), ("passed",)),
    "unix_and_inet_sockets_work": (_code("""
        import socket
        socket.socket(socket.AF_UNIX).close()
        socket.socket(socket.AF_INET).close()
        def f(x):
            return True
    """), ("assert f(0) is True",), {"namespaces": ("passed",), "fallback": ("error",)}),
    # ---- a hostile program costs its own verdict, never the worker ----
    "deep_directory_tree": (_code("""
        import os
        for _ in range(1200):  # deeper than Python's recursion limit
            os.mkdir('d')
            os.chdir('d')
        def f(x):
            return x * x
    """), SQUARE_TESTS, {"namespaces": ("passed",) * 3, "fallback": ...}),  # on a slow host disk it may time out
    "kill_own_process_group": ("import os, signal\nos.killpg(0, signal.SIGKILL)\ndef f(x):\n    return x * x",
                               SQUARE_TESTS[:1], {"namespaces": ("passed",), "fallback": ("error",)}),
    "stop_own_process_group": ("import os, signal\nos.killpg(0, signal.SIGSTOP)\ndef f(x):\n    return x * x",
                               SQUARE_TESTS[:1], {"namespaces": ("passed",), "fallback": ("error",)}),
    "deeply_nested_record": (_code("""
        import os, struct
        body = b'{"test": 0, "asserts": [[' + b'["l", [' * 20000 + b']]' * 20000 + b']]}'
        for record in (b'{"load": "ok"}', body):
            os.write(3, struct.pack('<I', len(record)) + record)
        os._exit(0)
    """), SQUARE_TESTS[:1], ("crashed",)),
    "record_not_utf8": ("import os, struct\nos.write(3, struct.pack('<I', 4) + b'\\xff\\xfe{}')\nos._exit(0)",
                        SQUARE_TESTS[:1], ("crashed",)),
    "record_with_unhashable_values": (_code("""
        import os, struct
        for record in (b'{"load": "ok"}', b'{"test": 0, "asserts": [[["S", [["l", []]]]]]}'):
            os.write(3, struct.pack('<I', len(record)) + record)
        os._exit(0)
    """), SQUARE_TESTS[:1], ("failed",)),
    "deep_expression_in_code": ("x = " + "-" * 200000 + "1", SQUARE_TESTS[:1], ("error",)),
    "rename_working_folder": (_code("""
        import os
        here = os.getcwd()
        try:
            os.rename(here, here + '-moved')
        except OSError:
            pass
        def f(x):
            if x == 2:
                os._exit(1)
            return x * x
    """), SQUARE_TESTS, ("crashed", "passed", "passed")),
    # ---- state shared between programs: what the next program inherits must be fresh ----
    "shrink_and_unblock_pipes": (_code("""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        for fd in (1, 2, 3):
            os.set_blocking(fd, False)
            libc.fcntl(fd, 1031, 4096)  # F_SETPIPE_SZ
        def f(x):
            return x * x
    """), SQUARE_TESTS, ("passed",) * 3),
}


def _expected(name: str, mode: str):
    expected = CASES[name][2]
    return expected.get(mode) if isinstance(expected, dict) else expected


@pytest.fixture(scope="module", params=["namespaces", "fallback"])
def hardening_batch(request):
    """Every case, each followed by an honest program, in order on one worker of the given mode."""
    mode = request.param
    previous = _pool._pool
    pool = _pool.WorkerPool(1, force_fallback=mode == "fallback")
    _pool._pool = pool
    try:
        programs, names = [], []
        for name, (code, tests, _) in CASES.items():
            if _expected(name, mode) is None:
                continue
            programs += [Program(code, tests), Program(HONEST, SQUARE_TESTS)]
            names += [name, f"honest after {name}"]
        run_programs([Program("pass", ())])
        worker_pid = pool.workers[0].process.pid
        started = time.monotonic()
        verdicts = run_programs(programs, timeout_s=TIMEOUT_S, memory_mb=512, max_processes=MAX_PROCESSES)
        yield {"mode": mode, "pool": pool, "verdicts": dict(zip(names, verdicts, strict=True)),
               "elapsed_s": time.monotonic() - started, "worker_pid": worker_pid}
    finally:
        pool.close()
        _pool._pool = previous


def _mode(batch) -> str:
    isolation = batch["pool"].isolation["isolation"]
    if batch["mode"] == "namespaces" and isolation != "namespaces":
        isolation_unchecked(f"this OS does not allow namespaces here ({batch['pool'].isolation['reason']})")
    return batch["mode"]


@pytest.mark.parametrize("name", list(CASES))
def test_each_kind_gets_its_verdict_and_the_next_program_a_fresh_worker(hardening_batch, name):
    mode = _mode(hardening_batch)
    expected = _expected(name, mode)
    if expected is None:  # not run in this mode (see CASES)
        assert name not in hardening_batch["verdicts"]
        return
    verdict = hardening_batch["verdicts"][name]
    assert expected is ... or verdict.tests == expected, verdict
    follower = hardening_batch["verdicts"][f"honest after {name}"]
    assert (follower.passed, follower.status) == (3, "ok"), follower


def test_no_hostile_program_killed_or_replaced_the_worker(hardening_batch):
    _mode(hardening_batch)
    assert [worker.process.pid for worker in hardening_batch["pool"].workers] == [hardening_batch["worker_pid"]]
    # A few cases time out once (1 s); judging the slow value stops at the test's budget.
    assert hardening_batch["elapsed_s"] < 30


# ---- wrong verdicts after a batch that failed half-way ----

def _numbered(count: int, shift: int = 0) -> list[Program]:
    slow = "import time\ntime.sleep(0.3)\n"
    return [Program(f"{slow if index == 0 else ''}def f():\n    return {index + shift}", (f"assert f() == {index}",))
            for index in range(count)]


@pytest.mark.parametrize("force_fallback", [False, True])
def test_a_batch_failing_half_way_leaves_no_verdict_for_the_next_call(monkeypatch, force_fallback):
    pool = _pool.WorkerPool(2, force_fallback=force_fallback)
    previous, _pool._pool = _pool._pool, pool
    try:
        run_programs([Program("pass", ())] * 2)
        receive = _pool._Worker.receive
        calls = []

        def interrupted(self):
            calls.append(1)
            if len(calls) == 1:  # e.g. Ctrl-C, or a worker that cannot be started, while another is busy
                raise KeyboardInterrupt
            return receive(self)

        monkeypatch.setattr(_pool._Worker, "receive", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_programs(_numbered(2, shift=100))  # both wrong: their verdicts must never be read
        monkeypatch.setattr(_pool._Worker, "receive", receive)
        verdicts = run_programs(_numbered(6))
        assert [verdict.passed for verdict in verdicts] == [1] * 6
    finally:
        pool.close()
        _pool._pool = previous


def test_a_verdict_is_only_credited_to_its_own_job():
    pool = _pool.WorkerPool(1)
    previous, _pool._pool = _pool._pool, pool
    try:
        run_programs([Program("pass", ())])
        # A verdict nobody reads (an interrupted call's), waiting in the worker's pipe.
        stale = {"code": "def f():\n    return 1", "setup": "", "tests": ["assert f() == 1"], "timeout_s": 1.0,
                 "memory_mb": 256, "output_limit_bytes": 1000, "file_size_mb": 1, "max_processes": 4, "job_id": 0}
        pool.workers[0].send(stale)
        (verdict,) = run_programs([Program("def f():\n    return 2", ("assert f() == 1",))])
        assert verdict.tests == ("failed",)
    finally:
        pool.close()
        _pool._pool = previous


# ---- clean-up of whatever a program left ----

@pytest.fixture()
def memory_folder(tmp_path):
    """A folder on tmpfs where there is one: deep trees take seconds to remove on some disks."""
    import shutil
    import tempfile
    from pathlib import Path

    if not os.path.isdir("/dev/shm"):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(dir="/dev/shm", prefix="phasegrpo-test-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_clean_up_removes_deep_locked_trees_without_following_links(memory_folder):
    tmp_path = memory_folder
    canary = tmp_path / "canary"
    canary.write_text("keep")
    root = tmp_path / "left-behind"
    root.mkdir()
    descriptor = os.open(root, os.O_RDONLY)
    try:
        for depth in range(1200):  # deeper than Python's recursion limit, and its path longer than PATH_MAX
            os.mkdir("deeper-folder", dir_fd=descriptor)
            inner = os.open("deeper-folder", os.O_RDONLY, dir_fd=descriptor)
            if depth % 400 == 0:
                os.symlink(canary, "link", dir_fd=inner)
                os.symlink(tmp_path, "folder-link", dir_fd=inner)
            os.close(descriptor)
            descriptor = inner
        os.chmod(descriptor, 0)
    finally:
        os.close(descriptor)
    os.chmod(root, 0o500)
    _cleanup.remove_tree(str(root))
    assert not root.exists() and canary.read_text() == "keep"
    assert os.listdir(tmp_path) == ["canary"]


def test_a_worker_that_cannot_be_replaced_does_not_fail_the_batch(monkeypatch):
    import signal
    import threading

    pool = _pool.WorkerPool(2)
    previous, _pool._pool = _pool._pool, pool
    try:
        run_programs([Program("pass", ())] * 2)
        victim = pool.workers[0].process.pid

        def out_of_processes(self):
            raise _pool.WorkerError("cannot fork (as when a program exhausted the PIDs)")

        monkeypatch.setattr(_pool.WorkerPool, "_spawn", out_of_processes)
        threading.Timer(0.2, lambda: os.killpg(victim, signal.SIGKILL)).start()
        slow = "import time\ntime.sleep(0.4)\n"
        programs = [Program(f"{slow}def f():\n    return {index}", (f"assert f() == {index}",)) for index in range(6)]
        verdicts = run_programs(programs, timeout_s=3.0)
        assert [verdict.passed for verdict in verdicts] == [1] * 6
        assert len(pool.workers) == 1 and victim not in [worker.process.pid for worker in pool.workers]
    finally:
        pool.close()
        _pool._pool = previous
