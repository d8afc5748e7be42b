"""Trainer side of the sandbox: warm worker processes, one per core, fed jobs over pipes (`_protocol`).

Workers are fresh interpreters (`subprocess`, never a fork of the trainer), started on first use,
reused across calls, replaced when they die, and stopped at exit. A process that forks after the
pool started (a DataLoader worker) does not inherit it: it starts its own on first use.
"""

from __future__ import annotations

import atexit
import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections import deque

from phasegrpo.sandbox import _cleanup, _protocol

logger = logging.getLogger("phasegrpo.sandbox")

_WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")
_START_TIMEOUT_S = 30.0
_MAX_ATTEMPTS = 2  # a job whose worker dies is retried once on a fresh worker


class WorkerError(RuntimeError):
    pass


class _Worker:
    def __init__(self, flags: tuple[str, ...]):
        command = [os.path.realpath(sys.executable), "-I", "-S", _WORKER_SCRIPT, *flags]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, close_fds=True,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, start_new_session=True,
        )
        self.job_index: int | None = None
        self.job_id = 0  # the pool's number for the job it runs; its verdict must carry the same
        self.deadline = 0.0
        ready, _, _ = select.select([self.process.stdout], [], [], _START_TIMEOUT_S)
        self.report = self.receive() if ready else None
        if self.report is None:
            self.kill()
            raise WorkerError(f"The sandbox worker exited or did not answer within {_START_TIMEOUT_S:g} s; run "
                              f"{' '.join(command)} by hand to see its error.")

    def fileno(self) -> int:
        return self.process.stdout.fileno()

    def send(self, job: dict) -> None:
        _protocol.write_message(self.process.stdin.fileno(), job)

    def receive(self):
        """The worker's next message (report or verdict); None if it exited."""
        return _protocol.read_message(self.process.stdout.fileno())

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait()
        self.close_pipes()
        self.remove_folder()

    def remove_folder(self) -> None:
        """The worker's folder on the host, left behind if the worker was killed."""
        folder = (self.report or {}).get("host_folder")
        if folder and os.path.basename(folder).startswith("phasegrpo-sandbox-"):
            _cleanup.remove_tree(folder)  # never recursive: a program may have left a very deep tree

    def close_pipes(self) -> None:
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:
                pass


