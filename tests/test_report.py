"""From records to what the book shows: the comparison with the paper's numbers and the C1-C5
verdicts, on hand-made records and tables whose right answers are worked out here."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from akt_core import report
from akt_core.graph import table_for

ATTACKS = report.ATTACK_COLUMNS


def _records(rows: list[tuple[str, str, str, int, float]]) -> pd.DataFrame:
    """(model, attack, source, seed, accuracy) -> records as the store holds them (the columns used)."""
    return pd.DataFrame(rows, columns=["model", "attack", "source", "seed", "accuracy"])


def test_comparison_takes_mean_and_spread_over_seeds_and_the_difference_to_the_papers_number():
    table = table_for("variants", "mnist")  # Table 2; the paper prints Res26(cln) clean 99.56, FGSM 25.56
    recs = _records([("Res26(cln)", "clean", "-", 0, 97.0), ("Res26(cln)", "clean", "-", 1, 99.0),
                     ("Res26(cln)", "FGSM", "Res26", 0, 30.0),
                     ("Res26(cln)", "FGSM", "Res20", 0, 1.0),  # another source: not a cell of Table 2
                     ("Res8(self-adv)", "clean", "-", 0, 50.0)])  # not a target of Table 2
    cmp = report.comparison(recs, table, tolerance=5.0)
    assert len(cmp) == 7 * 5  # every cell of the paper's table, ours or not
    cell = cmp[(cmp["model"] == "Res26(cln)") & (cmp["column"] == "clean")].iloc[0]
    assert cell["mean"] == 98.0 and cell["std"] == pytest.approx(math.sqrt(2)) and cell["n_seeds"] == 2
    assert cell["paper"] == 99.56 and cell["diff"] == pytest.approx(-1.56) and not cell["off"]
    fgsm = cmp[(cmp["model"] == "Res26(cln)") & (cmp["column"] == "FGSM")].iloc[0]
    assert fgsm["mean"] == 30.0 and np.isnan(fgsm["std"]) and fgsm["diff"] == pytest.approx(4.44) and not fgsm["off"]
    assert fgsm["diff"] > 0  # ours - paper
    assert cmp["mean"].notna().sum() == 2  # the Res20 record and the Res8(self-adv) one are not cells here
    assert report.comparison(recs, table, tolerance=4.0).query("column == 'FGSM' and model == 'Res26(cln)'")["off"].item()


def _variants(robust: dict[str, float], clean: dict[str, float]) -> pd.DataFrame:
    """A comparison frame of Tables 2-4 whose four attack columns all read ``robust[model]``; the
    paper's side holds the same numbers."""
    rows = [(m, c, robust[m] if c in ATTACKS else clean[m]) for m in robust for c in ("clean", *ATTACKS)]
    df = pd.DataFrame(rows, columns=["model", "column", "mean"])
    return df.assign(paper=df["mean"])


ROBUST = {"Res26(cln)": 30.0, "Res26(adv)": 80.0, "Res8(cln)": 20.0, "Res8(adv)": 70.0,
          "Res8(dist-cln)": 25.0, "Res8(dist-adv)": 60.0, "Res8(adv-trans)": 69.0}
CLEAN = dict.fromkeys(ROBUST, 99.0) | {"Res8(adv-trans)": 94.0}


def _verdicts(df: pd.DataFrame, column: str = "reproduction") -> dict[str, str]:
    return {c: report.verdict_word(v) for c, v in zip(df["claim"], df[column])}


def test_claims_c1_to_c3_apply_the_stated_margins():
    v = _verdicts(report.claims(_variants(ROBUST, CLEAN), margin=5.0))
    # C1: 80 - 30 and 70 - 20 > 5; C2: teacher 80 - dist-adv 60 > 5; C3: adv-trans 69 >= adv 70 - 5/5,
    # 69 - dist-adv 60 > 5, clean cost 99 - 94 <= 5
    # C5 has a row because the paper's side always says why it cannot be checked
    assert v == {"C1": "supported", "C2": "supported", "C3": "supported", "C5": "not evaluated here"}
    worse = ROBUST | {"Res8(adv-trans)": 68.9}  # 1.1 points below Res8(adv): more than margin/5
    assert _verdicts(report.claims(_variants(worse, CLEAN), margin=5.0))["C3"] == "NOT supported"
    costly = CLEAN | {"Res8(adv-trans)": 93.9}  # clean cost 5.1 > 5
    assert _verdicts(report.claims(_variants(ROBUST, costly), margin=5.0))["C3"] == "NOT supported"
    near = ROBUST | {"Res26(adv)": 35.0}  # 35 - 30 is not more than 5
    out = _verdicts(report.claims(_variants(near, CLEAN), margin=5.0))
    assert out["C1"] == "NOT supported" and out["C2"] == "NOT supported"  # the teacher 35 < dist-adv 60
    assert _verdicts(report.claims(_variants(near, CLEAN), margin=4.0))["C1"] == "supported"


def test_claims_judge_ours_and_the_papers_numbers_separately_and_say_when_cells_are_missing():
    df = _variants(ROBUST, CLEAN)
    df.loc[df["model"] == "Res26(adv)", "paper"] = 31.0  # the paper's teacher barely above Res26(cln)
    out = report.claims(df, margin=5.0)
    assert _verdicts(out) == {"C1": "supported", "C2": "supported", "C3": "supported", "C5": "not evaluated here"}
    assert _verdicts(out, "paper's own numbers")["C1"] == "NOT supported"
    assert "Res26 adv/cln 80.0/30.0" in out.set_index("claim").loc["C1", "reproduction"]
    partial = df[df["model"] != "Res8(dist-adv)"]
    out = _verdicts(report.claims(partial, margin=5.0))
    assert out["C1"] == "supported" and out["C2"] == "not enough results" and out["C3"] == "not enough results"


