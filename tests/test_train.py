"""The training loop: methods, determinism, resuming, the lr schedule, D_adv reconstruction."""
from __future__ import annotations

import copy
import shutil

import pytest
import torch
from conftest import make_model

from akt_core import methods as M
from akt_core import train as T
from akt_core.attacks import fgsm
from akt_core.data import load, to_float
from akt_core.evaluate import accuracy
from akt_core.inputs import dadv_images

pytestmark = pytest.mark.usefixtures("isolated")

EPS = 16 / 256
N = 192
CFG = {"epochs": 1, "batch_size": 64, "lr": 0.1, "momentum": 0.9, "lr_milestones": [0.5, 0.75],
       "weight_decay": 1e-4}


@pytest.fixture(scope="module")
def data():
    tr = load("synthetic", "train").subset(N)
    te = load("synthetic", "test").subset(64)
    g = torch.Generator().manual_seed(3)
    sign = (torch.randint(0, 3, (2, N, 3, 32, 32), generator=g) - 1).to(torch.int8)
    teacher = torch.randn(N, 10, generator=g)
    teacher_adv = torch.randn(2, N, 10, generator=g)
    return tr, te, sign, teacher, teacher_adv


def _inputs(data, method, augment=True, curve_adv=True):
    tr, te, sign, teacher, teacher_adv = data
    m = M.get(method)
    inp = T.TrainInputs(tr, augment, EPS, curve_x=te.x, curve_y=te.y)
    if m.uses_dadv:
        inp.dadv_sign = sign
    if m.teacher:
        inp.teacher = teacher
        inp.teacher_adv = teacher_adv if m.uses_dadv else None
    if curve_adv:
        inp.curve_adv = to_float(te.x).flip(-1)
    return inp


def _train(data, method, cfg=CFG, seed=0, **kw):
    m = M.get(method)
    return T.train_model(make_model(seed=seed), m, m.params, cfg, _inputs(data, method), seed, progress=False, **kw)


def _same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("method", ["cln", "adv", "adv-trans", "self-adv", "dist-cln"])
def test_methods_train_and_report_curves(method, data):
    res = _train(data, method)
    assert len(res.curves) == 1
    row = res.curves[0]
    assert row["epoch"] == 1 and 0 <= row["clean_acc"] <= 100 and 0 <= row["adv_acc"] <= 100
    assert row["train_loss"] > 0 and row["train_loss"] == row["train_loss"]  # finite, not NaN
    # 3 steps: lr drops at int(0.5 * 3) = 1 and int(0.75 * 3) = 2, so the last step runs at 0.001
    assert row["lr"] == pytest.approx(0.001)
    # the curve is measured on the returned weights
    final = make_model()
    final.load_state_dict(res.state_dict)
    assert accuracy(final, data[1].x, data[1].y) == row["clean_acc"]
    assert res.images_per_s > 0 and res.wall_s > 0 and res.cpu_s > 0  # CPU seconds: recorded beside the clock's
    assert all(not v.is_floating_point() or torch.isfinite(v).all() for v in res.state_dict.values())
    # weights changed from the initialisation
    assert not _same_state(res.state_dict, make_model().state_dict())


def test_no_curve_inputs_no_curve_columns(data):
    tr = data[0]
    res = T.train_model(make_model(), M.get("cln"), {}, CFG, T.TrainInputs(tr, False, EPS), 0, progress=False)
    assert set(res.curves[0]) == {"epoch", "lr", "train_loss", "wall_s"}


def test_clean_training_learns_synthetic(data):
    """Three epochs on 192 synthetic images beat chance (10 %) clearly."""
    res = _train(data, "cln", {**CFG, "epochs": 3, "lr_milestones": [0.9, 0.95]})
    assert res.curves[-1]["clean_acc"] > 25


@pytest.mark.parametrize("method", ["cln", "adv"])
def test_same_seed_bit_identical(method, data):
    a, b = _train(data, method), _train(data, method)
    assert _same_state(a.state_dict, b.state_dict)
    c = _train(data, method, seed=1)
    assert not _same_state(a.state_dict, c.state_dict)


