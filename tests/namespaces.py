"""What a sandbox test does where the OS refuses user namespaces: it fails, because the isolation
it exists to check went unchecked. There is no opt-out: a suite that passes there would claim a
sandbox nobody checked."""

import pytest


def isolation_unchecked(reason: str) -> None:
    """Fail this test: the sandbox's isolation could not be checked here."""
    pytest.fail(f"The sandbox's isolation was not checked: {reason}. Run the tests where user namespaces are allowed "
                f"(e.g. sysctl kernel.unprivileged_userns_clone=1, or a container with --security-opt seccomp=unconfined).")
