"""The paper's training methods as a registry: how one mini-batch becomes a loss.

Keys are the paper's names. ``train.train_model`` is the one loop; a method only declares which
inputs it reads (``Method.inputs``: names of ``inputs.INPUTS``, one adapter per input kind: D_adv, a
teacher's logits, a live teacher, ...), its share of adversarial examples per batch, and how the
step's loss is formed from them. Each input's adapter gives the graph its dependencies and the batch
its fields: a new method that reads existing inputs is one entry here plus its loss (IAD below is
the worked example); a new kind of input is one adapter in ``inputs``.

==============  ========================================================  ==============
key             what it is                                                 loss
==============  ========================================================  ==============
``cln``         ordinary training                                          J(f(x), y)
``self-adv``    FGSM adversarial training on the model's own examples      Eq. (10)
``adv``         stage 1: ensemble adversarial training on static D_adv     Eq. (10)
``dist-cln``    Hinton distillation from Res26(cln), clean data            Hinton KD
``dist-adv``    Hinton distillation from Res26(adv), clean data            Hinton KD
``adv-trans``   stage 2: adversarial knowledge transfer from Res26(adv)    Eq. (11)
``ard``         ARD (Goldblum et al. 2020) from Res26(adv), beyond paper   ``ard_loss``
``rslad``       RSLAD (Zi et al. 2021) from Res26(adv), beyond the paper   ``rslad_loss``
``sa-mdrad``    SA-MDRAD-style (Li et al. 2024): clean Res26/20/14 fused  ``sa_mdrad_loss``
``peeraid``     PeerAiD (Jung et al. 2024): a peer trained with the student  ``peeraid_*_loss``
``iad``         IAD-I (Zhu et al. 2022) from Res26(adv), beyond the paper   ``iad_loss``
``neo-kd``      NEO-KD-style (Ham et al. 2023): a multi-exit Res26          ``neo_kd_loss``
==============  ========================================================  ==============

The later methods run an inner attack on the student every step (``Method.inner``) and read a live
teacher model on the same augmented batch (``live_teacher``), as their reference code does; PeerAiD's
"teacher" is a peer (``Method.peer``) trained from scratch in the same loop, on the same steps.
Our protocol, not theirs: the paper's eps (16/256) with their ratio of step to eps (1/4) and their
10 steps, the paper's schedule and epochs per profile, a Res26 teacher and a Res8 student.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import check_choice
from .attacks import pgd, pgd_exits, pgd_kl
from .inputs import INPUTS
from .losses import (
    adaptive_fusion,
    adversarial_transfer_loss,
    ard_loss,
    distillation_loss,
    ensemble_adversarial_loss,
    iad_loss,
    neo_kd_loss,
    peeraid_peer_loss,
    peeraid_student_loss,
    rslad_loss,
    sa_mdrad_loss,
    soft_labels,
)


@dataclass
class StepBatch:
    """What a method sees in one step. Images are float in [0, 1], already augmented.

    With ``adv_share`` 0.5 the first half of the batch is clean (``x``) and the second half
    adversarial (``x_adv``), as Algorithms 1 and 2 prescribe ("half clean, half adversarial").
    ``t``/``t_adv`` are cached teacher logits for ``x``/``x_adv`` (distillation methods only).
    """

    x: torch.Tensor
    y: torch.Tensor
    x_adv: torch.Tensor | None = None
    y_adv: torch.Tensor | None = None
    t: torch.Tensor | None = None
    t_adv: torch.Tensor | None = None
    peer: nn.Module | None = None  #: PeerAiD's peer, in train mode (``Method.peer``)
    teacher: nn.Module | None = None  #: the live teacher (input ``live_teacher``), eval mode: IAD runs it on x_adv
    #: the fraction of all training steps done before this one, a 0-dim tensor (a schedule inside a
    #: loss, such as IAD's warm-up, without a host value baked into a captured CUDA graph)
    progress: torch.Tensor | None = None
    class_exit: torch.Tensor | None = None  #: NEO-KD: the exit each class is allotted to this step (EOKD)
    noise: torch.Tensor | None = None  #: the inner attack's random start, drawn beforehand (``Method.inner_start``)


LossFn = Callable[[nn.Module, StepBatch, dict], torch.Tensor]
#: an inner attack: (student, batch with clean x, y and teacher logits t, params, eps, generator) -> x'
InnerFn = Callable[[nn.Module, StepBatch, dict, float, torch.Generator], torch.Tensor]


#: the draws an inner attack's random start can take: ``attacks.start_noise(normal=...)``
INNER_STARTS = ("uniform", "normal")


@dataclass(frozen=True)
class Method:
    name: str
    loss: LossFn
    description: str
    params: dict = field(default_factory=dict)  #: hyperparameters, part of the cache key
    adv_share: float = 0.0  #: fraction of each batch that is adversarial
    inputs: tuple[str, ...] = ()  #: what it reads beyond the images (``inputs.INPUTS``): the graph's edges
    teacher: str | None = None  #: variant name of the teacher (its logits, or the live model)
    inner: InnerFn | None = None  #: attack on the model being trained, on the whole batch, every step
    static_teachers: tuple[int, ...] = ()  #: depths of the clean static models whose cached logits are fused
    multi_exit: bool = False  #: the model is a ``models.MultiExitResNet`` (an exit after each stage)
    #: the inner attack's random start, one draw shaped like the batch: "uniform" (PGD's U[0, 1)) or
    #: "normal" (RSLAD's N(0, 1)); ``train.epoch_draws`` draws it for a whole epoch at once
    inner_start: str | None = None

    def __post_init__(self) -> None:
        for i in self.inputs:
            check_choice(f"input of method {self.name!r}", i, INPUTS)
        if ({"teacher_logits", "live_teacher"} & set(self.inputs)) and not self.teacher:
            raise ValueError(f"method {self.name!r} reads a teacher but names none")
        if ("static_logits" in self.inputs) != bool(self.static_teachers):
            raise ValueError(f"method {self.name!r}: 'static_logits' and static_teachers go together")
        if (self.inner is None) != (self.inner_start is None):
            raise ValueError(f"method {self.name!r}: an inner attack and its inner_start go together")
        if self.inner_start is not None:
            check_choice(f"inner_start of method {self.name!r}", self.inner_start, INNER_STARTS)

    def reads(self, name: str) -> bool:
        """Whether the method declares input ``name`` (one of ``inputs.INPUTS``)."""
        check_choice("method input", name, INPUTS)
        return name in self.inputs

    # the declaration in the words the loop's checks use
    uses_dadv = property(lambda self: self.reads("dadv"))
    self_adv = property(lambda self: self.reads("self_adv"))
    live_teacher = property(lambda self: self.reads("live_teacher"))
    peer = property(lambda self: self.reads("peer"))


def _joint(model: nn.Module, b: StepBatch) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass over clean and adversarial halves together (one set of BN statistics)."""
    logits = model(torch.cat([b.x, b.x_adv]))
    return logits[: len(b.x)], logits[len(b.x):]


