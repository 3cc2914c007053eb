"""From stored records to what the book shows: tables beside the paper's, claim verdicts, figures.

Nothing here trains or attacks; every number comes from ``graph.require`` (the results store) or,
for the paper's side, from ``data/paper_tables.csv``. Every table and figure carries the label of
the profile it came from.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import AktError
from . import profiles as profiles_mod
from .graph import GROUPS, TABLES, TableSpec
from . import robustness
from .robustness import COMPARE_TARGETS, PGD_ON_AA, WHITEBOX_EPS

PAPER_CSV = Path(__file__).resolve().parent.parent / "data" / "paper_tables.csv"
ATTACK_COLUMNS = ("FGSM", "I-FGSM", "Step-LL", "Iter-LL")


def paper_numbers(path: str | Path = PAPER_CSV) -> pd.DataFrame:
    """The paper's Tables 1-10, tidy: table, dataset, kind, model, column, value (NaN where not reported)."""
    return pd.read_csv(path, na_values=["NA"])


def paper_table(number: int, path: str | Path = PAPER_CSV) -> pd.DataFrame:
    """Table ``number`` as the paper prints it: models x columns."""
    df = paper_numbers(path)
    df = df[df["table"] == number]
    order = list(dict.fromkeys(df["model"]))
    cols = list(dict.fromkeys(df["column"]))
    return df.pivot(index="model", columns="column", values="value").loc[order, cols]


def _column_of(table: TableSpec) -> dict[tuple[str, str], str]:
    return {(attack, f"Res{src}" if src else "-"): name for name, attack, src in table.columns}


def _cells(records: pd.DataFrame, table: TableSpec) -> pd.DataFrame:
    """The records that are cells of ``table``, with the paper's column name in ``column``."""
    col = _column_of(table)
    df = records.assign(column=[col.get((a, s)) for a, s in zip(records["attack"], records["source"])])
    return df[df["column"].notna() & df["model"].isin(table.targets)]


def _in_paper_order(df: pd.DataFrame, table: TableSpec) -> pd.DataFrame:
    """``df`` with ``model`` and ``column`` as categoricals in the paper's order, sorted by them."""
    df = df.assign(model=pd.Categorical(df["model"], list(table.targets)),
                   column=pd.Categorical(df["column"], [c for c, _, _ in table.columns]))
    return df.sort_values(["model", "column"]).reset_index(drop=True)


def cell_stats(df: pd.DataFrame, by: list[str], n: str = "n_seeds") -> pd.DataFrame:
    """Mean and standard deviation of ``accuracy`` over seeds per ``by`` cell, and the number of distinct
    seeds. Two rows of one seed in one cell are an error, never a second seed."""
    twice = df.duplicated(subset=[*by, "seed"], keep=False)
    if twice.any():
        r = df[twice].iloc[0]
        raise AktError(f"{twice.sum()} rows share a cell and a seed (first: {', '.join(str(r[c]) for c in by)}, "
                       f"seed {r['seed']}); each cell holds one record per seed")
    g = df.groupby(by, observed=True)
    return pd.DataFrame({"mean": g["accuracy"].mean(), "std": g["accuracy"].std(ddof=1),
                         n: g["seed"].nunique()}).reset_index()


def reproduced(records: pd.DataFrame, table: TableSpec) -> pd.DataFrame:
    """Mean, standard deviation and number of seeds per cell, in the paper's layout (long form)."""
    return cell_stats(_cells(records, table), ["model", "column"])


def comparison(records: pd.DataFrame, table: TableSpec, tolerance: float = 5.0) -> pd.DataFrame:
    """Ours beside the paper's, per cell: ours (mean), spread, paper, difference, and whether
    |difference| exceeds ``tolerance`` percentage points. Rows in the paper's order."""
    ours = reproduced(records, table)
    paper = paper_numbers()
    paper = paper[(paper["table"] == table.number) & (paper["dataset"] == table.dataset)]
    paper = paper.rename(columns={"value": "paper"})[["model", "column", "paper"]]
    df = pd.merge(paper, ours, on=["model", "column"], how="outer") if len(paper) else ours.assign(paper=np.nan)
    df["diff"] = df["mean"] - df["paper"]
    df["off"] = df["diff"].abs() > tolerance
    return _in_paper_order(df, table)


