"""Verdicts on the claims C1-C5 with four states and one strict rule for all five (and for the
paper's own numbers): supported, contradicted, within noise, or untestable at this budget.

A claim is a list of comparisons. Each says that a difference ``d = a - b`` of two quantities (a
model's mean robust or clean accuracy, or a statistic of a training curve) is above a threshold
``offset`` that the claim's own words set:

=============================  ====================================  ===========================
the claim says                 the comparison                        ``offset``
=============================  ====================================  ===========================
"makes robust", "clearly more" robust(a) - robust(b) > 5 points      ``+CLEARLY``
"passes on part", "beats"      a - b > 0                             0
"at least as robust as"        robust(a) - robust(b) > -2 points     ``-MARGIN`` (non-inferiority)
"a small clean-accuracy cost"  clean(a) - clean(b) > -5 points       ``-CLEAN_COST``
"faster and higher" (C5)       curve statistic(a) - (best other) > 0  0
=============================  ====================================  ===========================

Every difference has a noise ``sigma``: the seed-to-seed standard deviation of that difference
(per seed, so correlated cells cancel) combined with the binomial error of each accuracy on its
``n`` test images. With ``Z`` = 2, one rule for every comparison:

* it **holds** when ``d - offset > Z sigma`` (the threshold is cleared beyond the noise: for the
  clean cost, the interval's upper end of the cost is below 5 points);
* it **fails** when ``d - offset < -Z sigma`` (the wrong side beyond the noise);
* it is **within noise** otherwise.

A claim is **contradicted** when any comparison fails, **within noise** when none fails but one is
within noise, **supported** when all hold. But first it is **untestable at this budget** when any
model it compares reaches less than ``FLOOR`` of the reference clean accuracy for that model (the
paper's, or, where an erratum shows the paper's is out of reach, ``REFERENCES``), or a teacher is
below its student on clean data: such models have not learned what the paper's models learned.
A claim whose tables are not complete yet (a graph still training has scored some cells and not
others) gets no verdict: **not enough results**, naming the cells it waits for, so that a mean over
the cells present never stands in for the mean over the table.

With one seed the seed spread is not measured: it is never left out (that would be binomial noise
only, far smaller than what a retrain does), but taken from a named stand-in (``Noise``: the same
dataset at the nearest profile with several seeds), and the verdict is marked as resting on one seed.
The paper gives one run per cell: its own numbers are judged with the same stand-in and the binomial
error on n = 10,000 test images.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import data as data_mod
from ..graph import FIGURES, table_for
from .references import REFERENCES, missing_cells, our_cells, paper_cells, reference_clean
from .tables import ATTACK_COLUMNS

Z = 2.0  #: how many noise sigmas a difference must clear
FLOOR = 0.85  #: a compared model below this share of its reference clean accuracy makes a claim untestable
STATES = ("supported", "contradicted", "within noise", "untestable at this budget")
INCOMPLETE = "not enough results"  #: no verdict yet: cells the claim compares are not stored
#: the table groups each claim's comparisons read (C5 reads the curves)
CLAIM_GROUPS = {"C1": ("variants",), "C2": ("variants",), "C3": ("variants",), "C4": ("sources", "attacks")}
CLEAN_COST = 5.0  #: C3's "small clean-accuracy cost", in points
CLEARLY = 5.0  #: "makes robust" (C1) and "clearly more" (C3): a gain of more than this many points
#: C3's "at least as robust as": a non-inferiority margin in points. Set from the measured seed spread:
#: a robust cell moves by a median of 1.5 points between two seeds of reduced CIFAR-10 and 0.6 on MNIST
#: (``seeds.seed_summary`` on the published seeds); 2 points is the smallest whole margin above both.
MARGIN = 2.0
#: what each claim says, in the paper's words as the book's first chapter reads them, with the thresholds we test
STATEMENTS = {
    "C1": "Adversarial training makes Res26 and Res8 robust to transfer attacks; clean training does not "
          f"(adv gains more than {CLEARLY:g} points of robust accuracy over cln).",
    "C2": "Ordinary distillation from a robust teacher (dist-adv) passes on only part of the robustness "
          "(dist-adv is more robust than dist-cln and less than its teacher Res26(adv)).",
    "C3": f"Res8(adv-trans) is at least as robust as Res8(adv) (within a {MARGIN:g}-point margin), clearly "
          f"(more than {CLEARLY:g} points) more than Res8(dist-adv), at a small clean-accuracy cost "
          f"(less than {CLEAN_COST:g} points).",
    "C4": "adv and adv-trans beat self-adv against attacks from other models (Tables 5-10).",
    "C5": "Adversarial knowledge transfer converges faster (a higher mean over the epochs) and higher (a "
          "higher last epoch) than every other Res8, on clean (Fig. 3) and FGSM (Fig. 4) test images.",
}
ONE_SEED = "1 seed"  #: the mark of a verdict whose seed spread is a stand-in
PAPER_STATE, PAPER_EVIDENCE = "paper's numbers", "paper's evidence"  #: ``verdict_table``'s columns on the paper


@dataclass
class Quantity:
    """One number a claim compares, per seed, with the binomial variance of each seed's value."""

    label: str
    model: str
    per_seed: dict[int, float]
    binom_var: dict[int, float]  #: per seed, in points^2

    @property
    def value(self) -> float:
        return float(np.mean(list(self.per_seed.values()))) if self.per_seed else float("nan")