def _cln(model: nn.Module, b: StepBatch, p: dict) -> torch.Tensor:
    return F.cross_entropy(model(b.x), b.y)


def _eq10(model: nn.Module, b: StepBatch, p: dict) -> torch.Tensor:
    clean, adv = _joint(model, b)
    return ensemble_adversarial_loss(clean, b.y, adv, b.y_adv, p["lam"])


def _hinton(model: nn.Module, b: StepBatch, p: dict) -> torch.Tensor:
    return distillation_loss(model(b.x), b.y, b.t, p["temperature"], p["alpha"])


def _eq11(model: nn.Module, b: StepBatch, p: dict) -> torch.Tensor:
    clean, adv = _joint(model, b)
    return adversarial_transfer_loss(clean, b.y, b.t, adv, b.y_adv, b.t_adv,
                                     p["alpha"], p["lam"], p["t1"], p["t2"])


def _ard_inner(model: nn.Module, b: StepBatch, p: dict, eps: float, g: torch.Generator) -> torch.Tensor:
    """ARD's inner attack: PGD on CE(S(x'), y), uniform start, student in train mode."""
    return pgd(model, b.x, b.y, eps, eps * p["step"], p["steps"], random_start=True, generator=g, eval_mode=False,
               noise=b.noise)


def _kl_inner(model: nn.Module, b: StepBatch, p: dict, eps: float, g: torch.Generator) -> torch.Tensor:
    """RSLAD's inner attack: maximise KL(T(x) || S(x')) from x + 0.001 N(0, 1), student in eval mode."""
    return pgd_kl(model, b.x, soft_labels(b.t, 1.0), eps, eps * p["step"], p["steps"], generator=g, noise=b.noise)


