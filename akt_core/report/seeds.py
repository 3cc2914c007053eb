"""Reproducibility: the same configurations under another seed."""
from __future__ import annotations

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
