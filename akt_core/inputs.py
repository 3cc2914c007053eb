"""What a training method reads besides the training images: one adapter per input kind.

A method declares its inputs by name (``methods.Method.inputs``); each name is one ``InputKind`` in
``INPUTS``, which owns everything about that input in one place:

``deps``
    the graph's edges: the nodes the method's model depends on (``graph.Experiment.model``), in the
    declared order (their keys enter the model's key, so the order is part of the cache key), and the
    teacher model a live teacher reads, if any.
``load``
    how ``runner.Runner`` hands the built dependencies to training (fields of ``train.TrainInputs``).
``check``
    what ``train.train_model`` refuses before it starts (a missing or malformed input).
``draw``
    its share of one step's random draws (``train.step_draws``; drawn for a whole epoch at once, after
    the clean part's crops and the inner attack's start, in the order the steps would draw them).
``on_clean`` / ``make_adv`` / ``on_adv``
    the batch fields it fills (``train.make_batch``): beside the clean part (a teacher's soft labels);
    the adversarial part itself (D_adv, or FGSM on the model being trained); after it (a teacher's
    logits on the adversarial part, Eq. 11).

A new method that reads existing inputs is a registry entry in ``methods`` plus its loss; a new input
kind is one class here and its entry in ``INPUTS``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from . import choices as choices_mod
from .attacks import fgsm
from .data import Crops, apply_crops, draw_crops, to_float
from .evaluate import autocast, logits

if TYPE_CHECKING:  # type hints only: these modules import this one
    from .graph import Experiment, Node
    from .methods import Method, StepBatch
    from .runner import Runner
    from .train import TrainInputs

#: How an epoch walks D_adv (the paper is silent): ``random`` draws one static source per
#: adversarial example per step; ``cycle`` uses source (epoch mod N) for the whole epoch.
SOURCE_CHOICES = ("random", "cycle")


def dadv_images(x: torch.Tensor, sign: torch.Tensor, eps: float) -> torch.Tensor:
    """FGSM images clip(x + eps * sign(grad)) rebuilt exactly from a stored sign (int8) and uint8 x."""
    return (to_float(x) + eps * sign.float()).clamp_(0.0, 1.0)


@dataclass
class Step:
    """What one step's batch builder knows: the model being trained, the method and its params, the
    run's inputs, and this step's indices (clean part ``cidx``, adversarial part ``aidx``) and draws."""

    model: torch.nn.Module
    method: "Method"
    params: dict
    inp: "TrainInputs"
    cidx: torch.Tensor
    aidx: torch.Tensor
    drawn: dict[str, Any]
    bf16: bool

    def crop(self, x: torch.Tensor, part: str) -> torch.Tensor:
        """``x`` augmented with the step's crops of ``part`` (``clean`` or ``adv``), if the data augments."""
        return apply_crops(x, self.drawn[part]) if self.inp.augment else x


class InputKind:
    """One kind of method input; the default of every hook is to do nothing."""

    name: str = ""
    description: str = ""
    #: the ``TrainInputs`` field the input must have filled before training starts, and its words
    requires: tuple[str, str] | None = None

    def deps(self, exp: "Experiment", method: "Method") -> tuple[tuple["Node", ...], "Node | None"]:
        """(the dependency nodes, in order; the live teacher's node, or None)."""
        return (), None

    def load(self, runner: "Runner", node: "Node", inp: "TrainInputs") -> None:
        pass

    def check(self, method: "Method", params: dict, inp: "TrainInputs") -> None:
        if self.requires and getattr(inp, self.requires[0]) is None:
            raise ValueError(f"method {method.name!r} needs {self.requires[1]} (TrainInputs.{self.requires[0]})")

    def draw(self, method: "Method", params: dict, inp: "TrainInputs", n_adv: int, epoch: int,
             g: torch.Generator) -> dict[str, Any]:
        return {}

    def on_clean(self, b: "StepBatch", s: Step) -> None:
        pass

    def make_adv(self, b: "StepBatch", s: Step) -> None:
        pass

    def on_adv(self, b: "StepBatch", s: Step) -> None:
        pass


class DAdv(InputKind):
    name = "dadv"
    description = "the static adversarial set D_adv of stage 1 (Algorithm 1, line 2): x_adv of each adversarial example"

    def deps(self, exp, method):
        return (exp.dadv(),), None

    def load(self, runner, node, inp):
        inp.dadv_sign = runner.array(next(d for d in node.deps if d.kind == "dadv"))

    def check(self, method, params, inp):
        if params.get("source_choice") not in SOURCE_CHOICES:
            raise ValueError(f"source_choice must be one of {SOURCE_CHOICES}")

    def draw(self, method, params, inp, n_adv, epoch, g):
        n_src = inp.dadv_sign.shape[0]
        if params["source_choice"] == "random":
            src = torch.randint(n_src, (n_adv,), generator=g)
        else:
            src = torch.full((n_adv,), epoch % n_src)
        return {"src": src, **({"adv": draw_crops(n_adv, g)} if inp.augment else {})}

    def make_adv(self, b, s):
        src = s.drawn["src"]
        x_adv, sign = s.inp.train.x[s.aidx], s.inp.dadv_sign[src, s.aidx]
        # one draw crops image and sign alike; the zero padding of both rebuilds a zero pixel
        b.x_adv = dadv_images(s.crop(x_adv, "adv"), s.crop(sign, "adv"), s.inp.eps)


