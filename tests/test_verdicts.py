"""Four-state verdicts (issue 16) on hand-made numbers: each state, the margin boundaries, the
untestable rule, the stand-in noise with one seed, and the scorecard's grid and sentences."""
from __future__ import annotations

import pandas as pd
import pytest

from akt_core.graph import table_for
from akt_core.report import references as RF
from akt_core.report import scorecard as S
from akt_core.report import verdicts as V
from akt_core.report.style import STATE_COLOURS


def q(label, values, var=0.0):
    return V.Quantity(label, label, dict(enumerate(values)), dict.fromkeys(range(len(values)), var))


@pytest.mark.parametrize("a,b,offset,state", [
    ([10.0, 10.0], [5.0, 5.0], 0.0, "holds"),
    ([5.0, 5.0], [10.0, 10.0], 0.0, "fails"),
    ([10.0, 12.0], [9.0, 11.0], 0.0, "holds"),      # the same shift each seed: no seed noise
    ([10.0, 14.0], [11.0, 11.0], 0.0, "within noise"),  # diffs -1, +3: sd 2.83, |mean 1| < 2 sd
    ([10.0, 10.0], [11.0, 11.0], -V.CLEAN_COST, "holds"),  # a 1-point cost is below the 5 allowed
    ([10.0, 10.0], [16.0, 16.0], -V.CLEAN_COST, "fails"),  # a 6-point cost, no noise
    ([20.0, 20.0], [16.0, 16.0], V.CLEARLY, "fails"),     # a real gain, but not the 5 points claimed
    ([20.0, 20.0], [21.0, 21.0], -V.MARGIN, "holds"),     # 1 point worse: non-inferior within the margin
])
def test_comparison_states(a, b, offset, state):
    c = V.Comparison(q("A", a), q("B", b), offset)
    assert c.state(c.seed_sd()) == state


@pytest.mark.parametrize("offset", [0.0, V.CLEARLY, -V.MARGIN, -V.CLEAN_COST])
def test_exactly_two_sigma_from_the_threshold_is_within_noise_on_both_sides(offset):
    sigma = 1.0
    above = V.Comparison(q("A", [10.0 + offset + V.Z * sigma]), q("B", [10.0]), offset)
    below = V.Comparison(q("A", [10.0 + offset - V.Z * sigma]), q("B", [10.0]), offset)
    assert above.state(sigma) == below.state(sigma) == "within noise"
    assert above.state(0.999) == "holds" and below.state(0.999) == "fails"


def test_the_c3_clean_cost_of_6_19_points_against_5_is_within_noise_not_holds():
    # the full-data CIFAR-10 case of issue 34: Res8(adv-trans) 72.23 % against Res8(cln) 78.42 %
    cost = V.Comparison(q("Res8(adv-trans)", [72.23]), q("Res8(cln)", [78.42]), -V.CLEAN_COST, "clean cost")
    assert cost.state(0.6) == "within noise"  # -1.19 beyond the threshold, 2 sigma = 1.2
    assert cost.state(0.59) == "fails"  # 2 sigma = 1.18: the cost is above 5 beyond the noise
    assert V.Comparison(q("A", [76.5]), q("B", [78.42]), -V.CLEAN_COST).state(0.6) == "holds"  # 1.9 points


def test_binomial_noise_of_one_run():
    p = 50.0  # 50 % on 10,000 images: sd 0.5 points per accuracy, 0.71 for a difference
    var = V._binom([p], [10_000])
    assert var == pytest.approx(0.25)
    assert V.Comparison(q("A", [51.0], var), q("B", [50.0], var)).binom_sd() == pytest.approx(0.5 ** 0.5)


def test_a_claim_is_contradicted_by_one_failing_comparison_and_untestable_first():
    good = V.Comparison(q("A", [20.0, 20.0]), q("B", [5.0, 5.0]))
    noisy = V.Comparison(q("A", [10.0, 14.0]), q("B", [11.0, 11.0]))
    bad = V.Comparison(q("A", [5.0, 5.0]), q("B", [20.0, 20.0]))
    assert V.judge(V.Claim("C1", [good]), None).state == "supported"
    assert V.judge(V.Claim("C1", [good, noisy]), None).state == "within noise"
    v = V.judge(V.Claim("C1", [good, noisy, bad]), None)
    assert v.state == "contradicted" and v.short.startswith("A − B -15.0")  # the failing one decides
    v = V.judge(V.Claim("C1", [good, bad], untestable=["Res8(cln) clean too low"]), None)
    assert v.state == "untestable at this budget" and v.short == "Res8(cln) clean too low"
    assert "Not judged, for information" in v.evidence and not v.one_seed


