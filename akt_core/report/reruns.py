"""Reproducibility: the same runs repeated on another machine."""
from __future__ import annotations

import pandas as pd

from ..graph import VARIANTS
from ..store import Store
from .tables import ATTACK_COLUMNS, arithmetic

#: where reruns live, under the store's root: ``reruns/<name>/results/<profile>/{records,curves}.csv``,
#: each the results folder of a store that recomputed published results from scratch (same keys)
RERUNS = "reruns"


def _with_device(records: pd.DataFrame) -> pd.DataFrame:
    """``records`` with a ``device`` column (the schema does not require one: "" where none is stored)."""
    return records if "device" in records else records.assign(device="")


def reruns(dataset: str, profile: str, store=None) -> pd.DataFrame:
    """Every stored rerun's records of ``dataset`` under ``profile`` beside the published record of the
    same key (the same full config): columns ``rerun``, ``seed``, ``model``, ``attack``, ``source``,
    ``published``, ``again`` (accuracies in %), ``delta`` (again - published, points), ``arithmetic`` and
    ``published_arithmetic`` (the rerun's and the published record's, from ``device``: ``tables.arithmetic``)."""

    store = store or Store()
    pub = _with_device(store.read(profile, "records"))
    out = []
    for root in sorted(p for p in (store.root / RERUNS).glob("*") if p.is_dir()) if len(pub) else []:
        again = _with_device(Store(root).read(profile, "records"))
        if not len(again):
            continue
        m = pub[pub["dataset"] == dataset].merge(again[["key", "accuracy", "device"]], on="key",
                                                 suffixes=("", "_again"))
        words = {d: arithmetic([d]) for d in {*m["device"], *m["device_again"]}}
        out.append(pd.DataFrame({"rerun": root.name, "seed": m["seed"], "model": m["model"], "attack": m["attack"],
                                 "source": m["source"], "published": m["accuracy"], "again": m["accuracy_again"],
                                 "delta": (m["accuracy_again"] - m["accuracy"]).round(4),
                                 "arithmetic": m["device_again"].map(words),
                                 "published_arithmetic": m["device"].map(words)}))
    cols = ["rerun", "seed", "model", "attack", "source", "published", "again", "delta", "arithmetic",
            "published_arithmetic"]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)


def rerun_table(spread: pd.DataFrame, rerun: str) -> pd.DataFrame:
    """Tables 2-4's cells (clean and the four attacks from the Res26) of one rerun: "published / rerun
    (difference)" per model and attack, models in the paper's order; a row per model and seed
    (``Res8(adv), seed 1``) where the rerun recomputed several seeds."""

    df = spread[(spread["rerun"] == rerun) & spread["source"].isin(["-", "Res26"])]
    df = df.assign(text=[f"{p:.2f} / {a:.2f} ({d:+.2f})" for p, a, d in zip(df["published"], df["again"], df["delta"])])
    seeds = sorted(df["seed"].unique())
    label = (lambda m, s: m) if len(seeds) < 2 else (lambda m, s: f"{m}, seed {s}")
    df = df.assign(row=[label(m, s) for m, s in zip(df["model"], df["seed"])])
    wide = df.pivot(index="row", columns="attack", values="text")
    wide = wide.reindex(columns=[c for c in ("clean", *ATTACK_COLUMNS) if c in wide.columns]).fillna("–")
    wide.index.name = "model"
    return wide.loc[[label(v, s) for v in VARIANTS for s in seeds if label(v, s) in wide.index]]


def rerun_summary(spread: pd.DataFrame, rerun: str) -> str:
    """One sentence per rerun: how many records it recomputed and how far they moved (median and largest
    absolute difference, and where the largest is)."""
    df = spread[spread["rerun"] == rerun]
    if not len(df):
        return f"Rerun {rerun!r} holds no record of this dataset."
    size = df["delta"].abs()
    top = df.loc[size.idxmax()]
    src = "" if top["source"] == "-" else f" from the {top['source']}"
    seeds = sorted(df["seed"].unique())
    which = f"seed {seeds[0]}" if len(seeds) == 1 else "seeds " + ", ".join(map(str, seeds))
    models = df["model"].nunique()
    other = df[df["arithmetic"] != df["published_arithmetic"]]
    how = "".join(f"; in {a}, the published records in {b}"
                  for a, b in dict.fromkeys(zip(other["arithmetic"], other["published_arithmetic"])))
    return (f"{len(df)} records of {models} model{'s' if models > 1 else ''} recomputed ({which}{how}). "
            "Absolute difference: median "
            f"{size.median():.2f} points; more than 1 point for {(size > 1).sum()} of the {len(df)}; largest "
            f"{top['delta']:+.2f} points ({top['model']}, {top['attack']}{src}: {top['published']:.2f} % "
            f"published, {top['again']:.2f} % again).")


def rerun_noise(spread: pd.DataFrame, rerun: str, cells: pd.DataFrame) -> dict | None:
    """A rerun's differences beside the seed spread of the same cells (``seeds.seed_cells``: columns
    ``model``, ``column``, ``spread``), by one rule: the rerun is **within the seed noise** when the
    median absolute difference over the cells both have is no larger than the median seed spread over
    them, and its largest difference no larger than their largest spread (issue 40's test for another
    arithmetic). None when they share no cell."""
    df = spread[(spread["rerun"] == rerun) & spread["source"].isin(["-", "Res26"])]
    both = df.merge(cells[["model", "column", "spread"]], left_on=["model", "attack"], right_on=["model", "column"])
    if not len(both):
        return None
    moved, seeds = both["delta"].abs(), both["spread"]
    return {"cells": len(both), "median_delta": float(moved.median()), "largest_delta": float(moved.max()),
            "median_spread": float(seeds.median()), "largest_spread": float(seeds.max()),
            "within": bool(moved.median() <= seeds.median() and moved.max() <= seeds.max())}


def rerun_noise_words(noise: dict | None, seeds: list[str]) -> str:
    """``rerun_noise`` in one sentence (``seeds``: the seed columns the spread was measured over)."""
    if noise is None:
        return "No cell of this rerun has a measured seed spread: its differences cannot be set against one."
    state = "within the seed noise" if noise["within"] else "beyond the seed noise"
    return (f"Against the spread of {', '.join(seeds)} over the same {noise['cells']} cells: absolute difference "
            f"median {noise['median_delta']:.2f}, largest {noise['largest_delta']:.2f} points; seed spread median "
            f"{noise['median_spread']:.2f}, largest {noise['largest_spread']:.2f} points: **{state}** (within means "
            "neither the median nor the largest difference exceeds the seeds').")