def test_resume_from_epoch_one_matches_uninterrupted(data, tmp_path, monkeypatch):
    cfg = {**CFG, "epochs": 2}
    straight = _train(data, "adv", cfg)

    saved = []
    real_save = T.save_checked

    def save_and_copy(obj, path):
        real_save(obj, path)
        copy = tmp_path / f"epoch{obj['epoch']}.pt"
        shutil.copy(path, copy)
        saved.append(copy)

    monkeypatch.setattr(T, "save_checked", save_and_copy)
    partial = tmp_path / "partial.pt"
    with_partial = _train(data, "adv", cfg, partial=partial)
    monkeypatch.setattr(T, "save_checked", real_save)
    assert [p.name for p in saved] == ["epoch1.pt", "epoch2.pt"]
    assert _same_state(with_partial.state_dict, straight.state_dict)

    # a run killed after epoch 1: only the epoch-1 state is left; resume with a differently initialised model
    shutil.copy(saved[0], partial)
    m = M.get("adv")
    resumed = T.train_model(make_model(seed=99), m, m.params, cfg, _inputs(data, "adv"), 0,
                            partial=partial, progress=False)
    assert _same_state(resumed.state_dict, straight.state_dict)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]
    assert strip(resumed.curves) == strip(straight.curves)
    assert [r["epoch"] for r in resumed.curves] == [1, 2]
    assert resumed.cpu_s > 0  # the killed run's CPU seconds carried over in the saved state, plus epoch 2's


@pytest.mark.parametrize("method", ["cln", "adv"])
def test_a_deferred_adversarial_curve_is_the_one_scored_during_training(method, data):
    """Issue 21: a model trains while its curve source is still training and scores the adversarial
    curve afterwards, from each epoch's kept weights: the same rows and weights, bit for bit."""
    cfg, m = {**CFG, "epochs": 3}, M.get(method)
    online = _train(data, method, cfg)
    inp = _inputs(data, method, curve_adv=False)
    inp.defer_adv_curve = True
    later = T.train_model(make_model(), m, m.params, cfg, inp, 0, progress=False)
    assert sorted(later.snapshots) == [1, 2, 3] and all("adv_acc" not in r for r in later.curves)
    assert _same_state(later.snapshots[3], later.state_dict)
    T.score_adv_curve(make_model(seed=99), later, to_float(data[1].x).flip(-1), data[1].y)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]
    assert strip(later.curves) == strip(online.curves) and later.snapshots == {}
    assert len({r["adv_acc"] for r in online.curves}) > 1  # the epochs differ, so a mix-up would show
    assert _same_state(later.state_dict, online.state_dict)


