"""Verdicts on the claims C1-C5 with four states and one rule for all five (and for the paper's own
numbers): supported, contradicted, within noise, or untestable at this budget.

A claim is a list of comparisons between two quantities (a model's robust or clean accuracy, or a
curve's mean), each saying that ``a - b`` is above ``offset`` (``greater``) or not below it
(``not_below``). Every difference has a noise ``sigma``: the seed-to-seed standard deviation of that
difference (per seed, so correlated cells cancel; with one seed, a named stand-in) combined with the
binomial error of each accuracy on its ``n`` test images. Then, with ``Z`` = 2:

* a ``greater`` comparison holds when ``d - offset > Z sigma`` (``offset`` is the size the claim's
  own words give, 5 points for "makes robust" and "clearly more", else 0), fails when ``d - offset < -Z sigma``
  and is within noise otherwise; a ``not_below`` comparison holds unless ``d - offset < -Z sigma``;
* a claim is **contradicted** when any comparison fails, **within noise** when none fails but one is
  within noise, **supported** when all hold;
* but first it is **untestable at this budget** when a model it compares reaches less than
  ``FLOOR`` of the paper's clean accuracy for that model, or a teacher is below its student on clean
  data: such models have not learned what the paper's models learned.

The paper gives one run per cell: its own numbers are judged with the binomial error alone (n =
10,000 test images), which is all one run can support.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..graph import TABLES, table_for
from .tables import ATTACK_COLUMNS, _cells, paper_numbers

Z = 2.0  #: how many noise sigmas a difference must exceed
FLOOR = 0.85  #: a compared model below this share of the paper's clean accuracy makes a claim untestable
PAPER_N = 10_000  #: test images behind each of the paper's cells (the full test sets)
STATES = ("supported", "contradicted", "within noise", "untestable at this budget")
#: what each claim says, in the paper's words as METHOD.md reads them
STATEMENTS = {
    "C1": "Adversarial training makes Res26 and Res8 robust to transfer attacks; clean training does not "
          "(adv gains more than 5 points of robust accuracy over cln).",
    "C2": "Ordinary distillation from a robust teacher (dist-adv) passes on only part of the robustness.",
    "C3": "Res8(adv-trans) is at least as robust as Res8(adv), clearly (more than 5 points) more than "
          "Res8(dist-adv), at a small clean-accuracy cost (at most 5 points).",
    "C4": "adv and adv-trans beat self-adv against attacks from other models (Tables 5-10).",
    "C5": "Adversarial knowledge transfer converges faster and higher (Figs. 3-4).",
}
CLEAN_COST = 5.0  #: C3's "small clean-accuracy cost", in points
CLEARLY = 5.0  #: "makes robust" (C1) and "clearly more" (C3): a gain of more than this many points


@dataclass
class Quantity:
    """One number a claim compares, per seed, with the binomial variance of each seed's value."""

    label: str
    per_seed: dict[int, float]
    binom_var: dict[int, float]  #: per seed, in points^2

    @property
    def value(self) -> float:
        return float(np.mean(list(self.per_seed.values()))) if self.per_seed else float("nan")


@dataclass
class Comparison:
    a: Quantity
    b: Quantity
    kind: str = "greater"  #: "greater" or "not_below"
    offset: float = 0.0

    def difference(self) -> float:
        return self.a.value - self.b.value

    def seed_sd(self) -> float | None:
        """Seed-to-seed standard deviation of the difference (None with fewer than two seeds)."""
        seeds = sorted(set(self.a.per_seed) & set(self.b.per_seed))
        if len(seeds) < 2:
            return None
        return float(np.std([self.a.per_seed[s] - self.b.per_seed[s] for s in seeds], ddof=1))

    def binom_sd(self) -> float:
        seeds = sorted(set(self.a.per_seed) & set(self.b.per_seed))
        if not seeds:
            return float("nan")
        return float(np.sqrt(np.mean([self.a.binom_var[s] + self.b.binom_var[s] for s in seeds])))

    def state(self, sigma: float) -> str:
        d = self.difference() - self.offset
        if self.kind == "not_below":
            return "fails" if d < -Z * sigma else "holds"
        return "holds" if d > Z * sigma else "fails" if d < -Z * sigma else "within noise"

    def words(self, sigma: float) -> str:
        rel = {"greater": ">", "not_below": ">="}[self.kind] + (f" {self.offset:+g}" if self.offset else "")
        return (f"{self.a.label} {self.a.value:.1f} {rel} {self.b.label} {self.b.value:.1f}: "
                f"diff {self.difference():+.1f} ± {Z:g}×{sigma:.1f} ({self.state(sigma)})")


@dataclass
class Claim:
    claim: str
    comparisons: list[Comparison] = field(default_factory=list)
    untestable: list[str] = field(default_factory=list)  #: why, when it is


