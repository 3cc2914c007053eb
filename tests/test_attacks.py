"""Attacks: agreement with torchattacks, the eval-mode / no-gradient contract, budgets, errors."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from akt_core import AktError
from akt_core import attacks as A

pytestmark = pytest.mark.usefixtures("isolated")

EPS = 16 / 256


def test_paper_budget_constants():
    assert A.EPS == 16 / 256 and A.STEPS == 5
    assert set(A.ATTACKS) == {"FGSM", "I-FGSM", "Step-LL", "Iter-LL"}


# ---- agreement with torchattacks ------------------------------------------------------------
def test_fgsm_equals_torchattacks(trained_model, synthetic_test_batch):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = synthetic_test_batch
    ours = A.fgsm(trained_model, x, y, EPS)
    theirs = torchattacks.FGSM(trained_model, eps=EPS)(x, y)
    assert (ours - theirs).abs().max().item() < 1e-6
    assert not torch.equal(ours, x)


def test_ifgsm_equals_torchattacks_bim(trained_model, synthetic_test_batch):
    torchattacks = pytest.importorskip("torchattacks")
    x, y = synthetic_test_batch
    ours = A.ifgsm(trained_model, x, y, EPS, alpha=EPS / 5, steps=5)
    theirs = torchattacks.BIM(trained_model, eps=EPS, alpha=EPS / 5, steps=5)(x, y)
    assert (ours - theirs).abs().max().item() < 1e-6
    # and the default alpha is eps / steps
    assert torch.equal(A.ifgsm(trained_model, x, y, EPS), ours)


def test_fgsm_by_hand(trained_model, synthetic_test_batch):
    x, y = synthetic_test_batch
    xr = x.clone().requires_grad_(True)
    F.cross_entropy(trained_model(xr), y).backward()
    expect = (x + EPS * xr.grad.sign()).clamp(0, 1)
    assert torch.equal(A.fgsm(trained_model, x, y, EPS), expect)


def test_attacks_reduce_accuracy_of_their_source(trained_model, synthetic_test_batch):
    x, y = synthetic_test_batch
    x_adv = A.ifgsm(trained_model, x, y, EPS)
    with torch.no_grad():
        clean = (trained_model(x).argmax(1) == y).float().mean()
        adv = (trained_model(x_adv).argmax(1) == y).float().mean()
    assert adv < clean


# ---- the contract ---------------------------------------------------------------------------
class Recorder(nn.Module):
    """Wraps a model and records ``self.training`` at every forward."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.modes: list[bool] = []
        self.inner_modes: list[bool] = []

    def forward(self, x):
        self.modes.append(self.training)
        self.inner_modes.append(self.inner.training)
        return self.inner(x)


ALL = {
    "fgsm": lambda m, x, y, eps: A.fgsm(m, x, y, eps),
    "step_ll": lambda m, x, y, eps: A.step_ll(m, x, eps),
    "ifgsm": lambda m, x, y, eps: A.ifgsm(m, x, y, eps),
    "iter_ll": lambda m, x, y, eps: A.iter_ll(m, x, eps),
    "pgd": lambda m, x, y, eps: A.pgd(m, x, y, eps, steps=3, generator=torch.Generator().manual_seed(0)),
}
CALLS = {"fgsm": 1, "step_ll": 2, "ifgsm": 5, "iter_ll": 6, "pgd": 3}  # forwards incl. the y_LL one


@pytest.mark.parametrize("name", list(ALL))
def test_contract(name, model, batch):
    x, y = batch
    rec = Recorder(model)
    rec.train()
    frozen = model.fc.weight
    frozen.requires_grad_(False)
    flags = {n: p.requires_grad for n, p in rec.named_parameters()}
    bn_before = {k: v.clone() for k, v in model.state_dict().items()}
    x_before = x.clone()

    out = ALL[name](rec, x, y, EPS)

    assert rec.modes and not any(rec.modes) and not any(rec.inner_modes), "attack must run in eval mode"
    assert len(rec.modes) == CALLS[name]
    assert rec.training and model.training and all(m.training for m in model.modules())
    assert {n: p.requires_grad for n, p in rec.named_parameters()} == flags
    assert not frozen.requires_grad and model.conv1.weight.requires_grad
    assert all(p.grad is None for p in rec.parameters())
    # eval mode: BN running statistics untouched
    assert all(torch.equal(v, bn_before[k]) for k, v in model.state_dict().items())
    assert torch.equal(x, x_before)
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert not out.requires_grad
    assert (out - x).abs().max().item() <= EPS + 1e-7
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, x)


