"""The paper's losses, each a pure function of logits and labels.

``J`` is the cross-entropy; against a soft label distribution ``p`` it is ``-sum_c p_c log q_c``
(KL divergence up to the constant entropy of ``p``, so the same gradients). Means are over the batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """J(q, p) = mean_i -sum_c p_ic log softmax(logits)_ic, for soft labels ``target_probs``."""
    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def soft_labels(teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """y^T = softmax(f_teacher(x) / T): the teacher's soft labels at temperature T (Sec. 2.3)."""
    return F.softmax(teacher_logits / temperature, dim=1)


def ensemble_adversarial_loss(logits_clean: torch.Tensor, y_clean: torch.Tensor,
                              logits_adv: torch.Tensor, y_adv: torch.Tensor,
                              lam: float = 0.5) -> torch.Tensor:
    """Eq. (10): lambda * J(f(x), y) + (1 - lambda) * J(f(x'), y), with x' drawn from D_adv.

    Stage 1 (ensemble adversarial training, Algorithm 1): D_adv holds FGSM examples of the
    training set crafted once on the static pre-trained models. The same form with x' crafted on
    the model itself is Res8(self-adv).
    """
    return lam * F.cross_entropy(logits_clean, y_clean) + (1 - lam) * F.cross_entropy(logits_adv, y_adv)


def distillation_loss(student_logits: torch.Tensor, y: torch.Tensor, teacher_logits: torch.Tensor,
                      temperature: float = 3.0, alpha: float = 0.1) -> torch.Tensor:
    """Hinton et al. (2015) distillation: alpha * J(f_s(x), y) + (1 - alpha) * T^2 * J(f_s(x)/T, y^T).

    y^T = softmax(f_t(x)/T); the T^2 factor keeps the soft term's gradients on the hard term's
    scale. Res8(dist-cln) and Res8(dist-adv) use it with T = 3, alpha = 0.1 (inferred: book/setup.md);
    each half of Eq. (11) has this form.
    """
    soft = soft_cross_entropy(student_logits / temperature, soft_labels(teacher_logits, temperature))
    return alpha * F.cross_entropy(student_logits, y) + (1 - alpha) * temperature**2 * soft


def adversarial_transfer_loss(student_clean: torch.Tensor, y_clean: torch.Tensor,
                              teacher_clean: torch.Tensor, student_adv: torch.Tensor,
                              y_adv: torch.Tensor, teacher_adv: torch.Tensor, alpha: float = 0.1,
                              lam: float = 0.5, t1: float = 3.0, t2: float = 5.0) -> torch.Tensor:
    """Eq. (11), stage 2 (Algorithm 2), the improved distillation of Res8(adv-trans):

    lambda * [alpha * J(f_s(x), y) + (1 - alpha) * T1^2 * J(f_s(x)/T1, y^T1)]
    + (1 - lambda) * [alpha * J(f_s(x'), y) + (1 - alpha) * T2^2 * J(f_s(x')/T2, y^T2)]

    with y^T1 = softmax(f_t(x)/T1) on clean data and y^T2 = softmax(f_t(x')/T2) on D_adv, where f_t
    is the stage-1 teacher Res26(adv). Paper's values: T1 = 3, T2 = 5, alpha = 0.1, lambda = 0.5.
    """
    return (lam * distillation_loss(student_clean, y_clean, teacher_clean, t1, alpha)
            + (1 - lam) * distillation_loss(student_adv, y_adv, teacher_adv, t2, alpha))