def test_one_seed_uses_the_named_stand_in_and_is_marked():
    c = V.Comparison(q("A", [13.0]), q("B", [10.0]))
    noise = V.Noise("MNIST reduced, seeds 0, 1", {("C2", 0): 2.0}, 0.5)
    v = V.judge(V.Claim("C2", [c]), noise)
    assert v.state == "within noise" and v.one_seed and "[seed spread: MNIST reduced, seeds 0, 1]" in v.evidence
    # the same comparison without a stand-in: binomial noise only, named as such
    v = V.judge(V.Claim("C2", [c]), None)
    assert v.state == "supported" and v.one_seed and "[no seed spread measured anywhere]" in v.evidence
    # with two seeds the comparison's own spread is used and the verdict is not marked
    two = V.Comparison(q("A", [13.0, 13.0]), q("B", [10.0, 10.0]))
    assert V.judge(V.Claim("C2", [two]), noise) == V.Verdict("supported", two.words(0.0), two.short(0.0), False)


def test_a_stand_in_is_never_below_the_median_spread_of_its_comparisons():
    noise = V.Noise("x", {("C1", 0): 0.1, ("C1", 1): 3.0}, 1.0)
    assert noise.sd("C1", 0) == 1.0 and noise.sd("C1", 1) == 3.0 and noise.sd("C5", 0) == 1.0
    pooled = V.Noise.pooled([noise, V.Noise("y", {("C1", 0): 2.0}, 0.5)], "both")
    assert pooled.per == {("C1", 0): 2.0, ("C1", 1): 3.0} and pooled.median == 1.0


def _variants(clean: dict[str, float], robust: dict[str, float], seeds=(0, 1)) -> pd.DataFrame:
    rows = []
    for s in seeds:
        for m in clean:
            rows.append({"model": m, "column": "clean", "seed": s, "accuracy": clean[m], "n_examples": 10_000})
            for col in V.ATTACK_COLUMNS:
                rows.append({"model": m, "column": col, "seed": s, "accuracy": robust[m], "n_examples": 10_000})
    return pd.DataFrame(rows)


MODELS = ("Res26(cln)", "Res26(adv)", "Res8(cln)", "Res8(adv)", "Res8(dist-cln)", "Res8(dist-adv)", "Res8(adv-trans)")


def test_untestable_when_a_model_is_far_below_the_papers_clean_accuracy_or_the_teacher_below_its_student():
    paper = RF.paper_clean("cifar10")
    weak = {m: 0.5 * paper[m] for m in MODELS}
    claims = {c.claim: c for c in V.build_claims("cifar10", {"variants": _variants(weak, dict.fromkeys(MODELS, 20.0))},
                                                  None)}
    assert all(V.judge(c, None).state == "untestable at this budget" for c in claims.values())
    assert "of the paper's" in V.judge(claims["C1"], None).evidence
    fine = {m: paper[m] for m in MODELS}
    fine["Res26(adv)"] = fine["Res8(dist-adv)"] - 1.0  # above the floor, but below its student
    claims = {c.claim: c for c in V.build_claims("cifar10", {"variants": _variants(fine, dict.fromkeys(MODELS, 20.0))},
                                                  None)}
    assert "teacher Res26(adv) clean" in V.judge(claims["C2"], None).evidence
    assert V.judge(claims["C1"], None).state != "untestable at this budget"


def test_c1_on_hand_made_tables():
    paper = RF.paper_clean("mnist")
    clean = {m: paper[m] for m in MODELS}
    robust = {**dict.fromkeys(MODELS, 60.0), "Res26(adv)": 90.0, "Res8(adv)": 88.0, "Res26(cln)": 20.0, "Res8(cln)": 10.0}
    claims = {c.claim: c for c in V.build_claims("mnist", {"variants": _variants(clean, robust)}, None)}
    assert V.judge(claims["C1"], None).state == "supported"
    robust["Res26(cln)"] = 87.0  # adversarial training gains 3 points only: not the 5 the claim needs
    claims = {c.claim: c for c in V.build_claims("mnist", {"variants": _variants(clean, robust)}, None)}
    assert V.judge(claims["C1"], None).state == "contradicted"


