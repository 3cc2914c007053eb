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
    # the caption counts the cells ours share with the paper's and says how many are not computed yet
    labelled = recs.assign(profile="reduced", dataset_variant="original", n_examples=10000, device="cpu: x",
                           git_commit="abc")
    assert report.caption(report.comparison(recs, table, tolerance=4.0), table, labelled, 4.0).startswith(
        "**Table 2, MNIST.** 1 of 2 cells differ from the paper's by more than 4 points. **33 of 35 cells are "
        "not computed yet** (marked *missing*: their models or sources are still training). *Profile reduced;")
    complete = cmp.assign(mean=cmp["mean"].fillna(cmp["paper"]))  # every cell there: no such sentence
    assert "not computed yet" not in report.caption(complete.assign(off=False), table, labelled)
    assert report.caption(complete.assign(off=False), table, labelled).startswith(
        "**Table 2, MNIST.** 0 of 35 cells differ")


# (The claims' verdicts are tested in test_verdicts.py, on hand-made numbers.)


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


def test_show_keeps_a_labelled_index_as_a_column_and_hides_the_pandas_one():
    from akt_core.report import style

    df = pd.DataFrame({"acc": [1.234, 5.0]}, index=pd.Index(["Res8(cln)", "Res8(adv)"], name="model"))
    html = style.show(df).to_html()
    assert "Res8(cln)" in html and ">model<" in html and ">1.23<" in html
    assert "row_heading" not in html  # no pandas index column
    plain = style.show(pd.DataFrame({"a": [1], "b": ["x"]})).to_html()
    assert ">index<" not in plain and "row_heading" not in plain


def test_a_sweep_with_one_eps_per_panel_is_not_a_sweep():
    """The white-box table's 16/256 rows alone leave every panel with one point: nothing to read a
    crossing from, so the page says the sweep is not stored instead of drawing dots."""
    from akt_core.report import whitebox

    rows = [{"attack": a, "source": s, "eps_256": e, "model": "Res8(adv)", "accuracy": 50.0, "seed": 0}
            for a, s, _ in whitebox.SWEEP_PANELS for e in (8, 16)]
    full = pd.DataFrame(rows)
    assert whitebox.missing_panels(full) == []
    one = full[(full["source"] != "white-box") | (full["eps_256"] == 16)]
    assert whitebox.missing_panels(one) == ["white-box PGD-20"]
    assert len(whitebox.missing_panels(full.iloc[:0])) == 3


def test_seed_spread_counts_each_cell_once_over_the_cells_every_seed_has(monkeypatch):
    """``report.seeds.spread_rows`` on hand-made records: a cell two tables share counts once, a cell
    one seed lacks is counted apart, and the spread is the largest minus the smallest accuracy."""
    import pandas as pd

    from akt_core import results as RS
    from akt_core.report import seeds as SD

    def rec(model, attack, source, seed, acc):
        return {"model": model, "attack": attack, "source": source, "seed": seed, "accuracy": acc,
                "device": "cpu: X (AVX2) x2 threads"}

    rows = [rec("Res8(adv)", "clean", "-", 0, 80.0), rec("Res8(adv)", "clean", "-", 1, 79.0),
            rec("Res8(adv)", "FGSM", "Res26", 0, 50.0), rec("Res8(adv)", "FGSM", "Res26", 1, 56.5),
            rec("Res8(cln)", "FGSM", "Res26", 0, 20.0)]  # seed 1 missing
    groups = {"variants": rows, "sources": rows[:4], "attacks": rows[2:4]}  # shared cells, once each
    monkeypatch.setattr(RS, "stored_seeds", lambda p, d, *a, **k: [0, 1] if (p, d) == ("reduced", "mnist") else [0])
    monkeypatch.setattr(RS, "require", lambda g, d, p, s, **k: pd.DataFrame(groups[g]))
    df = SD.spread_rows()
    assert len(df) == 1
    r = df.iloc[0]
    assert (r["profile"], r["dataset"], r["seeds"], r["cells"], r["cells missing a seed"]) == ("reduced", "mnist", "0, 1", 2, 1)
    assert r["median spread"] == pytest.approx((1.0 + 6.5) / 2) and r["largest"] == pytest.approx(6.5)
    assert r["over 5 points"] == 1 and r["where"] == "Res8(adv), FGSM from Res26" and r["machines"] == "X (AVX2)"
    line = "| reduced | mnist | 0, 1 | 2 (1 still missing a seed) | 3.75 | 1 | 6.50 (Res8(adv), FGSM from Res26) |"
    assert line in SD.spread_markdown()
