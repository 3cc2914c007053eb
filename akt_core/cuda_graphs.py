"""One training step (forward, loss, backward, optimiser step) captured as a CUDA graph and replayed.

On a GPU the paper's small networks are bound by kernel launches, not arithmetic (issue 21: 4.0 ms
per Res8 step at batch 256 on an H200, about 2 % of its TF32 rate). Replaying the step as one graph
removes the launches. ``train.train_model(cuda_graphs=True)`` uses it on a CUDA device only; the CPU
path is eager, as always.

How (PyTorch's whole-network capture): the batch is copied into static input buffers; a few warm-up
steps on a side stream precede the capture; the weights, BatchNorm statistics and optimiser state
are saved before the warm-up and copied back after the capture, so the captured run starts from the
same state as eager would. The learning rate is baked into the graph: a new value (the two
milestones) captures again. Any failure of capture or first replay falls back to eager for the
rest of the run, with one warning: it costs seconds, never the run.

Not yet verified on a GPU (no device was lent when it was written); ``benchmarks/gpu.py --parts
graphs`` measures eager against captured steps.
"""
from __future__ import annotations

import warnings
from dataclasses import fields
from typing import Callable

import torch
import torch.nn as nn

from .methods import StepBatch

WARMUP = 3  #: eager steps on a side stream before the capture (PyTorch's recipe)
_TENSOR_FIELDS = ("x", "y", "x_adv", "y_adv", "t", "t_adv", "class_exit", "progress")


class GraphedStep:
    """A captured step for batches shaped like ``example``; ``run(batch)`` replays it on a new batch
    and returns the loss (a device tensor: no host sync)."""

    def __init__(self, loss_of: Callable[[StepBatch], torch.Tensor], trained: list[nn.Module],
                 opt: torch.optim.Optimizer, example: StepBatch) -> None:
        self.lr = opt.param_groups[0]["lr"]
        self.static = StepBatch(**{f.name: getattr(example, f.name) for f in fields(StepBatch)})
        for name in _TENSOR_FIELDS:
            v = getattr(example, name)
            if v is not None:
                setattr(self.static, name, v.detach().clone())
        saved = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in trained]
        momenta = {p: buf.detach().clone() for group in opt.param_groups for p in group["params"]
                   if (buf := opt.state.get(p, {}).get("momentum_buffer")) is not None}
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(WARMUP):
                    opt.zero_grad(set_to_none=True)
                    loss_of(self.static).backward()
                    opt.step()
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            opt.zero_grad(set_to_none=True)
            with torch.cuda.graph(self.graph):
                self.loss = loss_of(self.static)
                self.loss.backward()
                opt.step()
        finally:  # back to the state before the warm-up, captured or not: the run goes on where eager would
            with torch.no_grad():
                for m, state in zip(trained, saved):
                    for k, v in m.state_dict().items():
                        v.copy_(state[k])
                for group in opt.param_groups:
                    for p in group["params"]:
                        buf = opt.state.get(p, {}).get("momentum_buffer")
                        if buf is not None:  # a zero buffer steps exactly as the first step's absent one
                            buf.copy_(momenta[p]) if p in momenta else buf.zero_()

    def fits(self, batch: StepBatch, lr: float) -> bool:
        return lr == self.lr and all(
            (getattr(batch, n) is None) == (getattr(self.static, n) is None)
            and (getattr(batch, n) is None or getattr(batch, n).shape == getattr(self.static, n).shape)
            for n in _TENSOR_FIELDS)

    def run(self, batch: StepBatch) -> torch.Tensor:
        for name in _TENSOR_FIELDS:
            v = getattr(batch, name)
            if v is not None:
                getattr(self.static, name).copy_(v)
        self.graph.replay()
        return self.loss.detach()


class Stepper:
    """The training step, eager or replayed from a graph (captured again when the learning rate or the
    batch's shape changes); falls back to eager for good after a failure."""

    def __init__(self, loss_of: Callable[[StepBatch], torch.Tensor], trained: list[nn.Module],
                 opt: torch.optim.Optimizer, enabled: bool) -> None:
        self.loss_of, self.trained, self.opt = loss_of, trained, opt
        self.enabled = enabled and torch.cuda.is_available()
        self.graphed: GraphedStep | None = None
        self.fallback: str | None = None if self.enabled else "eager (not a CUDA device, or not asked)"

    def eager(self, b: StepBatch) -> torch.Tensor:
        loss = self.loss_of(b)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def __call__(self, b: StepBatch) -> torch.Tensor:
        if self.fallback is not None:
            return self.eager(b)
        lr = self.opt.param_groups[0]["lr"]
        try:
            if self.graphed is None or not self.graphed.fits(b, lr):
                self.graphed = GraphedStep(self.loss_of, self.trained, self.opt, b)
            return self.graphed.run(b)
        except Exception as exc:  # noqa: BLE001 - any capture failure: eager for the rest of the run
            self.fallback = f"eager after a CUDA-graph failure ({type(exc).__name__}: {exc})"
            self.graphed = None
            warnings.warn(f"CUDA-graph capture failed, training on eagerly: {exc}", RuntimeWarning, stacklevel=2)
            return self.eager(b)