def _tables_5_10(clean: dict[str, float], robust: dict[str, float], seeds=(0,)) -> dict[str, pd.DataFrame]:
    """Tables 5-7's cells (Res8 clean and FGSM from the four source depths) and Tables 8-10's (clean and
    the four attacks) of ``clean`` and ``robust``, per table group."""
    sources = [c for c, _, _ in table_for("sources", "cifar10").columns if c != "clean"]
    rows = [{"model": m, "column": col, "seed": s, "accuracy": clean[m] if col == "clean" else robust[m],
             "n_examples": 10_000} for s in seeds for m in clean for col in ("clean", *sources)]
    return {"sources": pd.DataFrame(rows), "attacks": _variants(clean, robust, seeds)}


def test_the_floor_covers_self_adv_in_c4():
    paper = RF.paper_clean("cifar10")
    res8 = ("Res8(cln)", "Res8(self-adv)", "Res8(adv)", "Res8(adv-trans)")
    clean = {m: paper[m] for m in res8}
    robust = {"Res8(cln)": 20.0, "Res8(self-adv)": 40.0, "Res8(adv)": 70.0, "Res8(adv-trans)": 70.0}
    c4 = {c.claim: c for c in V.build_claims("cifar10", _tables_5_10(clean, robust), None)}["C4"]
    assert V.judge(c4, None).state == "supported"
    clean["Res8(self-adv)"] = 0.8 * paper["Res8(self-adv)"]  # self-adv below the floor, adv and adv-trans above it
    c4 = {c.claim: c for c in V.build_claims("cifar10", _tables_5_10(clean, robust), None)}["C4"]
    v = V.judge(c4, None)
    assert v.state == "untestable at this budget" and v.short.startswith("Res8(self-adv) clean")


def test_a_claim_whose_tables_are_not_complete_gets_no_verdict_and_names_the_cells_it_waits_for():
    """A graph still training: Tables 8-10 complete, Tables 5-7 without the FGSM from the held-out Res20
    (its source not trained yet), Table 2 without one Iter-LL cell of the second seed. C4's mean over the
    cells present would look like a verdict; it is "not enough results" instead, and so is C1."""
    paper = RF.paper_clean("mnist")
    res8 = ("Res8(cln)", "Res8(self-adv)", "Res8(adv)", "Res8(adv-trans)")
    robust = {"Res8(cln)": 20.0, "Res8(self-adv)": 40.0, "Res8(adv)": 90.0, "Res8(adv-trans)": 90.0}
    tables = _tables_5_10({m: paper[m] for m in res8}, robust)
    complete = {c.claim: c for c in V.build_claims("mnist", tables, None)}["C4"]
    assert complete.missing == [] and V.judge(complete, None).state == "supported"
    tables["sources"] = tables["sources"][tables["sources"]["column"] != "FGSM@Res20"]
    c4 = {c.claim: c for c in V.build_claims("mnist", tables, None)}["C4"]
    assert c4.missing == [f"Table 5: {m} FGSM@Res20" for m in res8]
    v = V.judge(c4, None)
    assert v.state == V.INCOMPLETE == "not enough results"
    assert v.short == ("4 cells of its tables not computed yet (Table 5: Res8(cln) FGSM@Res20, Table 5: "
                       "Res8(self-adv) FGSM@Res20, Table 5: Res8(adv) FGSM@Res20, Table 5: Res8(adv-trans) FGSM@Res20)")
    clean = {m: paper[m] for m in MODELS}
    robust = {**dict.fromkeys(MODELS, 60.0), "Res26(adv)": 90.0, "Res8(adv)": 88.0, "Res26(cln)": 20.0, "Res8(cln)": 10.0}
    variants = _variants(clean, robust)
    variants = variants[~((variants["model"] == "Res8(adv)") & (variants["column"] == "Iter-LL") & (variants["seed"] == 1))]
    claims = {c.claim: V.judge(c, None) for c in V.build_claims("mnist", {"variants": variants}, None)}
    assert claims["C1"].state == "not enough results"  # (C2, C3: the paper's MNIST teacher is below its student)
    assert claims["C1"].short == "1 cell of its tables not computed yet (Table 2: Res8(adv) Iter-LL)"
    # the floor still comes first: a model below it makes the claim untestable, whatever else is missing
    weak = {m: 0.5 * v for m, v in clean.items()}
    variants = _variants(weak, robust).query("column != 'Iter-LL'")
    assert all(V.judge(c, None).state == "untestable at this budget"
               for c in V.build_claims("mnist", {"variants": variants}, None))


