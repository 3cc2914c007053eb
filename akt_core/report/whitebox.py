"""Beyond the paper: white-box records and the eps sweep (``results.require("whitebox"|"sweep")``)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..beyond import AUTOATTACK_10, AUTOATTACK_STANDARD, PGD_ON_AA
from ..graph import ALL_VARIANTS, GROUPS, VARIANTS
from .style import colour, legend_outside
from .tables import cell_stats, paper_numbers

#: an attack's name where it is shown: the stored AutoAttack runs torchattacks' chain with 10 steps per
#: gradient attack, the standard one (``beyond.AUTOATTACK_STANDARD``) the original's 100
ATTACK_WORDS = {"AutoAttack": "AutoAttack (10 it.)", AUTOATTACK_10: "AutoAttack (10 it., PGD-20's images)",
                AUTOATTACK_STANDARD: "AutoAttack (standard, 100 it.)"}


def attack_words(attack: str) -> str:
    return ATTACK_WORDS.get(attack, attack)


def whitebox_table(records: pd.DataFrame) -> pd.DataFrame:
    """Targets x "attack @ eps": accuracy in % (mean ± std over seeds) of white-box records."""

    df = records.assign(column=records["attack"].map(attack_words) + " @ " + records["eps_256"].map(eps_words))
    cell = cell_stats(df, ["model", "column"], n="n")
    cell["text"] = [f"{m:.2f}" + (f" ± {s:.2f}" if n > 1 else "") for m, s, n in zip(cell["mean"], cell["std"], cell["n"])]
    wide = cell.pivot(index="model", columns="column", values="text").fillna("–")
    return wide.loc[[v for v in VARIANTS if v in wide.index], sorted(wide.columns, key=whitebox_order)]


def standard_table(whitebox: pd.DataFrame, standard: pd.DataFrame) -> pd.DataFrame:
    """The ``autoattack`` build's records (the standard and the 10-step AutoAttack on PGD-20's images)
    beside PGD-20 on the same images and seeds, as ``whitebox_table``: every column of a budget on
    one image set, and PGD-20 only of the seeds whose models the AutoAttacks attacked."""
    pgd = whitebox[(whitebox["attack"] == "PGD-20") & whitebox["seed"].isin(standard["seed"].unique())]
    return whitebox_table(pd.concat([pgd, standard], ignore_index=True))


#: white-box columns left to right: PGD-20 on all its images, then on AutoAttack's, then AutoAttack
_WHITEBOX_RANK = {"PGD-20": 0, PGD_ON_AA: 1, ATTACK_WORDS["AutoAttack"]: 2, ATTACK_WORDS[AUTOATTACK_10]: 3,
                  ATTACK_WORDS[AUTOATTACK_STANDARD]: 4}


def whitebox_order(column: str) -> tuple:
    """Sort key of an "attack @ eps" column: the larger eps first, then by ``_WHITEBOX_RANK``."""
    attack, eps = column.split(" @ ")
    return -_eps_value(eps), _WHITEBOX_RANK.get(attack, len(_WHITEBOX_RANK)), attack


def eps_words(eps_256: float) -> str:
    """16.0 -> '16/256'; 7.9686 -> '8/255' (the field's budget, which is not a whole number of 1/256)."""
    if abs(eps_256 - round(eps_256)) < 1e-6:
        return f"{int(round(eps_256))}/256"
    return f"{eps_256 * 255 / 256:.0f}/255"


def _eps_value(words: str) -> float:
    num, den = words.split("/")
    return float(num) / float(den)


SWEEP_PANELS = (("FGSM", "Res26", "FGSM transfer from the held-out Res26"),
                ("I-FGSM", "Res26", "I-FGSM transfer from the held-out Res26"),
                ("PGD-20", "white-box", "white-box PGD-20"))


def _paper_variants(dataset: str) -> pd.DataFrame:
    """The paper's numbers of the variants table (2, 3 or 4) of ``dataset``, tidy."""
    paper = paper_numbers()
    return paper[paper["table"].isin(GROUPS["variants"]) & (paper["dataset"] == dataset)]


def matching_eps(sweep: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """At which eps (in 1/256) our accuracy falls to the paper's reported value at eps = 16/256.

    For every variant and each of the paper's FGSM and I-FGSM columns (Tables 2-4), the first crossing
    of our mean accuracy curve with the paper's value, linearly interpolated between sweep points, for
    the same attack transferred from the held-out Res26 and for white-box PGD-20. ``>max`` when our
    curve stays above the paper's value on the whole grid, ``<min`` when it starts below it."""
    paper = _paper_variants(dataset)
    rows = []
    mean = sweep.groupby(["model", "attack", "source", "eps_256"])["accuracy"].mean()
    for (model, column), value in paper.set_index(["model", "column"])["value"].items():
        if column not in ("FGSM", "I-FGSM") or pd.isna(value):
            continue
        row = {"model": model, "paper attack": column, "paper @ 16/256": value}
        for attack, source, name in ((column, "Res26", "same attack, transfer"), ("PGD-20", "white-box", "PGD-20 white-box")):
            try:
                curve = mean.loc[(model, attack, source)].sort_index()
            except KeyError:
                row[f"eps/256: {name}"] = "missing"
                continue
            row[f"eps/256: {name}"] = crossing(curve.index.to_numpy(float), curve.to_numpy(float), value)
        rows.append(row)
    return pd.DataFrame(rows)


def crossing(eps: np.ndarray, acc: np.ndarray, value: float) -> str:
    if acc[0] <= value:
        return f"<{eps[0]:g}"
    for i in range(1, len(eps)):
        if acc[i] <= value:
            t = (acc[i - 1] - value) / (acc[i - 1] - acc[i])
            return f"{eps[i - 1] + t * (eps[i] - eps[i - 1]):.1f}"
    return f">{eps[-1]:g}"


def missing_panels(sweep: pd.DataFrame) -> list[str]:
    """The panels of ``plot_sweep`` with fewer than two eps stored: no curve to read a crossing from
    (for example where only the white-box table's 16/256 rows exist)."""
    return [title for attack, source, title in SWEEP_PANELS
            if sweep.loc[(sweep["attack"] == attack) & (sweep["source"] == source), "eps_256"].nunique() < 2]


#: marker shapes, one per model in the order it is drawn: models at one eps stay apart where their lines meet
_MARKERS = "osD^v<>Ph*X"


def plot_sweep(sweep: pd.DataFrame, dataset: str, axes=None):
    """Accuracy against eps, one panel per attack, one line per variant (its own marker, nudged sideways
    by a few per cent of eps so that equal accuracies do not hide each other); the paper's value at
    16/256 is marked (x) in the panel of the same attack, and the paper's budget as a dotted line. Two
    panels per row, the legend in the last cell, so that the text stays readable at the page's width."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    if axes is None:
        fig, grid = plt.subplots(2, 2, figsize=(7.2, 6.4), sharey=True, constrained_layout=True)
        axes, spare = list(grid.flat[:len(SWEEP_PANELS)]), grid.flat[len(SWEEP_PANELS):]
    else:
        spare = []
    paper = _paper_variants(dataset)
    models = [v for v in ALL_VARIANTS if v in set(sweep["model"])]
    several = sweep["seed"].nunique() > 1
    for ax, (attack, source, title) in zip(axes, SWEEP_PANELS):
        df = sweep[(sweep["attack"] == attack) & (sweep["source"] == source)]
        for i, m in enumerate(models):
            g = df[df["model"] == m].groupby("eps_256")["accuracy"].agg(["mean", "std"]).reset_index()
            if not len(g):
                continue
            x = g["eps_256"] * 1.06 ** (i - (len(models) - 1) / 2)  # the nudge, symmetric around each eps
            ax.plot(x, g["mean"], color=colour(m), marker=_MARKERS[i % len(_MARKERS)], ms=4.5, lw=1.2, label=m)
            if several:
                ax.fill_between(x, g["mean"] - g["std"], g["mean"] + g["std"], color=colour(m), alpha=0.15, lw=0)
        for model, value in paper[paper["column"] == attack].set_index("model")["value"].items():
            if model in models and not pd.isna(value):
                ax.scatter([16], [value], marker="x", s=60, color=colour(model), zorder=5)
        ax.axvline(16, color="grey", lw=1, ls=":")
        ax.set(xscale="log", xlabel="eps (x 1/256, log scale)", ylabel="accuracy (%)", ylim=(0, 101), title=title)
        ticks = sorted(df["eps_256"].unique()) or [16]
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(ticks, labels=[f"{v:g}" for v in ticks])
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    note = "x: the paper's value at 16/256" + (", band ±1 sd over seeds" if several else "")
    if len(spare):
        for extra in spare:
            extra.axis("off")
        if handles:
            spare[0].legend(handles, labels, loc="center", title=note, fontsize=9, title_fontsize=9)
    elif handles:
        legend_outside(axes[-1], title=note)
    return axes