def side_by_side(cmp: pd.DataFrame) -> pd.DataFrame:
    """Wide table: for every column, 'ours', 'paper' and 'diff' (ours as mean ± std with several seeds)."""
    def fmt(row) -> str:
        if pd.isna(row["mean"]):
            return "missing"
        s = f"{row['mean']:.2f}"
        if row["n_seeds"] > 1:
            s += f" ± {row['std']:.2f}"
        return s + (" ⚠" if row["off"] else "")
    df = cmp.assign(ours=cmp.apply(fmt, axis=1),
                    paper_s=cmp["paper"].map(lambda v: "–" if pd.isna(v) else f"{v:.2f}"),
                    diff_s=cmp["diff"].map(lambda v: "" if pd.isna(v) else f"{v:+.2f}"))
    wide = df.pivot(index="model", columns="column", values=["ours", "paper_s", "diff_s"])
    wide = wide.rename(columns={"paper_s": "paper", "diff_s": "diff"}, level=0)
    wide = wide.swaplevel(0, 1, axis=1)
    cols = [c for c in cmp["column"].cat.categories if c in wide.columns.get_level_values(0)]
    wide = wide[[(c, k) for c in cols for k in ("ours", "paper", "diff")]]
    return wide.loc[[m for m in cmp["model"].cat.categories if m in wide.index]]


def label(records: pd.DataFrame) -> str:
    """Where these numbers came from: profile, dataset variant, seeds, test images, device, commit."""
    if not len(records):
        return "no results"
    parts = []
    for (prof, variant), g in records.groupby(["profile", "dataset_variant"]):
        p = profiles_mod.get(prof)
        seeds = ", ".join(map(str, sorted(g["seed"].unique())))
        n = ", ".join(map(str, sorted(g["n_examples"].unique()))) if "n_examples" in g else "?"
        where = f"{p.label}. Dataset variant: {variant}; seeds: {seeds}"
        if {"train_images", "epochs", "batch_size"} <= set(g.columns):  # what the models were trained on
            trained = g[["train_images", "epochs", "batch_size"]].drop_duplicates().dropna()
            where += "; trained on " + "; ".join(
                f"{int(a):,} images x {int(e)} epoch{'s' if int(e) != 1 else ''} (batch {int(b)})" for a, e, b in trained.itertuples(index=False))
        where += f"; test images: {n}"
        if "device" in g:
            where += f"; device: {'; '.join(sorted(g['device'].unique()))}"
        if "git_commit" in g:
            where += f"; code: {', '.join(sorted(g['git_commit'].astype(str).unique()))}"
        parts.append(where)
    return " | ".join(parts)


# ---- claims ----------------------------------------------------------------------------------
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
    from . import AktError
    from .graph import require, table_for

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


def stored(what: str, dataset: str, profile: str, seeds=(0,), **kwargs) -> pd.DataFrame | None:
    """``graph.require`` for a notebook: the results, or None after displaying why there are none."""
    from IPython.display import Markdown, display

    from . import AktError
    from .graph import require

    fetch = robustness.require if what in robustness.GROUPS else require
    try:
        return fetch(what, dataset, profile, seeds, progress=False, **kwargs)
    except AktError as exc:
        display(Markdown(f"**No stored {'curves' if what == 'curves' else 'results'} yet.** {exc}"))
        return None


