"""The one training loop, parameterised by method (``methods.METHODS``).

SGD with momentum; the learning rate drops x0.1 at 1/2 and 3/4 of all steps (Sec. 3.1, counted in
steps so short profiles keep the schedule's shape); weight decay per dataset, on conv and linear
weights (``choices``: on every parameter). After every epoch the loop records clean and adversarial
accuracy on a fixed test subset (Figs. 3-4). State is saved after every epoch, with the random
generators, so a killed run resumes to the same bits.
"""
from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .allocator import keep_freed_memory
from .attacks import draw_start
from .cuda_graphs import Stepper
from .data import Split, batches, draw_crops, to_device, to_float
from .evaluate import accuracy, autocast, layout
from .inputs import INPUTS, Step, pick, stack
from .methods import Method, StepBatch
from .store import load_checked, save_checked


@dataclass
class TrainInputs:
    """Everything a training run reads, already on its device."""

    train: Split
    augment: bool
    eps: float
    dadv_sign: torch.Tensor | None = None  #: (S, N, C, H, W) int8: sign of each static source's FGSM step
    teacher: torch.Tensor | None = None  #: (N, K) teacher logits on the clean training images
    teacher_adv: torch.Tensor | None = None  #: (S, N, K) teacher logits on D_adv
    curve_x: torch.Tensor | None = None  #: uint8 test subset for the per-epoch curves
    curve_y: torch.Tensor | None = None
    curve_adv: torch.Tensor | None = None  #: the same subset attacked on a held-out source (float)
    #: keep each epoch's weights instead, so that ``score_adv_curve`` adds the adversarial curve once
    #: its source is trained (``build_parallel``: a static source need not wait for heldout:Res26)
    defer_adv_curve: bool = False
    teacher_model: nn.Module | None = None  #: a live teacher (methods with ``live_teacher``), eval mode
    peer_model: nn.Module | None = None  #: a freshly initialised peer (methods with ``peer``), trained here


@dataclass
class TrainResult:
    state_dict: dict
    curves: list[dict]
    wall_s: float
    images_per_s: float
    #: CPU seconds of this process over the training epochs, all threads together (NaN when resumed
    #: from a saved state that predates it)
    cpu_s: float = math.nan
    #: epoch -> its weights, for each curve row still without ``adv_acc`` (``TrainInputs.defer_adv_curve``)
    snapshots: dict[int, dict] = field(default_factory=dict)


def lr_at(step: int, total: int, base: float, milestones: list[float]) -> float:
    return base * 0.1 ** sum(step >= int(m * total) for m in milestones)


@dataclass
class EpochDraws:
    """Every random number one epoch of a method draws, drawn at the epoch's start from the run's
    generator in exactly the order the steps would draw them one by one (``step_draws``), and copied
    to the device in one go: no host work per step.

    ``idx``: (steps, batch) indices into the training set; ``parts``: per field, every step's draw
    stacked, (steps, ...) each (``step_draws`` names the fields).
    """

    idx: torch.Tensor
    parts: dict[str, Any] = field(default_factory=dict)

    def step(self, i: int) -> dict[str, Any]:
        return pick(self.parts, i)


def step_draws(method: Method, params: dict, inp: TrainInputs, batch: int, epoch: int, g: torch.Generator,
               num_classes: int | None = None) -> dict[str, Any]:
    """One step's draws from ``g``, on the host, in this order: the crops of the clean part
    (``clean``), NEO-KD's class-to-exit split (``class_exit``, ``num_classes``), the inner attack's
    random start (``noise``), then each declared input's own (``inputs.InputKind.draw``: D_adv's
    sources ``src``, the adversarial part's crops ``adv``)."""
    n_adv = int(batch * method.adv_share)
    out: dict[str, Any] = {}
    if inp.augment:
        out["clean"] = draw_crops(batch - n_adv, g)
    if method.multi_exit:
        out["class_exit"] = torch.randperm(num_classes, generator=g)
    if method.inner_start is not None:  # the inner attack's start on the (float32) clean batch
        out["noise"] = draw_start((batch - n_adv, *inp.train.x.shape[1:]), method.inner_start == "normal", g)
    if n_adv:
        for name in method.inputs:
            out.update(INPUTS[name].draw(method, params, inp, n_adv, epoch, g))
    return out


def epoch_draws(method: Method, params: dict, inp: TrainInputs, n: int, bs: int, epoch: int,
                g: torch.Generator, num_classes: int | None = None) -> EpochDraws:
    """Every draw of the epoch's steps (``EpochDraws``), made now from ``g``: the permutation, then
    each step's ``step_draws`` in turn."""
    order = list(batches(n, bs, g, drop_last=True))
    steps = [step_draws(method, params, inp, len(batch), epoch, g, num_classes) for batch in order]
    return EpochDraws(to_device(torch.stack(order), inp.train.x.device), stack(steps, inp.train.x.device))