def test_a_run_killed_while_deferring_resumes_and_scores_the_kept_epochs(data, tmp_path, monkeypatch):
    """The kept weights travel in the saved state: resumed with the curve source now at hand, the
    epochs trained before the kill are scored from them, the rest during training."""
    cfg, m = {**CFG, "epochs": 2}, M.get("cln")
    online = _train(data, "cln", cfg)
    saved = []
    real_save = T.save_checked
    monkeypatch.setattr(T, "save_checked", lambda obj, path: (real_save(obj, path), saved.append(copy.deepcopy(obj))))
    inp = _inputs(data, "cln", curve_adv=False)
    inp.defer_adv_curve = True
    partial = tmp_path / "p.pt"
    T.train_model(make_model(), m, m.params, cfg, inp, 0, partial=partial, progress=False)
    monkeypatch.setattr(T, "save_checked", real_save)
    assert sorted(saved[0]["snapshots"]) == [1]
    real_save(saved[0], partial)  # killed after epoch 1
    resumed = T.train_model(make_model(seed=99), m, m.params, cfg, _inputs(data, "cln"), 0, partial=partial,
                            progress=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]
    assert strip(resumed.curves) == strip(online.curves) and resumed.snapshots == {}


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_partial_is_discarded_with_a_warning_never_resumed(damage, data, tmp_path):
    """One flipped bit or a cut file: the saved state fails its checksum, is removed, and the model
    trains from scratch (the same bits as a run that never had a saved state)."""
    cfg = {**CFG, "epochs": 1}
    partial = tmp_path / "p.pt"
    _train(data, "cln", cfg, partial=partial)
    blob = bytearray(partial.read_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 0x10
    else:
        blob = blob[: len(blob) // 2]
    partial.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match=f"saved training state {partial} is damaged"):
        again = _train(data, "cln", {**cfg, "epochs": 2}, partial=partial)
    assert _same_state(again.state_dict, _train(data, "cln", {**cfg, "epochs": 2}).state_dict)


def test_finished_partial_does_no_more_training(data, tmp_path):
    cfg = {**CFG, "epochs": 1}
    partial = tmp_path / "p.pt"
    first = _train(data, "cln", cfg, partial=partial)
    again = T.train_model(make_model(seed=5), M.get("cln"), {}, cfg, _inputs(data, "cln"), 0,
                          partial=partial, progress=False)
    assert _same_state(first.state_dict, again.state_dict)
    assert len(again.curves) == 1


def test_partial_as_string_path(data, tmp_path):
    res = _train(data, "cln", partial=str(tmp_path / "p.pt"))
    assert (tmp_path / "p.pt").exists() and len(res.curves) == 1


def test_bad_source_choice(data):
    m = M.get("adv")
    with pytest.raises(ValueError, match="source_choice"):
        T.train_model(make_model(), m, {**m.params, "source_choice": "all"}, CFG, _inputs(data, "adv"), 0,
                      progress=False)


# ---- schedule -------------------------------------------------------------------------------
def test_lr_at_schedule():
    total, ms = 100, [0.5, 0.75]
    assert T.lr_at(0, total, 0.1, ms) == 0.1
    assert T.lr_at(49, total, 0.1, ms) == 0.1
    assert T.lr_at(50, total, 0.1, ms) == pytest.approx(0.01, rel=1e-12)
    assert T.lr_at(74, total, 0.1, ms) == pytest.approx(0.01, rel=1e-12)
    assert T.lr_at(75, total, 0.1, ms) == pytest.approx(0.001, rel=1e-12)
    assert T.lr_at(99, total, 0.1, ms) == pytest.approx(0.001, rel=1e-12)
    # an odd total: milestones at int(0.5 * 7) = 3 and int(0.75 * 7) = 5
    assert [round(T.lr_at(s, 7, 1.0, ms), 12) for s in range(7)] == [1, 1, 1, 0.1, 0.1, 0.01, 0.01]


# ---- D_adv --------------------------------------------------------------------------------
@pytest.mark.parametrize("eps", [16 / 256, 0.1, 0.3])
def test_dadv_images_rebuild_fgsm_bit_for_bit(eps, model):
    g = torch.Generator().manual_seed(4)
    x_u8 = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=g)
    x_u8[0] = 0
    x_u8[1] = 255
    x_u8[2, :, :16] = 250
    y = torch.randint(0, 10, (16,), generator=g)
    x = to_float(x_u8)
    adv = fgsm(model, x, y, eps)
    sign = torch.sign(adv - x).to(torch.int8)
    assert set(sign.unique().tolist()) <= {-1, 0, 1}
    rebuilt = dadv_images(x_u8, sign, eps)
    assert rebuilt.dtype == torch.float32
    assert torch.equal(rebuilt, adv)


