"""The figures of the paper's tables and curves: ours against the paper's, convergence."""
from __future__ import annotations

import pandas as pd


def plot_comparison(cmp: pd.DataFrame, title: str, ax=None):
    """Ours (y) against the paper's (x) for every cell, with the diagonal and the tolerance band."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ax = ax or plt.subplots(figsize=(5.5, 5))[1]
    df = cmp.dropna(subset=["mean", "paper"]).astype({"model": str, "column": str})
    ax.plot([0, 100], [0, 100], color="grey", lw=1, ls="--")
    if len(df):
        sns.scatterplot(data=df, x="paper", y="mean", hue="model", style="column", s=70, ax=ax)
        ax.legend(fontsize=7, loc="lower right")
    ax.set(xlim=(0, 101), ylim=(0, 101), xlabel="paper (%)", ylabel="reproduction (%)", title=title)
    return ax


def plot_curves(curves: pd.DataFrame, metric: str, title: str, ax=None):
    """Per-epoch test accuracy (``clean_acc`` for Fig. 3, ``adv_acc`` for Fig. 4), one line per method."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    ax = ax or plt.subplots(figsize=(6.5, 4))[1]
    sns.lineplot(data=curves, x="epoch", y=metric, hue="model", style="model", markers=True,
                 errorbar=("sd") if curves["seed"].nunique() > 1 else None, ax=ax)
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title=title)
    ax.legend(fontsize=8)
    return ax
