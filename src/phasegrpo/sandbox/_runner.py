"""The runner: the one process that runs a program, forked by the zygote, one per attempt.

It confines itself before it reads the program (rlimits, scrubbed environment, dropped
privileges, seccomp), then runs setup + code and the tests, and sends back plain-data records
(`_protocol`). Nothing it sends is trusted: the worker judges the values. Worker-only module.
"""

from __future__ import annotations

import os
import tempfile

import _isolation
import _judge
import _protocol


def _describe(error: BaseException) -> str:
    try:
        # The real type's name: a metaclass of the program's could override `__name__`.
        name = type.__dict__["__name__"].__get__(type(error))
        return f"{name}: {str(error)[:300]}"
    except BaseException:  # noqa: BLE001 - the program owns the exception object
        return "exception"


def _send(record: dict) -> None:
    _protocol.write_message(_protocol.RECORDS_FD, record)


def run_program(command: dict, is_fallback: bool, seccomp_filter: bytes | None) -> None:
    """Confine this process, read the program, run setup + code, then the tests; never returns."""
    import builtins

    workdir = command["workdir"]
    os.setsid()  # killing or stopping its own process group then reaches no one else
    _isolation.set_limits(cpu_s=command["cpu_s"], memory_mb=command["memory_mb"],
                          file_size_mb=command["file_size_mb"],
                          max_processes=None if is_fallback else command["max_processes"])
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update({"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8"})
    tempfile.tempdir = workdir
    _isolation.drop_privileges(command.get("program_uid"), drop_groups=is_fallback)
    if seccomp_filter is not None:
        _isolation.install_seccomp(seccomp_filter)
    with open(_protocol.JOB_FILE, "rb") as handle:
        job = _judge.loads(handle.read())
    os.unlink(_protocol.JOB_FILE)
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
        scope["__builtins__"] = dict(pristine)  # each test sees the real builtins, whatever the code rebound
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