# ---- beyond the paper: white-box evaluation and the eps sweep (records of ``robustness``) ----------
def whitebox_table(records: pd.DataFrame) -> pd.DataFrame:
    """Targets x "attack @ eps": accuracy in % (mean ± std over seeds) of white-box records."""
    from .graph import VARIANTS

    df = records.assign(column=records["attack"] + " @ " + records["eps_256"].map(_eps_words))
    cell = cell_stats(df, ["model", "column"], n="n")
    cell["text"] = [f"{m:.2f}" + (f" ± {s:.2f}" if n > 1 else "") for m, s, n in zip(cell["mean"], cell["std"], cell["n"])]
    wide = cell.pivot(index="model", columns="column", values="text").fillna("–")
    return wide.loc[[v for v in VARIANTS if v in wide.index], sorted(wide.columns, key=_whitebox_order)]


#: white-box columns left to right: PGD-20 on all its images, then on AutoAttack's, then AutoAttack
_WHITEBOX_RANK = {"PGD-20": 0, PGD_ON_AA: 1, "AutoAttack": 2}


def _whitebox_order(column: str) -> tuple:
    """Sort key of an "attack @ eps" column: the larger eps first, then by ``_WHITEBOX_RANK``."""
    attack, eps = column.split(" @ ")
    return -_eps_value(eps), _WHITEBOX_RANK.get(attack, len(_WHITEBOX_RANK)), attack


def _eps_words(eps_256: float) -> str:
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
            row[f"eps/256: {name}"] = _crossing(curve.index.to_numpy(float), curve.to_numpy(float), value)
        rows.append(row)
    return pd.DataFrame(rows)


def _crossing(eps: np.ndarray, acc: np.ndarray, value: float) -> str:
    if acc[0] <= value:
        return f"<{eps[0]:g}"
    for i in range(1, len(eps)):
        if acc[i] <= value:
            t = (acc[i - 1] - value) / (acc[i - 1] - acc[i])
            return f"{eps[i - 1] + t * (eps[i] - eps[i - 1]):.1f}"
    return f">{eps[-1]:g}"