@dataclass
class Comparison:
    """``a - b > offset``, judged against the noise (module docstring); ``test`` names the test."""

    a: Quantity
    b: Quantity
    offset: float = 0.0
    test: str = "greater"

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
        """holds, fails or within noise: the one rule (module docstring)."""
        d = self.difference() - self.offset
        return "holds" if d > Z * sigma else "fails" if d < -Z * sigma else "within noise"

    def short(self, sigma: float) -> str:
        """``a - b = d ± Z sigma (needs > offset)`` in a few words."""
        need = f"> {self.offset:+g}" if self.offset else "> 0"
        return (f"{self.a.model} − {self.b.model} {self.difference():+.1f} ± {Z * sigma:.1f} "
                f"(needs {need}{', ' + self.test if self.test != 'greater' else ''})")

    def words(self, sigma: float) -> str:
        return (f"{self.a.label} {self.a.value:.1f} − {self.b.label} {self.b.value:.1f} = "
                f"{self.difference():+.1f}, needs > {self.offset:+g} beyond ± {Z:g}×{sigma:.1f} "
                f"[{self.test}] ({self.state(sigma)})")


@dataclass
class Claim:
    claim: str
    comparisons: list[Comparison] = field(default_factory=list)
    models: set[str] = field(default_factory=set)  #: every model the claim compares (the floor covers each)
    untestable: list[str] = field(default_factory=list)  #: why, when it is
    missing: list[str] = field(default_factory=list)  #: the cells of its tables not stored yet


@dataclass
class Noise:
    """A seed spread measured elsewhere, for comparisons with one seed: per comparison (claim and
    position) and the median over all of them. A comparison uses the larger of its own and the median:
    a spread from two seeds can be near zero by chance."""

    name: str  #: where it was measured, in words (shown on the page)
    per: dict[tuple[str, int], float]
    median: float

    def sd(self, claim: str, i: int) -> float:
        return max(self.per.get((claim, i), self.median), self.median)

    @classmethod
    def measured(cls, claims: list[Claim], name: str) -> Noise | None:
        """The seed spreads of ``claims`` (built on several seeds), None where none is measured."""
        per = {(c.claim, i): sd for c in claims for i, comp in enumerate(c.comparisons)
               if (sd := comp.seed_sd()) is not None and not np.isnan(sd)}
        return cls(name, per, float(np.median(list(per.values())))) if per else None

    @classmethod
    def pooled(cls, noises: list[Noise], name: str) -> Noise | None:
        """Several datasets' spreads as one: per comparison the largest, and the largest median."""
        if not noises:
            return None
        per: dict[tuple[str, int], float] = {}
        for n in noises:
            for k, v in n.per.items():
                per[k] = max(per.get(k, 0.0), v)
        return cls(name, per, max(n.median for n in noises))


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
    return Quantity(label, model, per, var)