def test_claim_c4_pools_the_fgsm_sources_and_the_four_attacks():
    def res8(values: dict[str, float], columns) -> pd.DataFrame:
        df = pd.DataFrame([(m, c, v) for m, v in values.items() for c in columns], columns=["model", "column", "mean"])
        return df.assign(paper=df["mean"])

    sources = res8({"Res8(adv)": 60.0, "Res8(adv-trans)": 62.0, "Res8(self-adv)": 70.0}, ["clean", "FGSM@Res26", "FGSM@Res8"])
    attacks = res8({"Res8(adv)": 80.0, "Res8(adv-trans)": 82.0, "Res8(self-adv)": 50.0}, ["clean", *ATTACKS])
    # pooled: adv (60 + 80) / 2 = 70 and adv-trans 72 beat self-adv (70 + 50) / 2 = 60
    out = report.claims(cmp_sources=sources, cmp_attacks=attacks).set_index("claim")
    assert report.verdict_word(out.loc["C4", "reproduction"]) == "supported"
    assert "adv 70.0, adv-trans 72.0, self-adv 60.0" in out.loc["C4", "reproduction"]
    # the sources alone: self-adv 70 beats both
    out = report.claims(cmp_sources=sources).set_index("claim")
    assert report.verdict_word(out.loc["C4", "reproduction"]) == "NOT supported"


def test_claim_c5_reads_the_curves_mean_and_last_epoch():
    curves = pd.DataFrame([(m, e, a) for m, accs in {"Res8(adv-trans)": [50, 70], "Res8(adv)": [40, 71],
                                                     "Res8(cln)": [10, 20]}.items()
                           for e, a in enumerate(accs, 1)], columns=["model", "epoch", "adv_acc"]).astype({"adv_acc": float})
    out = report.claims(curves=curves, margin=5.0).set_index("claim")
    # mean 60 vs best other 55.5; last 70 vs 71 within margin/5 = 1
    assert report.verdict_word(out.loc["C5", "reproduction"]) == "supported"
    assert out.loc["C5", "paper's own numbers"] == "Figs. 3-4 give no numbers to check"
    curves.loc[(curves["model"] == "Res8(adv)") & (curves["epoch"] == 2), "adv_acc"] = 71.5
    out = report.claims(curves=curves, margin=5.0).set_index("claim")
    assert report.verdict_word(out.loc["C5", "reproduction"]) == "NOT supported"


def test_seed_columns_show_each_seeds_verdict_beside_the_mean():
    mean = report.claims(_variants(ROBUST, CLEAN), margin=5.0)
    seed0 = mean
    seed1 = report.claims(_variants(ROBUST | {"Res8(adv-trans)": 60.0}, CLEAN), margin=5.0)  # C3 fails on seed 1
    out = report.with_seed_columns(mean, {1: seed1, 0: seed0})
    assert list(out.columns) == ["claim", "statement", "reproduction", "seed 0", "seed 1", "paper's own numbers"]
    assert list(out["claim"]) == ["C1", "C2", "C3", "C5"]
    assert list(out["seed 0"]) == ["supported"] * 3 + ["not evaluated here"]
    assert list(out["seed 1"]) == ["supported", "supported", "NOT supported", "not evaluated here"]
    assert out["reproduction"].equals(mean["reproduction"])  # the mean's verdicts keep their evidence
    only_c1 = seed1[seed1["claim"] == "C1"]
    assert list(report.with_seed_columns(mean, {0: only_c1})["seed 0"]) == [
        "supported", "not evaluated here", "not evaluated here", "not evaluated here"]


def test_seed_cells_pair_each_cell_across_seeds_and_the_summary_names_the_largest_spread():
    table = table_for("sources", "cifar10")  # Table 6: FGSM from Res26, Res20, Res14 ("Res16"), Res8
    recs = _records([("Res8(adv)", "FGSM", "Res14", 0, 60.0), ("Res8(adv)", "FGSM", "Res14", 1, 52.5),
                     ("Res8(cln)", "clean", "-", 1, 70.0), ("Res8(cln)", "clean", "-", 0, 71.0),
                     ("Res8(cln)", "FGSM", "Res26", 0, 20.0),  # seed 0 only: not a pair
                     ("Res8(adv)", "clean", "-", 0, 69.0), ("Res8(adv)", "clean", "-", 1, 68.0)])
    cells = report.seed_cells(recs, table)
    assert list(cells.columns) == ["model", "column", "seed 0", "seed 1", "spread"]
    # the paper's order: Res8(cln) before Res8(adv); clean before FGSM@...
    assert [tuple(r) for r in cells[["model", "column"]].itertuples(index=False)] == [
        ("Res8(cln)", "clean"), ("Res8(adv)", "clean"), ("Res8(adv)", "FGSM@Res16")]
    assert list(cells["spread"]) == [1.0, 1.0, 7.5]
    assert report.seed_summary(cells, tolerance=5.0) == (
        "3 cells with every seed (seed 0, seed 1). Spread (largest − smallest over the seeds): median 1.00 "
        "points; more than 5 points for 1 of the 3; largest 7.50 points (Res8(adv), FGSM@Res16: 60.00, 52.50 %).")
    assert report.seed_summary(report.seed_cells(recs[recs["seed"] == 0], table)) == "One seed only: nothing to compare."