def _binom(p_pct: np.ndarray, n: np.ndarray) -> float:
    """Binomial variance (points^2) of the mean of accuracies ``p_pct`` on ``n`` images each."""
    p = np.asarray(p_pct, dtype=float) / 100.0
    return float(np.sum(p * (1 - p) / np.asarray(n, dtype=float)) * 1e4 / len(p) ** 2) if len(p) else float("nan")


def quantity(cells: pd.DataFrame, model: str, columns, label: str) -> Quantity:
    """The mean accuracy of ``model`` over ``columns`` of ``cells`` (rows: model, column, seed,
    accuracy, n_examples), per seed."""
    sel = cells[(cells["model"] == model) & (cells["column"].isin(list(columns)))]
    per, var = {}, {}
    for seed, g in sel.groupby("seed"):
        if g["column"].nunique() == len(set(columns) & set(cells["column"])) and len(g):
            per[int(seed)] = float(g["accuracy"].mean())
            var[int(seed)] = _binom(g["accuracy"].to_numpy(), g["n_examples"].to_numpy())
    return Quantity(label, per, var)


def _paper_cells(dataset: str, group: str) -> pd.DataFrame:
    p = paper_numbers()
    num = table_for(group, dataset).number
    p = p[(p["table"] == num) & (p["dataset"] == dataset)].dropna(subset=["value"])
    return pd.DataFrame({"model": p["model"], "column": p["column"], "seed": 0, "accuracy": p["value"],
                         "n_examples": PAPER_N})


def _our_cells(records: pd.DataFrame | None, dataset: str, group: str) -> pd.DataFrame | None:
    if records is None or not len(records):
        return None
    return _cells(records, table_for(group, dataset))[["model", "column", "seed", "accuracy", "n_examples"]]


def paper_clean(dataset: str) -> dict[str, float]:
    """The paper's clean accuracy per model on ``dataset`` (Tables 2-10; the first table that has it)."""
    p = paper_numbers()
    p = p[(p["dataset"] == dataset) & (p["column"] == "clean") & p["table"].isin([n for n in TABLES])]
    return p.dropna(subset=["value"]).groupby("model")["value"].first().to_dict()


def build_claims(dataset: str, cells: dict[str, pd.DataFrame | None], curves: pd.DataFrame | None,
                 paper: bool = False) -> list[Claim]:
    """The comparisons of C1-C5 on ``cells`` (per table group: model, column, seed, accuracy,
    n_examples) and ``curves``; with ``paper`` the floor rule does not apply (the paper is the yardstick)."""
    v, s, a = cells.get("variants"), cells.get("sources"), cells.get("attacks")
    robust = lambda df, m: quantity(df, m, ATTACK_COLUMNS, f"{m} robust")  # noqa: E731
    clean = lambda df, m: quantity(df, m, ["clean"], f"{m} clean")  # noqa: E731
    out: list[Claim] = []
    if v is not None:
        out.append(Claim("C1", [Comparison(robust(v, "Res26(adv)"), robust(v, "Res26(cln)"), offset=CLEARLY),
                                Comparison(robust(v, "Res8(adv)"), robust(v, "Res8(cln)"), offset=CLEARLY)]))
        out.append(Claim("C2", [Comparison(robust(v, "Res26(adv)"), robust(v, "Res8(dist-adv)"))]))
        out.append(Claim("C3", [Comparison(robust(v, "Res8(adv-trans)"), robust(v, "Res8(adv)"), "not_below"),
                                Comparison(robust(v, "Res8(adv-trans)"), robust(v, "Res8(dist-adv)"), offset=CLEARLY),
                                Comparison(clean(v, "Res8(adv-trans)"), clean(v, "Res8(cln)"), "not_below",
                                           -CLEAN_COST)]))
    pooled = [df.assign(column="r:" + df["column"].astype(str)) for df, cols in ((s, None), (a, None))
              if df is not None]
    if pooled:
        p = pd.concat(pooled, ignore_index=True)
        cols = [c for c in p["column"].unique() if c.startswith("r:FGSM@") or c[2:] in ATTACK_COLUMNS]
        q = lambda m: quantity(p, m, cols, f"{m} robust (Tables 5-10)")  # noqa: E731
        out.append(Claim("C4", [Comparison(q("Res8(adv)"), q("Res8(self-adv)")),
                                Comparison(q("Res8(adv-trans)"), q("Res8(self-adv)"))]))
    if curves is not None and len(curves) and "adv_acc" in curves and not paper:
        c = curves.dropna(subset=["adv_acc"])
        n = int(c["n_curve"].iloc[0]) if "n_curve" in c else 1000
        mean = c.groupby(["model", "seed"])["adv_acc"].mean().rename("accuracy").reset_index().assign(
            column="mean", n_examples=n)
        last = c.sort_values("epoch").groupby(["model", "seed"])["adv_acc"].last().rename("accuracy").reset_index()
        both = pd.concat([mean, last.assign(column="last", n_examples=n)], ignore_index=True)
        others = [m for m in both["model"].unique() if m != "Res8(adv-trans)"]
        comps = []
        for col, words in (("mean", "mean over epochs"), ("last", "last epoch")):
            if not others:
                break
            best = max(others, key=lambda m: quantity(both, m, [col], "").value)
            comps.append(Comparison(quantity(both, "Res8(adv-trans)", [col], f"adv-trans FGSM acc. ({words})"),
                                    quantity(both, best, [col], f"best other {best}"), "not_below"))
        if comps:
            out.append(Claim("C5", comps))
    if not paper:
        _mark_untestable(out, dataset, v)
    return out


