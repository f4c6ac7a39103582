"""The training loop every family runs in (torch: workers and tests only).

A family's training.py describes one run as a `Recipe`: its network, optimiser and schedule, how a
step computes its loss, what an epoch ends with (validation metrics), and how the run ends (the module
to export). `fit` owns the rest, the same for every family:

- the epoch and step loop: shuffling (`Shuffle`: the run's one random generator for the order of the
  examples and, where a family augments, its draws), zero_grad / backward / clipping / optimiser and
  scheduler steps, or nothing of that where a step updates the model itself (recommendation's samplers:
  one sweep is one epoch of one step);
- progress: `report(step, {"epoch": fraction, ..., "lr"})` after every step and the family's
  validation values after every epoch. The worker's report raises to cancel the run; nothing here
  catches it;
- checkpoints: a plain dict after every epoch (or every `checkpoint_every`), holding the model, the
  optimiser, the scheduler, every random state, the best epoch so far and whether the run stopped, so
  that `fit(..., resume=that dict)` goes on bit for bit as the uninterrupted run would have;
- early stopping: `patience` epochs without a better `monitor` metric stop the run and the best epoch's
  weights are the ones returned; a time budget (`max_seconds`) stops it too.

Several processes (issue 22, models/common/ddp.py): the order of each epoch is drawn once, in
`_batches`, where each rank takes its shard of every batch; gradients are averaged after backward;
only rank 0 is given a `report` and a `checkpoint` that do anything (workers/distributed.py). Where no
process group is set up, none of that runs and a run is what it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from models.common.ddp import Group
from models.common.onednn import use_onednn_for

Report = Callable[[int, dict[str, float]], None]
Checkpoint = Callable[[dict[str, Any]], None]
FORMAT = 1  # of the checkpoint dict; one without it was written before this module (Recipe.read_checkpoint)


@dataclass
class Step:
    loss: torch.Tensor | None  # what backward() runs on; None: the step updated the model itself
    values: dict[str, float]  # reported after "epoch" (and before "lr")


class Shuffle:
    """The run's random generator for the order of the examples (and a family's augmentations), seeded
    with the run's seed: "torch" (a CPU torch.Generator), "numpy" (numpy's default_rng), "numpy-epoch"
    (a fresh default_rng((seed, epoch)) each epoch: nothing to keep in a checkpoint) or "none"."""

    def __init__(self, kind: str, seed: int):
        self.kind, self.seed = kind, seed
        self.generator: Any = None
        if kind == "torch":
            self.generator = torch.Generator().manual_seed(seed)
        elif kind == "numpy":
            self.generator = np.random.default_rng(seed)

    def for_epoch(self, epoch: int) -> Any:
        if self.kind == "numpy-epoch":
            self.generator = np.random.default_rng([self.seed, epoch])
        return self.generator

    def permutation(self, n: int, device: torch.device) -> torch.Tensor | np.ndarray:
        if self.kind == "torch":
            return torch.randperm(n, generator=self.generator).to(device)
        return self.generator.permutation(n)

    def diverge(self, seed: int) -> None:
        """Several processes: this rank's own stream from here on (the generator object kept: recipes hold it)."""
        if self.kind == "torch":
            self.generator.manual_seed(seed)
        elif self.generator is not None:
            self.generator.bit_generator.state = np.random.default_rng(seed).bit_generator.state

    def state(self) -> dict[str, Any]:
        if self.kind == "torch":
            return {"shuffle": self.generator.get_state()}
        if self.kind == "numpy":
            return {"numpy": self.generator.bit_generator.state}
        return {}

    def load(self, rng: dict[str, Any]) -> None:
        if self.kind == "torch":
            self.generator.set_state(rng["shuffle"].cpu())
        elif self.kind == "numpy":
            self.generator.bit_generator.state = rng["numpy"]


