"""Beyond the paper: white-box PGD-20 / AutoAttack and the eps sweep, on the tiny pipeline's models."""
from __future__ import annotations

import copy

import pytest
import torch

from akt_core import AktError, attacks
from akt_core import beyond as R
from akt_core import graph as G
from akt_core import profiles as P
from akt_core import results as RS
from akt_core import runner as RN
from akt_core.evaluate import correct
from akt_core.store import Store

pytestmark = pytest.mark.usefixtures("isolated")


def test_needs_cover_every_variant_attack_and_eps():
    wb = R.needs("whitebox", "mnist", "smoke")  # smoke runs AutoAttack on a few images
    assert {(n.attack, round(n.eps, 6)) for n in wb} == {(a, round(e, 6)) for a in R.WHITEBOX_ATTACKS
                                                          for e in R.WHITEBOX_EPS.values()
                                                          if a not in R.AUTOATTACK_BUILD}  # its own build
    assert {n.target for n in wb if n.attack == "PGD-20"} == set(G.VARIANTS)
    assert {n.target for n in wb if n.attack == "AutoAttack"} == set(G.RES8_VARIANTS)
    assert all(n.source is None for n in wb)
    aa = [n for n in R.needs("whitebox", "mnist", "reduced") if n.attack == "AutoAttack"]  # at 16/256 only
    assert len(aa) == len(G.RES8_VARIANTS) and {n.eps for n in aa} == {16 / 256}
    cmp = R.needs("compare", "cifar10", "reduced")
    # PGD-20 x 2 eps, AA, PGD-20 on AA's
    assert {n.target for n in cmp} == set(R.COMPARE_TARGETS) and len(cmp) == 4 * len(R.COMPARE_TARGETS)
    sw = R.needs("sweep", "cifar10", "reduced")
    assert len(sw) == len(R.SWEEP_EPS_256) * len(G.VARIANTS) * 3
    assert {n.source for n in sw if n.attack in R.SWEEP_TRANSFER} == {26}


def test_bad_group_names_the_choices():
    with pytest.raises(AktError, match="whitebox.*sweep"):
        R.needs("blackbox", "mnist", "reduced")


#: the sweep is built for three variants only (a clean teacher, a clean and a robust student): its
#: cost is one PGD-20 per target and eps, and the unit tests must stay under 3 minutes
SWEEP_TARGETS = ("Res26(cln)", "Res8(cln)", "Res8(adv-trans)")