def test_c2_tests_both_bounds():
    paper = RF.paper_clean("mnist")
    clean = {m: paper[m] for m in MODELS}
    clean["Res26(adv)"] = max(clean.values())  # the teacher above its students (the paper's MNIST has it below)
    robust = {**dict.fromkeys(MODELS, 50.0), "Res26(adv)": 90.0, "Res8(dist-adv)": 60.0, "Res8(dist-cln)": 20.0}
    c2 = lambda: {c.claim: c for c in V.build_claims("mnist", {"variants": _variants(clean, robust)}, None)}["C2"]  # noqa: E731
    assert [comp.test for comp in c2().comparisons] == ["only part", "some"]
    assert V.judge(c2(), None).state == "supported"
    robust["Res8(dist-cln)"] = 65.0  # dist-adv no more robust than dist-cln: it passed on nothing
    assert V.judge(c2(), None).state == "contradicted"


def _curves(finals: dict[str, tuple[float, float]], epochs: int = 4, seeds=(0, 1)) -> pd.DataFrame:
    """Linear curves from half of each model's final (clean, adversarial) accuracy to it."""
    rows = []
    for s in seeds:
        for m, (clean, adv) in finals.items():
            for e in range(1, epochs + 1):
                f = 0.5 + 0.5 * e / epochs
                rows.append({"model": m, "seed": s, "epoch": e, "clean_acc": f * clean, "adv_acc": f * adv,
                             "n_curve": 1000})
    return pd.DataFrame(rows)


def test_c5_needs_adv_trans_above_every_other_model_on_both_figures():
    finals = {"Res8(adv-trans)": (85.0, 70.0), "Res8(adv)": (78.0, 60.0), "Res8(cln)": (79.0, 20.0)}
    c5 = V._curve_claim(_curves(finals))
    assert [c.test for c in c5.comparisons] == ["Fig. 3, faster: mean over epochs", "Fig. 3, higher: last epoch",
                                                "Fig. 4, faster: mean over epochs", "Fig. 4, higher: last epoch"]
    assert c5.models == set(finals) and V.judge(c5, None).state == "supported"
    finals["Res8(dist-cln)"] = (92.0, 20.0)  # above adv-trans on clean test images (Fig. 3) only
    v = V.judge(V._curve_claim(_curves(finals)), None)
    assert v.state == "contradicted" and v.short.startswith("Res8(adv-trans) − Res8(dist-cln)")


def test_cifar100_floor_comes_from_the_published_reference_and_the_papers_cells_are_implausible(monkeypatch):
    monkeypatch.setattr(V, "our_cells", lambda cells, dataset, group: cells)  # hand-made cells, not records
    ref = RF.REFERENCES["cifar100"]
    paper = RF.paper_clean("cifar100")
    refs = RF.reference_clean("cifar100")
    assert refs[ref.model] == pytest.approx(ref.value)
    assert refs["Res8(cln)"] == pytest.approx(paper["Res8(cln)"] * ref.value / paper[ref.model])
    # a model at 80 % of the paper's clean accuracy: below the paper's floor, above the reference's
    clean = {m: 0.8 * paper[m] for m in MODELS}
    clean["Res26(adv)"] = max(clean.values())  # the teacher above its students
    robust = {**dict.fromkeys(MODELS, 10.0), "Res26(adv)": 60.0, "Res8(adv)": 60.0}
    t = V.verdict_table("cifar100", {"variants": _variants(clean, robust)}, None)
    assert "untestable at this budget" not in set(t["state"])
    assert set(t[V.PAPER_STATE]) == {"implausible (erratum 5)"}
    clean = {m: 0.5 * refs[m] for m in MODELS}
    t = V.verdict_table("cifar100", {"variants": _variants(clean, robust)}, None)
    assert set(t["state"]) == {"untestable at this budget"} and "of the reference" in t["evidence"].iloc[0]