def test_make_batch_halves_and_source_consistency(data):
    """Half clean, half adversarial; x_adv and t_adv come from the same static source per example."""
    tr, te, sign, teacher, teacher_adv = data
    m = M.get("adv-trans")
    inp = _inputs(data, "adv-trans", augment=False)
    idx = torch.arange(10, 74)
    g = torch.Generator().manual_seed(0)
    b = T.make_batch(make_model(), m, m.params, inp, idx, 0, g, False)
    cidx, aidx = idx[:32], idx[32:]
    assert torch.equal(b.x, to_float(tr.x[cidx])) and torch.equal(b.y, tr.y[cidx])
    assert torch.equal(b.y_adv, tr.y[aidx]) and torch.equal(b.t, teacher[cidx])
    used = []
    for i, n in enumerate(aidx):
        cands = [s for s in range(2) if torch.equal(b.x_adv[i], dadv_images(tr.x[n], sign[s, n], EPS))]
        assert len(cands) == 1
        used.append(cands[0])
        assert torch.equal(b.t_adv[i], teacher_adv[cands[0], n])
    assert set(used) == {0, 1}  # "random": both sources drawn
    # "cycle": source epoch mod S for the whole epoch
    b3 = T.make_batch(make_model(), m, {**m.params, "source_choice": "cycle"}, inp, idx, 3, g, False)
    assert torch.equal(b3.x_adv, dadv_images(tr.x[aidx], sign[1, aidx], EPS))
    assert torch.equal(b3.t_adv, teacher_adv[1, aidx])


def test_make_batch_self_adv_is_fgsm_on_current_model(data):
    tr = data[0]
    m = M.get("self-adv")
    model = make_model().train()
    inp = _inputs(data, "self-adv", augment=False)
    idx = torch.arange(20)
    b = T.make_batch(model, m, m.params, inp, idx, 0, torch.Generator(), False)
    assert torch.equal(b.x_adv, fgsm(model, to_float(tr.x[10:20]), tr.y[10:20], EPS))
    assert model.training and b.t is None


def test_methods_registry():
    paper = {"cln", "self-adv", "adv", "dist-cln", "dist-adv", "adv-trans"}  # the paper's names, as keys
    assert set(M.METHODS) == paper | {"ard", "rslad", "sa-mdrad", "peeraid", "neo-kd", "iad"}  # ... and the later methods
    assert M.get("ard").params == {"alpha": 1.0, "tau": 30.0, "steps": 10, "step": 0.25}  # ARD's defaults
    iad = M.get("iad")  # IAD-I's defaults: alpha 1, beta 0.1, tau 1, introspection from epoch 60 of 200; ARD's attack
    assert iad.params == {"alpha": 1.0, "beta": 0.1, "tau": 1.0, "warmup": 0.3, "steps": 10, "step": 0.25}
    assert iad.inputs == ("live_teacher",) and iad.inner is M.get("ard").inner and iad.teacher == "Res26(adv)"
    assert M.get("ard").live_teacher and M.get("rslad").live_teacher and M.get("sa-mdrad").static_teachers == (26, 20, 14)
    assert all(M.get(k).inner is None for k in paper)
    peer = M.get("peeraid")  # PeerAiD's CIFAR-10 values; a Res26 peer, trained in the same run (no teacher)
    assert peer.peer and peer.teacher is None and not peer.live_teacher and peer.params["peer_depth"] == 26
    assert (peer.params["gamma2"], peer.params["lam1"], peer.params["temperature"]) == (0.1, 0.0, 5.0)
    neo = M.get("neo-kd")  # NEO-KD's alpha = 3, beta = 1, gamma = 1 (MNIST, CIFAR-10); its 7 attack steps
    assert neo.multi_exit and neo.teacher is None
    assert (neo.params["alpha"], neo.params["beta"], neo.params["steps"]) == (3.0, 1.0, 7)
    assert M.get("adv-trans").params == {"alpha": 0.1, "lam": 0.5, "t1": 3.0, "t2": 5.0, "source_choice": "random"}
    assert M.get("dist-adv").teacher == "Res26(adv)" and M.get("dist-cln").teacher == "Res26(cln)"
    assert M.get("adv").adv_share == 0.5 and M.get("adv").uses_dadv and not M.get("self-adv").uses_dadv
    from akt_core import AktError
    with pytest.raises(AktError, match="'bogus'"):
        M.get("bogus")


