"""Beyond the paper: the later methods side by side (``results.require("compare")``)."""
from __future__ import annotations

import pandas as pd

from .. import cost
from ..beyond import COMPARE_TARGETS, PGD_ON_AA, WHITEBOX_EPS
from ..graph import ALL_VARIANTS, EXIT_VARIANTS, Experiment
from ..methods import get as get_method
from .style import colour, legend_outside
from .tables import ATTACK_COLUMNS, cell_stats
from .whitebox import attack_words, eps_words, whitebox_order


#: what each compared model needs before it can be trained, in words (its training time excludes these)
def trained_after(variant: str) -> str:
    """The ``trained after`` cell of ``compare_table``: ``Experiment.prerequisites`` in words."""

    method = get_method(ALL_VARIANTS[variant].method)
    names = Experiment("synthetic", "smoke").prerequisites(variant)  # the graph's shape: the same for every dataset
    statics = [n.split(":Res")[1] for n in names if n.startswith("static:")]
    words = ([f"static Res{'/'.join(statics)} (clean)"] if statics else []) + [n for n in names if not n.startswith("static:")]
    text = ", ".join(words) or "nothing"
    if method.peer:
        text += f" (its Res{method.params['peer_depth']} peer trains in the same run)"
    return text


def _compare_column(attack: str, source: str, eps_256: float) -> str:
    if attack == "clean":
        return "clean"
    if source == "Res26":
        return f"{attack} (transfer)"
    return f"{attack_words(attack)} @ {eps_words(eps_256)}"


def compare_table(df: pd.DataFrame) -> pd.DataFrame:
    """Compared models x (clean, the paper's four transfer attacks from the held-out Res26, white-box
    PGD-20 / AutoAttack at 16/256 and 8/255, training time): accuracy in % (mean ± std over seeds)."""
    df = df.assign(column=[_compare_column(a, s, e) for a, s, e in zip(df["attack"], df["source"], df["eps_256"])])
    cell = cell_stats(df, ["model", "column"], n="n")
    cell["text"] = [f"{m:.2f}" + (f" ± {s:.2f}" if n > 1 else "") for m, s, n in zip(cell["mean"], cell["std"], cell["n"])]
    wide = cell.pivot(index="model", columns="column", values="text")
    white = sorted((c for c in wide.columns if " @ " in c), key=whitebox_order)
    order = ["clean", *(f"{a} (transfer)" for a in ATTACK_COLUMNS), *white]
    wide = wide.reindex(columns=[c for c in order if c in wide.columns]).fillna("–")
    train = df.groupby("model")["train_s"].mean() if "train_s" in df else pd.Series(dtype=float)
    wide["train (min)"] = [f"{train[m] / 60:.1f}" if m in train and pd.notna(train[m]) else "–" for m in wide.index]
    wide["trained after"] = [trained_after(m) for m in wide.index]
    return wide.loc[[m for m in COMPARE_TARGETS if m in wide.index]]


#: ``compare_table``'s columns in two tables that each fit the page's width: the paper's protocol, then
#: white-box attacks with what the model costs to train
TRANSFER_PART = ("clean", *(f"{a} (transfer)" for a in ATTACK_COLUMNS))