def _fused(b: StepBatch, p: dict) -> torch.Tensor:
    """SA-MDRAD-style soft labels of the batch from the (n, M, K) logits of its M clean teachers."""
    return adaptive_fusion(b.t, b.y, p["tau"])


def _fused_inner(model: nn.Module, b: StepBatch, p: dict, eps: float, g: torch.Generator) -> torch.Tensor:
    """SA-MDRAD-style inner attack (our reading): RSLAD's, against the fused soft labels."""
    return pgd_kl(model, b.x, _fused(b, p), eps, eps * p["step"], p["steps"], generator=g, noise=b.noise)


def _sa_mdrad(model: nn.Module, b: StepBatch, p: dict) -> torch.Tensor:
    return sa_mdrad_loss(model(b.x_adv), model(b.x), _fused(b, p))


def _ard(model: nn.Module, b: StepBatch, p: dict) -> torch.Tensor:
    return ard_loss(model(b.x_adv), model(b.x), b.y, b.t, p["alpha"], p["tau"])


def _peeraid(model: nn.Module, b: StepBatch, p: dict) -> torch.Tensor:
    """Peer and student losses summed, so that one backward and one optimiser step update both (their
    code: two optimisers with the same settings, stepped together). One forward of S(x') serves both
    terms (their code runs two identical train-mode forwards)."""
    peer_adv, s_adv = b.peer(b.x_adv), model(b.x_adv)
    return (peeraid_peer_loss(peer_adv, s_adv, b.y, p["gamma1"], p["gamma2"], p["tau_p"])
            + peeraid_student_loss(s_adv, model(b.x), peer_adv, b.y, p["lam1"], p["lam2"], p["lam3"],
                                   p["temperature"]))


def _exits_inner(model: nn.Module, b: StepBatch, p: dict, eps: float, g: torch.Generator) -> torch.Tensor:
    """NEO-KD-style inner attack: the average attack over exits (their training uses max-average)."""
    return pgd_exits(model, b.x, b.y, eps, eps * p["step"], p["steps"], generator=g, noise=b.noise)


def _neo_kd(model: nn.Module, b: StepBatch, p: dict) -> torch.Tensor:
    return neo_kd_loss(model.exits(b.x), model.exits(b.x_adv), b.y, b.class_exit, p["alpha"], p["beta"], p["gamma"])


def _iad(model: nn.Module, b: StepBatch, p: dict) -> torch.Tensor:
    """IAD-I: the teacher's clean soft labels for S(x'), and S's own clean output where the teacher is
    unreliable on x' (a_i = P_T(y | x')^beta), from ``warmup`` of training on (60 of their 200 epochs)."""
    with torch.no_grad():
        teacher_adv = b.teacher(b.x_adv)
    introspect = (b.progress >= p["warmup"]).to(b.x.dtype)
    return iad_loss(model(b.x_adv), model(b.x), b.y, b.t, teacher_adv, introspect, p["alpha"], p["beta"], p["tau"])


def _rslad(model: nn.Module, b: StepBatch, p: dict) -> torch.Tensor:
    return rslad_loss(model(b.x_adv), model(b.x), b.t)


