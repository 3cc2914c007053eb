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

import torch
import torch.nn as nn

from .allocator import keep_freed_memory
from .attacks import draw_start, fgsm
from .data import Crops, Split, apply_crops, augment, batches, draw_crops, to_device, to_float
from .evaluate import accuracy, autocast, layout, logits
from .graphs import Stepper
from .methods import SOURCE_CHOICES, Method, StepBatch
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


def dadv_images(x: torch.Tensor, sign: torch.Tensor, eps: float) -> torch.Tensor:
    """FGSM images clip(x + eps * sign(grad)) rebuilt exactly from a stored sign (int8) and uint8 x."""
    return (to_float(x) + eps * sign.float()).clamp_(0.0, 1.0)


def lr_at(step: int, total: int, base: float, milestones: list[float]) -> float:
    return base * 0.1 ** sum(step >= int(m * total) for m in milestones)


@dataclass
class EpochDraws:
    """Every random number one epoch of a paper method draws, drawn at the epoch's start from the
    run's generator in exactly the order the steps drew them one by one (so CPU results are bit for
    bit those of drawing per step), and copied to the device in one go: no host work per step.

    Per step ``i``: the batch's indices, the crops of its clean part, and either the crops of its
    self-adversarial part or the D_adv sources and the crops of its D_adv part. The methods with an
    inner attack (the whole batch clean) add NEO-KD's class-to-exit split and the attack's random start.
    """

    idx: torch.Tensor  #: (steps, batch) indices into the training set
    clean: Crops | None = None  #: (steps, n_clean) each
    adv: Crops | None = None  #: (steps, n_adv) each
    src: torch.Tensor | None = None  #: (steps, n_adv) D_adv source per adversarial example
    class_exit: torch.Tensor | None = None  #: (steps, classes) NEO-KD: each class's exit (a permutation mod exits)
    noise: torch.Tensor | None = None  #: (steps, batch, C, H, W) the inner attack's random start (``Method.inner_start``)

    def step(self, i: int) -> dict:
        def pick(c: Crops) -> Crops:
            return Crops(c.dy[i], c.dx[i], c.flip[i], c.pad)

        at = lambda t: None if t is None else t[i]  # noqa: E731
        return {"idx": self.idx[i], "clean": pick(self.clean) if self.clean else None,
                "adv": pick(self.adv) if self.adv else None, "src": at(self.src),
                "class_exit": at(self.class_exit), "noise": at(self.noise)}


def _stack(crops: list[Crops], dev: torch.device) -> Crops:
    return Crops(*(to_device(torch.stack([getattr(c, f) for c in crops]), dev) for f in ("dy", "dx", "flip")),
                 crops[0].pad)


def epoch_draws(method: Method, params: dict, inp: TrainInputs, n: int, bs: int, epoch: int,
                g: torch.Generator, num_classes: int | None = None) -> EpochDraws:
    """Every draw of the epoch's steps (``EpochDraws``), made now from ``g`` in the order
    ``_make_batch`` made them step by step: the permutation; then per step the clean crops, NEO-KD's
    class split (``num_classes``), the inner attack's random start, the self-adversarial crops or the
    D_adv sources and their crops."""
    dev = inp.train.x.device
    order = list(batches(n, bs, g, drop_last=True))  # the epoch's permutation, drawn first as before
    clean, adv, src, class_exit, noise = [], [], [], [], []
    image = tuple(inp.train.x.shape[1:])
    for batch in order:
        n_adv = int(len(batch) * method.adv_share)
        if inp.augment:
            clean.append(draw_crops(len(batch) - n_adv, g))
        if method.multi_exit:
            class_exit.append(torch.randperm(num_classes, generator=g))
        if method.inner_start is not None:  # the inner attack's start on the (float32) clean batch
            noise.append(draw_start((len(batch) - n_adv, *image), method.inner_start == "normal", g))
        if n_adv == 0:
            continue
        if method.reads("self_adv"):
            if inp.augment:
                adv.append(draw_crops(n_adv, g))
            continue
        if params["source_choice"] == "random":
            src.append(torch.randint(inp.dadv_sign.shape[0], (n_adv,), generator=g))
        else:
            src.append(torch.full((n_adv,), epoch % inp.dadv_sign.shape[0]))
        if inp.augment:
            adv.append(draw_crops(n_adv, g))
    stack = lambda ts: to_device(torch.stack(ts), dev) if ts else None  # noqa: E731
    return EpochDraws(stack(order), _stack(clean, dev) if clean else None, _stack(adv, dev) if adv else None,
                      stack(src), stack(class_exit), stack(noise))