def _curve_claim(curves: pd.DataFrame) -> Claim | None:
    """C5 on the per-epoch curves: for each figure (``graph.FIGURES``: clean and FGSM accuracy), "faster"
    (the mean over the epochs, the area under the curve) and "higher" (the last epoch), adv-trans
    against the best other model on that statistic."""
    n = int(curves["n_curve"].iloc[0]) if "n_curve" in curves else 1000
    comps: list[Comparison] = []
    for fig, col in FIGURES.items():
        c = curves.dropna(subset=[col]) if col in curves else curves.iloc[:0]
        if not len(c):
            continue
        g = c.sort_values("epoch").groupby(["model", "seed"])[col]
        stats = pd.concat([g.mean().rename("accuracy").reset_index().assign(column="mean"),
                           g.last().rename("accuracy").reset_index().assign(column="last")],
                          ignore_index=True).assign(n_examples=n)
        others = [m for m in stats["model"].unique() if m != "Res8(adv-trans)"]
        if "Res8(adv-trans)" not in set(stats["model"]) or not others:
            continue
        for stat, word in (("mean", "faster: mean over epochs"), ("last", "higher: last epoch")):
            best = max(others, key=lambda m: quantity(stats, m, [stat], "").value)
            comps.append(Comparison(quantity(stats, "Res8(adv-trans)", [stat], f"Fig. {fig} adv-trans"),
                                    quantity(stats, best, [stat], best), test=f"Fig. {fig}, {word}"))
    return Claim("C5", comps, set(curves["model"])) if comps else None


def build_claims(dataset: str, cells: dict[str, pd.DataFrame | None], curves: pd.DataFrame | None,
                 paper: bool = False) -> list[Claim]:
    """The comparisons of C1-C5 on ``cells`` (per table group: model, column, seed, accuracy,
    n_examples) and ``curves``; with ``paper`` the floor rule does not apply (the paper's numbers are
    judged as they are; ``REFERENCES`` marks where they are implausible)."""
    v, s, a = cells.get("variants"), cells.get("sources"), cells.get("attacks")
    robust = lambda df, m: quantity(df, m, ATTACK_COLUMNS, f"{m} robust")  # noqa: E731
    clean = lambda df, m: quantity(df, m, ["clean"], f"{m} clean")  # noqa: E731
    out: list[Claim] = []
    if v is not None:
        out.append(Claim("C1", [Comparison(robust(v, "Res26(adv)"), robust(v, "Res26(cln)"), CLEARLY, "gain"),
                                Comparison(robust(v, "Res8(adv)"), robust(v, "Res8(cln)"), CLEARLY, "gain")]))
        out.append(Claim("C2", [Comparison(robust(v, "Res26(adv)"), robust(v, "Res8(dist-adv)"), test="only part"),
                                Comparison(robust(v, "Res8(dist-adv)"), robust(v, "Res8(dist-cln)"), test="some")]))
        out.append(Claim("C3", [Comparison(robust(v, "Res8(adv-trans)"), robust(v, "Res8(adv)"), -MARGIN,
                                           "non-inferiority"),
                                Comparison(robust(v, "Res8(adv-trans)"), robust(v, "Res8(dist-adv)"), CLEARLY,
                                           "clearly more"),
                                Comparison(clean(v, "Res8(adv-trans)"), clean(v, "Res8(cln)"), -CLEAN_COST,
                                           "clean cost")]))
    pooled = [df.assign(column="r:" + df["column"].astype(str)) for df in (s, a) if df is not None]
    if pooled:
        p = pd.concat(pooled, ignore_index=True)
        cols = [c for c in p["column"].unique() if c.startswith("r:FGSM@") or c[2:] in ATTACK_COLUMNS]
        q = lambda m: quantity(p, m, cols, f"{m} robust (Tables 5-10)")  # noqa: E731
        out.append(Claim("C4", [Comparison(q("Res8(adv)"), q("Res8(self-adv)")),
                                Comparison(q("Res8(adv-trans)"), q("Res8(self-adv)"))]))
    if curves is not None and len(curves) and not paper and (c5 := _curve_claim(curves)) is not None:
        out.append(c5)
    for c in out:
        c.models |= {m for comp in c.comparisons for m in (comp.a.model, comp.b.model)}
    if not paper:
        _mark_untestable(out, dataset, [df for df in (v, s, a) if df is not None])
        for c in out:
            c.missing = [f"Table {table_for(g, dataset).number}: {cell}" for g in CLAIM_GROUPS.get(c.claim, ())
                         for cell in missing_cells(cells.get(g), dataset, g)]
    return out


