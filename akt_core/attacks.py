"""The paper's evaluation attacks (Sec. 3.2) and PGD, one small function each.

Contract (torchattacks'): images in [0, 1]; the model is put in eval mode for the attack and
restored afterwards; parameters never receive gradients; the result lies inside the L-inf ball of
radius ``eps`` around ``x`` and inside [0, 1]. ``J`` is the mean cross-entropy. For the least-likely
attacks, y_LL = argmin_c p(c | x) is taken once from the clean prediction (Kurakin et al. 2017).
The paper's budget is eps = 16/256 with k = 5 iterations of step eps/5 (Tables 8-10).
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable, Iterator

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import AktError
from .data import to_device

EPS = 16 / 256  #: the paper's L-inf budget on [0, 1] images
STEPS = 5  #: iterations of I-FGSM and Iter-LL (Tables 8-10)


@contextmanager
def attack_mode(model: nn.Module, eval_mode: bool = True) -> Iterator[nn.Module]:
    """Eval mode and frozen parameters for the duration of an attack; both restored afterwards.

    ``eval_mode=False`` keeps the model's mode (ARD's inner attack runs the student in train mode)."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    if eval_mode:
        model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


#: Check that attack inputs lie in [0, 1] on a GPU too (``AKT_DEBUG=1``). The check reads the tensor's
#: range back to the host, a sync per call that would stall a GPU's queue at every training step of
#: the methods with an inner attack; on the CPU it costs no sync and always runs (and the tests run there).
CHECK_ON_GPU = os.environ.get("AKT_DEBUG", "") not in ("", "0")


def _check(x: torch.Tensor, eps: float, steps: int = 1) -> None:
    if not isinstance(steps, int) or steps < 1:
        raise AktError(f"steps={steps!r}: an iterative attack needs at least one step")
    if not 0.0 <= eps <= 1.0:
        raise AktError(f"eps={eps!r} is impossible for images in [0, 1]; choose 0 <= eps <= 1")
    if x.numel() and (x.device.type == "cpu" or CHECK_ON_GPU):
        lo, hi = torch.aminmax(x)
        if lo < 0 or hi > 1:
            raise AktError("attack inputs must lie in [0, 1] (models normalise inside); "
                           f"got values in [{lo.item():.3g}, {hi.item():.3g}]")


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():  # also inside a caller's no_grad()
        x = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x), y)
        return torch.autograd.grad(loss, x)[0]


