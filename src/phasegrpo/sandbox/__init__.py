"""Running untrusted, model-written code. Nothing else in phasegrpo imports subprocess.

`run_programs(programs)` runs a batch in parallel on warm worker processes (one per core,
fresh interpreters started with `subprocess`, never forks of the trainer) and returns one
`Verdict` per program, in input order. Details and measurements: docs/sandbox.md.

What it protects, for every program (Linux with unprivileged user namespaces, x86_64/aarch64):
- The trainer: the program runs as PID 1 of its own PID namespace, below a worker that is PID 1
  of another, so it cannot see, signal or trace the trainer or any other program; killing its
  parent, ignoring signals, forking or leaving children and threads behind ends with one SIGKILL
  that takes its whole namespace. A worker that dies anyway is replaced and its program retried.
- The machine: wall-clock budget for the code and for each test, CPU time, address space, file
  size, processes and threads (as a non-root user, also when the trainer is root), open files,
  captured output (drained and counted, never stored), a 64 MB private /tmp of 4096 inodes; no
  capabilities, no_new_privs, and a seccomp filter against ptrace, mounts, new namespaces, memfd
  and SysV/POSIX IPC, socket families beyond unix and inet, bpf, keyrings and the like.
- The pool: every verdict is tied to its job; a failing call kills its busy workers; a hostile
  program costs its own verdict ("crashed"), never the worker or the trainer; each runner gets
  fresh pipes, and clean-up handles trees of any depth.
- The user's data: no network (empty network namespace); a read-only root holding only the
  interpreter's folders and /dev/null-like devices (no home, caches, tokens, /proc, /etc, /sys);
  an empty working folder, removed afterwards; an environment with PATH, HOME, TMPDIR and LANG only.
- The verdict: each assert is split so that the program only supplies the values of its calls,
  as plain data of exact builtin types, and everything else (operators, tolerances, expected
  values, methods) runs on the worker side with the real builtins, in a judge process charged to
  the test's budget; shapes that cannot be split (an assert in a loop) are "unsupported"; the expected values
  never enter the program's process, nor does any other program's code. Exiting early, hooks,
  rebinding builtins, printing, BaseException, objects whose __eq__ always answers True (or
  subclasses of the expected type) all fail. Each test has its own budget and its own verdict.

What it does not protect:
- A program that hard-codes the expected values (e.g. copied from the prompt) passes, as it would
  anywhere: that is reward hacking for the dataset to prevent, not a sandbox escape.
- Kernel bugs: namespaces and seccomp share the host kernel.
- CPU and memory bandwidth are shared: a program may slow its neighbours down for its budget.
- Where user namespaces are unavailable ("fallback", logged once as a warning): the program can
  read and write whatever the trainer's user can (as root it runs as nobody instead), files it
  writes to /tmp and /dev/shm outlive it; it still gets rlimits, its own session, a temp folder,
  a scrubbed environment and (x86_64) seccomp that denies sockets, signals and new processes.
"""

from phasegrpo.sandbox._api import Program, Verdict, run_programs

__all__ = ["Program", "Verdict", "run_programs"]