def make_batch(model: nn.Module, method: Method, params: dict, inp: TrainInputs, idx: torch.Tensor,
               epoch: int, g: torch.Generator, bf16: bool, drawn: dict | None = None) -> StepBatch:
    """One step's batch: the clean part, then each declared input's fields (``inputs.INPUTS``) beside
    it; the adversarial part (the method's inner attack, or an input's: D_adv, self-FGSM); then the
    inputs' fields that read it. ``drawn``: the step's part of ``EpochDraws`` (else drawn from ``g`` now)."""
    dev = inp.train.x.device
    idx = to_device(idx, dev)
    if drawn is None:
        drawn = pick(stack([step_draws(method, params, inp, len(idx), epoch, g, getattr(model, "num_classes", None))],
                           dev), 0)
    n_adv = int(len(idx) * method.adv_share)
    s = Step(model, method, params, inp, idx[: len(idx) - n_adv], idx[len(idx) - n_adv:], drawn, bf16)
    adapters = [INPUTS[name] for name in method.inputs]
    # uint8 images are augmented before they become float: the same values, 4x smaller temporaries
    b = StepBatch(x=to_float(s.crop(inp.train.x[s.cidx], "clean")), y=inp.train.y[s.cidx])
    for a in adapters:
        a.on_clean(b, s)
    if method.inner is not None:  # ARD, RSLAD, SA-MDRAD, PeerAiD, NEO-KD, IAD: an attack on the student
        if method.multi_exit:  # NEO-KD: allot the classes to exits at random, afresh every step (EOKD)
            b.class_exit = drawn["class_exit"] % model.n_exits
        b.noise = drawn["noise"]
        with autocast(dev, bf16):
            b.x_adv = method.inner(model, b, params, inp.eps, g)
        b.y_adv = b.y
    elif n_adv:
        b.y_adv = inp.train.y[s.aidx]
        for a in adapters:
            a.make_adv(b, s)
    for a in adapters:
        a.on_adv(b, s)
    return b


def sgd(trained: list[nn.Module], cfg: dict) -> torch.optim.SGD:
    """SGD with momentum over the parameters of ``trained`` (Sec. 3.1): weight decay on conv and linear
    weights only (the default), or on every parameter (the unstated choice ``decay=all``)."""
    decay_all = cfg.get("choices", {}).get("decay") == "all"
    decay, no_decay = [], []
    for p in (p for m in trained for p in m.parameters()):
        (no_decay if p.ndim <= 1 and not decay_all else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg["weight_decay"]}]
    groups += [{"params": no_decay, "weight_decay": 0.0}] if no_decay else []
    return torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"])


def resume(partial: Path | None, trained: list[nn.Module], opt: torch.optim.Optimizer,
           g: torch.Generator) -> tuple[int, list[dict], float, float, dict[int, dict]]:
    """Restore the state saved at ``partial`` (weights of ``trained``, optimiser, both generators) and
    return (epochs done, curve rows, wall s, CPU s, deferred snapshots); a fresh start when there is
    none or it is damaged (``load_checked`` warns and discards it)."""
    state = load_checked(partial, "saved training state") if partial else None
    if state is None:
        return 0, [], 0.0, 0.0, {}
    trained[0].load_state_dict(state["model"])
    if len(trained) > 1:
        trained[1].load_state_dict(state["peer"])
    opt.load_state_dict(state["opt"])
    g.set_state(state["gen"])
    torch.set_rng_state(state["rng"])
    dev = next(trained[0].parameters()).device
    snapshots = {e: {k: v.to(dev) for k, v in sd.items()} for e, sd in state.get("snapshots", {}).items()}
    return state["epoch"], state["curves"], state["wall_s"], state.get("cpu_s", math.nan), snapshots


def curve_point(model: nn.Module, inp: TrainInputs, bf16: bool) -> dict:
    """Figs. 3-4 after one epoch: clean accuracy on the curve subset, and FGSM transfer accuracy on it
    where its attacked copy is there (else scored later, ``score_adv_curve``)."""
    if inp.curve_x is None:
        return {}
    row = {"clean_acc": accuracy(model, inp.curve_x, inp.curve_y, bf16=bf16)}
    if inp.curve_adv is not None:
        row["adv_acc"] = accuracy(model, inp.curve_adv, inp.curve_y, bf16=bf16)
    return row