def _mark_untestable(claims: list[Claim], dataset: str, cells: list[pd.DataFrame]) -> None:
    """The floor on every model a claim compares (its clean accuracy from whichever table has it:
    Res8(self-adv) is in Tables 5-10 only), and a teacher above its student (module docstring)."""
    if not cells:
        return
    floor = reference_clean(dataset)
    whose = "the reference" if dataset in REFERENCES else "the paper's"
    clean = pd.concat([df[df["column"] == "clean"] for df in cells], ignore_index=True)
    ours = clean.drop_duplicates(["model", "seed"]).groupby("model")["accuracy"].mean().to_dict()
    for c in claims:
        for m in sorted(c.models):
            if m in ours and m in floor and ours[m] < FLOOR * floor[m]:
                c.untestable.append(f"{m} clean {ours[m]:.1f} % < {FLOOR:.0%} of {whose} {floor[m]:.1f} %")
        if c.claim in ("C2", "C3") and {"Res26(adv)", "Res8(dist-adv)"} <= set(ours) \
                and ours["Res26(adv)"] < ours["Res8(dist-adv)"]:
            c.untestable.append(f"teacher Res26(adv) clean {ours['Res26(adv)']:.1f} % below its student "
                                f"Res8(dist-adv) {ours['Res8(dist-adv)']:.1f} %")


@dataclass
class Verdict:
    state: str
    evidence: str  #: every comparison in words
    short: str  #: one line: the comparison that decides the state
    one_seed: bool = False  #: the seed spread is a stand-in (``Noise``)


def judge(claim: Claim, noise: Noise | None) -> Verdict:
    """The state of ``claim``; a comparison without its own seed spread takes ``noise``'s."""
    if claim.untestable:
        judged = judge(Claim(claim.claim, claim.comparisons), noise)  # for information, not a verdict
        return Verdict(STATES[3], "; ".join(claim.untestable) + f". Not judged, for information: {judged.evidence}",
                       claim.untestable[0])
    if claim.missing:
        n = len(claim.missing)
        why = (f"{n} cell{'s' if n > 1 else ''} of its tables not computed yet ("
               + ", ".join(claim.missing[:4]) + (", ..." if n > 4 else "") + ")")
        return Verdict(INCOMPLETE, why + "; the graph is still training or being scored", why)
    parts, judged, one_seed = [], [], False
    for i, comp in enumerate(claim.comparisons):
        if np.isnan(comp.difference()):
            why = f"{comp.a.label} or {comp.b.label} is missing"
            return Verdict(INCOMPLETE, why, why)
        sd, note = comp.seed_sd(), ""
        if sd is None:
            one_seed = True
            sd = noise.sd(claim.claim, i) if noise is not None else 0.0
            note = f" [seed spread: {noise.name}]" if noise is not None else " [no seed spread measured anywhere]"
        sigma = float(np.hypot(sd, comp.binom_sd()))
        judged.append((comp.state(sigma), comp, sigma))
        parts.append(comp.words(sigma) + note)
    states = [s for s, _, _ in judged]
    state = STATES[1] if "fails" in states else STATES[2] if "within noise" in states else STATES[0]
    # the comparison that decides: the first that fails, else the first within noise, else the closest
    decisive = next((j for j in judged if j[0] == "fails"), None) or next(
        (j for j in judged if j[0] == "within noise"), None) or min(
        judged, key=lambda j: (j[1].difference() - j[1].offset) / max(j[2], 1e-9))
    return Verdict(state, "; ".join(parts), decisive[1].short(decisive[2]), one_seed)