@pytest.mark.parametrize("name", list(ALL))
def test_existing_grads_untouched(name, model, batch):
    x, y = batch
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    ALL[name](model, x, y, EPS)
    assert all(torch.equal(p.grad, torch.full_like(p, 0.5)) for p in model.parameters())


@pytest.mark.parametrize("name", list(ALL))
def test_eval_mode_model_stays_in_eval(name, model, batch):
    x, y = batch
    model.eval()
    ALL[name](model, x, y, EPS)
    assert not model.training


@pytest.mark.parametrize("name", list(ALL))
def test_budget_respected_at_image_borders(name, model):
    """Pixels at 0 and 1 cannot leave [0, 1]; eps = 0 is the identity (except PGD's start)."""
    x = torch.zeros(4, 3, 32, 32)
    x[:2] = 1.0
    y = torch.arange(4)
    out = ALL[name](model, x, y, 0.3)
    assert out.min() >= 0 and out.max() <= 1 and (out - x).abs().max() <= 0.3 + 1e-7
    out0 = ALL[name](model, torch.full((2, 3, 32, 32), 0.5), y[:2], 0.0)
    assert torch.equal(out0, torch.full((2, 3, 32, 32), 0.5))


@pytest.mark.parametrize("name", list(ALL))
@pytest.mark.parametrize("eps", [-0.1, 2.0, float("nan")])
def test_bad_eps_raises(name, eps, model, batch):
    x, y = batch
    with pytest.raises(AktError, match="eps"):
        ALL[name](model, x, y, eps)


@pytest.mark.parametrize("name", list(ALL))
@pytest.mark.parametrize("shift", [-0.5, 255.0])
def test_inputs_outside_unit_range_raise(name, shift, model, batch):
    x, y = batch
    with pytest.raises(AktError, match=r"\[0, 1\]"):
        ALL[name](model, x * (1 + shift) if shift > 0 else x + shift, y, EPS)


def test_iterative_steps_stay_in_ball_each_step(model, batch):
    """Large alpha: each step is projected, the result is still in the ball."""
    x, y = batch
    out = A.ifgsm(model, x, y, eps=0.05, alpha=0.5, steps=3)
    assert (out - x).abs().max() <= 0.05 + 1e-7


# ---- least-likely attacks -------------------------------------------------------------------
def test_least_likely_is_argmin_of_clean_prediction(trained_model, synthetic_test_batch):
    x, _ = synthetic_test_batch
    with torch.no_grad():
        expect = trained_model(x).argmin(1)
    assert torch.equal(A.least_likely(trained_model, x), expect)


@pytest.mark.parametrize("attack", [A.step_ll, A.iter_ll])
def test_ll_attacks_raise_least_likely_probability(attack, trained_model, synthetic_test_batch):
    x, _ = synthetic_test_batch
    x_adv = attack(trained_model, x, EPS)
    with torch.no_grad():
        y_ll = trained_model(x).argmin(1)
        p_clean = F.softmax(trained_model(x), 1).gather(1, y_ll[:, None]).squeeze(1)
        p_adv = F.softmax(trained_model(x_adv), 1).gather(1, y_ll[:, None]).squeeze(1)
    assert p_adv.mean() > p_clean.mean()
    assert (torch.log(p_adv) > torch.log(p_clean)).float().mean() > 0.75


def test_step_ll_by_hand(trained_model, synthetic_test_batch):
    x, _ = synthetic_test_batch
    with torch.no_grad():
        y_ll = trained_model(x).argmin(1)
    xr = x.clone().requires_grad_(True)
    F.cross_entropy(trained_model(xr), y_ll).backward()
    expect = (x - EPS * xr.grad.sign()).clamp(0, 1)
    assert torch.equal(A.step_ll(trained_model, x, EPS), expect)