def _make_batch(model: nn.Module, method: Method, params: dict, inp: TrainInputs, idx: torch.Tensor,
                epoch: int, g: torch.Generator, bf16: bool, drawn: dict | None = None) -> StepBatch:
    """One step's batch. ``drawn``: the step's part of ``EpochDraws`` (else its draws come from ``g`` now)."""
    dev = inp.train.x.device
    idx = to_device(idx, dev)
    n_adv = int(len(idx) * method.adv_share)
    cidx, aidx = idx[: len(idx) - n_adv], idx[len(idx) - n_adv:]
    # uint8 images are augmented before they become float: the same values, 4x smaller temporaries
    if drawn is not None:
        aug = (lambda t: apply_crops(t, drawn["clean"])) if inp.augment else (lambda t: t)
    else:
        aug = (lambda t: augment(t, g)) if inp.augment else (lambda t: t)
    b = StepBatch(x=to_float(aug(inp.train.x[cidx])), y=inp.train.y[cidx])
    if method.inner is not None:  # ARD, RSLAD, SA-MDRAD, PeerAiD: teacher(s) on this batch, inner attack on the student
        if method.reads("peer"):  # the peer's clean logits in eval mode, no gradient (``logits`` restores train mode)
            b.peer = inp.peer_model
            b.t = logits(inp.peer_model, b.x, batch_size=len(b.x), bf16=bf16)
        elif method.reads("live_teacher"):
            b.t = logits(inp.teacher_model, b.x, batch_size=len(b.x), bf16=bf16)
        elif method.reads("static_logits"):  # cached logits of the clean images, (n, M, K) for M static teachers
            b.t = inp.teacher[cidx]
        if method.multi_exit:  # NEO-KD: allot the classes to exits at random, afresh every step (EOKD)
            perm = drawn["class_exit"] if drawn is not None else to_device(torch.randperm(model.num_classes, generator=g), dev)
            b.class_exit = perm % model.n_exits
        if drawn is not None:
            b.noise = drawn["noise"]
        with autocast(dev, bf16):
            b.x_adv = method.inner(model, b, params, inp.eps, g)
        b.y_adv = b.y
        return b
    # the teacher's soft labels: cached on the un-augmented images, or (choice ``teacher_view=augmented``,
    # a live teacher) the teacher run on the very batch the student sees
    live = method.reads("teacher_logits") and inp.teacher_model is not None
    if method.reads("teacher_logits"):
        b.t = logits(inp.teacher_model, b.x, batch_size=len(b.x), bf16=bf16) if live else inp.teacher[cidx]
    if n_adv == 0:
        return b
    b.y_adv = inp.train.y[aidx]
    if method.reads("self_adv"):
        adv_aug = (lambda t: apply_crops(t, drawn["adv"])) if drawn is not None and inp.augment else aug
        with autocast(dev, bf16):
            b.x_adv = fgsm(model, to_float(adv_aug(inp.train.x[aidx])), b.y_adv, inp.eps)
        return b
    n_src = inp.dadv_sign.shape[0]
    if drawn is not None:
        src = drawn["src"]
    elif params["source_choice"] == "random":
        src = to_device(torch.randint(n_src, (n_adv,), generator=g), dev)
    else:
        src = torch.full((n_adv,), epoch % n_src, device=dev)
    x_adv, sign = inp.train.x[aidx], inp.dadv_sign[src, aidx]
    if inp.augment:  # one draw crops image and sign alike; the zero padding of both rebuilds a zero pixel
        crops = drawn["adv"] if drawn is not None else draw_crops(n_adv, g, dev)
        x_adv, sign = apply_crops(x_adv, crops), apply_crops(sign, crops)
    b.x_adv = dadv_images(x_adv, sign, inp.eps)
    if method.reads("teacher_logits"):
        b.t_adv = logits(inp.teacher_model, b.x_adv, batch_size=n_adv, bf16=bf16) if live else inp.teacher_adv[src, aidx]
    return b


