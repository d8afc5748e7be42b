"""The sandbox's wire format: who sends what, to whom, and how it is framed.

Every message is a frame: a 4-byte little-endian length, then that many bytes of compact JSON
(`_judge.dumps`). The channels, one job at a time on each:

* pool -> worker (worker's stdin): a job `{code, setup, tests, timeout_s, memory_mb, ...}`;
  EOF asks the worker to clean up and exit.
* worker -> pool (worker's stdout): first the isolation report `{isolation, reason, host_folder,
  seccomp, program_uid, ...}`, then one verdict `{passed, total, status, detail, tests, job_id}` per job.
* worker -> zygote (a unix SOCK_SEQPACKET pair): `{first_test, cpu_s, workdir, memory_mb,
  file_size_mb, max_processes, program_uid}` asks for one runner, unframed, one datagram each,
  carrying the write ends of the runner's own records and output pipes (SCM_RIGHTS).
* pool -> worker job and worker -> pool verdict both carry `job_id`: a verdict is only ever
  credited to the job with the same number.
* worker -> judge process (pipe): `{id, steps, values}`; judge -> worker: `[id, outcome, detail]`.
* zygote -> worker (events pipe): `{pid}` once the runner is forked, `{exit: wait status}` once it ended.
* worker -> runner: the program, unframed JSON `{setup, code, tests}` in `JOB_FILE` in its working
  folder; the runner reads and deletes it after it confined itself, so the zygote never sees it.
* runner -> worker (fd `RECORDS_FD`): `{load: "ok"}` or `{load: "error", detail}`, then per test
  `{test, asserts: [[encoded leaf, ...], ...]}` or `{test, error}`. Written by untrusted code,
  so read with `RecordStream`: capped in size, and anything malformed ends the attempt.
* runner's stdout and stderr (output pipe): counted against the output limit, never stored.

Imported by the pool as `phasegrpo.sandbox._protocol` and by the worker script (`python -I -S`,
this folder on sys.path) as `_protocol`: standard library only.
"""

from __future__ import annotations

import os
import struct

if __package__:  # the trainer's pool
    from phasegrpo.sandbox import _judge
else:  # the worker script, where this folder is on sys.path and phasegrpo is not importable
    import _judge

HEADER = struct.Struct("<I")
MAX_RECORD_BYTES = 4 * 2**20  # per runner record; a larger one is a malformed stream
RECORDS_FD = 3  # where the runner writes its records
JOB_FILE = ".program.json"


def frame(obj) -> bytes:
    data = _judge.dumps(obj)
    return HEADER.pack(len(data)) + data


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def write_message(fd: int, obj) -> None:
    write_all(fd, frame(obj))


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
    """The next message on a blocking, trusted channel; None at EOF."""
    header = _read_exact(fd, HEADER.size)
    if header is None:
        return None
    body = _read_exact(fd, HEADER.unpack(header)[0])
    return None if body is None else _judge.loads(body)


class RecordStream:
    """The runner's records, read as they come from a non-blocking pipe; the runner is untrusted."""

    def __init__(self, fd: int):
        self.fd, self.buffer, self.at_end = fd, b"", False

    def read(self) -> list | None:
        """Complete records read so far; None if the stream is malformed or too large."""
        while True:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                self.at_end = True
                break
            self.buffer += chunk
            if len(self.buffer) > MAX_RECORD_BYTES + HEADER.size:
                break
        found = []
        while len(self.buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.buffer)
            if size > MAX_RECORD_BYTES:
                return None
            if len(self.buffer) < HEADER.size + size:
                break
            body, self.buffer = self.buffer[HEADER.size:HEADER.size + size], self.buffer[HEADER.size + size:]
            try:
                record = _judge.loads(body)
            except (ValueError, RecursionError):
                return None
            if type(record) is not dict:
                return None
            found.append(record)
        return found