def plot_sweep(sweep: pd.DataFrame, dataset: str, axes=None):
    """Accuracy against eps, one panel per attack, one line per variant; the paper's value at 16/256
    is marked (x) in the panel of the same attack, and the paper's budget as a dotted line."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    if axes is None:
        axes = plt.subplots(1, len(SWEEP_PANELS), figsize=(15, 4.3), sharey=True)[1]
    paper = _paper_variants(dataset)
    from matplotlib.ticker import NullLocator

    from .graph import ALL_VARIANTS

    models = [v for v in ALL_VARIANTS if v in set(sweep["model"])]
    palette = dict(zip(models, sns.color_palette("tab10", len(models))))
    for ax, (attack, source, title) in zip(axes, SWEEP_PANELS):
        df = sweep[(sweep["attack"] == attack) & (sweep["source"] == source)]
        sns.lineplot(data=df, x="eps_256", y="accuracy", hue="model", hue_order=models, palette=palette, marker="o",
                     errorbar=("sd") if df["seed"].nunique() > 1 else None, ax=ax, legend=ax is axes[0])
        for model, value in paper[paper["column"] == attack].set_index("model")["value"].items():
            if model in palette and not pd.isna(value):
                ax.scatter([16], [value], marker="x", s=70, color=palette[model], zorder=5)
        ax.axvline(16, color="grey", lw=1, ls=":")
        ax.set(xscale="log", xlabel="eps (x 1/256, log scale)", ylabel="accuracy (%)", title=title, ylim=(0, 101))
        ticks = sorted(df["eps_256"].unique()) or [16]
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(ticks, labels=[f"{v:g}" for v in ticks])
    if axes[0].get_legend():
        axes[0].legend(fontsize=7, loc="lower left")
    return axes


# ---- beyond the paper: the later methods side by side (records of ``robustness.require("compare")``) --
#: what each compared model needs before it can be trained, in words (its training time excludes these)
def trained_after(variant: str) -> str:
    """The ``trained after`` cell of ``compare_table``: ``Experiment.prerequisites`` in words."""
    from .graph import ALL_VARIANTS, Experiment
    from .methods import get as get_method

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
    return f"{attack} @ {_eps_words(eps_256)}"


def compare_table(df: pd.DataFrame) -> pd.DataFrame:
    """Compared models x (clean, the paper's four transfer attacks from the held-out Res26, white-box
    PGD-20 / AutoAttack at 16/256 and 8/255, training time): accuracy in % (mean ± std over seeds)."""
    df = df.assign(column=[_compare_column(a, s, e) for a, s, e in zip(df["attack"], df["source"], df["eps_256"])])
    cell = cell_stats(df, ["model", "column"], n="n")
    cell["text"] = [f"{m:.2f}" + (f" ± {s:.2f}" if n > 1 else "") for m, s, n in zip(cell["mean"], cell["std"], cell["n"])]
    wide = cell.pivot(index="model", columns="column", values="text")
    white = sorted((c for c in wide.columns if " @ " in c), key=_whitebox_order)
    order = ["clean", *(f"{a} (transfer)" for a in ATTACK_COLUMNS), *white]
    wide = wide.reindex(columns=[c for c in order if c in wide.columns]).fillna("–")
    train = df.groupby("model")["train_s"].mean() if "train_s" in df else pd.Series(dtype=float)
    wide["train (min)"] = [f"{train[m] / 60:.1f}" if m in train and pd.notna(train[m]) else "–" for m in wide.index]
    wide["trained after"] = [trained_after(m) for m in wide.index]
    return wide.loc[[m for m in COMPARE_TARGETS if m in wide.index]]


def exit_table(df: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """NEO-KD-style Res26 exit by exit: what a device that stops there holds and computes (parameters,
    MACs from torch's FLOP counter on the architecture) and its accuracy columns of ``compare_table``."""
    import torch

    from .data import spec
    from .graph import EXIT_VARIANTS
    from .models import ExitView, MultiExitResNet, model_cost

    exits = [v for v in EXIT_VARIANTS if v in set(df["model"])]
    if not exits:
        return pd.DataFrame()
    s = spec(dataset)
    torch.manual_seed(0)
    net = MultiExitResNet(26, s.num_classes, s.channels, s.mean, s.std)
    acc = compare_table(df[df["model"].isin(exits)]).drop(columns=["trained after"])
    rows = []
    for v in exits:
        c = model_cost(ExitView(net, EXIT_VARIANTS[v].exit), (s.channels, s.size, s.size))
        rows.append({"model": v, "params (k)": f"{c.params / 1e3:.1f}", "MMACs": f"{c.macs / 1e6:.1f}"})
    return pd.DataFrame(rows).set_index("model").join(acc)


def compare_summary(df: pd.DataFrame) -> str:
    """What the comparison says, in sentences computed from the records: the clean accuracies; for the
    paper's FGSM transfer column and for white-box PGD-20 and AutoAttack at each eps, the best model and
    which later methods the paper's Res8(adv-trans) is ahead of on the mean over seeds (a single seed
    says nothing about differences within its noise); AutoAttack against PGD-20 on the same images
    (where both are stored); and how much of its clean accuracy each model
    keeps under PGD-20 at 16/256, since a model that is barely trained keeps most of very little."""
    paper_models = ("Res8(cln)", "Res8(adv)", "Res8(adv-trans)")
    white_eps = {words: eps * 256 for words, eps in WHITEBOX_EPS.items()}  # in 1/256, as records' eps_256
    cols = {"FGSM transfer": ("FGSM", "Res26", None),
            **{f"{a} @ {w}": (a, "white-box", e) for a in ("PGD-20", "AutoAttack") for w, e in white_eps.items()}}

    def means(attack: str, source: str, eps: float | None) -> pd.Series:
        sel = df[(df["attack"] == attack) & (df["source"] == source)]
        if eps is not None:
            sel = sel[(sel["eps_256"] - eps).abs() < 1e-3]
        return sel.groupby("model")["accuracy"].mean()

    def span(values: pd.Series) -> str:
        lo, hi = values.min(), values.max()
        return f"{lo:.2f} %" if lo == hi else f"{lo:.2f}-{hi:.2f} %"

    lines = []
    clean = means("clean", "-", None)
    later_clean = clean[[m for m in clean.index if m not in paper_models]]
    if "Res8(adv-trans)" in clean and len(later_clean):
        lines.append(f"- **clean**: Res8(adv-trans) {clean['Res8(adv-trans)']:.2f} %, the later methods "
                     f"{span(later_clean)}.")
    for name, key in cols.items():
        mean = means(*key)
        if mean.empty:
            continue
        best = mean.idxmax()
        text = f"- **{name}**: best {best} ({mean[best]:.2f} %)"
        later = [m for m in mean.index if m not in paper_models]
        if "Res8(adv-trans)" in mean and later:
            ours = mean["Res8(adv-trans)"]
            ahead = [m for m in later if ours > mean[m]]
            behind = [m for m in later if ours <= mean[m]]
            if not behind:
                verdict = f"ahead of every later method ({len(ahead)})"
            elif not ahead:
                verdict = f"level with or behind every later method ({len(behind)})"
            else:
                verdict = f"ahead of {', '.join(ahead)}; level with or behind {', '.join(behind)}"
            text += f"; Res8(adv-trans) ({ours:.2f} %) is {verdict}"
        lines.append(text + ".")
    for eps in white_eps.values():
        aa, ctl = means("AutoAttack", "white-box", eps), means(PGD_ON_AA, "white-box", eps)
        both = aa.index.intersection(ctl.index)
        if len(both):
            gap = (aa[both] - ctl[both]).sort_values()
            worst = gap.index[-1]
            lines.append(f"- **AutoAttack against PGD-20 on the same images** ({_eps_words(eps)}): AutoAttack is lower "
                         f"on {(gap < 0).sum()} of {len(gap)} models, equal on {(gap == 0).sum()}, higher on "
                         f"{(gap > 0).sum()}" + (f" (at most {gap[worst]:+.2f} points, {worst})" if gap[worst] > 0 else "")
                         + ".")
    pgd = means(*cols["PGD-20 @ 16/256"])
    kept = (100 * pgd / clean).dropna()
    later_kept = kept[[m for m in kept.index if m not in paper_models]]
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
        ax = plt.subplots(1, len(panels), figsize=(12, 4.6), sharex=True)[1]
    clean = df[df["attack"] == "clean"].groupby("model")["accuracy"].mean()
    for a, (attack, source, eps, title) in zip(ax, panels):
        sel = df[(df["attack"] == attack) & (df["source"] == source)]
        if eps is not None:
            sel = sel[(sel["eps_256"] - eps).abs() < 1e-3]
        rob = sel.groupby("model")["accuracy"].mean()
        models = [m for m in COMPARE_TARGETS if m in rob.index and m in clean.index]
        for m in models:
            paper_side = m in ("Res8(cln)", "Res8(adv)", "Res8(adv-trans)")
            a.scatter(clean[m], rob[m], s=60, marker="s" if paper_side else "o",
                      color="tab:red" if m == "Res8(adv-trans)" else ("tab:grey" if paper_side else "tab:blue"))
            a.annotate(m, (clean[m], rob[m]), fontsize=7, xytext=(4, 3), textcoords="offset points")
        a.set(xlabel="clean accuracy (%)", ylabel="robust accuracy (%)", title=title)
        a.grid(alpha=0.3)
    return ax


# ---- reproducibility: the same runs repeated on another machine ------------------------------------
#: where reruns live, under the store's root: ``reruns/<name>/results/<profile>/{records,curves}.csv``,
#: each the results folder of a store that recomputed published results from scratch (same keys)
RERUNS = "reruns"


def reruns(dataset: str, profile: str, store=None) -> pd.DataFrame:
    """Every stored rerun's records of ``dataset`` under ``profile`` beside the published record of the
    same key (the same full config): columns ``rerun``, ``model``, ``attack``, ``source``,
    ``published``, ``again`` (accuracies in %) and ``delta`` (again - published, points)."""
    from .store import Store

    store = store or Store()
    pub = store.read(profile, "records")
    out = []
    for root in sorted(p for p in (store.root / RERUNS).glob("*") if p.is_dir() and len(pub)):
        again = Store(root).read(profile, "records")
        if not len(again):
            continue
        m = pub[pub["dataset"] == dataset].merge(again[["key", "accuracy"]], on="key", suffixes=("", "_again"))
        out.append(pd.DataFrame({"rerun": root.name, "model": m["model"], "attack": m["attack"],
                                 "source": m["source"], "published": m["accuracy"], "again": m["accuracy_again"],
                                 "delta": (m["accuracy_again"] - m["accuracy"]).round(4)}))
    cols = ["rerun", "model", "attack", "source", "published", "again", "delta"]
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=cols)