def test_the_stand_in_is_the_same_dataset_at_the_nearest_profile_with_two_seeds(monkeypatch):
    from akt_core.report import claims as C

    measured = {("cifar10", "reduced"): V.Noise("CIFAR-10 reduced", {}, 1.0),
                ("mnist", "reduced"): V.Noise("MNIST reduced", {}, 0.5)}
    monkeypatch.setattr(C, "measured_noise", lambda ds, p, blackbox="held-out": measured.get((ds, p)))
    assert C.noise("cifar10", "full-data").name == "CIFAR-10 reduced"
    assert C.noise("cifar10", "paper").name == "CIFAR-10 reduced"
    measured[("cifar10", "full-data")] = V.Noise("CIFAR-10 full-data", {}, 0.7)
    assert C.noise("cifar10", "paper").name == "CIFAR-10 full-data"  # nearer to the paper's protocol
    assert C.noise("cifar10", "reduced").name == "CIFAR-10 reduced"  # its own seeds, for the per-seed columns
    other = C.noise("cifar100", "full-data")  # no two seeds of CIFAR-100 anywhere: the other datasets', named
    assert other.median == 0.7 and "no two seeds of CIFAR-100" in other.name and "CIFAR-10 full-data" in other.name


def _card_row(dataset, claim, column, state, seeds="0, 1", one_seed=False, page="tables_2_4_variants_mnist",
              arithmetic="float32"):
    return {"dataset": dataset, "claim": claim, "column": column, "state": state, "one_seed": one_seed,
            "short": f"short {claim}", "evidence": f"evidence {claim} {column}", "seeds": seeds,
            "arithmetic": arithmetic, "page": page}


def test_the_scorecard_grid_links_every_cell_and_says_what_holds():
    card = pd.DataFrame([
        _card_row("mnist", "C1", "reduced", "contradicted"),
        _card_row("mnist", "C2", "reduced", "supported"),
        _card_row("mnist", "C1", S.PAPER, "supported", "one run"),
        _card_row("cifar100", "C1", "reduced", "untestable at this budget", "0", page="tables_2_4_variants_cifar100"),
        _card_row("cifar100", "C1", S.PAPER, "implausible (erratum 5)", "one run", page="tables_2_4_variants_cifar100"),
        _card_row("cifar10", "C3", "full-data", "within noise", "0", True, "tables_2_4_variants_cifar10_full-data"),
        _card_row("mnist", "C1", "paper", "supported", "0", False, "tables_2_4_variants_mnist_paper", "bf16 autocast"),
    ])
    md = S.markdown(card)
    # a profile column says it is ours (the paper profile is not the paper's numbers)
    assert "<th>paper profile<br><small>(our runs)</small></th>" in md and "<th>paper&#x27;s numbers</th>" in md
    # which arithmetic each column used, per dataset, said once under the grid (issue 40)
    assert ("Arithmetic of each column's training and scoring (crafting the attacks is float32 everywhere): "
            "**reduced**: float32 (MNIST, CIFAR-100) · "
            "**full-data**: float32 (CIFAR-10) · **paper**: bf16 autocast (MNIST); the paper states none.") in md
    assert md.count("href='_executed/tables_2_4_variants_mnist.html'") == 3
    assert md.count("href='errata.html'") == 1  # the implausible cell leads to the erratum
    assert STATE_COLOURS["contradicted"] in md and STATE_COLOURS["supported"] in md
    assert md.count("<i>(1 seed)</i>") == 1 and "within noise (1 seed): short C3" in md
    assert "<details class='scorecard-evidence'>" in md and "evidence C1 reduced" in md  # not only in tooltips
    text = S.sentences(card, "mnist")
    assert text.startswith("**MNIST, reduced profile** (seeds 0, 1; float32): supported: C2; contradicted: C1.")
    assert "**MNIST, paper profile** (seed 0; bf16 autocast): supported: C1." in text
    assert "eps sweep" in text and "supports all of C1" in text
    assert "get no verdict" in S.sentences(card, "cifar100")


