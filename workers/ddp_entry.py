"""The two programs a job of several devices runs (workers/distributed.py), tied to their parents' lives
before anything heavy is imported, so that no rank outlives its worker:

    python -m workers.ddp_entry launch <torchrun's arguments>   torchrun, SIGTERM when the worker dies
    python -m workers.ddp_entry rank <work folder>              one rank, SIGKILL when torchrun dies

torchrun stops its ranks (and reaps them) on SIGTERM; a rank whose torchrun was killed outright has
nothing to report to and no peer to wait for."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int) -> None:
    parent = os.getppid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
    except OSError:  # not Linux: the worker's kill of the process group is all there is
        return
    if os.getppid() != parent:  # the parent died before the wish was made
        os._exit(1)


if __name__ == "__main__":
    role, args = sys.argv[1], sys.argv[2:]
    if role == "launch":
        die_with_parent(signal.SIGTERM)
        from torch.distributed.run import main

        sys.argv = ["torchrun", *args]
        main()
    elif role == "rank":
        die_with_parent(signal.SIGKILL)
        from pathlib import Path

        from workers.distributed import rank_main

        rank_main(Path(args[0]))
    else:
        sys.exit(f"ddp_entry: unknown role {role!r}")
