"""`phasegrpo train` (the command) on every process of a launcher, each rank logging the Hub checks
it makes, for tests/test_preflight.py:

    accelerate launch --num_processes 2 ... tests/multiprocess_preflight.py LOG_FILE train --preset demo ...

LOG_FILE gets one line per Hub check (rank, repository) and one per rank at its end (rank, exit
code). The ranks then wait for each other before they exit with the command's code, so that the
launcher, which stops the others once one has exited, cannot cut a rank short.
"""

from __future__ import annotations

import os
import sys

from phasegrpo import run_folder
from phasegrpo.cli import main as command
from phasegrpo.training import distributed, preflight

RANK = int(os.environ.get("RANK", "0"))


def main() -> None:
    log_file, arguments = sys.argv[1], sys.argv[2:]
    hub_status = preflight.hub_status

    def logged_hub_status(repo_id, repo_type, *, cached):
        run_folder.append_jsonl(log_file, {"rank": RANK, "repo": repo_id})
        return hub_status(repo_id, repo_type, cached=cached)

    preflight.hub_status = logged_hub_status
    code = command(arguments)
    run_folder.append_jsonl(log_file, {"rank": RANK, "exit_code": code})
    distributed.barrier()
    sys.exit(code)


if __name__ == "__main__":
    main()