@pytest.mark.parametrize("method", ["adv-trans", "dist-cln"])
def test_distillation_from_an_oracle_teacher_learns(method, data):
    """With teacher logits that encode the true label, the distilled student learns (above chance)."""
    tr = data[0]
    oracle = 8.0 * torch.nn.functional.one_hot(tr.y, 10).float()
    m = M.get(method)
    inp = _inputs(data, method)
    inp.teacher = oracle
    if m.uses_dadv:
        inp.teacher_adv = oracle.expand(2, -1, -1).clone()
    cfg = {**CFG, "epochs": 3, "lr_milestones": [0.9, 0.95]}
    res = T.train_model(make_model(), m, m.params, cfg, inp, 0, progress=False)
    assert res.curves[-1]["clean_acc"] > 20  # chance is 10 %


# ---- beyond the paper: methods with a live teacher and an inner attack (ARD, RSLAD) ---------------
@pytest.mark.parametrize("method", ["ard", "rslad"])
def test_live_teacher_methods_train_towards_a_trained_teacher(method, data, trained_model):
    """With their own parameters the training loss falls epoch after epoch. (Distilling on adversarial
    inputs alone learns the toy task slowly: after 9 steps the student is still near chance, so
    accuracy is checked below with ARD's hard-label term switched on.)"""
    tr, te = data[0], data[1]
    m = M.get(method)
    inp = T.TrainInputs(tr, True, EPS, curve_x=te.x, curve_y=te.y, teacher_model=trained_model)
    res = T.train_model(make_model(), m, m.params, {**CFG, "epochs": 3, "lr_milestones": [0.9, 0.95]}, inp, 0,
                        progress=False)
    losses = [c["train_loss"] for c in res.curves]
    assert losses[0] > losses[1] > losses[2] > 0
    assert all(p.grad is None for p in trained_model.parameters())  # the teacher is never trained


def test_ard_with_its_hard_label_term_learns(data, trained_model):
    tr, te = data[0], data[1]
    m = M.get("ard")
    inp = T.TrainInputs(tr, True, EPS, curve_x=te.x, curve_y=te.y, teacher_model=trained_model)
    res = T.train_model(make_model(), m, {**m.params, "alpha": 0.5, "tau": 2.0},
                        {**CFG, "epochs": 3, "lr_milestones": [0.9, 0.95]}, inp, 0, progress=False)
    assert accuracy(trained_model, te.x, te.y) > 50
    assert res.curves[-1]["clean_acc"] > 30  # chance is 10 %


def test_live_teacher_is_required(data):
    m = M.get("ard")
    with pytest.raises(ValueError, match="live teacher"):
        T.train_model(make_model(), m, m.params, CFG, T.TrainInputs(data[0], True, EPS), 0, progress=False)


def test_ard_inner_attack_runs_the_student_in_train_mode_and_rslad_in_eval_mode(data, trained_model):
    tr = data[0]
    x, y = to_float(tr.x[:16]), tr.y[:16]
    seen: list[bool] = []
    student = make_model().train()
    hook = student.register_forward_hook(lambda mod, i, o: seen.append(mod.training))
    b = M.StepBatch(x=x, y=y, t=trained_model(x).detach())
    g = torch.Generator().manual_seed(0)
    for name, mode in (("ard", True), ("rslad", False)):
        seen.clear()
        m = M.get(name)
        x_adv = m.inner(student, b, m.params, EPS, g)
        assert seen == [mode] * m.params["steps"]
        assert student.training  # restored
        assert (x_adv - x).abs().max() <= EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
        assert all(p.grad is None for p in student.parameters())
    hook.remove()


