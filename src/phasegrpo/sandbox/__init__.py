"""Running untrusted, model-written code. Nothing else in phasegrpo imports subprocess.

Interim implementation (issue 5 replaces it with the isolated, pre-forked sandbox): each
program runs in a fresh `python -I` subprocess in its own session and temp folder, with a
scrubbed environment, rlimits and a wall-clock timeout.

Public API used by the rewards: `Program`, `Verdict`, `run_programs`.
"""

from phasegrpo.sandbox._api import Program, Verdict, run_programs

__all__ = ["Program", "Verdict", "run_programs"]
