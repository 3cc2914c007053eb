"""Four-state verdicts (issue 16) on hand-made numbers: each state, the margin boundaries, the
untestable rule, the stand-in noise with one seed, and the scorecard's grid and sentences."""
from __future__ import annotations

import pandas as pd
import pytest

from akt_core.report import scorecard as S
from akt_core.report import verdicts as V


def q(label, values, var=0.0):
    return V.Quantity(label, dict(enumerate(values)), dict.fromkeys(range(len(values)), var))


@pytest.mark.parametrize("a,b,kind,offset,state", [
    ([10.0, 10.0], [5.0, 5.0], "greater", 0.0, "holds"),
    ([5.0, 5.0], [10.0, 10.0], "greater", 0.0, "fails"),
    ([10.0, 12.0], [9.0, 11.0], "greater", 0.0, "holds"),      # the same shift each seed: no seed noise
    ([10.0, 14.0], [11.0, 11.0], "greater", 0.0, "within noise"),  # diffs -1, +3: sd 2.83, |mean 1| < 2 sd
    ([10.0, 10.0], [11.0, 11.0], "not_below", -5.0, "holds"),  # a 1-point cost is within the 5 allowed
    ([10.0, 10.0], [16.0, 16.0], "not_below", -5.0, "fails"),
    ([20.0, 20.0], [16.0, 16.0], "greater", 5.0, "fails"),     # a real gain, but not the 5 points claimed
])
def test_comparison_states(a, b, kind, offset, state):
    c = V.Comparison(q("A", a), q("B", b), kind, offset)
    sigma = c.seed_sd()
    assert c.state(sigma) == state


def test_the_boundary_is_twice_the_noise_exclusive():
    c = V.Comparison(q("A", [12.0]), q("B", [10.0]))
    assert c.state(1.0) == "within noise"  # d = 2 = Z sigma: not beyond the noise
    assert c.state(0.999) == "holds" and V.Comparison(q("A", [8.0]), q("B", [10.0])).state(0.999) == "fails"


def test_binomial_noise_alone_decides_with_one_run():
    p = 50.0  # 50 % on 10,000 images: sd 0.5 points per accuracy, 0.71 for a difference
    var = V._binom([p], [10_000])
    assert var == pytest.approx(0.25)
    close = V.Comparison(q("A", [51.0], var), q("B", [50.0], var))
    assert V.judge(V.Claim("C2", [close]), None, "")[0] == "within noise"
    far = V.Comparison(q("A", [52.0], var), q("B", [50.0], var))
    assert V.judge(V.Claim("C2", [far]), None, "")[0] == "supported"


def test_a_claim_is_contradicted_by_one_failing_comparison_and_untestable_first():
    good = V.Comparison(q("A", [20.0, 20.0]), q("B", [5.0, 5.0]))
    noisy = V.Comparison(q("A", [10.0, 14.0]), q("B", [11.0, 11.0]))
    bad = V.Comparison(q("A", [5.0, 5.0]), q("B", [20.0, 20.0]))
    assert V.judge(V.Claim("C1", [good]), None, "")[0] == "supported"
    assert V.judge(V.Claim("C1", [good, noisy]), None, "")[0] == "within noise"
    assert V.judge(V.Claim("C1", [good, noisy, bad]), None, "")[0] == "contradicted"
    assert V.judge(V.Claim("C1", [good, bad], untestable=["Res8(cln) clean too low"]), None, "")[0] == \
        "untestable at this budget"