def test_the_findings_say_where_claims_hold_on_how_many_seeds_and_what_is_untested(monkeypatch):
    monkeypatch.setattr(S, "whitebox_finding", lambda: "WHITEBOX.")
    card = pd.DataFrame([
        _card_row("mnist", "C1", "reduced", "contradicted"),
        _card_row("mnist", "C3", "reduced", "supported"),
        _card_row("cifar100", "C1", "reduced", "untestable at this budget", "0"),
        _card_row("cifar10", "C1", "full-data", "supported", "0", True),
        _card_row("cifar10", "C2", "full-data", "supported", "0", True),
        _card_row("cifar10", "C3", "full-data", "within noise", "0", True),
    ])
    none = pd.DataFrame(columns=["profile", "dataset", "seeds", "planned", "done"])  # no training under way
    text = S.findings(card, progress=none)
    assert "on MNIST (seeds 0, 1) C3 is supported, C1 is contradicted" in text
    assert "CIFAR-100 is untestable at this budget" in text
    assert "on CIFAR-10 (seed 0, one seed) C1 and C2 are supported, C3 is within noise" in text
    assert "WHITEBOX." in text
    assert "nothing at the `paper` profile" in text and "CIFAR-10 full-data rests on one seed" in text
    # once a profile's first model is published, the findings say how far it has come, not "nothing"
    training = pd.DataFrame([{"profile": "paper", "dataset": "mnist", "seeds": [0], "planned": 14, "done": 1}])
    text = S.findings(card, progress=training)
    assert "nothing at the `paper` profile" not in text
    assert "MNIST at the `paper` profile (seed 0): 1 of 14 models trained and published so far" in text
    # scored while still training: the claims with complete tables are judged, the rest wait, and both are said
    card = pd.concat([card, pd.DataFrame([_card_row("mnist", "C1", "paper", "supported", "0", True),
                                          _card_row("mnist", "C4", "paper", V.INCOMPLETE, "0", True)])])
    training["done"] = 11
    text = S.findings(card, progress=training)
    assert ("**Paper profile** (all training images, 20 epochs on MNIST): on MNIST (seed 0, one seed) C1 is "
            "supported, C4 waits for cells not computed yet") in text  # its size: of the one dataset it covers
    assert ("MNIST at the `paper` profile (seed 0): 11 of 14 models trained and published so far, the rest in "
            "training (see <a href='zoo.html'>Published models</a>); the claims whose tables are complete have "
            "verdicts, the rest wait for theirs") in text
    assert "not enough results: C4" in S.sentences(card[card["column"] == "paper"], "mnist")


def test_the_whitebox_finding_calls_robustness_transfer_only_only_where_pgd_leaves_nothing(monkeypatch):
    tops = {"mnist": pd.DataFrame({"eps_256": [16.0], "accuracy": [95.0], "model": ["Res8(self-adv)"]}),
            "cifar10": pd.DataFrame({"eps_256": [16.0, 8 / 255 * 256], "accuracy": [0.0, 0.2],
                                     "model": ["Res26(adv)", "Res8(dist-adv)"]})}
    monkeypatch.setattr(S, "_whitebox_max", lambda profile, ds: tops.get(ds, pd.DataFrame()) if profile == "reduced"
                        else pd.DataFrame())
    text = S.whitebox_finding(("reduced",))
    assert "MNIST (reduced): 95.0 % at 16/256 (Res8(self-adv))" in text
    assert "CIFAR-10 (reduced): 0.0 % at 16/256, 0.2 % at 8/255 (Res8(dist-adv))" in text
    assert "On CIFAR-10 no model keeps more than 5 %" in text and "On MNIST" not in text


@pytest.mark.parametrize("stored", [True, False])
def test_the_c1_sentence_links_the_eps_sweep_only_where_it_is_stored(stored, monkeypatch):
    card = pd.DataFrame([_card_row("mnist", "C1", "reduced", "contradicted", "0")])
    monkeypatch.setattr(S, "_has_sweep", lambda ds, profile: stored)
    monkeypatch.setattr(S.unstated, "verdicts", lambda *a, **k: pd.DataFrame())
    text = S.sentences(card, "mnist")
    assert ("href='_executed/beyond_robustness_mnist.html'>eps sweep</a>" in text) is stored
    assert ("is not stored for this profile yet" in text) is not stored
