"""Sandbox throughput: 256 MBPP-sized programs (3 tests each; correct, wrong and slow ones) through
`phasegrpo.sandbox.run_programs` and through a naive baseline (a fresh `python -c` subprocess per
program, one after another), plus the machine's floor: the cheapest isolated start measured here.

    python benchmarks/bench_sandbox.py [--programs 256] [--timeout-s 5]

The target (issue 5) is >= 5x the baseline's programs per second on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from phasegrpo.sandbox import Program, _pool, run_programs

# MBPP-sized tasks: a short function and three asserts. Each has a correct body, a wrong one and
# a slow one (correct, but doing ~20-50 ms of needless work, as real policy samples sometimes do).
TASKS = [
    ("def f(n):\n    return sum(int(d) for d in str(abs(n)))",
     "def f(n):\n    return sum(int(d) for d in str(n))",
     "def f(n):\n    total = 0\n    for _ in range(40000):\n        total = sum(int(d) for d in str(abs(n)))\n    return total",
     ("assert f(123) == 6", "assert f(-45) == 9", "assert f(0) == 0")),
    ("import re\ndef f(text):\n    return re.sub(r'\\s+', ' ', text).strip()",
     "def f(text):\n    return text.strip()",
     "import re\ndef f(text):\n    for _ in range(20000):\n        out = re.sub(r'\\s+', ' ', text).strip()\n    return out",
     ("assert f('a  b') == 'a b'", "assert f(' x\\ty ') == 'x y'", "assert f('') == ''")),
    ("import heapq\ndef f(items, k):\n    return heapq.nsmallest(k, items)",
     "def f(items, k):\n    return sorted(items)[-k:]",
     "def f(items, k):\n    out = list(items)\n    for _ in range(200000):\n        pass\n    return sorted(out)[:k]",
     ("assert f([5, 1, 4], 2) == [1, 4]", "assert f([3, 3, 1], 1) == [1]", "assert f([9, 8, 7, 6], 3) == [6, 7, 8]")),
    ("def f(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
     "def f(n):\n    return n * (n - 1) // 2",
     "def f(n):\n    return n if n < 2 else f(n - 1) + f(n - 2)",
     ("assert f(10) == 55", "assert f(1) == 1", "assert f(20) == 6765")),
    ("from collections import Counter\ndef f(s):\n    return Counter(s).most_common(1)[0][0]",
     "def f(s):\n    return s[0]",
     "def f(s):\n    best = None\n    for _ in range(3000):\n        best = max(set(s), key=lambda c: (s.count(c), -s.index(c)))\n    return best",
     ("assert f('abbccc') == 'c'", "assert f('aab') == 'a'", "assert f('zzy') == 'z'")),
    ("def f(words):\n    return {w: len(w) for w in words}",
     "def f(words):\n    return [len(w) for w in words]",
     "def f(words):\n    d = {}\n    for _ in range(30000):\n        d = {w: len(w) for w in words}\n    return d",
     ("assert f(['ab', 'c']) == {'ab': 2, 'c': 1}", "assert f([]) == {}", "assert f(['xyz']) == {'xyz': 3}")),
    ("def f(a, b):\n    return sorted(set(a) & set(b))",
     "def f(a, b):\n    return list(a)",
     "def f(a, b):\n    out = []\n    for _ in range(5000):\n        out = sorted(x for x in set(a) if x in b)\n    return out",
     ("assert f([1, 2, 3], [2, 3, 4]) == [2, 3]", "assert f([], [1]) == []", "assert f([5, 5], [5]) == [5]")),
    ("def f(n):\n    if n < 2:\n        return False\n    i = 2\n    while i * i <= n:\n        if n % i == 0:\n            return False\n        i += 1\n    return True",
     "def f(n):\n    return n % 2 == 1",
     "def f(n):\n    return n > 1 and all(n % i for i in range(2, n)) and sum(range(300000)) > 0",
     ("assert f(7) == True", "assert f(9) == False", "assert f(2) == True")),
]
MIX = ("correct",) * 6 + ("wrong",) * 3 + ("slow",)  # 60% correct, 30% wrong, 10% slow


def make_programs(count: int) -> list[Program]:
    programs = []
    for index in range(count):
        correct, wrong, slow, tests = TASKS[index % len(TASKS)]
        kind = MIX[(index // len(TASKS) + index) % len(MIX)]
        programs.append(Program({"correct": correct, "wrong": wrong, "slow": slow}[kind], tests))
    return programs


# The naive baseline: what one would write first. No isolation beyond a subprocess.
_NAIVE_RUNNER = """
import json, sys
payload = json.loads(sys.stdin.read())
scope = {"__name__": "__main__"}
exec(payload["code"], scope)
passed = 0
for test in payload["tests"]:
    try:
        exec(test, dict(scope))
        passed += 1
    except Exception:
        pass