def test_iter_ll_keeps_target_from_clean_image(trained_model, synthetic_test_batch, monkeypatch):
    """y_LL is computed once (from the clean x), not re-derived from the iterates."""
    x, _ = synthetic_test_batch
    calls = []
    orig = A.least_likely
    monkeypatch.setattr(A, "least_likely", lambda m, xx: calls.append(xx.clone()) or orig(m, xx))
    A.iter_ll(trained_model, x, EPS)
    assert len(calls) == 1 and torch.equal(calls[0], x)


# ---- PGD ------------------------------------------------------------------------------------
def test_pgd_reproducible_with_generator(model, batch):
    x, y = batch
    a = A.pgd(model, x, y, EPS, steps=2, generator=torch.Generator().manual_seed(7))
    b = A.pgd(model, x, y, EPS, steps=2, generator=torch.Generator().manual_seed(7))
    c = A.pgd(model, x, y, EPS, steps=2, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_pgd_random_start(model, batch):
    x, y = batch
    start = A.pgd(model, x, y, EPS, steps=0, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(start, x)
    assert (start - x).abs().max() <= EPS + 1e-7
    # uniform in the ball: away from the borders, mean |delta| is eps / 2 and the sign is balanced
    mid = torch.full_like(x, 0.5)
    d = A.pgd(model, mid, y, EPS, steps=0, generator=torch.Generator().manual_seed(0)) - mid
    assert d.abs().mean().item() == pytest.approx(EPS / 2, rel=0.05)
    assert d.mean().abs().item() < 0.05 * EPS
    assert torch.equal(A.pgd(model, x, y, EPS, steps=0, random_start=False), x)
    # without random start PGD is I-FGSM with PGD's step
    assert torch.equal(A.pgd(model, x, y, EPS, alpha=EPS / 5, steps=5, random_start=False),
                       A.ifgsm(model, x, y, EPS, alpha=EPS / 5, steps=5))


def test_attacks_work_inside_a_callers_no_grad(trained_model, batch):
    x, y = batch
    ref = A.fgsm(trained_model, x, y, EPS)
    with torch.no_grad():
        assert torch.equal(A.fgsm(trained_model, x, y, EPS), ref)


@pytest.mark.parametrize("steps", [0, -1])
def test_iterative_attacks_need_a_step(model, batch, steps):
    x, y = batch
    with pytest.raises(AktError, match="step"):
        A.ifgsm(model, x, y, EPS, steps=steps)
    with pytest.raises(AktError, match="step"):
        A.iter_ll(model, x, EPS, steps=steps)


def test_pgd_kl_contract_and_ascent(trained_model, synthetic_test_batch):
    """RSLAD / PeerAiD inner attack: inside the ball and [0, 1], raises KL(p || f(x')) from ~0."""
    import torch.nn.functional as F

    from akt_core.attacks import pgd_kl

    x, y = synthetic_test_batch
    m = trained_model
    m.zero_grad(set_to_none=True)  # whatever an earlier test left on the shared model
    with torch.no_grad():
        p = F.softmax(m(x), dim=1)
    kl = lambda xa: F.kl_div(F.log_softmax(m(xa), dim=1), p, reduction="sum").item()
    x_adv = pgd_kl(m, x, p, 16 / 256, steps=5, generator=torch.Generator().manual_seed(0))
    assert (x_adv - x).abs().max() <= 16 / 256 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert kl(x) < 1e-6 < 0.1 < kl(x_adv)
    assert not m.training and all(q.grad is None for q in m.parameters())
    again = pgd_kl(m, x, p, 16 / 256, steps=5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, x_adv)


def test_pgd_exits_contract_and_it_raises_the_mean_exit_loss():
    """The average attack on a multi-exit Res26: eps-ball, [0, 1], eval mode restored, no parameter
    gradients, and a higher mean cross-entropy over the exits than the clean images have."""
    from akt_core.attacks import pgd_exits
    from akt_core.models import MultiExitResNet

    torch.manual_seed(0)
    m = MultiExitResNet(26, 10, 1).train()
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    mean_ce = lambda xx: sum(F.cross_entropy(o, y) for o in m.exits(xx)).item() / 3
    xa = pgd_exits(m, x, y, 16 / 256, steps=3, generator=torch.Generator().manual_seed(1))
    assert m.training and all(p.grad is None for p in m.parameters())
    assert (xa - x).abs().max() <= 16 / 256 + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    m.eval()
    with torch.no_grad():
        assert mean_ce(xa) > mean_ce(x)