class WorkerPool:
    """Runs jobs on `size` warm workers; `run` returns one verdict dict per job, in order."""

    def __init__(self, size: int | None = None, *, force_fallback: bool = False, private_root: bool = True):
        """`force_fallback` and `private_root=False` degrade isolation on purpose, for tests."""
        self.size = size or len(os.sched_getaffinity(0))
        self.flags = ("--no-namespaces",) * force_fallback + ("--no-private-root",) * (not private_root)
        self.workers: list[_Worker] = []
        self.owner_pid = os.getpid()
        self.lock = threading.Lock()
        self.isolation: dict | None = None
        self.job_counter = 0

    def _spawn(self) -> _Worker:
        worker = _Worker(self.flags)
        if self.isolation is None:
            self.isolation = worker.report
            if worker.report["isolation"] != "namespaces":
                logger.warning(
                    "Sandbox isolation is degraded (%s: %s). Programs still run with rlimits, their own "
                    "session, a temp folder, a scrubbed environment%s, but they can see the files this "
                    "user can read; see docs/sandbox.md.", worker.report["isolation"], worker.report["reason"],
                    " and seccomp (no sockets, signals or new processes)" if worker.report.get("seccomp") else "")
        return worker

    def run(self, jobs: list[dict], job_timeout_s: list[float]) -> list[dict]:
        with self.lock:
            busy: list[_Worker] = []
            try:
                return self._run(jobs, job_timeout_s, busy)
            except BaseException:
                # A worker still busy would hand its verdict to the next call's job: end them all.
                for worker in busy:
                    self._discard(worker)
                raise

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        if worker in self.workers:
            self.workers.remove(worker)

    def _replace(self, worker: _Worker) -> _Worker | None:
        """A fresh worker in place of `worker`; None if none can start now (the batch goes on with fewer)."""
        self._discard(worker)
        try:
            fresh = self._spawn()
        except (WorkerError, OSError) as error:
            logger.warning("Could not replace a sandbox worker (%s); continuing with %d.", error, len(self.workers))
            return None
        self.workers.append(fresh)
        return fresh

    def _run(self, jobs: list[dict], job_timeout_s: list[float], busy: list[_Worker]) -> list[dict]:
        results: list[dict | None] = [None] * len(jobs)
        attempts = [0] * len(jobs)
        pending = deque(range(len(jobs)))
        while len(self.workers) < min(self.size, len(jobs)):
            try:
                self.workers.append(self._spawn())
            except (WorkerError, OSError):
                if not self.workers:
                    raise
                break  # e.g. the machine is out of processes for now: go on with the workers we have
        idle = list(self.workers)
        while pending or busy:
            if not idle and not busy:
                raise WorkerError("No sandbox worker could be started; see the warnings above.")
            while pending and idle:
                worker, index = idle.pop(), pending.popleft()
                attempts[index] += 1
                self.job_counter += 1
                worker.job_index, worker.job_id = index, self.job_counter
                worker.deadline = time.monotonic() + job_timeout_s[index]
                try:
                    worker.send({**jobs[index], "job_id": worker.job_id})
                except OSError:
                    pass  # noticed below as a dead worker
                busy.append(worker)
            wait_s = max(0.0, min(worker.deadline for worker in busy) - time.monotonic())
            ready, _, _ = select.select(busy, [], [], wait_s)
            now = time.monotonic()
            for worker in list(busy):
                if worker in ready:
                    verdict = worker.receive()
                    if type(verdict) is dict and type(verdict.get("job_id")) is int \
                            and verdict["job_id"] < worker.job_id:
                        continue  # an answer to a job of an earlier, interrupted call: never this job's
                    if type(verdict) is not dict or verdict.get("job_id") != worker.job_id:
                        verdict = None
                elif now >= worker.deadline:
                    verdict = None
                else:
                    continue
                busy.remove(worker)
                index = worker.job_index
                if verdict is None:  # died or hung: replace it, retry its job once
                    worker = self._replace(worker)
                    if attempts[index] < _MAX_ATTEMPTS:
                        pending.appendleft(index)
                    else:
                        results[index] = {"passed": 0, "total": len(jobs[index]["tests"]), "status": "crashed",
                                          "detail": "the sandbox worker died running this program", "tests": []}
                else:
                    results[index] = verdict
                if worker is not None:
                    idle.append(worker)
        return results

    def close(self) -> None:
        if os.getpid() != self.owner_pid:
            return
        for worker in self.workers:
            worker.close_pipes()  # EOF: the worker cleans up and exits
        deadline = time.monotonic() + 2.0
        for worker in self.workers:
            try:
                worker.process.wait(max(0.0, deadline - time.monotonic()))
                worker.remove_folder()
            except subprocess.TimeoutExpired:
                worker.kill()
        self.workers = []

    def forget_after_fork(self) -> None:
        """In a forked child: drop our copies of the parent's pipes without touching its workers."""
        for worker in self.workers:
            worker.close_pipes()
            worker.process.returncode = 0  # not ours to wait for
        self.workers = []


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def get_pool() -> WorkerPool:
    global _pool
    with _pool_lock:
        if _pool is None or _pool.owner_pid != os.getpid():
            _pool = WorkerPool()
        return _pool


def _forget_pool_in_child() -> None:
    global _pool, _pool_lock
    _pool_lock = threading.Lock()
    if _pool is not None:
        _pool.forget_after_fork()
        _pool = None


def _close_pool() -> None:
    if _pool is not None:
        _pool.close()


os.register_at_fork(after_in_child=_forget_pool_in_child)
atexit.register(_close_pool)