print(json.dumps(passed))
"""


def run_naive(programs: list[Program], timeout_s: float) -> list[int]:
    results = []
    for program in programs:
        payload = json.dumps({"code": program.code, "tests": list(program.tests)})
        try:
            done = subprocess.run([sys.executable, "-c", _NAIVE_RUNNER], input=payload, capture_output=True,
                                  text=True, timeout=timeout_s * (1 + len(program.tests)))
            results.append(int(done.stdout.strip() or 0))
        except subprocess.TimeoutExpired:
            results.append(0)
    return results


_FORK_FLOOR = """
import os, sys, time
for module in "bisect collections copy functools heapq itertools math operator re socket string".split():
    __import__(module)
repeats = int(sys.argv[1])
started = time.perf_counter()
for _ in range(repeats):
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
print((time.perf_counter() - started) / repeats * 1000)
"""


def measure_floor(repeats: int = 200) -> dict[str, float]:
    """Milliseconds per start: fork of a warm stdlib-only interpreter like the sandbox's zygote
    (the least the sandbox can pay per program), a bare `python -I -S -c pass` (the least any
    fresh-interpreter design pays), and the sandbox's own cost per trivial program on 1 worker."""
    floors = {}
    done = subprocess.run([sys.executable, "-I", "-S", "-c", _FORK_FLOOR, str(repeats)], capture_output=True,
                          text=True, check=True)
    floors["fork of a warm interpreter"] = float(done.stdout)
    started = time.perf_counter()
    for _ in range(repeats // 10):
        subprocess.run([sys.executable, "-I", "-S", "-c", "pass"], check=True)
    floors["fresh python -I -S -c pass"] = (time.perf_counter() - started) / (repeats // 10) * 1000
    trivial = [Program("def f(x):\n    return x", ("assert f(1) == 1",))] * repeats
    pool = _pool.WorkerPool(1)
    previous, _pool._pool = _pool._pool, pool
    try:
        run_programs(trivial[:4])
        started = time.perf_counter()
        run_programs(trivial)
        floors["sandbox, 1 worker, trivial program"] = (time.perf_counter() - started) / repeats * 1000
    finally:
        pool.close()
        _pool._pool = previous
    return floors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programs", type=int, default=256)
    parser.add_argument("--timeout-s", type=float, default=5.0)
    args = parser.parse_args()
    programs = make_programs(args.programs)

    run_programs(programs[:8], timeout_s=args.timeout_s)  # start the workers (once per process in training)
    started = time.perf_counter()
    verdicts = run_programs(programs, timeout_s=args.timeout_s)
    sandbox_s = time.perf_counter() - started

    started = time.perf_counter()
    naive = run_naive(programs, args.timeout_s)
    naive_s = time.perf_counter() - started

    disagreements = sum(verdict.passed != passed for verdict, passed in zip(verdicts, naive, strict=True))
    floors = measure_floor()
    sandbox_rate, naive_rate = len(programs) / sandbox_s, len(programs) / naive_s
    workers = len(_pool.get_pool().workers)
    print(f"programs: {len(programs)} x 3 tests; cores: {len(os.sched_getaffinity(0))}; "
          f"isolation: {verdicts[0].isolation}; workers: {workers}")
    print(f"sandbox : {sandbox_rate:8.1f} programs/s  ({sandbox_s:.2f} s)")
    print(f"naive   : {naive_rate:8.1f} programs/s  ({naive_s:.2f} s, fresh `python -c` per program, sequential)")
    print(f"ratio   : {sandbox_rate / naive_rate:8.1f}x  (target >= 5x)")
    print(f"passed tests: sandbox {sum(v.passed for v in verdicts)}, naive {sum(naive)}; "
          f"programs scored differently: {disagreements}")
    print("floor, ms per start:")
    for name, value in floors.items():
        print(f"  {name:<38} {value:7.2f} ms  (= {1000 / value:7.1f} /s)")


if __name__ == "__main__":
    main()