# ---- later adversarial-distillation methods (beyond the paper; the book's page "Beyond the paper") --
def kl_mean(student_logits: torch.Tensor, target_probs: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(p || softmax(z / T)) with PyTorch's default ``nn.KLDivLoss()`` reduction: summed over the
    batch and the classes, divided by batch x classes: the mean ARD's public code uses (Goldblum et al. 2020)."""
    log_q = F.log_softmax(student_logits / temperature, dim=1)
    return (torch.xlogy(target_probs, target_probs) - target_probs * log_q).mean()


def ard_loss(student_adv: torch.Tensor, student_clean: torch.Tensor, y: torch.Tensor,
             teacher_clean: torch.Tensor, alpha: float = 1.0, tau: float = 30.0) -> torch.Tensor:
    """ARD (Goldblum et al., AAAI 2020; goldblum/AdversariallyRobustDistillation, main.py):

    alpha * tau^2 * KL_mean(softmax(T(x)/tau) || softmax(S(x')/tau)) + (1 - alpha) * CE(S(x), y),

    the student's adversarial output matched to the teacher's clean one. Their defaults: alpha = 1
    (no hard-label term), tau = 30.
    """
    soft = kl_mean(student_adv, soft_labels(teacher_clean, tau), tau)
    return alpha * tau**2 * soft + (1 - alpha) * F.cross_entropy(student_clean, y)


def kl_rows(student_logits: torch.Tensor, target_probs: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(p_i || softmax(z_i / T)) of each row, summed over the classes: shape (N,)."""
    log_q = F.log_softmax(student_logits / temperature, dim=1)
    return (torch.xlogy(target_probs, target_probs) - target_probs * log_q).sum(dim=1)


def iad_loss(student_adv: torch.Tensor, student_clean: torch.Tensor, y: torch.Tensor, teacher_clean: torch.Tensor,
             teacher_adv: torch.Tensor, introspect: torch.Tensor | float, alpha: float = 1.0, beta: float = 0.1,
             tau: float = 1.0) -> torch.Tensor:
    """IAD-I (Zhu et al., ICLR 2022; ZFancy/IAD, IAD-I.py):

    alpha * tau^2 * mean_i KL(softmax(T(x_i)/tau) || softmax(S(x'_i)/tau))
    + introspect * alpha * mean_i (1 - a_i) KL(softmax(S(x_i)) || softmax(S(x'_i)))
    + (1 - alpha) * CE(S(x), y),     a_i = P_T(y_i | x'_i)^beta,

    KL summed over the classes and averaged over the batch (their ``KLDivLoss(reduce=False)``, summed
    per row). ``a_i`` is a constant (their ``.item()``); the student's clean output S(x) is the target
    of the introspection term and keeps its gradient, as in their code. ``introspect`` is 0 before
    their warm-up ends (epoch 60 of 200) and 1 after. Their defaults: alpha = 1, beta = 0.1, tau = 1.
    """
    teach = kl_rows(student_adv, soft_labels(teacher_clean, tau), tau).mean()
    trust = F.softmax(teacher_adv, dim=1).gather(1, y[:, None]).squeeze(1).pow(beta).detach()
    intro = ((1 - trust) * kl_rows(student_adv, F.softmax(student_clean, dim=1))).mean()
    return (alpha * tau**2 * teach + introspect * alpha * intro
            + (1 - alpha) * F.cross_entropy(student_clean, y))


def rslad_loss(student_adv: torch.Tensor, student_clean: torch.Tensor, teacher_clean: torch.Tensor) -> torch.Tensor:
    """RSLAD (Zi et al., ICCV 2021; zibojia/RSLAD, rslad_loss.py and the training script):

    (K / 10) * [5/6 * KL_mean(T(x) || S(x')) + 1/6 * KL_mean(T(x) || S(x))], tau = 1,

    robust soft labels softmax(T(x)) from the teacher's clean logits and no cross-entropy term.
    The factor K/10 (K classes) is their x10 on CIFAR-100, which compensates the mean over classes;
    their code adds 1e-5 inside the teacher's log, which we leave out (exact KL).
    """
    p = soft_labels(teacher_clean, 1.0)
    scale = student_adv.shape[1] / 10
    return scale * (5 / 6 * kl_mean(student_adv, p) + 1 / 6 * kl_mean(student_clean, p))


def rectify(teacher_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Dynamic rectification (Amik et al. 2022, as SA-MDRAD uses it): where a teacher's top class is
    not the true one, swap the two logits, so the rectified distribution ranks y first and keeps the
    rest of the teacher's "dark knowledge" as it was. Rows already right are unchanged."""
    z = teacher_logits.clone()
    top = z.argmax(dim=1)
    rows = torch.arange(len(z), device=z.device)
    z_top, z_y = z[rows, top].clone(), z[rows, y].clone()
    z[rows, top], z[rows, y] = z_y, z_top
    return z


def adaptive_fusion(teacher_logits: torch.Tensor, y: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """SA-MDRAD-style soft labels from M teachers, ``teacher_logits`` (N, M, K): each teacher's
    rectified distribution softmax(rectify(z_m) / T), weighted per sample by softmax over teachers of
    -CE(z_m, y) (the teachers that are right and sure about this sample weigh most). Our reading of
    Li et al. (2024), whose code is not public. Returns (N, K) probabilities."""
    n, m, k = teacher_logits.shape
    flat = teacher_logits.reshape(n * m, k)
    y_rep = y.repeat_interleave(m)
    ce = F.cross_entropy(flat, y_rep, reduction="none").view(n, m)
    w = F.softmax(-ce, dim=1)  # (N, M)
    probs = F.softmax(rectify(flat, y_rep) / temperature, dim=1).view(n, m, k)
    return (w.unsqueeze(2) * probs).sum(dim=1)


def sa_mdrad_loss(student_adv: torch.Tensor, student_clean: torch.Tensor, fused_probs: torch.Tensor) -> torch.Tensor:
    """SA-MDRAD-style: RSLAD's form with the fused multi-teacher soft labels in place of one robust
    teacher's, (K / 10) * [5/6 * KL_mean(p || S(x')) + 1/6 * KL_mean(p || S(x))]. Our reading: the
    paper also distils features, which we leave out (logits only)."""
    scale = student_adv.shape[1] / 10
    return scale * (5 / 6 * kl_mean(student_adv, fused_probs) + 1 / 6 * kl_mean(student_clean, fused_probs))


def peeraid_peer_loss(peer_adv: torch.Tensor, student_adv: torch.Tensor, y: torch.Tensor,
                      gamma1: float = 1.0, gamma2: float = 0.1, tau_p: float = 1.0) -> torch.Tensor:
    """PeerAiD's peer loss (Jung et al., CVPR 2024; jaewonalive/PeerAiD, main.py ``train_kd``):

    gamma1 * CE(P(x'), y) + gamma2 * tau_p^2 * KL_mean(softmax(S(x')/tau_p) || softmax(P(x')/tau_p)),

    the peer P learns the student's own adversarial examples x', pulled towards the student's output
    on them. ``student_adv`` is not detached (as in their code: the term also moves the student).
    Their values: gamma1 = 1, gamma2 = 0.1 on CIFAR-10 (1 on CIFAR-100), tau_p = 1.
    """
    soft = kl_mean(peer_adv, F.softmax(student_adv / tau_p, dim=1), tau_p)
    return gamma1 * F.cross_entropy(peer_adv, y) + gamma2 * tau_p**2 * soft


def peeraid_student_loss(student_adv: torch.Tensor, student_clean: torch.Tensor, peer_adv: torch.Tensor,
                         y: torch.Tensor, lam1: float = 0.0, lam2: float = 1.0, lam3: float = 1.0,
                         temperature: float = 5.0) -> torch.Tensor:
    """PeerAiD's student loss (jaewonalive/PeerAiD, main.py ``train_kd``), T = ``temperature``:

    lam1 * CE(S(x'), y) + lam2 * T^2 * KL_mean(softmax(P(x')/T) || softmax(S(x')/T))
    + lam3 * T^2 * KL_mean(softmax(S(x)/T) || softmax(S(x')/T)),

    the peer's output on x' detached, the student's clean output not (as in their code). Their
    values: lam1 = 0, lam2 = lam3 = 1, T = 5.
    """
    T = temperature
    peer = kl_mean(student_adv, F.softmax(peer_adv.detach() / T, dim=1), T)
    own = kl_mean(student_adv, F.softmax(student_clean / T, dim=1), T)
    return lam1 * F.cross_entropy(student_adv, y) + lam2 * T**2 * peer + lam3 * T**2 * own


def kl_batchmean(student_logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """KL(p || softmax(z)) summed over classes, averaged over the batch (``reduction="batchmean"``)."""
    return (torch.xlogy(target_probs, target_probs) - target_probs * F.log_softmax(student_logits, dim=1)).sum(1).mean()


def neighbour_labels(clean_exits: list[torch.Tensor], i: int) -> torch.Tensor:
    """NKD's teacher for exit ``i`` (0-based): the mean of the softmax outputs on clean x of the exits
    i-1, i, i+1 that exist (our reading: the paper's text names i-1 and i+1; we keep exit i itself, so
    the first and last exits are not taught by one weaker or one stronger neighbour alone)."""
    nb = [clean_exits[j] for j in (i - 1, i, i + 1) if 0 <= j < len(clean_exits)]
    return torch.stack([F.softmax(z, dim=1) for z in nb]).mean(0)


def orthogonal_labels(clean_logits: torch.Tensor, y: torch.Tensor, class_exit: torch.Tensor, i: int) -> torch.Tensor:
    """EOKD's soft label for exit ``i`` (0-based): softmax(f_i(x)) kept on the true class and on the
    non-true classes allotted to exit i (``class_exit[c] == i``), zero elsewhere, renormalised. The
    allotment partitions the non-true classes across exits, so the exits' soft labels are orthogonal
    apart from the true class."""
    keep = (class_exit.unsqueeze(0) == i) | F.one_hot(y, clean_logits.shape[1]).bool()
    p = F.softmax(clean_logits, dim=1) * keep
    return p / p.sum(dim=1, keepdim=True)


def neo_kd_loss(clean_exits: list[torch.Tensor], adv_exits: list[torch.Tensor], y: torch.Tensor,
                class_exit: torch.Tensor, alpha: float = 3.0, beta: float = 1.0,
                gamma: tuple[float, ...] | list[float] = (1.0, 1.0, 1.0)) -> torch.Tensor:
    """NEO-KD (Ham et al., NeurIPS 2023; no public code: our reading, "NEO-KD-style"):

    (1/L) sum_i [ 1/2 J(f_i(x), y) + 1/2 J(f_i(x'), y)
                  + gamma_i * (alpha * KL(NKD_i || f_i(x')) + beta * KL(EOKD_i || f_i(x'))) ]

    over the L exits, NKD_i = ``neighbour_labels``, EOKD_i = ``orthogonal_labels`` (both from clean x,
    detached), KL per sample (batch mean), temperature 1. Their values: alpha = 3, beta = 1, gamma = 1
    on MNIST and CIFAR-10. The half clean / half adversarial cross-entropy and the 1/L are ours (Hu
    et al.'s multi-exit adversarial training sums 1/2 clean + 1/2 adversarial over exits).
    """
    total = clean_exits[0].new_zeros(())
    for i, (zc, za) in enumerate(zip(clean_exits, adv_exits)):
        nkd = kl_batchmean(za, neighbour_labels(clean_exits, i).detach())
        eokd = kl_batchmean(za, orthogonal_labels(zc.detach(), y, class_exit, i))
        total = total + 0.5 * F.cross_entropy(zc, y) + 0.5 * F.cross_entropy(za, y) + gamma[i] * (alpha * nkd + beta * eokd)
    return total / len(clean_exits)