def compare_parts(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``compare_table`` split in two: ``transfer`` (clean and the paper's four transfer attacks) and
    ``white-box`` (PGD-20 and AutoAttack, training time, what must be trained first)."""
    transfer = [c for c in table.columns if c in TRANSFER_PART]
    return {"transfer": table[transfer], "white-box": table[[c for c in table.columns if c not in transfer]]}


def exit_table(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """NEO-KD-style Res26 exit by exit: what a device that stops there holds and computes (parameters
    and MACs, ``cost.exit_costs``) and its accuracy columns of ``compare_table``."""
    exits = [v for v in EXIT_VARIANTS if v in set(df["model"])]
    if not exits:
        return pd.DataFrame()
    costs = cost.exit_costs(dataset)
    acc = compare_table(df[df["model"].isin(exits)]).drop(columns=["trained after"])
    rows = [{"model": v, "params (k)": f"{costs[v].params / 1e3:.1f}", "MMACs": f"{costs[v].macs / 1e6:.1f}"}
            for v in exits]
    return pd.DataFrame(rows).set_index("model").join(acc)


#: the paper's reference Res8 models in the comparison; every other compared model is a later method
PAPER_MODELS = ("Res8(cln)", "Res8(adv)", "Res8(adv-trans)")


def _means(df: pd.DataFrame, attack: str, source: str, eps: float | None) -> pd.Series:
    """Each model's accuracy under ``attack`` from ``source`` (at ``eps``, in 1/256), mean over seeds."""
    sel = df[(df["attack"] == attack) & (df["source"] == source)]
    if eps is not None:
        sel = sel[(sel["eps_256"] - eps).abs() < 1e-3]
    return sel.groupby("model")["accuracy"].mean()


def _standing(mean: pd.Series) -> str:
    """Where Res8(adv-trans) stands against the later methods on ``mean`` ("" without them)."""
    later = [m for m in mean.index if m not in PAPER_MODELS]
    if "Res8(adv-trans)" not in mean or not later:
        return ""
    ours = mean["Res8(adv-trans)"]
    ahead, behind = [m for m in later if ours > mean[m]], [m for m in later if ours <= mean[m]]
    if not behind:
        verdict = f"ahead of every later method ({len(ahead)})"
    elif not ahead:
        verdict = f"level with or behind every later method ({len(behind)})"
    else:
        verdict = f"ahead of {', '.join(ahead)}; level with or behind {', '.join(behind)}"
    return f"; Res8(adv-trans) ({ours:.2f} %) is {verdict}"


def _autoattack_against_pgd(df: pd.DataFrame, eps: float) -> str | None:
    """AutoAttack against PGD-20 on the same images at ``eps`` (1/256), where both are stored."""
    aa, ctl = _means(df, "AutoAttack", "white-box", eps), _means(df, PGD_ON_AA, "white-box", eps)
    both = aa.index.intersection(ctl.index)
    if not len(both):
        return None
    gap = (aa[both] - ctl[both]).sort_values()
    worst = gap.index[-1]
    return (f"- **AutoAttack against PGD-20 on the same images** ({eps_words(eps)}): AutoAttack is lower "
            f"on {(gap < 0).sum()} of {len(gap)} models, equal on {(gap == 0).sum()}, higher on "
            f"{(gap > 0).sum()}" + (f" (at most {gap[worst]:+.2f} points, {worst})" if gap[worst] > 0 else "") + ".")


def compare_summary(df: pd.DataFrame) -> str:
    """What the comparison says, in sentences computed from the records: the clean accuracies; for the
    paper's FGSM transfer column and for white-box PGD-20 and AutoAttack at each eps, the best model and
    which later methods the paper's Res8(adv-trans) is ahead of on the mean over seeds (a single seed
    says nothing about differences within its noise); AutoAttack against PGD-20 on the same images
    (where both are stored); and how much of its clean accuracy each model
    keeps under PGD-20 at 16/256, since a model that is barely trained keeps most of very little."""
    white_eps = {words: eps * 256 for words, eps in WHITEBOX_EPS.items()}  # in 1/256, as records' eps_256
    cols = {"FGSM transfer": ("FGSM", "Res26", None),
            **{f"{attack_words(a)} @ {w}": (a, "white-box", e) for a in ("PGD-20", "AutoAttack")
               for w, e in white_eps.items()}}

    def span(values: pd.Series) -> str:
        lo, hi = values.min(), values.max()
        return f"{lo:.2f} %" if lo == hi else f"{lo:.2f}-{hi:.2f} %"

    lines = []
    clean = _means(df, "clean", "-", None)
    later_clean = clean[[m for m in clean.index if m not in PAPER_MODELS]]
    if "Res8(adv-trans)" in clean and len(later_clean):
        lines.append(f"- **clean**: Res8(adv-trans) {clean['Res8(adv-trans)']:.2f} %, the later methods "
                     f"{span(later_clean)}.")
    for name, key in cols.items():
        mean = _means(df, *key)
        if not mean.empty:
            best = mean.idxmax()
            lines.append(f"- **{name}**: best {best} ({mean[best]:.2f} %){_standing(mean)}.")
    lines += [line for eps in white_eps.values() if (line := _autoattack_against_pgd(df, eps))]
    pgd = _means(df, *cols["PGD-20 @ 16/256"])
    kept = (100 * pgd / clean).dropna()
    later_kept = kept[[m for m in kept.index if m not in PAPER_MODELS]]
    if "Res8(adv-trans)" in kept and len(later_kept):
        lines.append(f"- **kept under PGD-20 @ 16/256** (its accuracy over clean accuracy): Res8(adv-trans) "
                     f"{kept['Res8(adv-trans)']:.0f} %, the later methods {later_kept.min():.0f}-{later_kept.max():.0f} %.")
    return "\n".join(lines)


def plot_compare(df: pd.DataFrame, ax=None):
    """Clean accuracy against robust accuracy, one point per model and one panel per attack: the paper's
    FGSM transfer and white-box PGD-20 at 16/256 (upper right is better)."""
    import matplotlib.pyplot as plt

    panels = (("FGSM", "Res26", None, "FGSM transfer from the held-out Res26"),
              ("PGD-20", "white-box", 16.0, "white-box PGD-20 @ 16/256"))
    if ax is None:
        ax = plt.subplots(1, len(panels), figsize=(9.5, 3.8), sharex=True)[1]
    clean = df[df["attack"] == "clean"].groupby("model")["accuracy"].mean()
    for a, (attack, source, eps, title) in zip(ax, panels):
        sel = df[(df["attack"] == attack) & (df["source"] == source)]
        if eps is not None:
            sel = sel[(sel["eps_256"] - eps).abs() < 1e-3]
        rob = sel.groupby("model")["accuracy"].mean()
        models = [m for m in COMPARE_TARGETS if m in rob.index and m in clean.index]
        for m in models:
            paper_side = m in ("Res8(cln)", "Res8(adv)", "Res8(adv-trans)")
            a.scatter(clean[m], rob[m], s=60, marker="s" if paper_side else "o", color=colour(m),
                      label=m + (" (paper's)" if paper_side else "") if a is ax[-1] else None)
        a.set(xlabel="clean accuracy (%)", ylabel="robust accuracy (%)", title=title)
        a.grid(alpha=0.3)
    legend_outside(ax[-1], title="squares: the paper's methods")
    return ax