def train_model(model: nn.Module, method: Method, params: dict, cfg: dict, inp: TrainInputs,
                seed: int, bf16: bool = False, partial: str | os.PathLike | None = None,
                progress: bool = True, desc: str = "", cuda_graphs: bool = False) -> TrainResult:
    """Train ``model`` with ``method`` under profile config ``cfg`` (``Profile.as_config``).

    ``partial``: where per-epoch state is kept (with its checksum); an existing file there is resumed
    from, a damaged one discarded with a warning (the model then trains from scratch).
    ``cuda_graphs``: on a CUDA device, replay each step as a CUDA graph (``graphs.Stepper``, with a
    fallback to eager); ignored on the CPU.
    """
    from tqdm.auto import tqdm

    if method.uses_dadv and params.get("source_choice") not in SOURCE_CHOICES:
        raise ValueError(f"source_choice must be one of {SOURCE_CHOICES}")
    if method.live_teacher and inp.teacher_model is None:
        raise ValueError(f"method {method.name!r} needs a live teacher model (TrainInputs.teacher_model)")
    if method.static_teachers and (inp.teacher is None or inp.teacher.ndim != 3):
        raise ValueError(f"method {method.name!r} needs the (N, M, K) logits of its static teachers (TrainInputs.teacher)")
    if method.peer and inp.peer_model is None:
        raise ValueError(f"method {method.name!r} trains a peer with the model (TrainInputs.peer_model)")
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
    # weight decay on conv and linear weights only (the default), or on every parameter (choice decay=all)
    decay_all = cfg.get("choices", {}).get("decay") == "all"
    decay, no_decay = [], []
    for p in (p for m in trained for p in m.parameters()):
        (no_decay if p.ndim <= 1 and not decay_all else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg["weight_decay"]}]
    groups += [{"params": no_decay, "weight_decay": 0.0}] if no_decay else []
    opt = torch.optim.SGD(groups, lr=cfg["lr"], momentum=cfg["momentum"])
    n, bs, epochs = len(inp.train), cfg["batch_size"], cfg["epochs"]
    steps_per_epoch = max(n // bs, 1)
    total = steps_per_epoch * epochs
    start_epoch, curves, wall, cpu = 0, [], 0.0, 0.0
    snapshots: dict[int, dict] = {}  # epoch -> weights, while its adversarial curve point is unscored
    partial = Path(partial) if partial else None
    state = load_checked(partial, "saved training state") if partial else None  # None when damaged
    if state is not None:
        model.load_state_dict(state["model"])
        if method.peer:
            inp.peer_model.load_state_dict(state["peer"])
        opt.load_state_dict(state["opt"])
        g.set_state(state["gen"])
        torch.set_rng_state(state["rng"])
        start_epoch, curves, wall = state["epoch"], state["curves"], state["wall_s"]
        cpu = state.get("cpu_s", math.nan)
        snapshots = {e: {k: v.to(dev) for k, v in sd.items()} for e, sd in state.get("snapshots", {}).items()}
    def loss_of(b: StepBatch) -> torch.Tensor:
        with autocast(dev, bf16):
            return method.loss(model, b, params)

    stepper = Stepper(loss_of, trained, opt, cuda_graphs and dev.type == "cuda")
    for epoch in range(start_epoch, epochs):
        t0, c0 = time.perf_counter(), time.process_time()
        for m in trained:
            m.train()
        loss_sum = torch.zeros((), device=dev)
        plan = epoch_draws(method, params, inp, n, bs, epoch, g, getattr(model, "num_classes", None))
        steps = (plan.idx if plan is not None else batches(n, bs, g, drop_last=True))
        bar = tqdm(steps, total=steps_per_epoch, leave=False,
                   desc=f"{desc} ep {epoch + 1}/{epochs}", disable=not progress, mininterval=2)
        for i, idx in enumerate(bar):
            step = epoch * steps_per_epoch + i
            for group in opt.param_groups:
                group["lr"] = lr_at(step, total, cfg["lr"], cfg["lr_milestones"])
            b = _make_batch(model, method, params, inp, idx, epoch, g, bf16, plan.step(i) if plan else None)
            b.x = layout(b.x)
            if b.x_adv is not None:
                b.x_adv = layout(b.x_adv)
            loss_sum += stepper(b)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        row = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"],
               "train_loss": loss_sum.item() / steps_per_epoch, "wall_s": round(wall, 3)}
        if inp.curve_x is not None:
            row["clean_acc"] = accuracy(model, inp.curve_x, inp.curve_y, bf16=bf16)
            if inp.curve_adv is not None:
                row["adv_acc"] = accuracy(model, inp.curve_adv, inp.curve_y, bf16=bf16)
        curves.append(row)
        if inp.curve_x is not None and inp.curve_adv is None and inp.defer_adv_curve:
            snapshots[epoch + 1] = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if partial:
            save_checked({"model": model.state_dict(), "opt": opt.state_dict(), "gen": g.get_state(),
                          "rng": torch.get_rng_state(), "epoch": epoch + 1, "curves": curves,
                          **({"snapshots": snapshots} if snapshots else {}),
                          "wall_s": wall, "cpu_s": cpu, **({"peer": inp.peer_model.state_dict()} if method.peer else {})},
                         partial)
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
