"""The launcher of a job of several devices (workers/distributed.py) on its own, without a worker: a rank
that fails ends the call with that rank's error, a rank killed outright is named as the cause (not the
peer that lost it), and no torchrun or rank process is left behind."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import torch

from models import family, register_all
from tests.e2e.test_distributed import ranks_and_launchers
from tests.workers import synthetic
from workers import distributed

pytestmark = [pytest.mark.slow, pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                                                   reason="two processes on the CPU need two cores")]


def test_a_rank_that_fails_fails_the_call_with_its_error(tmp_path):
    register_all("")
    training = family("classification").training
    cfg = family("classification").config(epochs=1, batch_size=8)
    npz = tmp_path / "d.npz"
    npz.write_bytes(synthetic.npz_bytes(n=40, size=8, seed=1))
    data = training.load_dataset(npz, "npz", cfg)
    # the ranks are given a dataset that is not there: each fails as it loads it
    launch = distributed.Launch(tmp_path / "work", 2, "classification", "", tmp_path / "gone.npz", "npz", 1)
    with pytest.raises(distributed.DistributedError) as e:
        launch(cfg, data, torch.device("cpu"), lambda step, values: None)
    assert str(e.value).startswith("rank ") and " of 2 failed: DatasetError" in str(e.value), str(e.value)
    assert "gone.npz" in str(e.value)
    assert ranks_and_launchers() == []
    assert not (tmp_path / "work").exists()


def test_a_rank_killed_mid_run_is_named_as_the_cause(tmp_path):
    register_all("")
    training = family("classification").training
    cfg = family("classification").config(epochs=200, batch_size=8, width=8)
    npz = tmp_path / "d.npz"
    npz.write_bytes(synthetic.npz_bytes(n=80, size=8, seed=1))
    data = training.load_dataset(npz, "npz", cfg)
    work, steps = tmp_path / "work", []

    def kill_rank_1() -> None:  # as the kernel's out-of-memory killer would, once training is under way
        deadline = time.monotonic() + 120
        while len(steps) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(int((work / "rank1.pid").read_text()), signal.SIGKILL)

    threading.Thread(target=kill_rank_1, daemon=True).start()
    launch = distributed.Launch(work, 2, "classification", "", npz, "npz", 1)
    with pytest.raises(distributed.DistributedError, match="^rank 1 of 2 died without an error of its own"):
        launch(cfg, data, torch.device("cpu"), lambda step, values: steps.append(step))
    assert ranks_and_launchers() == []


def test_the_host_must_have_the_devices_and_a_checkpoint_the_same_world():
    cores = len(os.sched_getaffinity(0))
    with pytest.raises(distributed.DistributedError, match=f"config.devices is {cores + 1} but this worker has "
                                                           f"{cores} CPU cores"):
        distributed.check(cores + 1, torch.device("cpu"), None)
    with pytest.raises(distributed.DistributedError, match="written by 1 process"):
        distributed.check(2, torch.device("cpu"), {"step": 3})
    distributed.check(2, torch.device("cpu"), {"step": 3, "world_size": 2})
    assert distributed.threads_per_rank(2, 8) == 4 and distributed.threads_per_rank(4, 2) == 1


@pytest.mark.parametrize("left, expected", [
    # the peer was stopped by torchrun before its collective call could fail (CI saw this order)
    ({"rank0.stopped": ""}, "rank 1 of 2 died without an error of its own (killed: out of memory, or a signal)"),
    ({"rank0.error": "RuntimeError: Connection closed by peer"},
     "rank 1 of 2 died without an error of its own (killed: out of memory, or a signal); "
     "then rank 0: RuntimeError: Connection closed by peer"),
    # rank 1 ended well: rank 0's own error is the cause, not rank 1's silence
    ({"rank1.done": "", "rank0.error": "ValueError: bad"}, "rank 0 of 2 failed: ValueError: bad"),
])
def test_the_cause_named_follows_what_each_rank_left(tmp_path, left, expected):
    for rank in (0, 1):
        (tmp_path / f"rank{rank}.pid").write_text("1")
    for name in left:
        (tmp_path / name).write_text(left[name])
    assert distributed._why(tmp_path, 1, 2) == expected
