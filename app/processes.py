"""Whether a process id still names a running process: the test several parts make of a pid they recorded
(metrics files of dead API workers, cache pins of dead workers)."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: checks existence and permission, sends nothing
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