def rerun_table(spread: pd.DataFrame, rerun: str) -> pd.DataFrame:
    """Tables 2-4's cells (clean and the four attacks from the Res26) of one rerun: "published / rerun
    (difference)" per model and attack, models in the paper's order."""
    from .graph import VARIANTS

    df = spread[(spread["rerun"] == rerun) & spread["source"].isin(["-", "Res26"])]
    df = df.assign(text=[f"{p:.2f} / {a:.2f} ({d:+.2f})" for p, a, d in zip(df["published"], df["again"], df["delta"])])
    wide = df.pivot(index="model", columns="attack", values="text")
    wide = wide.reindex(columns=[c for c in ("clean", *ATTACK_COLUMNS) if c in wide.columns]).fillna("–")
    return wide.loc[[v for v in VARIANTS if v in wide.index]]


def rerun_summary(spread: pd.DataFrame, rerun: str) -> str:
    """One sentence per rerun: how many records it recomputed and how far they moved (median and largest
    absolute difference, and where the largest is)."""
    df = spread[spread["rerun"] == rerun]
    if not len(df):
        return f"Rerun {rerun!r} holds no record of this dataset."
    size = df["delta"].abs()
    top = df.loc[size.idxmax()]
    src = "" if top["source"] == "-" else f" from the {top['source']}"
    return (f"{len(df)} records recomputed (every table of this dataset). Absolute difference: median "
            f"{size.median():.2f} points; more than 1 point for {(size > 1).sum()} of the {len(df)}; largest "
            f"{top['delta']:+.2f} points ({top['model']}, {top['attack']}{src}: {top['published']:.2f} % "
            f"published, {top['again']:.2f} % again).")


