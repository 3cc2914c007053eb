"""Erratum 5 in numbers: our CIFAR-100 models' top-1, top-5 and superclass accuracy on clean test
images beside the paper's Table 4 clean column (``forensics`` computes the records; nothing here does)."""
from __future__ import annotations

import pandas as pd

from .. import AktError
from ..forensics import DATASET, METRICS, require
from ..graph import VARIANTS, table_for
from ..results import stored_seeds
from .tables import paper_numbers

COLUMNS = {"clean": "top-1", "clean (top-5)": "top-5", "clean (superclass)": "superclass (20)"}


def table(profile: str) -> pd.DataFrame:
    """model, the paper's clean accuracy (Table 4) and ours under each reading (means over the stored
    seeds); empty until the forensics records are stored under ``profile``."""
    seeds = stored_seeds(profile, DATASET)
    try:
        rec = require(profile, seeds or [0])
    except AktError:
        return pd.DataFrame()
    rec = rec[rec["attack"].isin(COLUMNS)]
    if not len(rec) or not set(METRICS) <= set(rec["attack"]):
        return pd.DataFrame()
    ours = rec.pivot_table(index="model", columns="attack", values="accuracy").rename(columns=COLUMNS)
    p = paper_numbers()
    p = p[(p["table"] == table_for("variants", DATASET).number) & (p["dataset"] == DATASET) & (p["column"] == "clean")]
    out = ours.join(p.set_index("model")["value"].rename("paper (Table 4)"), how="left")
    out = out.reindex([v for v in VARIANTS if v in out.index])
    return out[["paper (Table 4)", *COLUMNS.values()]].reset_index()


def reading(t: pd.DataFrame, profile: str, tolerance: float = 5.0) -> str:
    """Which reading, if any, comes within ``tolerance`` points of the paper's clean column, model by
    model, in words computed from ``table``: a measured observation, not a verdict on the authors."""
    if not len(t):
        return (f"Not measured yet under `{profile}` (`akt build forensics --dataset {DATASET} --profile {profile}`).")
    t = t.dropna(subset=["paper (Table 4)"])  # Table 4 has no Res8(self-adv)
    parts = []
    for col in COLUMNS.values():
        d = (t[col] - t["paper (Table 4)"]).abs()
        near = list(t.loc[d <= tolerance, "model"])
        parts.append(f"{col}: {len(near)} of {len(t)} models within {tolerance:g} points of the paper's clean "
                     f"accuracy (median distance {d.median():.1f} points)")
    best = min(COLUMNS.values(), key=lambda c: (t[c] - t["paper (Table 4)"]).abs().median())
    none = all(((t[c] - t["paper (Table 4)"]).abs() > tolerance).all() for c in COLUMNS.values())
    return (f"Under `{profile}`: " + "; ".join(parts) + f". The reading nearest the paper's column is {best}"
            + (", but no reading comes within the tolerance for any model." if none else "."))


def markdown(profiles: tuple[str, ...]) -> str:
    """The table and its reading for each of ``profiles`` (a Markdown table each)."""
    out = []
    for profile in profiles:
        t = table(profile)
        if len(t):
            head = list(t.columns)
            rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            rows += ["| " + " | ".join("–" if pd.isna(v) else f"{v:.2f}" if isinstance(v, float) else str(v) for v in r)
                     + " |" for r in t.itertuples(index=False)]
            out.append(f"**CIFAR-100, `{profile}` profile**, clean test images, accuracy in %:\n\n" + "\n".join(rows))
        out.append(reading(t, profile))
    return "\n\n".join(out) + "\n"