def _mark_untestable(claims: list[Claim], dataset: str, v: pd.DataFrame | None) -> None:
    floor = paper_clean(dataset)
    if v is None:
        return
    ours = v[v["column"] == "clean"].groupby("model")["accuracy"].mean().to_dict()
    for c in claims:
        models = {m for comp in c.comparisons for m in (comp.a.label.split(" ")[0], comp.b.label.split(" ")[0])
                  if m.startswith("Res")}
        if c.claim == "C5":
            models = {"Res8(adv-trans)", "Res8(adv)", "Res8(dist-adv)", "Res8(cln)"}
        if c.claim == "C4":
            models = {"Res8(adv)", "Res8(adv-trans)"}
        for m in sorted(models):
            if m in ours and m in floor and ours[m] < FLOOR * floor[m]:
                c.untestable.append(f"{m} clean {ours[m]:.1f} % < {FLOOR:.0%} of the paper's {floor[m]:.1f} %")
        if c.claim in ("C2", "C3") and {"Res26(adv)", "Res8(dist-adv)"} <= set(ours) \
                and ours["Res26(adv)"] < ours["Res8(dist-adv)"]:
            c.untestable.append(f"teacher Res26(adv) clean {ours['Res26(adv)']:.1f} % below its student "
                                f"Res8(dist-adv) {ours['Res8(dist-adv)']:.1f} %")


def judge(claim: Claim, stand_in: float | None, stand_in_name: str) -> tuple[str, str]:
    """(state, evidence in words) of ``claim``; ``stand_in`` replaces the seed spread with one seed."""
    if claim.untestable:
        return STATES[3], "; ".join(claim.untestable)
    parts, states = [], []
    for comp in claim.comparisons:
        if np.isnan(comp.difference()):
            return "not enough results", f"{comp.a.label} or {comp.b.label} is missing"
        sd = comp.seed_sd()
        noise_note = ""
        if sd is None:
            sd = stand_in if stand_in is not None else 0.0
            noise_note = f" [seed spread: {stand_in_name}]" if stand_in is not None else " [binomial only]"
        sigma = float(np.hypot(sd, comp.binom_sd()))
        states.append(comp.state(sigma))
        parts.append(comp.words(sigma) + noise_note)
    state = STATES[1] if "fails" in states else STATES[2] if "within noise" in states else STATES[0]
    return state, "; ".join(parts)


def stand_in_spread(per_dataset: dict[str, list[Claim]]) -> tuple[float | None, str]:
    """The median seed spread of every comparison on the datasets with several seeds: the stated
    stand-in for a dataset with one seed."""
    sds, names = [], []
    for ds, claims in per_dataset.items():
        got = [sd for c in claims for comp in c.comparisons if (sd := comp.seed_sd()) is not None]
        if got:
            sds += got
            names.append(ds)
    if not sds:
        return None, "none"
    return float(np.median(sds)), f"median seed spread of the comparisons on {', '.join(names)} ({np.median(sds):.1f})"


def verdict_table(dataset: str, records: dict[str, pd.DataFrame | None], curves: pd.DataFrame | None,
                  stand_in: tuple[float | None, str] = (None, "none")) -> pd.DataFrame:
    """claim, statement, state and evidence for our numbers, and the same rule on the paper's."""
    ours = build_claims(dataset, {g: _our_cells(r, dataset, g) for g, r in records.items()}, curves)
    paper = {c.claim: c for c in build_claims(dataset, {g: _paper_cells(dataset, g) for g in records}, None, paper=True)}
    rows = []
    for c in ours:
        state, why = judge(c, *stand_in)
        p_state, p_why = judge(paper[c.claim], None, "") if c.claim in paper else ("no numbers", "Figs. 3-4 give none")
        rows.append({"claim": c.claim, "statement": STATEMENTS[c.claim], "state": state, "evidence": why,
                     "paper's numbers": p_state, "paper's evidence": p_why})
    return pd.DataFrame(rows)