def verdict_table(dataset: str, records: dict[str, pd.DataFrame | None], curves: pd.DataFrame | None,
                  noise: Noise | None = None, paper_noise: Noise | None = None) -> pd.DataFrame:
    """claim, statement, state, short, evidence and one_seed for our numbers, and the same rule on the
    paper's (``paper_noise`` as their seed spread); where ``REFERENCES`` shows the paper's clean numbers
    are out of reach, the paper's cells read "implausible (erratum N)" instead of a verdict."""
    ours = build_claims(dataset, {g: our_cells(r, dataset, g) for g, r in records.items()}, curves)
    paper = {c.claim: c for c in build_claims(dataset, {g: paper_cells(dataset, g) for g in records}, None, paper=True)}
    ref = REFERENCES.get(dataset)
    rows = []
    for c in ours:
        v = judge(c, noise)
        if c.claim not in paper:
            p_state, p_why = "no numbers", "Figs. 3-4 give none"
        elif ref is not None:
            p_state = ref.implausible
            p_why = (f"the paper's clean accuracies on {dataset} are out of reach for these models (erratum "
                     f"{ref.erratum}): no verdict on them")
        else:
            pv = judge(paper[c.claim], paper_noise)
            p_state, p_why = pv.state, pv.evidence
        rows.append({"claim": c.claim, "statement": STATEMENTS[c.claim], "state": v.state, "short": v.short,
                     "evidence": v.evidence, "one_seed": v.one_seed, PAPER_STATE: p_state,
                     PAPER_EVIDENCE: p_why})
    return pd.DataFrame(rows, columns=["claim", "statement", "state", "short", "evidence", "one_seed",
                                       PAPER_STATE, PAPER_EVIDENCE])


def rule_markdown(dataset: str | None = None, noise_name: str | None = None, myst: bool = True) -> str:
    """The rule in words, from the constants above (its one statement: the scorecard, the Results
    chapter and every claims section show this text). With ``dataset``, its floor's reference and the
    stand-in ``noise_name`` it uses; ``myst`` cites with roles (pages), else plain text (notebook output)."""
    def cite(key: str) -> str:
        return f"{{cite:p}}`{key}`" if myst else f"({key}, in the bibliography)"

    refs = "; ".join(f"on {data_mod.spec(ds).title}, the paper's clean numbers are out of reach "
                     f"(erratum {r.erratum}), so the floor's reference is the best published accuracy of this width, "
                     f"{r.value:g} % for {r.source} {cite(r.cite)}, with each variant scaled by the paper's own ratio "
                     f"to {r.model}, and the paper's cells read *{r.implausible}*"
                     for ds, r in REFERENCES.items() if dataset in (None, ds))
    text = (
        f"One rule for every claim and for the paper's own numbers (`akt_core.report.verdicts`). Each claim "
        f"is a few comparisons *a − b > threshold*, the threshold set by the claim's words: a gain of more "
        f"than {CLEARLY:g} points for \"makes robust\" and \"clearly more\", 0 for \"beats\" and \"only part\", "
        f"−{MARGIN:g} points for \"at least as robust as\" (a non-inferiority margin, about the measured spread "
        f"of one cell between two seeds), −{CLEAN_COST:g} points for \"a small clean-accuracy cost\". A "
        f"comparison **holds** when its difference clears the threshold by more than {Z:g} σ, **fails** when it "
        f"is more than {Z:g} σ on the wrong side, and is **within noise** otherwise; σ combines the seed-to-seed "
        f"spread of that difference with the binomial error of each accuracy. A claim is **supported** when every "
        f"comparison holds, **contradicted** when one fails, **within noise** otherwise, and first "
        f"**untestable at this budget** when any model it compares reaches less than {FLOOR:.0%} of its "
        f"reference clean accuracy (the paper's), or a teacher is below its student; a claim whose tables are "
        f"not complete yet (a graph still training) gets no verdict, **{INCOMPLETE}**, and names the cells "
        f"it waits for. With one seed the seed "
        f"spread is a stand-in measured on the same dataset at the nearest profile with two seeds (per "
        f"comparison, never below the median of all comparisons there), and the verdict is marked "
        f"*({ONE_SEED})*; the paper's own numbers, one run each, are judged with the same stand-in.")
    if refs:
        text += " " + refs[0].upper() + refs[1:] + "."
    if noise_name:
        text += f" Stand-in seed spread here: {noise_name}."
    return text + "\n"
