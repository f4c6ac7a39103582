"""What the training loop does differently in one of several processes (issue 22; torch: workers only).

`fit` (models/common/loop.py) asks `Group.current()`; where no process group was set up (every
one-process run) it gets None and runs exactly as before. In a group of `world` processes started by
torchrun (workers/distributed.py), each rank:

- draws the epoch's order from the same generator state (rank 0's, broadcast before the draw), so the
  ranks agree on every global batch, then takes its shard of each batch (`shard`: every world-th index,
  DistributedSampler's split). The global batch and the step count, hence the learning-rate schedule,
  are those of one process; the per-rank batch is global / world;
- after the draw, moves its generator (and torch's global one) to a stream of its own, so that the
  ranks' augmentations and dropout differ; rank 0's stream is the one a checkpoint keeps;
- averages the gradients over the ranks after backward (`average_gradients`: one all-reduce of all of
  them flattened, as DistributedDataParallel's buckets do, done after backward rather than in hooks on
  forward because families call submodules directly, detection's model.raw, which a DDP wrapper's
  forward would not see), so every rank takes the same optimiser step and the weights stay equal;
- averages the values a step reports and the batch-norm statistics at the end of each epoch (the
  weights are equal already), so that validation gives every rank the same figures, and takes rank
  0's word on stopping (patience, time), so that no rank waits on a collective the others skipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


class Group:
    def __init__(self, rank: int, world: int, device: torch.device):
        self.rank, self.world, self.device = rank, world, device

    @classmethod
    def current(cls, device: torch.device) -> Group | None:
        """The process group torchrun's rank set up, or None (one process)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
            return None
        # gloo reduces CPU tensors, NCCL the device's
        return cls(dist.get_rank(), dist.get_world_size(), device if dist.get_backend() == "nccl" else
                   torch.device("cpu"))

    def shard(self, batch: Any) -> Any:
        """This rank's part of a global batch (a tensor, array or list of examples): every world-th one.
        A batch smaller than the world (the last of an epoch) gives a rank without a share one example
        again, so that no rank computes a loss over nothing."""
        n = len(batch)
        if n > self.rank:
            return batch[self.rank::self.world]
        i = self.rank % n
        return batch[i:i + 1]

    def sync_shuffle(self, state: dict[str, Any]) -> dict[str, Any]:
        """Rank 0's generator state (Shuffle.state()), on every rank."""
        box = [state]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def seed(self, seed: int, epoch: int) -> int:
        """The seed of this rank's own stream for the rest of `epoch`."""
        return int(np.random.SeedSequence([seed, epoch, self.rank]).generate_state(1, np.uint64)[0] >> 1)

    def average_gradients(self, model: nn.Module) -> None:
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        if not grads:
            return
        flat = _flatten_dense_tensors(grads).to(self.device)
        dist.all_reduce(flat)
        flat.div_(self.world)
        for g, avg in zip(grads, _unflatten_dense_tensors(flat.to(grads[0].device), grads), strict=True):
            g.copy_(avg)

    def same_weights(self, model: nn.Module | None) -> None:
        """Rank 0's weights and buffers on every rank, as DistributedDataParallel makes them at its start (they
        are equal already where the build is seeded and deterministic; this makes sure)."""
        if model is None:
            return
        tensors = [t for t in model.state_dict().values() if t.is_floating_point()]
        if not tensors:
            return
        flat = _flatten_dense_tensors([t.detach() for t in tensors]).to(self.device)
        dist.broadcast(flat, src=0)
        with torch.no_grad():
            for t, got in zip(tensors, _unflatten_dense_tensors(flat.to(tensors[0].device), tensors), strict=True):
                t.copy_(got)

    def average_values(self, values: dict[str, float]) -> dict[str, float]:
        if not values:
            return values
        t = torch.tensor([float(v) for v in values.values()], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return dict(zip(values, (t / self.world).tolist(), strict=True))

    def average_buffers(self, model: nn.Module | None) -> None:
        if model is None:
            return
        floats = [b for b in model.buffers() if b.is_floating_point()]
        if not floats:
            return
        flat = _flatten_dense_tensors([b.detach() for b in floats]).to(self.device)
        dist.all_reduce(flat)
        flat.div_(self.world)
        with torch.no_grad():
            for b, avg in zip(floats, _unflatten_dense_tensors(flat.to(floats[0].device), floats), strict=True):
                b.copy_(avg)

    def rank0(self, value: Any) -> Any:
        """Rank 0's `value` (a small picklable one), on every rank."""
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]