class Recipe:
    """What a family plugs into `fit`. A subclass sets, in __init__(cfg, data, device, init, resume),
    `model` (built and on the device; None while a sampler has nothing to export yet), and where it
    trains by gradient `optimizer` and `scheduler`; `epochs`, `steps_per_epoch`, and for the default
    batches `examples` and `batch_size`. `resume` is given to __init__ only for what is built differently
    in a resumed run (say, an init the checkpoint already holds); fit loads the states."""

    model: nn.Module | None = None
    optimizer: torch.optim.Optimizer | None = None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    epochs: int
    steps_per_epoch: int
    examples: int = 0
    batch_size: int = 1
    shuffle: str = "torch"  # see Shuffle
    clip_norm: float | None = None  # gradient norm clipping over model.parameters()
    lr_group: int | None = 0  # whose learning rate is reported (None: none)
    checkpoint_every: int = 1  # epochs; the last epoch always writes one
    patience: int | None = None  # early stopping on `monitor` (higher is better)
    monitor: str = ""
    max_seconds: float | None = None  # a time budget: the epoch under way ends early, the run stops
    rng: Any = None  # the Shuffle's generator of the current epoch, set by fit
    init_metrics: dict[str, float] = {}  # what loading init_from said (reassigned, never changed in place)

    def initialise(self, model: nn.Module, init: dict[str, torch.Tensor] | None, resume: dict[str, Any] | None,
                   load: Callable[[nn.Module, dict[str, torch.Tensor]], dict[str, Any]]) -> bool:
        """init_from: `load(model, init)` (the family's: backbone, encoder) in a fresh run, its answer kept as
        init_metrics (in the metrics and checkpoints); a resumed run's checkpoint holds the weights and
        the metrics. -> whether the run started from init_from weights."""
        if init is not None and resume is None:
            self.init_metrics = {k: float(v) for k, v in load(model, init).items()}
        return init is not None or (resume is not None and bool(resume.get("init_metrics")))

    def start_epoch(self, epoch: int) -> None:
        """Before the steps of epoch `epoch` (from 0)."""
        if self.model is not None:
            self.model.train()

    def batches(self, epoch: int) -> Sequence[Any]:
        """What train_step gets, one item a step: by default slices of a permutation of the examples."""
        return permuted(self, self.examples, self.steps_per_epoch)

    def train_step(self, batch: Any, epoch: int, i: int) -> Step:
        raise NotImplementedError

    def after_step(self, step: int, epoch: int) -> None:
        """After the optimiser's step `step` (counted over the run), before it is reported."""

    def progress(self, epoch: int, i: int) -> float:
        """The fractional epoch reported with step i of epoch `epoch`."""
        return epoch + (i + 1) / self.steps_per_epoch

    def end_epoch(self, done: int, metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, float] | None]:
        """After `done` epochs: -> (the run's metrics so far, the values to report, or None)."""
        return metrics, None

    def state(self) -> dict[str, Any]:
        """The family's part of a checkpoint (merged last: it may replace what fit wrote)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """The family's part of a checkpoint, after fit has loaded the model, optimiser and scheduler."""

    def finish(self, metrics: dict[str, float]) -> tuple[nn.Module, dict[str, float]]:
        """-> (the module to evaluate and export, the metrics train returns)."""
        return self.model, metrics

    @staticmethod
    def read_checkpoint(state: dict[str, Any], cfg: Any) -> dict[str, Any]:
        """A checkpoint as fit reads it, before the recipe is made: where a family's state() writes fields of
        its own meaning (fraud counts epochs within a phase) or the checkpoint was written before this
        module (no "loop" key), the family converts it here."""
        return state


def permuted(recipe: Recipe, examples: int, steps: int) -> list[Any]:
    """`steps` batches of `batch_size` indices from a permutation of `examples` drawn from the run's shuffle
    (Recipe.batches; fraud's set of examples changes with its phase)."""
    order = recipe._shuffle.permutation(examples, recipe.device)
    return [order[i * recipe.batch_size:(i + 1) * recipe.batch_size] for i in range(steps)]


