"""The paper's losses against arithmetic written out with math.exp / math.log."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from akt_core.losses import (
    adversarial_transfer_loss,
    distillation_loss,
    ensemble_adversarial_loss,
    soft_cross_entropy,
    soft_labels,
)

pytestmark = pytest.mark.usefixtures("isolated")

# two examples, three classes
Z = [[1.0, 2.0, 0.5], [-1.0, 0.0, 3.0]]  # student logits, clean
ZA = [[0.3, -0.7, 1.1], [2.0, 2.5, -1.0]]  # student logits, adversarial
T = [[2.0, 0.0, -1.0], [0.5, 1.5, 1.0]]  # teacher logits, clean
TA = [[-0.5, 1.0, 0.2], [3.0, -2.0, 0.0]]  # teacher logits, adversarial
Y = [1, 2]
YA = [0, 1]


def softmax(row, temp=1.0):
    e = [math.exp(v / temp) for v in row]
    s = sum(e)
    return [v / s for v in e]


def log_softmax(row, temp=1.0):
    lse = math.log(sum(math.exp(v / temp) for v in row))
    return [v / temp - lse for v in row]


def ce(logits, labels):
    return sum(-log_softmax(z)[y] for z, y in zip(logits, labels)) / len(labels)


def soft_ce(logits, probs, temp=1.0):
    return sum(-sum(p * l for p, l in zip(pr, log_softmax(z, temp))) for z, pr in zip(logits, probs)) / len(probs)


def kd(student, labels, teacher, temp, alpha):
    soft = soft_ce(student, [softmax(t, temp) for t in teacher], temp)
    return alpha * ce(student, labels) + (1 - alpha) * temp**2 * soft


t = lambda v: torch.tensor(v, dtype=torch.float64)
ti = lambda v: torch.tensor(v, dtype=torch.int64)


def test_reference_helpers_by_literal_arithmetic():
    """The helpers above, checked once against fully written-out numbers."""
    # example 0 of Z, label 1: -log(e^2 / (e^1 + e^2 + e^0.5))
    e0 = -math.log(math.exp(2.0) / (math.exp(1.0) + math.exp(2.0) + math.exp(0.5)))
    e1 = -math.log(math.exp(3.0) / (math.exp(-1.0) + math.exp(0.0) + math.exp(3.0)))
    assert ce(Z, Y) == pytest.approx((e0 + e1) / 2, rel=1e-12)
    assert ce(Z, Y) == pytest.approx(0.2651263, abs=1e-6)  # (0.46437 + 0.06590) / 2


def test_soft_cross_entropy():
    p = [[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]]
    expect = soft_ce(Z, p)
    assert soft_cross_entropy(t(Z), t(p)).item() == pytest.approx(expect, rel=1e-12)
    # with one-hot targets it is the ordinary cross-entropy
    onehot = F.one_hot(ti(Y), 3).double()
    assert soft_cross_entropy(t(Z), onehot).item() == pytest.approx(ce(Z, Y), rel=1e-12)


def test_soft_labels():
    got = soft_labels(t(T), 3.0)
    for row, g in zip(T, got):
        assert g.tolist() == pytest.approx(softmax(row, 3.0), rel=1e-12)


def test_distillation_loss_t2_alpha_quarter():
    # written out: 0.25 * CE(z, y) + 0.75 * 2^2 * mean_i -sum_c softmax(t_i/2)_c log softmax(z_i/2)_c
    hard = ce(Z, Y)
    soft = 0.0
    for z, tt in zip(Z, T):
        pt = softmax(tt, 2.0)
        lq = log_softmax(z, 2.0)
        soft += -sum(pt[c] * lq[c] for c in range(3))
    soft /= 2
    expect = 0.25 * hard + 0.75 * 4 * soft
    got = distillation_loss(t(Z), ti(Y), t(T), temperature=2.0, alpha=0.25).item()
    assert got == pytest.approx(expect, rel=1e-12)


def test_distillation_defaults_are_t3_alpha_01():
    got = distillation_loss(t(Z), ti(Y), t(T)).item()
    assert got == pytest.approx(kd(Z, Y, T, 3.0, 0.1), rel=1e-12)


def test_distillation_alpha_one_is_cross_entropy():
    got = distillation_loss(t(Z), ti(Y), t(T), temperature=4.0, alpha=1.0)
    assert got.item() == pytest.approx(ce(Z, Y), rel=1e-12)
    assert torch.allclose(got, F.cross_entropy(t(Z), ti(Y)))


def test_distillation_soft_term_gradient_scale():
    """T^2 keeps the soft term's gradient on the hard term's scale: alpha = 0, student = teacher
    gives zero gradient (the soft labels are the student's own)."""
    z = t(T).clone().requires_grad_(True)
    distillation_loss(z, ti(Y), t(T), temperature=5.0, alpha=0.0).backward()
    assert z.grad.abs().max().item() < 1e-12


def test_ensemble_adversarial_loss_eq10():
    expect = 0.3 * ce(Z, Y) + 0.7 * ce(ZA, YA)
    got = ensemble_adversarial_loss(t(Z), ti(Y), t(ZA), ti(YA), lam=0.3).item()
    assert got == pytest.approx(expect, rel=1e-12)
    # default lambda = 0.5
    assert ensemble_adversarial_loss(t(Z), ti(Y), t(ZA), ti(YA)).item() == pytest.approx(
        0.5 * ce(Z, Y) + 0.5 * ce(ZA, YA), rel=1e-12)


def test_adversarial_transfer_loss_eq11_all_nondefault():
    alpha, lam, t1, t2 = 0.2, 0.3, 2.0, 4.0
    clean = alpha * ce(Z, Y) + (1 - alpha) * t1**2 * soft_ce(Z, [softmax(r, t1) for r in T], t1)
    adv = alpha * ce(ZA, YA) + (1 - alpha) * t2**2 * soft_ce(ZA, [softmax(r, t2) for r in TA], t2)
    expect = lam * clean + (1 - lam) * adv
    got = adversarial_transfer_loss(t(Z), ti(Y), t(T), t(ZA), ti(YA), t(TA),
                                    alpha=alpha, lam=lam, t1=t1, t2=t2).item()
    assert got == pytest.approx(expect, rel=1e-12)


def test_adversarial_transfer_loss_paper_defaults():
    # T1 = 3, T2 = 5, alpha = 0.1, lambda = 0.5 (stated by the paper; book/intro.md, Eq. (11))
    expect = 0.5 * kd(Z, Y, T, 3.0, 0.1) + 0.5 * kd(ZA, YA, TA, 5.0, 0.1)
    got = adversarial_transfer_loss(t(Z), ti(Y), t(T), t(ZA), ti(YA), t(TA)).item()
    assert got == pytest.approx(expect, rel=1e-12)


def test_adversarial_transfer_uses_each_temperature_on_its_half():
    """Swapping T1 and T2 changes the value (the temperatures are not shared)."""
    a = adversarial_transfer_loss(t(Z), ti(Y), t(T), t(ZA), ti(YA), t(TA), t1=2.0, t2=4.0)
    b = adversarial_transfer_loss(t(Z), ti(Y), t(T), t(ZA), ti(YA), t(TA), t1=4.0, t2=2.0)
    assert abs(a.item() - b.item()) > 1e-3


def test_float32_matches_float64():
    got = adversarial_transfer_loss(t(Z).float(), ti(Y), t(T).float(), t(ZA).float(), ti(YA), t(TA).float(),
                                    alpha=0.2, lam=0.3, t1=2.0, t2=4.0)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(adversarial_transfer_loss(t(Z), ti(Y), t(T), t(ZA), ti(YA), t(TA),
                                                                  alpha=0.2, lam=0.3, t1=2.0, t2=4.0).item(),
                                       rel=1e-6)


# ---- beyond the paper: ARD and RSLAD ------------------------------------------------------------
def kl_mean_ref(student, probs, temp=1.0):
    """sum_i sum_c p_ic (log p_ic - log q_ic) / (N * K), written out."""
    tot = 0.0
    for z, pr in zip(student, probs):
        lq = log_softmax(z, temp)
        tot += sum(p * (math.log(p) - l) for p, l in zip(pr, lq) if p > 0)
    return tot / (len(student) * len(student[0]))


def test_kl_mean_by_hand_and_against_torch():
    from akt_core.losses import kl_mean

    probs = [softmax(r) for r in T]
    got = kl_mean(t(Z), t(probs)).item()
    assert got == pytest.approx(kl_mean_ref(Z, probs), rel=1e-12)
    with warnings.catch_warnings():  # PyTorch warns that 'mean' divides by batch x classes: that is the point
        warnings.simplefilter("ignore")
        ref = torch.nn.KLDivLoss()(F.log_softmax(t(Z), dim=1), t(probs)).item()  # the default reduction
    assert got == pytest.approx(ref, rel=1e-12)
    assert kl_mean(t(T), t(probs)).item() == pytest.approx(0.0, abs=1e-15)  # KL(p || p) = 0


@pytest.mark.parametrize("alpha,tau", [(1.0, 30.0), (0.7, 4.0)])
def test_ard_loss_by_hand(alpha, tau):
    from akt_core.losses import ard_loss

    soft = kl_mean_ref(ZA, [softmax(r, tau) for r in T], tau)
    want = alpha * tau**2 * soft + (1 - alpha) * ce(Z, Y)
    assert ard_loss(t(ZA), t(Z), ti(Y), t(T), alpha, tau).item() == pytest.approx(want, rel=1e-12)


def test_rslad_loss_by_hand_and_class_scaling():
    from akt_core.losses import rslad_loss

    p = [softmax(r) for r in T]
    want = 3 / 10 * (5 / 6 * kl_mean_ref(ZA, p) + 1 / 6 * kl_mean_ref(Z, p))  # K = 3 classes -> x 3/10
    assert rslad_loss(t(ZA), t(Z), t(T)).item() == pytest.approx(want, rel=1e-12)
    assert rslad_loss(t(T), t(T), t(T)).item() == pytest.approx(0.0, abs=1e-15)


def kl_row_ref(z, probs, temp=1.0):
    """sum_c p_c (log p_c - log q_c) of one row, written out."""
    return sum(p * (math.log(p) - lq) for p, lq in zip(probs, log_softmax(z, temp)) if p > 0)


@pytest.mark.parametrize("introspect", [0.0, 1.0])
@pytest.mark.parametrize("alpha,beta,tau", [(1.0, 0.1, 1.0), (0.7, 0.5, 2.0)])
def test_iad_loss_by_hand(introspect, alpha, beta, tau):
    """IAD-I: the teacher term, the introspection term weighted by 1 - P_T(y | x')^beta, per-row KL
    averaged over the batch, and the hard-label term; before the warm-up only the first and last."""
    from akt_core.losses import iad_loss

    n = len(Z)
    teach = sum(kl_row_ref(za, softmax(tc, tau), tau) for za, tc in zip(ZA, T)) / n
    trust = [softmax(ta)[y] ** beta for ta, y in zip(TA, Y)]
    intro = sum((1 - a) * kl_row_ref(za, softmax(z)) for a, za, z in zip(trust, ZA, Z)) / n
    want = alpha * tau**2 * teach + introspect * alpha * intro + (1 - alpha) * ce(Z, Y)
    got = iad_loss(t(ZA), t(Z), ti(Y), t(T), t(TA), introspect, alpha, beta, tau)
    assert got.item() == pytest.approx(want, rel=1e-12)


def test_iad_introspection_target_keeps_its_gradient_and_the_trust_has_none():
    """As in their code: S(x) is a target with a gradient (not detached); a_i is a constant."""
    from akt_core.losses import iad_loss

    z, za, ta = t(Z).requires_grad_(), t(ZA), t(TA).requires_grad_()
    iad_loss(za, z, ti(Y), t(T), ta, 1.0).backward()
    assert z.grad.abs().sum() > 0 and ta.grad is None


def test_rectify_swaps_the_top_and_true_logits_only_where_wrong():
    from akt_core.losses import rectify

    z = t([[2.0, 0.0, -1.0], [0.5, 1.5, 1.0]])  # row 0 predicts 0, row 1 predicts 1
    got = rectify(z, ti([0, 2]))  # row 0 right (unchanged); row 1 wrong: swap classes 1 and 2
    assert got.tolist() == [[2.0, 0.0, -1.0], [0.5, 1.0, 1.5]]
    assert z.tolist() == [[2.0, 0.0, -1.0], [0.5, 1.5, 1.0]]  # input untouched


def test_adaptive_fusion_by_hand():
    """Two teachers, one sample, label 1. Teacher A = T[0] (wrong: predicts 0), teacher B = TA[0]
    (right: predicts 1). Weights softmax(-CE); A's logits rectified (classes 0 and 1 swapped)."""
    from akt_core.losses import adaptive_fusion

    a, b, y = T[0], TA[0], 1
    ce_a, ce_b = -log_softmax(a)[y], -log_softmax(b)[y]
    wa, wb = softmax([-ce_a, -ce_b])
    a_rect = [a[1], a[0], a[2]]
    for temp in (1.0, 2.0):
        want = [wa * pa + wb * pb for pa, pb in zip(softmax(a_rect, temp), softmax(b, temp))]
        got = adaptive_fusion(t([[a, b]]), ti([y]), temp)[0].tolist()
        assert got == pytest.approx(want, rel=1e-12)
        assert sum(got) == pytest.approx(1.0, rel=1e-12)


def test_sa_mdrad_loss_by_hand():
    from akt_core.losses import sa_mdrad_loss

    p = [softmax(r) for r in T]
    want = 3 / 10 * (5 / 6 * kl_mean_ref(ZA, p) + 1 / 6 * kl_mean_ref(Z, p))
    assert sa_mdrad_loss(t(ZA), t(Z), t(p)).item() == pytest.approx(want, rel=1e-12)


# ---- PeerAiD --------------------------------------------------------------------------------------
@pytest.mark.parametrize("gamma1,gamma2,tau_p", [(1.0, 0.1, 1.0), (0.5, 1.0, 2.0)])
def test_peeraid_peer_loss_by_hand(gamma1, gamma2, tau_p):
    """P = T (peer's adversarial logits), S(x') = ZA: CE(P, y) + gamma2 tau^2 KL(softmax(S/tau) || softmax(P/tau))."""
    from akt_core.losses import peeraid_peer_loss

    want = gamma1 * ce(T, Y) + gamma2 * tau_p**2 * kl_mean_ref(T, [softmax(r, tau_p) for r in ZA], tau_p)
    got = peeraid_peer_loss(t(T), t(ZA), ti(Y), gamma1, gamma2, tau_p).item()
    assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("lam1,temp", [(0.0, 5.0), (0.3, 2.0)])
def test_peeraid_student_loss_by_hand(lam1, temp):
    from akt_core.losses import peeraid_student_loss

    want = (lam1 * ce(ZA, Y) + temp**2 * kl_mean_ref(ZA, [softmax(r, temp) for r in TA], temp)
            + 0.5 * temp**2 * kl_mean_ref(ZA, [softmax(r, temp) for r in Z], temp))
    got = peeraid_student_loss(t(ZA), t(Z), t(TA), ti(Y), lam1, 1.0, 0.5, temp).item()
    assert got == pytest.approx(want, rel=1e-12)


def test_peeraid_gradients_flow_as_in_their_code():
    """The student loss never moves the peer (P(x') detached) but does move S(x) (not detached); the
    peer loss moves the student through its soft target (S(x') not detached)."""
    from akt_core.losses import peeraid_peer_loss, peeraid_student_loss

    s_adv, s_cln, p_adv = (t(v).requires_grad_(True) for v in (ZA, Z, TA))
    peeraid_student_loss(s_adv, s_cln, p_adv, ti(Y)).backward()
    assert p_adv.grad is None and s_cln.grad.abs().sum() > 0 and s_adv.grad.abs().sum() > 0
    s_adv, p_adv = (t(v).requires_grad_(True) for v in (ZA, TA))
    peeraid_peer_loss(p_adv, s_adv, ti(Y), 1.0, 0.1).backward()
    assert s_adv.grad.abs().sum() > 0 and p_adv.grad.abs().sum() > 0


# ---- NEO-KD-style ---------------------------------------------------------------------------------
def kl_ref(student, probs):
    """sum_c p_c (log p_c - log q_c), batch mean, written out."""
    tot = 0.0
    for z, pr in zip(student, probs):
        lq = log_softmax(z)
        tot += sum(p * (math.log(p) - l) for p, l in zip(pr, lq) if p > 0)
    return tot / len(student)


def test_orthogonal_labels_by_hand_and_disjoint_across_exits():
    from akt_core.losses import orthogonal_labels

    z = [[1.0, 2.0, 0.5, -1.0], [0.0, 0.3, 3.0, 1.0]]
    y, class_exit = [1, 3], [0, 1, 1, 0]  # classes 0, 3 -> exit 0; classes 1, 2 -> exit 1
    got0 = orthogonal_labels(t(z), ti(y), ti(class_exit), 0).tolist()
    p = softmax(z[0])  # row 0, exit 0: keep classes 0 and 3 (allotted) and 1 (true), renormalise
    s0 = p[0] + p[1] + p[3]
    assert got0[0] == pytest.approx([p[0] / s0, p[1] / s0, 0.0, p[3] / s0], rel=1e-12)
    got1 = orthogonal_labels(t(z), ti(y), ti(class_exit), 1).tolist()
    q = softmax(z[1])  # row 1, exit 1: keep classes 1, 2 and 3 (true)
    s = q[1] + q[2] + q[3]
    assert got1[1] == pytest.approx([0.0, q[1] / s, q[2] / s, q[3] / s], rel=1e-12)
    for row in range(2):  # apart from the true class, the exits' supports do not overlap
        support = [{c for c, v in enumerate(g[row]) if v > 0} - {y[row]} for g in (got0, got1)]
        assert not support[0] & support[1]


def test_neo_kd_loss_by_hand():
    """Two exits (so every exit's neighbours are both exits), K = 3, classes 0 and 2 on exit 0."""
    from akt_core.losses import neo_kd_loss

    clean, adv, class_exit = [Z, T], [ZA, TA], [0, 1, 0]
    nb = [[(a + b) / 2 for a, b in zip(softmax(r1), softmax(r2))] for r1, r2 in zip(Z, T)]

    def ortho(rows, i):
        out = []
        for r, y in zip(rows, Y):
            p = softmax(r)
            keep = [p[c] if (class_exit[c] == i or c == y) else 0.0 for c in range(3)]
            out.append([v / sum(keep) for v in keep])
        return out

    alpha, beta, gamma = 3.0, 1.0, [1.0, 2.0]
    want = 0.0
    for i in range(2):
        want += 0.5 * ce(clean[i], Y) + 0.5 * ce(adv[i], Y) + gamma[i] * (
            alpha * kl_ref(adv[i], nb) + beta * kl_ref(adv[i], ortho(clean[i], i)))
    got = neo_kd_loss([t(v) for v in clean], [t(v) for v in adv], ti(Y), ti(class_exit), alpha, beta, gamma)
    assert got.item() == pytest.approx(want / 2, rel=1e-12)