def _step(x_adv: torch.Tensor, g: torch.Tensor, step: float, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Clip_{x,eps}(x_adv + step * sign(g)): [lo, hi] is the eps-ball around x cut to [0, 1]. In place on g."""
    out = g.sign_().mul_(step).add_(x_adv)
    return torch.minimum(torch.maximum(out, lo, out=out), hi, out=out)


def least_likely(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """y_LL = argmin_c p(c | x) of the clean prediction, with the model in eval mode."""
    with attack_mode(model), torch.no_grad():
        return model(x).argmin(dim=1)


def _iterate(model: nn.Module, x: torch.Tensor, target: torch.Tensor, eps: float, alpha: float,
             steps: int, sign: float, start: torch.Tensor | None = None, eval_mode: bool = True) -> torch.Tensor:
    x = x.detach()
    with attack_mode(model, eval_mode):
        if steps == 1 and start is None and alpha == eps:  # one full step from x: only [0, 1] can bind
            g = _input_grad(model, x, target)
            return g.sign_().mul_(sign * eps).add_(x).clamp_(0.0, 1.0)
        lo, hi = (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)
        x_adv = x if start is None else start
        for _ in range(steps):
            x_adv = _step(x_adv, _input_grad(model, x_adv, target), sign * alpha, lo, hi)
    return x_adv.detach()


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """FGSM (Goodfellow et al. 2015): x' = clip(x + eps * sign(grad_x J(f(x), y)))."""
    _check(x, eps)
    return _iterate(model, x, y, eps, eps, 1, +1.0)


def step_ll(model: nn.Module, x: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """Step-LL: x' = clip(x - eps * sign(grad_x J(f(x), y_LL)))."""
    _check(x, eps)
    return _iterate(model, x, least_likely(model, x), eps, eps, 1, -1.0)


def ifgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = EPS,
          alpha: float | None = None, steps: int = STEPS) -> torch.Tensor:
    """I-FGSM / BIM: x_{k+1} = Clip_{x,eps}(x_k + alpha * sign(grad J(f(x_k), y))), alpha = eps/steps."""
    _check(x, eps, steps)
    alpha = eps / steps if alpha is None else alpha
    return _iterate(model, x, y, eps, alpha, steps, +1.0)


def iter_ll(model: nn.Module, x: torch.Tensor, eps: float = EPS,
            alpha: float | None = None, steps: int = STEPS) -> torch.Tensor:
    """Iter-LL: x_{k+1} = Clip_{x,eps}(x_k - alpha * sign(grad J(f(x_k), y_LL))), y_LL from clean x."""
    _check(x, eps, steps)
    alpha = eps / steps if alpha is None else alpha
    return _iterate(model, x, least_likely(model, x), eps, alpha, steps, -1.0)


def draw_start(shape: tuple[int, ...], normal: bool, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A random start's raw draw: U[0, 1) (``normal=False``) or N(0, 1), on ``generator``'s device
    (else the CPU's default generator)."""
    draw = torch.randn if normal else torch.rand
    return draw(shape, generator=generator, device="cpu" if generator is None else generator.device, dtype=dtype)


def start_noise(x: torch.Tensor, normal: bool, generator: torch.Generator | None = None,
                noise: torch.Tensor | None = None) -> torch.Tensor:
    """A random start's raw draw shaped like ``x`` (``draw_start``), copied to ``x``'s device; or ``noise``,
    the same draw made beforehand (``train.EpochDraws``: an epoch's draws at once, no host work per step)."""
    if noise is not None:
        if noise.shape != x.shape:
            raise AktError(f"a pre-drawn random start of shape {tuple(noise.shape)} for inputs of shape {tuple(x.shape)}")
        return noise
    return to_device(draw_start(x.shape, normal, generator, x.dtype), x.device)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = EPS,
        alpha: float | None = None, steps: int = 20, random_start: bool = True,
        generator: torch.Generator | None = None, eval_mode: bool = True,
        noise: torch.Tensor | None = None) -> torch.Tensor:
    """PGD (Madry et al. 2018): I-FGSM from a uniform random start in the eps-ball (white-box use).

    ``steps=0`` returns the random start itself. ``eval_mode=False`` runs the model in the mode it is
    in (ARD's inner attack: the student in train mode, BatchNorm on batch statistics). ``noise``: the
    start's U[0, 1) draw made beforehand (``start_noise``)."""
    _check(x, eps, steps + 1)
    alpha = eps / 4 if alpha is None else alpha
    x = x.detach()
    start = x
    if random_start:
        start = (x + (2 * start_noise(x, False, generator, noise) - 1) * eps).clamp(0.0, 1.0)
    return _iterate(model, x, y, eps, alpha, steps, +1.0, start, eval_mode)


def pgd_exits(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = EPS,
              alpha: float | None = None, steps: int = 7, generator: torch.Generator | None = None,
              noise: torch.Tensor | None = None) -> torch.Tensor:
    """The "average attack" on a multi-exit model (Hu et al. 2020, as NEO-KD trains with it): PGD that
    ascends the mean over exits of J(f_i(x'), y), from a uniform random start, steps of ``alpha``
    (default eps/4), model in eval mode. ``model.exits(x)`` gives every exit's logits. ``noise``: the
    start's U[0, 1) draw made beforehand (``start_noise``)."""
    _check(x, eps, steps)
    alpha = eps / 4 if alpha is None else alpha
    x = x.detach()
    u = start_noise(x, False, generator, noise)
    lo, hi = (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)
    x_adv = torch.minimum(torch.maximum(x + (2 * u - 1) * eps, lo), hi)
    with attack_mode(model), torch.enable_grad():
        for _ in range(steps):
            xa = x_adv.requires_grad_(True)
            outs = model.exits(xa)
            loss = sum(F.cross_entropy(o, y) for o in outs) / len(outs)
            g = torch.autograd.grad(loss, xa)[0]
            x_adv = _step(x_adv.detach(), g, alpha, lo, hi)
    return x_adv.detach()


def pgd_kl(model: nn.Module, x: torch.Tensor, target_probs: torch.Tensor, eps: float = EPS,
           alpha: float | None = None, steps: int = 10, generator: torch.Generator | None = None,
           init_std: float = 0.001, noise: torch.Tensor | None = None) -> torch.Tensor:
    """The inner maximisation of RSLAD and PeerAiD: x' ascends KL(p || softmax(f(x'))) (summed over
    the batch) for a target distribution ``p``, from x + init_std * N(0, 1), with L-inf steps of
    ``alpha`` (default eps/4) inside the eps-ball and [0, 1], the model in eval mode
    (zibojia/RSLAD rslad_loss.py ``rslad_inner_loss``; jaewonalive/PeerAiD attack_function.py).
    ``noise``: the start's N(0, 1) draw made beforehand (``start_noise``)."""
    _check(x, eps, steps)
    alpha = eps / 4 if alpha is None else alpha
    x = x.detach()
    z = start_noise(x, True, generator, noise)
    lo, hi = (x - eps).clamp_(min=0.0), (x + eps).clamp_(max=1.0)
    x_adv = torch.minimum(torch.maximum(x + init_std * z, lo), hi)
    target_probs = target_probs.detach()
    with attack_mode(model), torch.enable_grad():
        for _ in range(steps):
            xa = x_adv.requires_grad_(True)
            loss = F.kl_div(F.log_softmax(model(xa), dim=1), target_probs, reduction="sum")
            g = torch.autograd.grad(loss, xa)[0]
            x_adv = _step(x_adv.detach(), g, alpha, lo, hi)
    return x_adv.detach()


def autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = EPS, seed: int = 0,
               n_target_classes: int = 9, steps: int = 10) -> torch.Tensor:
    """AutoAttack (Croce & Hein 2020), L-inf, standard version, as torchattacks 3.5 implements it:
    APGD-CE, APGD-T, FAB-T and Square, each on the examples the previous ones left correct.

    torchattacks' ``AutoAttack`` runs APGD, APGD-T and FAB with **10 steps** and Square with 5,000
    queries, 1 restart each; ``steps=100`` builds the same chain with the original's 100 steps (the
    AutoAttack RobustBench reports). APGD-T and FAB-T take the ``n_target_classes`` = 9 most likely
    wrong classes, as the original does, whatever the number of classes. ``seed`` fixes every random
    start (torchattacks' default seeds from the clock); the caller's global RNG state is left untouched.
    """
    import copy

    try:
        import torchattacks
    except ImportError as exc:  # an optional extra: a plain install of the package downgrades nothing
        raise AktError("AutoAttack needs torchattacks: pip install 'akt-core[autoattack]' "
                       "(it pins requests~=2.25, which is why it is not a base dependency)") from exc
    _check(x, eps)
    # torchattacks' FAB reshapes input gradients with .view, which fails on channels-last tensors: run
    # a contiguous-format copy of the model on contiguous images (same values, so the same result)
    model = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    devices = [x.device] if x.device.type == "cuda" else []
    with attack_mode(model), torch.random.fork_rng(devices=devices), torch.enable_grad():
        n = n_target_classes + 1
        if steps == 10:  # torchattacks' own chain, as every stored 10-step record was made
            atk = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=n, seed=seed)
        else:
            atk = torchattacks.MultiAttack([
                torchattacks.APGD(model, eps=eps, norm="Linf", seed=seed, loss="ce", n_restarts=1, steps=steps),
                torchattacks.APGDT(model, eps=eps, norm="Linf", seed=seed, n_classes=n, n_restarts=1, steps=steps),
                torchattacks.FAB(model, eps=eps, norm="Linf", seed=seed, multi_targeted=True, n_classes=n,
                                 n_restarts=1, steps=steps),
                torchattacks.Square(model, eps=eps, norm="Linf", seed=seed, n_queries=5000, n_restarts=1)])
        return atk(x.detach().contiguous(), y).detach()


#: The paper's four transfer attacks by the names its tables use. Each maps
#: (model, x, y, eps) -> x_adv with the paper's k = 5, a = eps/5 for the iterative ones.
ATTACKS: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
    "FGSM": lambda m, x, y, eps: fgsm(m, x, y, eps),
    "I-FGSM": lambda m, x, y, eps: ifgsm(m, x, y, eps),
    "Step-LL": lambda m, x, y, eps: step_ll(m, x, eps),
    "Iter-LL": lambda m, x, y, eps: iter_ll(m, x, eps),
}