METHODS: dict[str, Method] = {m.name: m for m in [
    Method("cln", _cln, "clean training"),
    Method("self-adv", _eq10, "FGSM adversarial training on its own examples (Eq. 10)",
           {"lam": 0.5}, adv_share=0.5, inputs=("self_adv",)),
    Method("adv", _eq10, "ensemble adversarial training on the static D_adv (Eq. 10, Algorithm 1)",
           {"lam": 0.5, "source_choice": "random"}, adv_share=0.5, inputs=("dadv",)),
    Method("dist-cln", _hinton, "Hinton distillation from Res26(cln) on clean data",
           {"temperature": 3.0, "alpha": 0.1}, inputs=("teacher_logits",), teacher="Res26(cln)"),
    Method("dist-adv", _hinton, "Hinton distillation from Res26(adv) on clean data",
           {"temperature": 3.0, "alpha": 0.1}, inputs=("teacher_logits",), teacher="Res26(adv)"),
    Method("adv-trans", _eq11, "adversarial knowledge transfer from Res26(adv) (Eq. 11, Algorithm 2)",
           {"alpha": 0.1, "lam": 0.5, "t1": 3.0, "t2": 5.0, "source_choice": "random"},
           adv_share=0.5, inputs=("dadv", "teacher_logits"), teacher="Res26(adv)"),
    Method("ard", _ard, "ARD (Goldblum et al. 2020): student's adversarial output matched to the teacher's "
           "clean one", {"alpha": 1.0, "tau": 30.0, "steps": 10, "step": 0.25},
           inputs=("live_teacher",), teacher="Res26(adv)", inner=_ard_inner, inner_start="uniform"),
    Method("rslad", _rslad, "RSLAD (Zi et al. 2021): robust soft labels of the teacher on clean and "
           "adversarial inputs", {"steps": 10, "step": 0.25},
           inputs=("live_teacher",), teacher="Res26(adv)", inner=_kl_inner, inner_start="normal"),
    Method("sa-mdrad", _sa_mdrad, "SA-MDRAD-style (Li et al. 2024, our reading): soft labels of three clean "
           "teachers of different depths, rectified and fused per sample", {"tau": 1.0, "steps": 10, "step": 0.25},
           inputs=("static_logits",), inner=_fused_inner, inner_start="normal", static_teachers=(26, 20, 14)),
    # PeerAiD's inner attack is RSLAD's, against the peer's clean soft labels (P in eval mode, no grad).
    Method("peeraid", _peeraid, "PeerAiD (Jung et al. 2024): a peer (Res26 here) trained jointly on the "
           "student's adversarial examples; the student distils from it", {
               "peer_depth": 26, "gamma1": 1.0, "gamma2": 0.1, "tau_p": 1.0, "lam1": 0.0, "lam2": 1.0,
               "lam3": 1.0, "temperature": 5.0, "steps": 10, "step": 0.25},
           inputs=("peer",), inner=_kl_inner, inner_start="normal"),
    Method("iad", _iad, "IAD-I (Zhu et al. 2022): ARD's attack; the student distils from the teacher, and from "
           "itself where the teacher is unreliable on the adversarial example", {
               "alpha": 1.0, "beta": 0.1, "tau": 1.0, "warmup": 0.3, "steps": 10, "step": 0.25},
           inputs=("live_teacher",), teacher="Res26(adv)", inner=_ard_inner, inner_start="uniform"),
    Method("neo-kd", _neo_kd, "NEO-KD-style (Ham et al. 2023, our reading): a multi-exit Res26 adversarially "
           "trained with neighbour and exit-wise orthogonal distillation", {
               "alpha": 3.0, "beta": 1.0, "gamma": [1.0, 1.0, 1.0], "steps": 7, "step": 0.25},
           inner=_exits_inner, inner_start="uniform", multi_exit=True),
]}

def get(name: str) -> Method:
    check_choice("method", name, METHODS)
    return METHODS[name]