def cpu_copy(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def trainer(make: Callable[..., Recipe]) -> Callable[..., tuple[nn.Module, dict[str, float]]]:
    """A family's `train` (what workers/runner.py calls) that runs the recipe `make` builds in fit:
    train(cfg, data, device, report, checkpoint=None, resume=None, init=None) -> (module, metrics)."""
    def train(cfg: Any, data: Any, device: torch.device | str, report: Report, checkpoint: Checkpoint | None = None,
              resume: dict[str, Any] | None = None,
              init: dict[str, torch.Tensor] | None = None) -> tuple[nn.Module, dict[str, float]]:
        return fit(make, cfg, data, device, report, checkpoint, resume, init)
    return train


def fit(make: Callable[..., Recipe], cfg: Any, data: Any, device: torch.device | str, report: Report,
        checkpoint: Checkpoint | None = None, resume: dict[str, Any] | None = None,
        init: dict[str, torch.Tensor] | None = None) -> tuple[nn.Module, dict[str, float]]:
    """Trains the recipe that make(cfg, data, device, init, resume) builds; -> (module, metrics)."""
    return _Run(make, cfg, data, torch.device(device), report, checkpoint, resume, init).go()


class _Run:
    def __init__(self, make, cfg, data, device, report, checkpoint, resume, init):
        self.cfg, self.device, self.report, self.checkpoint = cfg, device, report, checkpoint
        if resume is not None:
            resume = getattr(make, "read_checkpoint", Recipe.read_checkpoint)(resume, cfg)
        torch.manual_seed(cfg.seed)
        self.recipe = recipe = make(cfg, data, device, init, resume)
        recipe.device = device
        use_onednn_for(recipe.model if recipe.model is not None else nn.Identity())
        recipe._shuffle = self.shuffle = Shuffle(recipe.shuffle, cfg.seed)
        self.ddp = Group.current(device)  # None: one process
        self.epoch, self.step, self.elapsed = 0, 0, 0.0
        self.stopped_by: str | None = None
        self.metrics: dict[str, float] = {}
        self.best: dict[str, Any] = {"value": None, "epoch": 0, "metrics": {}, "state": None}
        if resume is not None:
            self._load(resume)
        if self.ddp is not None:
            self.ddp.same_weights(recipe.model)

    def _load(self, state: dict[str, Any]) -> None:
        recipe = self.recipe
        if recipe.model is not None and "model" in state:
            recipe.model.load_state_dict(state["model"])
        if recipe.optimizer is not None and state.get("optimizer") is not None:
            recipe.optimizer.load_state_dict(state["optimizer"])
        if recipe.scheduler is not None and state.get("scheduler") is not None:
            recipe.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.metrics = dict(state.get("metrics", {}))
        self.best = state.get("best") or self.best
        self.elapsed = state.get("elapsed", 0.0)
        stopped = state.get("stopped", False)
        self.stopped_by = state.get("stopped_by") or (("time" if recipe.max_seconds else "patience")
                                                      if stopped else None)
        recipe.init_metrics = dict(state.get("init_metrics") or {})
        recipe.load_state(state)
        rng = state["rng"]
        self.shuffle.load(rng)
        # .cpu(): a worker reads the checkpoint with map_location=its device, and the states must be on the CPU
        torch.set_rng_state(rng["torch"].cpu())
        if self.device.type == "cuda" and "cuda" in rng:
            torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])

    def go(self) -> tuple[nn.Module, dict[str, float]]:
        recipe = self.recipe
        started = time.monotonic() - self.elapsed
        while self.epoch < recipe.epochs and self.stopped_by is None:
            recipe.start_epoch(self.epoch)
            recipe.rng = self.shuffle.for_epoch(self.epoch)
            for i, batch in enumerate(self._batches()):
                self._step(batch, i)
                if recipe.max_seconds is not None and self._agreed(time.monotonic() - started > recipe.max_seconds):
                    self.stopped_by = "time"
                    break
            self.epoch += 1
            if self.ddp is not None:  # the weights are equal on every rank; their batch-norm statistics are not
                self.ddp.average_buffers(recipe.model)
            self.metrics, values = recipe.end_epoch(self.epoch, self.metrics)
            if values is not None:
                self.report(self.step, values)
            self._early_stopping()
            self.stopped_by = self._agreed(self.stopped_by)
            self.elapsed = time.monotonic() - started
            last = self.epoch >= recipe.epochs or self.stopped_by is not None
            if self.checkpoint is not None and (self.epoch % recipe.checkpoint_every == 0 or last):
                self.checkpoint(self._state())
        metrics = self.metrics
        if recipe.patience is not None and self.best["state"] is not None:  # the best epoch's weights
            recipe.model.load_state_dict(self.best["state"])
            metrics = {**self.best["metrics"], "best_epoch": float(self.best["epoch"]),
                       "epochs_run": float(self.epoch)}
        if self.stopped_by == "time":
            metrics = {**metrics, "stopped_at_minutes": round((time.monotonic() - started) / 60, 2)}
        return recipe.finish(metrics)

    def _batches(self) -> Iterable[Any]:
        if self.ddp is None:  # one process: every batch
            return self.recipe.batches(self.epoch)
        # Every rank draws the same global batches from rank 0's generator state, then goes its own way
        # (augmentations, dropout) and trains on its shard of each.
        self.shuffle.load(self.ddp.sync_shuffle(self.shuffle.state()))
        batches = self.recipe.batches(self.epoch)
        if self.ddp.rank:
            seed = self.ddp.seed(self.cfg.seed, self.epoch)
            self.shuffle.diverge(seed)
            torch.manual_seed(seed)
        return [self.ddp.shard(batch) for batch in batches]

    def _agreed(self, value: Any) -> Any:
        """A decision that changes how many collectives follow: rank 0's, where there are several."""
        return value if self.ddp is None else self.ddp.rank0(value)

    def _step(self, batch: Any, i: int) -> None:
        recipe = self.recipe
        out = recipe.train_step(batch, self.epoch, i)
        if out.loss is not None:
            recipe.optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            if self.ddp is not None:
                self.ddp.average_gradients(recipe.model)
            if recipe.clip_norm:
                nn.utils.clip_grad_norm_(recipe.model.parameters(), recipe.clip_norm)
            recipe.optimizer.step()
            if recipe.scheduler is not None:
                recipe.scheduler.step()
        self.step += 1
        recipe.after_step(self.step, self.epoch)
        step_values = out.values if self.ddp is None else self.ddp.average_values(out.values)
        values = {"epoch": recipe.progress(self.epoch, i), **step_values}
        if recipe.scheduler is not None and recipe.lr_group is not None:
            values["lr"] = recipe.scheduler.get_last_lr()[recipe.lr_group]
        self.report(self.step, values)

    def _early_stopping(self) -> None:
        recipe = self.recipe
        if recipe.patience is None:
            return
        value = self.metrics[recipe.monitor]
        if self.best["value"] is None or value > self.best["value"]:
            self.best = {"value": value, "epoch": self.epoch, "metrics": self.metrics,
                         "state": cpu_copy(recipe.model)}
        if self.epoch - self.best["epoch"] >= recipe.patience and self.epoch < recipe.epochs:
            self.stopped_by = "patience"

    def _state(self) -> dict[str, Any]:
        recipe = self.recipe
        rng = {**self.shuffle.state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state_all()
        state: dict[str, Any] = {"loop": FORMAT, "epoch": self.epoch, "step": self.step, "rng": rng,
                                 "metrics": self.metrics, "config": asdict(self.cfg), "best": self.best,
                                 "stopped": self.stopped_by is not None, "stopped_by": self.stopped_by,
                                 "elapsed": self.elapsed, "init_metrics": recipe.init_metrics}
        if self.ddp is not None:  # a resumed run must have as many ranks (workers/distributed.py)
            state["world_size"] = self.ddp.world
        if recipe.model is not None:
            state["model"] = recipe.model.state_dict()
        if recipe.optimizer is not None:
            state["optimizer"] = recipe.optimizer.state_dict()
        if recipe.scheduler is not None:
            state["scheduler"] = recipe.scheduler.state_dict()
        return {**state, **recipe.state()}