def test_sa_mdrad_trains_on_cached_multi_teacher_logits(data):
    tr, te = data[0], data[1]
    m = M.get("sa-mdrad")
    oracle = 6.0 * torch.nn.functional.one_hot(tr.y, 10).float()
    g = torch.Generator().manual_seed(5)
    teachers = torch.stack([oracle, oracle + torch.randn(N, 10, generator=g), torch.randn(N, 10, generator=g)], 1)
    inp = T.TrainInputs(tr, True, EPS, curve_x=te.x, curve_y=te.y, teacher=teachers)
    res = T.train_model(make_model(), m, m.params, {**CFG, "epochs": 3, "lr_milestones": [0.9, 0.95]}, inp, 0,
                        progress=False)
    losses = [c["train_loss"] for c in res.curves]
    assert losses[0] > losses[-1] > 0
    with pytest.raises(ValueError, match="static teachers"):
        T.train_model(make_model(), m, m.params, CFG, T.TrainInputs(tr, True, EPS, teacher=oracle), 0, progress=False)


@pytest.mark.parametrize("method", ["cln", "self-adv", "adv-trans"])
def test_augmented_batch_is_the_float_augmentation_of_before(method, data):
    """uint8 images (and int8 D_adv signs) are cropped before they become float; the batch is bit for
    bit what cropping their float copies gave (the order of the generator's draws is unchanged)."""
    from akt_core.data import augment

    tr, _, sign, _, _ = data
    m = M.get(method)
    inp = _inputs(data, method, augment=True)
    idx = torch.arange(64)
    b = T.make_batch(make_model(), m, m.params, inp, idx, 0, torch.Generator().manual_seed(5), False)
    g = torch.Generator().manual_seed(5)  # the float path of before, draw for draw
    n_adv = int(len(idx) * m.adv_share)
    cidx, aidx = idx[: len(idx) - n_adv], idx[len(idx) - n_adv:]
    assert torch.equal(b.x, augment(to_float(tr.x[cidx]), g))
    if method == "adv-trans":
        src = torch.randint(sign.shape[0], (n_adv,), generator=g)
        assert torch.equal(b.x_adv, augment(dadv_images(tr.x[aidx], sign[src, aidx], EPS), g))


def test_allocator_keeps_freed_memory_once():
    from akt_core import allocator

    first = allocator.keep_freed_memory()
    assert allocator.keep_freed_memory() is first  # once per process, same answer
    import sys
    assert first is sys.platform.startswith("linux")  # glibc on the Linux machines the project runs on


@pytest.mark.parametrize("method", ["cln", "self-adv", "adv", "dist-adv", "adv-trans"])
@pytest.mark.parametrize("source_choice", ["random", "cycle"])
def test_drawing_an_epoch_at_once_is_bit_for_bit_drawing_step_by_step(method, source_choice, data, monkeypatch):
    """EpochDraws takes the generator's numbers in the order the steps took them one by one."""
    m = M.get(method)
    params = {**m.params, "source_choice": source_choice} if "source_choice" in m.params else m.params
    cfg = {**CFG, "epochs": 2}
    run = lambda: T.train_model(make_model(), m, params, cfg, _inputs(data, method), 0, progress=False)  # noqa: E731
    planned = run()
    assert T.epoch_draws(m, params, _inputs(data, method), N, 64, 0, torch.Generator().manual_seed(0)) is not None
    monkeypatch.setattr(T, "epoch_draws", lambda *a, **k: None)  # every draw in its step, as before
    stepwise = run()
    assert _same_state(planned.state_dict, stepwise.state_dict)
    assert planned.curves[-1]["train_loss"] == stepwise.curves[-1]["train_loss"]


def _later_method_run(method: str, data, teacher_model):
    """A fresh model and inputs for one of the later methods (each reads a different input)."""
    from akt_core.models import MultiExitResNet

    tr, te = data[0], data[1]
    m = M.get(method)
    inp = T.TrainInputs(tr, True, EPS, curve_x=te.x, curve_y=te.y)
    if m.live_teacher:
        inp.teacher_model = teacher_model
    if m.static_teachers:
        inp.teacher = torch.randn(N, len(m.static_teachers), 10, generator=torch.Generator().manual_seed(7))
    if m.peer:
        inp.peer_model = make_model(seed=1)
    torch.manual_seed(0)
    model = MultiExitResNet(8, 10, 3) if m.multi_exit else make_model()
    return model, m, inp