# ---- reproducibility: the same configurations under another seed -------------------------------
def seed_cells(records: pd.DataFrame, table: TableSpec) -> pd.DataFrame:
    """The cells of ``table`` every seed has, one accuracy column per seed ("seed 0", "seed 1", ...),
    plus ``spread`` = largest - smallest over the seeds (points). Rows in the paper's order."""
    wide = _cells(records, table).pivot_table(index=["model", "column"], columns="seed", values="accuracy",
                                              aggfunc="first").dropna()
    wide.columns = [f"seed {s}" for s in wide.columns]
    wide["spread"] = (wide.max(axis=1) - wide.min(axis=1)).round(4)
    return _in_paper_order(wide.reset_index(), table).astype({"model": str, "column": str})


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
    for i, m in enumerate(dict.fromkeys(cells["model"])):
        sel = cells[cells["model"] == m]
        for j, s in enumerate(seeds[1:]):
            ax.scatter(sel[seeds[0]], sel[s], s=40, marker=markers[j % len(markers)], color=f"C{i}",
                       label=m if j == 0 else None)
    ax.set(xlabel=f"accuracy, {seeds[0]} (%)" if seeds else "accuracy (%)",
           ylabel=f"accuracy, {', '.join(seeds[1:])} (%)", title=title, xlim=(0, 100), ylim=(0, 100))
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    return ax