class SelfAdv(InputKind):
    name = "self_adv"
    description = "FGSM examples crafted on the model being trained, every step (Eq. 10, self-adv)"

    def draw(self, method, params, inp, n_adv, epoch, g):
        return {"adv": draw_crops(n_adv, g)} if inp.augment else {}

    def make_adv(self, b, s):
        with autocast(b.y.device, s.bf16):
            b.x_adv = fgsm(s.model, to_float(s.crop(s.inp.train.x[s.aidx], "adv")), b.y_adv, s.inp.eps)


class TeacherLogits(InputKind):
    name = "teacher_logits"
    description = "cached logits of ``teacher`` on the clean images, and on D_adv with 'dadv' (Eq. 11)"

    def deps(self, exp, method):
        if choices_mod.for_method(exp.choices, method.name).get("teacher_view") == "augmented":
            teacher = exp.model(method.teacher)  # the teacher itself, run on each augmented batch
            return (teacher,), teacher
        return (exp.teacher_logits(method.teacher, on_dadv=method.reads("dadv")),), None

    def load(self, runner, node, inp):
        for dep in node.deps:
            if dep.kind == "logits":
                t = runner.array(dep)
                inp.teacher, inp.teacher_adv = t[0], (t[1:] if len(t) > 1 else None)
            elif dep.key == node.config.get("teacher"):
                inp.teacher_model = runner.model(dep)

    def on_clean(self, b, s):
        live = s.inp.teacher_model
        b.t = logits(live, b.x, batch_size=len(b.x), bf16=s.bf16) if live is not None else s.inp.teacher[s.cidx]

    def on_adv(self, b, s):
        if b.x_adv is None:
            return
        live = s.inp.teacher_model
        b.t_adv = (logits(live, b.x_adv, batch_size=len(b.x_adv), bf16=s.bf16) if live is not None
                   else s.inp.teacher_adv[s.drawn["src"], s.aidx])


class LiveTeacher(InputKind):
    name = "live_teacher"
    description = "the ``teacher`` model itself, run on each augmented batch (ARD, RSLAD, IAD)"
    requires = ("teacher_model", "a live teacher model")

    def deps(self, exp, method):
        teacher = exp.model(method.teacher)
        return (teacher,), teacher

    def load(self, runner, node, inp):
        inp.teacher_model = runner.model(next(d for d in node.deps if d.key == node.config["teacher"]))

    def on_clean(self, b, s):
        b.teacher = s.inp.teacher_model
        b.t = logits(s.inp.teacher_model, b.x, batch_size=len(b.x), bf16=s.bf16)


class StaticLogits(InputKind):
    name = "static_logits"
    description = "cached logits of the clean static models of depths ``static_teachers`` (SA-MDRAD-style)"

    def deps(self, exp, method):
        return (exp.static_logits(method.static_teachers),), None

    def load(self, runner, node, inp):
        dep = next(d for d in node.deps if d.kind == "logits" and d.config.get("multi"))
        inp.teacher = runner.array(dep).permute(1, 0, 2)  # (N, M, K): all teachers of an image

    def check(self, method, params, inp):
        if inp.teacher is None or inp.teacher.ndim != 3:
            raise ValueError(f"method {method.name!r} needs the (N, M, K) logits of its static teachers "
                             "(TrainInputs.teacher)")

    def on_clean(self, b, s):
        b.t = s.inp.teacher[s.cidx]


class Peer(InputKind):
    name = "peer"
    description = "a peer of depth ``params['peer_depth']`` trained in the same loop (PeerAiD)"
    requires = ("peer_model", "a peer, trained with the model")

    def load(self, runner, node, inp):
        # initialised from the global generator right after the student, as their code does
        inp.peer_model = runner.new_model(node.config["params"]["peer_depth"])

    def on_clean(self, b, s):
        # the peer's clean logits in eval mode, no gradient (``logits`` restores train mode)
        b.peer = s.inp.peer_model
        b.t = logits(s.inp.peer_model, b.x, batch_size=len(b.x), bf16=s.bf16)


INPUTS: dict[str, InputKind] = {k.name: k for k in (DAdv(), TeacherLogits(), LiveTeacher(), StaticLogits(), Peer(),
                                                      SelfAdv())}


def stack(steps: list[dict[str, Any]], device: torch.device) -> dict[str, Any]:
    """Per-step draws (dicts of tensors or ``Crops``) stacked into one (steps, ...) entry per field,
    copied to ``device`` in one go."""
    from .data import to_device

    out: dict[str, Any] = {}
    for name in steps[0] if steps else ():
        first = steps[0][name]
        if isinstance(first, Crops):
            out[name] = Crops(*(to_device(torch.stack([getattr(s[name], f) for s in steps]), device)
                                for f in ("dy", "dx", "flip")), first.pad)
        else:
            out[name] = to_device(torch.stack([s[name] for s in steps]), device)
    return out


def pick(draws: dict[str, Any], i: int) -> dict[str, Any]:
    """Step ``i``'s part of ``stack``'s output."""
    return {name: Crops(v.dy[i], v.dx[i], v.flip[i], v.pad) if isinstance(v, Crops) else v[i]
            for name, v in draws.items()}