@pytest.fixture(scope="module")
def robust(tiny_built):


    logs: list[str] = []
    log = lambda *a: logs.append(" ".join(map(str, a)))
    store = tiny_built["store"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(P.PROFILES, "tiny", tiny_built["profile"])
        wb = RS.require("whitebox", "synthetic", "tiny", compute=True, store=store, progress=False, log=log)
        sw = RS.require("sweep", "synthetic", "tiny", compute=True, store=store, progress=False, log=log,
                       targets=SWEEP_TARGETS)
    return {"wb": wb, "sw": sw, "logs": logs, "store": store}


def test_records_complete_with_provenance(robust, tiny):
    wb, sw = robust["wb"], robust["sw"]
    assert len(wb) == len(R.needs("whitebox", "synthetic", "tiny")) == 2 * 8 + 6 + 6  # AA (+ control) at 16/256
    assert len(sw) == len(R.needs("sweep", "synthetic", "tiny", SWEEP_TARGETS)) == len(R.SWEEP_EPS_256) * 3 * 3
    assert (wb.loc[wb["attack"] == "PGD-20", "n_examples"] == 12).all()
    assert (wb.loc[wb["attack"].isin(["AutoAttack", R.PGD_ON_AA]), "n_examples"] == 8).all()
    for col in ("git_commit", "torch_version", "device", "dataset_variant", "seed", "train_images", "eps"):
        assert wb[col].notna().all()
    assert set(sw["source"]) == {"Res26", "white-box"}
    assert not robust["logs"] or not [line for line in robust["logs"] if line.startswith("[train]")]


def test_second_call_computes_nothing(robust, tiny):
    logs: list[str] = []
    again = RS.require("sweep", "synthetic", "tiny", compute=True, store=robust["store"], progress=False,
                      log=lambda *a: logs.append(" ".join(map(str, a))), targets=SWEEP_TARGETS)
    assert logs == []
    key = lambda d: d.sort_values("key").reset_index(drop=True)[["key", "accuracy"]]
    assert key(again).equals(key(robust["sw"]))


@pytest.mark.parametrize("attack,n", [("PGD-20", 12), (R.PGD_ON_AA, 8)])
def test_whitebox_record_recomputed_by_hand(robust, tiny, attack, n):
    """A stored PGD-20 record equals PGD-20 run again with the record's seed on the same images: all
    ``n_whitebox`` of them, or, for the control beside AutoAttack, its first ``n_autoattack``."""
    exp = G.Experiment("synthetic", "tiny", 0, dataset_variant="generated")
    runner = RN.Runner(G.Experiment("synthetic", "tiny", 0), tiny["store"], progress=False, log=lambda *a: None)
    need = R.Need("Res8(adv-trans)", attack, None, 16 / 256)
    row = robust["wb"].set_index("key").loc[R.record_key(exp, need)]
    model = runner.model(exp.model(need.target))
    test = runner.test.subset(n)
    from akt_core.evaluate import craft

    x_adv = craft(R.pgd20(int(R.record_key(exp, need)[:8], 16), torch.device("cpu")), model, test.x, test.y,
                  need.eps, 50)
    assert correct(model, x_adv, test.y) == row["correct"]
    assert correct(model, test.x, test.y) >= row["correct"]  # PGD can only lose accuracy vs clean


def test_sweep_is_monotone_for_pgd_and_shares_transfer_sets(robust, tiny):
    sw = robust["sw"]
    pgd = sw[sw["attack"] == "PGD-20"].sort_values("eps")
    for _, g in pgd.groupby("model"):  # a larger ball contains the smaller one; PGD finds at least ~as much
        acc = g["accuracy"].tolist()
        assert acc[-1] <= acc[0]
    fg = sw[(sw["attack"] == "FGSM") & (sw["eps_256"] == 16)]
    assert len(fg) == len(SWEEP_TARGETS) and (fg["n_examples"] == 12).all()


def test_stale_robustness_rows_are_left_out(robust, tiny):
    store = robust["store"]
    rows = store.read("tiny", "robustness").head(2).assign(key=["stale-a", "stale-b"])
    store.append("tiny", "robustness", rows.to_dict("records"), unique=("key",))
    try:
        got = RS.require("whitebox", "synthetic", "tiny", store=store)
        assert not got["key"].str.startswith("stale").any()
    finally:
        keep = store.read("tiny", "robustness")
        keep[~keep["key"].str.startswith("stale")].to_csv(store._csv("tiny", "robustness"), index=False)


def test_missing_results_name_the_command(tmp_path):

    with pytest.raises(AktError, match="akt build sweep --dataset mnist --profile reduced"):
        RS.require("sweep", "mnist", "reduced", store=Store(tmp_path))


@pytest.fixture(scope="module")
def autoattacked(trained_model, synthetic_test_batch):
    """The 10-step AutoAttack (seed 0, eps 16/256) of the trained model on 8 test images, run once for
    the tests below that compare against it."""
    x, y = synthetic_test_batch
    return attacks.autoattack(trained_model.eval(), x[:8], y[:8], 16 / 256, seed=0)


@pytest.mark.slow  # torchattacks' Square spends its 5,000 queries on the images APGD and FAB leave (~10 s a call)
def test_autoattack_contract(trained_model, synthetic_test_batch, autoattacked):
    """torchattacks' AutoAttack under our contract: eps-ball, [0, 1], model mode and RNG untouched,
    seeded, and on these 8 images at least as strong as PGD-20 (one image of slack)."""
    x, y = synthetic_test_batch
    x, y = x[:8], y[:8]
    m = trained_model.train()  # mode must come back as it was
    m.zero_grad(set_to_none=True)  # whatever an earlier test left on the shared model
    state = torch.get_rng_state()
    x_adv = attacks.autoattack(m, x, y, 16 / 256, seed=0)
    assert m.training and torch.equal(torch.get_rng_state(), state)
    assert all(p.grad is None for p in m.parameters())
    assert (x_adv - x).abs().max() <= 16 / 256 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    m.eval()
    assert correct(m, x_adv, y) <= correct(m, x, y)
    assert torch.equal(autoattacked, x_adv)  # seeded: the same examples every run (and in either mode)
    pgd_start = R.pgd20(0, torch.device("cpu"))(m, x, y, 16 / 256)
    assert correct(m, x_adv, y) <= correct(m, pgd_start, y) + 1  # AutoAttack is not weaker than PGD-20 here


@pytest.mark.slow  # Square's 5,000 queries on whatever the gradient attacks leave
def test_the_standard_autoattack_is_the_same_chain_with_100_steps(trained_model, synthetic_test_batch, monkeypatch,
                                                                  autoattacked):
    """steps=100 builds torchattacks' standard chain (APGD-CE, APGD-T, FAB-T, Square) with 100 steps
    per gradient attack; under our contract and at least as strong as the 10-step chain here."""
    import torchattacks

    built = []
    real = torchattacks.MultiAttack
    monkeypatch.setattr(torchattacks, "MultiAttack", lambda atks: built.append(atks) or real(atks))
    x, y = synthetic_test_batch
    x, y, m = x[:4], y[:4], trained_model.eval()  # 4 of the shared run's 8 images: the 100 steps cost time
    x100 = attacks.autoattack(m, x, y, 16 / 256, seed=0, steps=100)
    (chain,) = built
    assert [type(a).__name__ for a in chain] == ["APGD", "APGDT", "FAB", "Square"]
    assert [getattr(a, "steps", None) for a in chain[:3]] == [100, 100, 100] and chain[3].n_queries == 5000
    assert (x100 - x).abs().max() <= 16 / 256 + 1e-6 and x100.min() >= 0 and x100.max() <= 1
    assert correct(m, x100, y) <= correct(m, autoattacked[:4], y)
    assert R.needs("autoattack", "cifar10", "full-data") == [
        R.Need(t, a, None, eps) for eps in R.WHITEBOX_EPS.values() for t in R.VARIANTS
        for a in (R.AUTOATTACK_10, R.AUTOATTACK_STANDARD)]
    assert R.WHITEBOX_ATTACKS[R.AUTOATTACK_10] is R.autoattack_std  # the whitebox build's 10-step chain
    assert R.n_examples(P.get("full-data"), R.AUTOATTACK_10) == P.get("full-data").n_whitebox  # PGD-20's images


@pytest.mark.slow  # a full AutoAttack run beside the shared one (~10 s each, Square's 5,000 queries)
def test_autoattack_on_a_channels_last_model_matches_the_contiguous_one(trained_model, synthetic_test_batch,
                                                                       autoattacked):
    """The runner keeps models and images channels-last; torchattacks' FAB cannot reshape such
    gradients (.view), so ``autoattack`` runs a contiguous copy: same examples either way."""
    x, y = synthetic_test_batch
    x, y = x[:8], y[:8]
    assert x.shape[1] == 3  # the layouts differ only with several channels
    plain = autoattacked  # the contiguous model's
    cl = copy.deepcopy(trained_model).eval().to(memory_format=torch.channels_last)
    got = attacks.autoattack(cl, x.contiguous(memory_format=torch.channels_last), y, 16 / 256, seed=0)
    assert torch.equal(got, plain)
    assert cl.conv1.weight.is_contiguous(memory_format=torch.channels_last)  # the caller's model is untouched


# ---- report: the eps at which our curve meets the paper's value --------------------------------
def test_crossing_interpolates_between_sweep_points():
    import numpy as np

    from akt_core.report.whitebox import crossing

    eps = np.array([2.0, 4.0, 8.0, 16.0])
    assert crossing(eps, np.array([90.0, 80.0, 40.0, 10.0]), 60.0) == "6.0"  # halfway from 4 to 8
    assert crossing(eps, np.array([90.0, 80.0, 40.0, 10.0]), 85.0) == "3.0"
    assert crossing(eps, np.array([50.0, 40.0, 30.0, 20.0]), 60.0) == "<2"
    assert crossing(eps, np.array([99.0, 98.0, 97.0, 96.0]), 60.0) == ">16"


def test_eps_words():
    from akt_core.report.whitebox import eps_words

    assert eps_words(16.0) == "16/256" and eps_words(8 / 255 * 256) == "8/255" and eps_words(2.0) == "2/256"


def test_matching_eps_on_a_made_up_sweep():
    """Res8(adv)'s paper FGSM value on MNIST is 94.23: a transfer curve 98, 96, 92 over eps 8, 16, 32
    crosses it at 16 + (96 - 94.23) / (96 - 92) * 16 = 23.08."""
    import pandas as pd

    from akt_core.report import matching_eps

    rows = [("Res8(adv)", "FGSM", "Res26", e, a) for e, a in ((8, 98.0), (16, 96.0), (32, 92.0))]
    rows += [("Res8(adv)", "PGD-20", "white-box", e, a) for e, a in ((8, 50.0), (16, 10.0), (32, 0.0))]
    sweep = pd.DataFrame(rows, columns=["model", "attack", "source", "eps_256", "accuracy"])
    got = matching_eps(sweep, "mnist").set_index(["model", "paper attack"])
    row = got.loc[("Res8(adv)", "FGSM")]
    assert row["paper @ 16/256"] == 94.23
    assert row["eps/256: same attack, transfer"] == "23.1" and row["eps/256: PGD-20 white-box"] == "<8"
    assert got.loc[("Res8(adv)", "I-FGSM"), "eps/256: same attack, transfer"] == "missing"


def test_compare_summary_on_made_up_records():
    """Res8(adv-trans): clean 80, PGD-20 @ 16/256 20 (keeps 25 %); ARD: clean 60, PGD 30 (keeps 50 %);
    RSLAD: clean 40, PGD 10 (keeps 25 %), over two seeds whose means are those values."""
    import pandas as pd

    from akt_core.report import compare_summary

    rows = []
    for seed, d in ((0, -1.0), (1, 1.0)):  # the seeds straddle the mean by +-1
        for model, clean, fgsm, pgd in (("Res8(adv-trans)", 80, 70, 20), ("Res8(ard)", 60, 65, 30),
                                        ("Res8(rslad)", 40, 35, 10)):
            rows += [(model, seed, "clean", "-", 0.0, clean + d), (model, seed, "FGSM", "Res26", 16.0, fgsm + d),
                     (model, seed, "PGD-20", "white-box", 16.0, pgd + d)]
    # AutoAttack and PGD-20 on its images: AA 2 points below on ARD, equal on RSLAD, 3 above on ours
    for model, aa, ctl in (("Res8(adv-trans)", 23, 20), ("Res8(ard)", 28, 30), ("Res8(rslad)", 10, 10)):
        rows += [(model, 0, "AutoAttack", "white-box", 16.0, aa), (model, 0, R.PGD_ON_AA, "white-box", 16.0, ctl)]
    df = pd.DataFrame(rows, columns=["model", "seed", "attack", "source", "eps_256", "accuracy"])
    lines = compare_summary(df).splitlines()
    assert lines == [
        "- **clean**: Res8(adv-trans) 80.00 %, the later methods 40.00-60.00 %.",
        "- **FGSM transfer**: best Res8(adv-trans) (70.00 %); Res8(adv-trans) (70.00 %) is ahead of every later method (2).",
        "- **PGD-20 @ 16/256**: best Res8(ard) (30.00 %); Res8(adv-trans) (20.00 %) is ahead of Res8(rslad); "
        "level with or behind Res8(ard).",
        "- **AutoAttack (10 it.) @ 16/256**: best Res8(ard) (28.00 %); Res8(adv-trans) (23.00 %) is ahead of Res8(rslad); "
        "level with or behind Res8(ard).",
        "- **AutoAttack against PGD-20 on the same images** (16/256): AutoAttack is lower on 1 of 3 models, "
        "equal on 1, higher on 1 (at most +3.00 points, Res8(adv-trans)).",
        "- **kept under PGD-20 @ 16/256** (its accuracy over clean accuracy): Res8(adv-trans) 25 %, the later "
        "methods 25-50 %.",
    ]


def test_the_standard_autoattack_table_holds_pgd20_of_the_attacked_seeds_only():
    """PGD-20 of seeds 0 and 1 beside the AutoAttacks of seed 0: the table's PGD-20 column is seed 0's
    number (no mean over a seed the AutoAttacks never saw), and per budget the columns run PGD-20, the
    10-step chain, the standard chain, the larger budget first."""
    import pandas as pd

    from akt_core.report.whitebox import standard_table

    def rec(seed, attack, eps_256, acc):
        return {"model": "Res8(adv)", "seed": seed, "attack": attack, "eps_256": eps_256, "accuracy": acc}

    whitebox = pd.DataFrame([rec(0, "PGD-20", 16.0, 10.0), rec(1, "PGD-20", 16.0, 20.0),
                             rec(0, "PGD-20", 8 / 255 * 256, 30.0), rec(1, "PGD-20", 8 / 255 * 256, 50.0)])
    standard = pd.DataFrame([rec(0, R.AUTOATTACK_10, 16.0, 8.0), rec(0, R.AUTOATTACK_STANDARD, 16.0, 7.0),
                             rec(0, R.AUTOATTACK_10, 8 / 255 * 256, 25.0), rec(0, R.AUTOATTACK_STANDARD, 8 / 255 * 256, 24.5)])
    got = standard_table(whitebox, standard)
    assert list(got.columns) == ["PGD-20 @ 16/256", "AutoAttack (10 it., PGD-20's images) @ 16/256",
                                 "AutoAttack (standard, 100 it.) @ 16/256", "PGD-20 @ 8/255",
                                 "AutoAttack (10 it., PGD-20's images) @ 8/255", "AutoAttack (standard, 100 it.) @ 8/255"]
    assert got.loc["Res8(adv)"].tolist() == ["10.00", "8.00", "7.00", "30.00", "25.00", "24.50"]