def test_one_seed_uses_the_named_stand_in():
    c = V.Comparison(q("A", [13.0]), q("B", [10.0]))
    state, why = V.judge(V.Claim("C2", [c]), 2.0, "the spread on MNIST")
    assert state == "within noise" and "[seed spread: the spread on MNIST]" in why
    assert V.judge(V.Claim("C2", [c]), None, "")[0] == "supported"  # binomial only: 3 points is beyond 0


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
    paper = V.paper_clean("cifar10")
    weak = {m: 0.5 * paper[m] for m in MODELS}
    claims = {c.claim: c for c in V.build_claims("cifar10", {"variants": _variants(weak, dict.fromkeys(MODELS, 20.0))},
                                                  None)}
    assert all(V.judge(c, None, "")[0] == "untestable at this budget" for c in claims.values())
    assert "of the paper's" in V.judge(claims["C1"], None, "")[1]
    fine = {m: paper[m] for m in MODELS}
    fine["Res26(adv)"] = fine["Res8(dist-adv)"] - 1.0  # above the floor, but below its student
    claims = {c.claim: c for c in V.build_claims("cifar10", {"variants": _variants(fine, dict.fromkeys(MODELS, 20.0))},
                                                  None)}
    assert "teacher Res26(adv) clean" in V.judge(claims["C2"], None, "")[1]
    assert V.judge(claims["C1"], None, "")[0] != "untestable at this budget"


def test_c1_on_hand_made_tables():
    paper = V.paper_clean("mnist")
    clean = {m: paper[m] for m in MODELS}
    robust = {**dict.fromkeys(MODELS, 60.0), "Res26(adv)": 90.0, "Res8(adv)": 88.0, "Res26(cln)": 20.0, "Res8(cln)": 10.0}
    claims = {c.claim: c for c in V.build_claims("mnist", {"variants": _variants(clean, robust)}, None)}
    assert V.judge(claims["C1"], None, "")[0] == "supported"
    robust["Res26(cln)"] = 87.0  # adversarial training gains 3 points only: not the 5 the claim needs
    claims = {c.claim: c for c in V.build_claims("mnist", {"variants": _variants(clean, robust)}, None)}
    assert V.judge(claims["C1"], None, "")[0] == "contradicted"


def test_the_scorecard_grid_links_every_cell_and_says_what_holds():
    card = pd.DataFrame([
        {"dataset": "mnist", "claim": "C1", "column": "reduced", "state": "contradicted", "evidence": "e1",
         "seeds": "0, 1", "page": "tables_2_4_variants_mnist"},
        {"dataset": "mnist", "claim": "C2", "column": "reduced", "state": "supported", "evidence": "e2",
         "seeds": "0, 1", "page": "tables_2_4_variants_mnist"},
        {"dataset": "mnist", "claim": "C1", "column": S.PAPER, "state": "supported", "evidence": "p1",
         "seeds": "one run", "page": "tables_2_4_variants_mnist"},
    ])
    md = S.markdown(card)
    assert md.count("href='_executed/tables_2_4_variants_mnist.html'") == 3
    assert S.COLOURS["contradicted"] in md and S.COLOURS["supported"] in md
    text = S.sentences(card, "mnist")
    assert text.startswith("**MNIST, reduced** (seeds 0, 1): supported: C2; contradicted: C1.")
    assert "eps sweep" in text and "supports all of C1" in text
    assert md.rstrip().endswith("**No stored results yet** for CIFAR-10, CIFAR-100 under any published profile: "
                                "`akt build all --dataset cifar10 --profile reduced`; `akt build all --dataset "
                                "cifar100 --profile reduced` makes them.")


@pytest.mark.parametrize("stored", [True, False])
def test_the_c1_sentence_links_the_eps_sweep_only_where_it_is_stored(stored, monkeypatch):
    card = pd.DataFrame([{"dataset": "mnist", "claim": "C1", "column": "reduced", "state": "contradicted",
                          "evidence": "e1", "seeds": "0", "page": "tables_2_4_variants_mnist"}])
    monkeypatch.setattr(S, "_has_sweep", lambda ds, profile: stored)
    monkeypatch.setattr(S.unstated, "verdicts", lambda *a, **k: pd.DataFrame())
    text = S.sentences(card, "mnist")
    assert ("href='_executed/beyond_robustness_mnist.html'>eps sweep</a>" in text) is stored
    assert ("is not stored for this profile yet" in text) is not stored
