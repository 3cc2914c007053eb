"""Claims C1-C5 (METHOD.md): one explicit rule each, applied to our numbers and to the paper's."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import AktError
from ..graph import TABLES, table_for
from ..results import require
from .tables import ATTACK_COLUMNS, comparison


@dataclass
class Verdict:
    claim: str
    statement: str
    ours: str
    paper: str

    def as_row(self) -> dict:
        return {"claim": self.claim, "statement": self.statement, "reproduction": self.ours,
                "paper's own numbers": self.paper}


def _robust(cells: pd.DataFrame, model: str, columns) -> float:
    sel = cells[(cells["model"] == model) & (cells["column"].isin(columns))]
    return float(sel["value"].mean()) if len(sel) else float("nan")


def _cells_from_cmp(cmp: pd.DataFrame, which: str) -> pd.DataFrame:
    return cmp.rename(columns={which: "value"})[["model", "column", "value"]].astype({"column": str, "model": str})


def _judge(ok: bool | None, evidence: str) -> str:
    if ok is None:
        return f"not enough results ({evidence})"
    return ("supported" if ok else "NOT supported") + f" ({evidence})"


def claims(cmp_variants: pd.DataFrame | None = None, cmp_sources: pd.DataFrame | None = None,
           cmp_attacks: pd.DataFrame | None = None, curves: pd.DataFrame | None = None,
           margin: float = 5.0) -> pd.DataFrame:
    """Verdicts on C1-C5 (METHOD.md), by the same explicit rule for our numbers and the paper's.

    Robust accuracy = mean accuracy over the four transfer attacks (or the four FGSM sources). A
    difference counts when it exceeds ``margin`` points; "at least as robust" allows ``margin``/5.
    """
    out = []
    for which in ("mean", "paper"):
        v = _cells_from_cmp(cmp_variants, which) if cmp_variants is not None else None
        s = _cells_from_cmp(cmp_sources, which) if cmp_sources is not None else None
        a = _cells_from_cmp(cmp_attacks, which) if cmp_attacks is not None else None
        res = {}
        if v is not None:
            r = {m: _robust(v, m, ATTACK_COLUMNS) for m in v["model"].unique()}
            clean = {m: _robust(v, m, ["clean"]) for m in v["model"].unique()}
            vals = [r.get(k, np.nan) for k in ("Res26(adv)", "Res26(cln)", "Res8(adv)", "Res8(cln)")]
            ok1 = None if np.isnan(vals).any() else (vals[0] - vals[1] > margin and vals[2] - vals[3] > margin)
            res["C1"] = _judge(ok1, f"robust acc. Res26 adv/cln {vals[0]:.1f}/{vals[1]:.1f}, "
                                    f"Res8 adv/cln {vals[2]:.1f}/{vals[3]:.1f}")
            da, t26, dc = r.get("Res8(dist-adv)", np.nan), r.get("Res26(adv)", np.nan), r.get("Res8(dist-cln)", np.nan)
            ok2 = None if np.isnan([da, t26]).any() else bool(t26 - da > margin)
            res["C2"] = _judge(ok2, f"robust acc. Res8(dist-adv) {da:.1f} vs teacher Res26(adv) {t26:.1f}, "
                                    f"Res8(dist-cln) {dc:.1f}")
            at, ad = r.get("Res8(adv-trans)", np.nan), r.get("Res8(adv)", np.nan)
            ca, cc = clean.get("Res8(adv-trans)", np.nan), clean.get("Res8(cln)", np.nan)
            ok3 = None if np.isnan([at, ad, da, ca, cc]).any() else bool(
                at >= ad - margin / 5 and at - da > margin and cc - ca <= margin)
            res["C3"] = _judge(ok3, f"robust acc. adv-trans {at:.1f}, adv {ad:.1f}, dist-adv {da:.1f}; "
                                    f"clean adv-trans {ca:.1f} vs cln {cc:.1f}")
        frames = [(s, [c for c in s["column"].unique() if c.startswith("FGSM@")]) if s is not None else None,
                  (a, ATTACK_COLUMNS) if a is not None else None]
        rs = [(_robust(f, "Res8(adv)", cols), _robust(f, "Res8(adv-trans)", cols), _robust(f, "Res8(self-adv)", cols))
              for f, cols in filter(None, frames)]
        if rs:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ad, at, sa = np.nanmean(np.array(rs), axis=0)
            ok4 = None if np.isnan([ad, at, sa]).any() else bool(ad > sa and at > sa)
            res["C4"] = _judge(ok4, f"robust acc. (Tables 5-10) adv {ad:.1f}, adv-trans {at:.1f}, self-adv {sa:.1f}")
        if which == "mean" and curves is not None and len(curves) and "adv_acc" in curves:
            m = curves.groupby("model")["adv_acc"].mean()
            last = curves.sort_values("epoch").groupby("model")["adv_acc"].last()
            if "Res8(adv-trans)" in m:
                others = m.drop("Res8(adv-trans)")
                ok5 = bool(m["Res8(adv-trans)"] >= others.max() - margin / 5
                           and last["Res8(adv-trans)"] >= last.drop("Res8(adv-trans)").max() - margin / 5)
                res["C5"] = _judge(ok5, f"mean adv. acc. over epochs: adv-trans {m['Res8(adv-trans)']:.1f}, "
                                        f"best other {others.max():.1f} ({others.idxmax()})")
        elif which == "paper":
            res["C5"] = "Figs. 3-4 give no numbers to check"
        out.append(res)
    statements = {
        "C1": "Adversarial training makes Res26 and Res8 robust to transfer attacks; clean training does not.",
        "C2": "Ordinary distillation from a robust teacher (dist-adv) passes on only part of the robustness.",
        "C3": "Res8(adv-trans) is at least as robust as Res8(adv), clearly more than Res8(dist-adv), "
              "at a small clean-accuracy cost.",
        "C4": "adv and adv-trans beat self-adv against attacks from other models (Tables 5-10).",
        "C5": "Adversarial knowledge transfer converges faster and higher (Figs. 3-4).",
    }
    rows = [Verdict(c, statements[c], out[0].get(c, "not evaluated here"), out[1].get(c, "not evaluated here")).as_row()
            for c in statements if c in out[0] or c in out[1]]
    return pd.DataFrame(rows)


def table_numbers(group: str) -> dict[str, int]:
    """Dataset -> table number for a table group."""
    return {TABLES[n].dataset: n for n in TABLES if TABLES[n].group == group}


def all_claims(dataset: str, profile: str, seeds=(0,), blackbox: str = "held-out",
               tolerance: float = 5.0) -> pd.DataFrame:
    """C1-C5 verdicts for ``dataset`` from whatever stored results exist (never computes): on the
    mean over ``seeds`` and, with several seeds, on each seed alone (``with_seed_columns``)."""

    def get(what: str) -> pd.DataFrame | None:
        try:
            return require(what, dataset, profile, seeds, compute=False, blackbox=blackbox)
        except AktError:
            return None

    stored = {what: get(what) for what in ("variants", "sources", "attacks", "curves")}  # read once

    def verdicts(seed_set: set[int]) -> pd.DataFrame:
        def of(what: str) -> pd.DataFrame | None:  # the stored rows of these seeds; None as require has none
            df = stored[what]
            df = None if df is None else df[df["seed"].isin(seed_set)]
            return df if df is not None and len(df) else None

        cmps = {g: comparison(rec, table_for(g, dataset), tolerance) if (rec := of(g)) is not None else None
                for g in ("variants", "sources", "attacks")}
        return claims(cmps["variants"], cmps["sources"], cmps["attacks"], of("curves"), margin=tolerance)

    seeds = [int(s) for s in seeds]
    out = verdicts(set(seeds))
    return with_seed_columns(out, {s: verdicts({s}) for s in seeds}) if len(seeds) > 1 else out


def verdict_word(text: str) -> str:
    """The verdict of a ``claims`` cell without its evidence: "supported", "NOT supported", ..."""
    return text.split(" (", 1)[0]


def with_seed_columns(overall: pd.DataFrame, per_seed: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """``overall`` (verdicts on the mean over seeds) with a column "seed S" after "reproduction" for
    every seed: the verdict the same rule gives on that seed's numbers alone. A claim whose verdict
    differs between seeds is decided by run-to-run noise, whatever the mean says."""
    out = overall.copy()
    at = list(out.columns).index("reproduction") + 1
    for i, (seed, df) in enumerate(sorted(per_seed.items())):
        words = dict(zip(df["claim"], df["reproduction"].map(verdict_word)))
        out.insert(at + i, f"seed {seed}", [words.get(c, "not evaluated here") for c in out["claim"]])
    return out
