"""The figures of the paper's tables and curves: ours against the paper's, convergence. One colour
per model (``style.COLOURS``), legends outside the data, bands named."""
from __future__ import annotations

import pandas as pd

from .style import PAPER_COLOUR, colour, legend_outside


def plot_comparison(cmp: pd.DataFrame, title: str, axes=None):
    """Ours against the paper's as a dumbbell per model, one panel per column of the table: a grey dot
    for the paper, the model's colour for ours (±1 sd over seeds as a bar where there are several),
    joined by a line whose length is the difference."""
    import matplotlib.pyplot as plt

    df = cmp.astype({"model": str, "column": str})
    cols = [c for c in cmp["column"].cat.categories if c in set(df["column"])] if hasattr(cmp["column"], "cat") \
        else list(dict.fromkeys(df["column"]))
    models = [m for m in (cmp["model"].cat.categories if hasattr(cmp["model"], "cat") else df["model"].unique())
              if m in set(df["model"])]
    if axes is None:
        fig, axes = plt.subplots(1, len(cols), figsize=(1.5 * len(cols) + 1.6, 0.3 * len(models) + 1.2),
                                 sharey=True, squeeze=False)
        axes = axes[0]
    y = {m: i for i, m in enumerate(models)}
    for ax, col in zip(axes, cols):
        sel = df[df["column"] == col]
        for r in sel.itertuples():
            yy = y[r.model]
            if pd.notna(r.paper) and pd.notna(r.mean):
                ax.plot([r.paper, r.mean], [yy, yy], color="#bbbbbb", lw=1.5, zorder=1)
            if pd.notna(r.paper):
                ax.scatter([r.paper], [yy], color=PAPER_COLOUR, s=22, zorder=2,
                           label="paper" if r.model == models[0] else None)
            if pd.notna(r.mean):
                sd = r.std if getattr(r, "n_seeds", 1) > 1 and pd.notna(r.std) else None
                ax.errorbar([r.mean], [yy], xerr=[sd] if sd else None, fmt="o", color=colour(r.model), ms=5,
                            capsize=2, zorder=3)
        ax.set(xlim=(-2, 102), title=col)
        ax.grid(axis="x", alpha=0.3)
        ax.set_yticks(range(len(models)), models)
    axes[0].invert_yaxis()
    axes[len(axes) // 2].set_xlabel("accuracy (%): grey the paper's, coloured ours (bar: ±1 sd over seeds)")
    fig = axes[0].figure
    fig.suptitle(title, fontsize=10)
    return axes


def plot_curves(curves: pd.DataFrame, metric: str, title: str, ax=None):
    """Per-epoch test accuracy (``clean_acc`` for Fig. 3, ``adv_acc`` for Fig. 4), one line per method;
    with several seeds, the mean and a band of ±1 sd over the seeds."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    several = curves["seed"].nunique() > 1
    for model, g in curves.groupby("model", sort=False):
        s = g.groupby("epoch")[metric].agg(["mean", "std"]).reset_index()
        ax.plot(s["epoch"], s["mean"], marker="o", ms=3, color=colour(model), label=model)
        if several:
            ax.fill_between(s["epoch"], s["mean"] - s["std"], s["mean"] + s["std"], color=colour(model), alpha=0.15,
                            lw=0)
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=title)
    ax.grid(alpha=0.3)
    legend_outside(ax, title=f"mean of {curves['seed'].nunique()} seeds, band ±1 sd" if several else None)
    return ax