def train_model(model: nn.Module, method: Method, params: dict, cfg: dict, inp: TrainInputs,
                seed: int, bf16: bool = False, partial: str | os.PathLike | None = None,
                progress: bool = True, desc: str = "", cuda_graphs: bool = False) -> TrainResult:
    """Train ``model`` with ``method`` under profile config ``cfg`` (``Profile.as_config``).

    ``partial``: where per-epoch state is kept (with its checksum); an existing file there is resumed
    from, a damaged one discarded with a warning (the model then trains from scratch).
    ``cuda_graphs``: on a CUDA device, replay each step as a CUDA graph (``cuda_graphs.Stepper``, with a
    fallback to eager); ignored on the CPU.

    About 70 lines on purpose: the order in which it seeds, draws, steps, scores and saves is what
    makes a run bit-for-bit reproducible and resumable, and it reads best in one place.
    """
    from tqdm.auto import tqdm

    for name in method.inputs:
        INPUTS[name].check(method, params, inp)
    dev = inp.train.x.device
    if dev.type == "cpu":
        keep_freed_memory()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = layout(model.to(dev))
    trained = [model]  # the model, and a peer trained with it (same optimiser, schedule and weight decay)
    if method.peer:
        inp.peer_model = layout(inp.peer_model.to(dev))
        trained.append(inp.peer_model)
    opt = sgd(trained, cfg)
    n, bs, epochs = len(inp.train), cfg["batch_size"], cfg["epochs"]
    steps_per_epoch = max(n // bs, 1)
    total = steps_per_epoch * epochs
    partial = Path(partial) if partial else None
    # snapshots: epoch -> weights, while its adversarial curve point is unscored
    start_epoch, curves, wall, cpu, snapshots = resume(partial, trained, opt, g)

    def loss_of(b: StepBatch) -> torch.Tensor:
        with autocast(dev, bf16):
            return method.loss(model, b, params)

    stepper = Stepper(loss_of, trained, opt, cuda_graphs and dev.type == "cuda")
    for epoch in range(start_epoch, epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        for m in trained:
            m.train()
        loss_sum = torch.zeros((), device=dev)
        # each step's share of all steps done, on the device once per epoch (``StepBatch.progress``)
        done = to_device((epoch * steps_per_epoch + torch.arange(steps_per_epoch)) / total, dev)
        plan = epoch_draws(method, params, inp, n, bs, epoch, g, getattr(model, "num_classes", None))
        steps = (plan.idx if plan is not None else batches(n, bs, g, drop_last=True))
        bar = tqdm(steps, total=steps_per_epoch, leave=False,
                   desc=f"{desc} ep {epoch + 1}/{epochs}", disable=not progress, mininterval=2)
        for i, idx in enumerate(bar):
            step = epoch * steps_per_epoch + i
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, cfg["lr"], cfg["lr_milestones"])
            b = make_batch(model, method, params, inp, idx, epoch, g, bf16, plan.step(i) if plan else None)
            b.progress = done[i]
            b.x = layout(b.x)
            if b.x_adv is not None:
                b.x_adv = layout(b.x_adv)
            loss_sum += stepper(b)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        curves.append({"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"],
                       "train_loss": loss_sum.item() / steps_per_epoch, "wall_s": round(wall, 3),
                       **curve_point(model, inp, bf16)})
        if inp.curve_x is not None and inp.curve_adv is None and inp.defer_adv_curve:
            snapshots[epoch + 1] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if partial:
            save_checked({"model": model.state_dict(), "opt": opt.state_dict(), "gen": g.get_state(),
                          "rng": torch.get_rng_state(), "epoch": epoch + 1, "curves": curves, "wall_s": wall,
                          "cpu_s": cpu, **({"snapshots": snapshots} if snapshots else {}),
                          **({"peer": trained[1].state_dict()} if len(trained) > 1 else {})}, partial)
    for m in trained:
        m.eval()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    seen = steps_per_epoch * bs * epochs
    res = TrainResult(state, curves, wall, seen / wall if wall and seen else math.nan, cpu, snapshots)
    if snapshots and inp.curve_adv is not None:  # resumed from a run that deferred them: score them now
        score_adv_curve(copy.deepcopy(model), res, inp.curve_adv, inp.curve_y, bf16)
    return res


def score_adv_curve(model: nn.Module, res: TrainResult, curve_adv: torch.Tensor, curve_y: torch.Tensor,
                    bf16: bool = False) -> None:
    """Add ``adv_acc`` to the curve rows of ``res`` that lack it, from the weights that
    ``defer_adv_curve`` kept: the values scoring during training gives (the same weights in eval
    mode, in the same layout). ``model`` is a model of the trained architecture (overwritten)."""
    model = layout(model.to(curve_adv.device))
    for row in res.curves:
        if "adv_acc" not in row:
            model.load_state_dict(res.snapshots[row["epoch"]])
            row["adv_acc"] = accuracy(model, curve_adv, curve_y, bf16=bf16)
    res.snapshots = {}