@pytest.mark.parametrize("method", ["ard", "rslad", "sa-mdrad", "peeraid", "neo-kd", "iad"])
def test_inner_attack_methods_draw_an_epoch_at_once_bit_for_bit(method, data, trained_model, monkeypatch):
    """The later methods' steps also draw NEO-KD's class split and the inner attack's random start
    (U[0, 1) for ARD and NEO-KD, N(0, 1) for the RSLAD family): drawn for the epoch at its start, in
    the steps' order, they give the weights of drawing them step by step, bit for bit."""
    cfg = {**CFG, "epochs": 2}
    params = {**M.get(method).params, "steps": 2}  # the draws do not depend on the inner attack's length

    def run():
        model, m, inp = _later_method_run(method, data, trained_model)
        return T.train_model(model, m, params, cfg, inp, 0, progress=False)

    planned = run()
    model, m, inp = _later_method_run(method, data, trained_model)
    plan = T.epoch_draws(m, params, inp, N, 64, 0, torch.Generator().manual_seed(0), 10)
    assert plan.parts["noise"].shape == (N // 64, 64, 3, 32, 32)
    assert (plan.parts["noise"].min() < 0) == (m.inner_start == "normal")  # the start's distribution
    assert ("class_exit" in plan.parts) == m.multi_exit
    monkeypatch.setattr(T, "epoch_draws", lambda *a, **k: None)  # every draw in its step, as before
    stepwise = run()
    assert _same_state(planned.state_dict, stepwise.state_dict)
    assert planned.curves[-1]["train_loss"] == stepwise.curves[-1]["train_loss"]


def test_iad_introspects_only_after_its_warm_up(data, trained_model):
    """IAD's step loss is ``iad_loss`` on the batch, with the introspection term off before
    ``warmup`` of the steps and on from there (``StepBatch.progress``), the teacher run on x'."""
    from akt_core.losses import iad_loss

    model, m, inp = _later_method_run("iad", data, trained_model)
    b = T.make_batch(model, m, m.params, inp, torch.arange(64), 0, torch.Generator().manual_seed(4), False)
    assert b.teacher is trained_model and torch.allclose(b.t, trained_model(b.x).detach(), atol=1e-5)
    p = m.params

    def want(introspect):
        with torch.no_grad():
            return iad_loss(model(b.x_adv), model(b.x), b.y, b.t, trained_model(b.x_adv), introspect,
                            p["alpha"], p["beta"], p["tau"]).item()

    model.eval()  # no BatchNorm statistics move between the calls
    for done, introspect in ((0.0, 0.0), (p["warmup"] - 1e-3, 0.0), (p["warmup"], 1.0), (0.9, 1.0)):
        b.progress = torch.tensor(done)
        with torch.no_grad():
            assert m.loss(model, b, p).item() == pytest.approx(want(introspect), rel=1e-6)
    assert want(1.0) != pytest.approx(want(0.0))  # the switch changes the loss


def test_a_pre_drawn_start_is_the_start_the_generator_gives():
    """``noise=`` is the draw ``generator=`` makes (PGD's uniform start, RSLAD's normal one), and a
    start of the wrong shape is refused."""
    from akt_core import AktError
    from akt_core.attacks import pgd, pgd_kl

    torch.manual_seed(0)
    model, x, y = make_model().eval(), torch.rand(4, 3, 32, 32), torch.randint(0, 10, (4,))
    u = torch.rand(x.shape, generator=torch.Generator().manual_seed(2))
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    assert torch.equal(pgd(model, x, y, EPS, steps=2, generator=torch.Generator().manual_seed(2)),
                       pgd(model, x, y, EPS, steps=2, noise=u))
    p = torch.softmax(torch.randn(4, 10), 1)
    assert torch.equal(pgd_kl(model, x, p, EPS, steps=2, generator=torch.Generator().manual_seed(2)),
                       pgd_kl(model, x, p, EPS, steps=2, noise=z))
    with pytest.raises(AktError, match="pre-drawn random start of shape"):
        pgd(model, x, y, EPS, steps=2, noise=u[:2])
