"""Reproducibility: the same configurations under another seed."""
from __future__ import annotations

import re

import pandas as pd

from ..graph import TableSpec
from .style import colour, legend_outside
from .tables import cells_of, in_paper_order


def seed_cells(records: pd.DataFrame, table: TableSpec) -> pd.DataFrame:
    """The cells of ``table`` every seed has, one accuracy column per seed ("seed 0", "seed 1", ...),
    plus ``spread`` = largest - smallest over the seeds (points). Rows in the paper's order."""
    wide = cells_of(records, table).pivot_table(index=["model", "column"], columns="seed", values="accuracy",
                                              aggfunc="first").dropna()
    wide.columns = [f"seed {s}" for s in wide.columns]
    wide["spread"] = (wide.max(axis=1) - wide.min(axis=1)).round(4)
    return in_paper_order(wide.reset_index(), table).astype({"model": str, "column": str})


def seed_summary(cells: pd.DataFrame, tolerance: float = 5.0) -> str:
    """One sentence: how far the seeds move this table's cells (median and largest spread, how many cells
    move by more than ``tolerance`` points, and where the largest is)."""
    seeds = [c for c in cells.columns if c.startswith("seed ")]
    if len(seeds) < 2 or not len(cells):
        return "One seed only: nothing to compare."
    top = cells.loc[cells["spread"].idxmax()]
    values = ", ".join(f"{top[s]:.2f}" for s in seeds)
    return (f"{len(cells)} cells with every seed ({', '.join(seeds)}). Spread (largest − smallest over the "
            f"seeds): median {cells['spread'].median():.2f} points; more than {tolerance:g} points for "
            f"{int((cells['spread'] > tolerance).sum())} of the {len(cells)}; largest {top['spread']:.2f} points "
            f"({top['model']}, {top['column']}: {values} %).")


def plot_seeds(cells: pd.DataFrame, title: str, ax=None):
    """Every cell's accuracy under each later seed (y) against the first seed (x), with the diagonal:
    the distance from the diagonal is what a change of seed alone does to a number."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(5.5, 5))[1]
    seeds = [c for c in cells.columns if c.startswith("seed ")]
    ax.plot([0, 100], [0, 100], color="grey", lw=1, ls="--")
    markers = "os^Dv<>p"
    for m in dict.fromkeys(cells["model"]):
        sel = cells[cells["model"] == m]
        for j, s in enumerate(seeds[1:]):
            ax.scatter(sel[seeds[0]], sel[s], s=30, marker=markers[j % len(markers)], color=colour(m),
                       label=m if j == 0 else None)
    ax.set(xlabel=f"accuracy, {seeds[0]} (%)" if seeds else "accuracy (%)",
           ylabel=f"accuracy, {', '.join(seeds[1:])} (%)", title=title, xlim=(0, 100), ylim=(0, 100))
    legend_outside(ax)
    ax.grid(alpha=0.3)
    return ax


def spread_rows() -> pd.DataFrame:
    """For every published profile and dataset with two or more stored seeds: how far the seeds move
    the cells of Tables 2-10 (each (model, attack, source) once, though several tables show it), over
    the cells every seed has. One row each; the noise a verdict on that profile rests on."""
    from .. import AktError
    from .. import profiles as profiles_mod
    from ..data import PAPER_DATASETS
    from ..graph import GROUPS
    from ..results import require, stored_seeds

    rows = []
    for prof in (p for p in profiles_mod.PROFILES.values() if p.published):
        for dataset in PAPER_DATASETS:
            seeds = stored_seeds(prof.name, dataset)
            if len(seeds) < 2:
                continue
            parts = []
            for group in GROUPS:
                try:
                    parts.append(require(group, dataset, prof.name, seeds, progress=False))
                except AktError:  # a group not stored for these seeds
                    continue
            recs = pd.concat(parts).drop_duplicates(subset=["model", "attack", "source", "seed"])
            wide = recs.pivot_table(index=["model", "attack", "source"], columns="seed", values="accuracy",
                                    aggfunc="first")
            every = wide.dropna()
            spread = every.max(axis=1) - every.min(axis=1)
            top = spread.idxmax() if len(spread) else None
            rows.append({"profile": prof.name, "dataset": dataset, "seeds": ", ".join(map(str, seeds)),
                         "cells": len(every), "cells missing a seed": len(wide) - len(every),
                         "median spread": spread.median() if len(spread) else float("nan"),
                         "over 5 points": int((spread > 5).sum()),
                         "largest": float(spread.max()) if len(spread) else float("nan"),
                         "where": "" if top is None else f"{top[0]}, {top[1]}" + (f" from {top[2]}" if top[2] != "-" else ""),
                         "machines": "; ".join(sorted({_machine(d) for d in recs["device"].astype(str)}))})
    return pd.DataFrame(rows)


def _machine(device: str) -> str:
    """A record's ``device`` without what every row of a CPU queue shares: ``cpu: AMD EPYC (family 25
    model 1, AVX2) x2 threads`` -> ``AMD EPYC (family 25 model 1, AVX2)``."""
    return re.sub(r" x\d+ threads?", "", device.removeprefix("cpu: "))


def spread_markdown() -> str:
    """``spread_rows`` as the Markdown table the Results page includes (``book.SEEDS_PAGE``)."""
    df = spread_rows()
    if not len(df):
        return "No published profile has two seeds stored yet.\n"
    lines = ["| profile | dataset | seeds | cells with every seed | median spread | over 5 points | largest (where) | machines |",
             "|---|---|---|---|---|---|---|---|"]
    for r in df.to_dict("records"):
        missing = f" ({r['cells missing a seed']} still missing a seed)" if r["cells missing a seed"] else ""
        lines.append(f"| {r['profile']} | {r['dataset']} | {r['seeds']} | {r['cells']}{missing} | "
                     f"{r['median spread']:.2f} | {r['over 5 points']} | {r['largest']:.2f} ({r['where']}) | "
                     f"{r['machines']} |")
    return "\n".join(lines) + ("\n\nSpread: the largest minus the smallest accuracy of a cell over the seeds, in "
                               "points; each (model, attack, source) of Tables 2-10 counted once.\n")
