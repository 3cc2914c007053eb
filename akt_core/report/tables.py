"""Reproduced tables beside the paper's: the paper's numbers, cells over seeds, labels."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import AktError
from .. import profiles as profiles_mod
from ..book import PAPER_NUMBERS
from ..graph import TableSpec
from ..results import require
from .style import diff_html, show

PAPER_CSV = Path(__file__).resolve().parent.parent.parent / "data" / PAPER_NUMBERS
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


def cells_of(records: pd.DataFrame, table: TableSpec) -> pd.DataFrame:
    """The records that are cells of ``table``, with the paper's column name in ``column``."""
    col = _column_of(table)
    df = records.assign(column=[col.get((a, s)) for a, s in zip(records["attack"], records["source"])])
    return df[df["column"].notna() & df["model"].isin(table.targets)]


def in_paper_order(df: pd.DataFrame, table: TableSpec) -> pd.DataFrame:
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
    return cell_stats(cells_of(records, table), ["model", "column"])


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
    return in_paper_order(df, table)


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


def compact(cmp: pd.DataFrame, tolerance: float = 5.0):
    """The table as one compact grid: a row per model, a column per column of the paper's table, each
    cell "ours ± sd" over "(paper, diff)" with the difference coloured (red beyond ``tolerance``)."""
    def cell(r) -> str:
        if pd.isna(r["mean"]):
            return "missing"
        ours = f"<b>{r['mean']:.1f}</b>" + (f" ± {r['std']:.1f}" if r["n_seeds"] > 1 else "")
        if pd.isna(r["paper"]):
            return ours
        return f"{ours}<br><small>({r['paper']:.1f}, {diff_html(r['diff'], tolerance)})</small>"
    df = cmp.assign(cell=cmp.apply(cell, axis=1))
    wide = df.pivot(index="model", columns="column", values="cell")
    cols = [c for c in cmp["column"].cat.categories if c in wide.columns]
    rows = [m for m in cmp["model"].cat.categories if m in wide.index]
    grid = wide.loc[rows, cols].reset_index().rename(columns={"model": ""}).rename_axis(columns=None)
    return show(grid, nowrap=True).set_properties(subset=cols, **{"text-align": "right"})


def caption(cmp: pd.DataFrame, table: TableSpec, records: pd.DataFrame, tolerance: float = 5.0) -> str:
    """A table's one-line caption (Markdown): which table, how many of the cells ours share with the
    paper's differ by more than ``tolerance`` points, how many cells are not computed yet (a graph still
    training), and where the numbers came from (``label``)."""
    from .. import data as data_mod

    shared = cmp["paper"].notna() & cmp["mean"].notna()
    missing = int(cmp["mean"].isna().sum())
    text = (f"**Table {table.number}, {data_mod.spec(table.dataset).title}.** {int(cmp['off'].sum())} of "
            f"{int(shared.sum())} cells differ from the paper's by more than {tolerance:g} points.")
    if missing:
        text += (f" **{missing} of {len(cmp)} cells are not computed yet** (marked *missing*: their models "
                 "or sources are still training).")
    return f"{text} *{label(records)}*"


def banner(profile: profiles_mod.Profile, dataset: str | tuple[str, ...]) -> str:
    """The page's one statement of where its numbers come from (the long profile label, once; with
    the settings of each dataset the page covers)."""
    return (f"> **{profile.label_for(dataset)}**" + ("" if profile.name == "paper" else
            " — not the paper's protocol: compare trends, not decimals."))


def arithmetic(devices) -> str:
    """The arithmetic of rows with these ``device`` values, in words (``provenance.device_name`` names
    bf16 autocast and a GPU's TF32; a CPU row without either is float32); several, when they differ."""
    def one(d: str) -> str:
        return "bf16 autocast" if d.endswith("bf16 autocast") else "float32, TF32 convolutions" \
            if d.endswith("fp32/tf32") else "float32"
    return " and ".join(sorted({one(str(d)) for d in devices}))


def label(records: pd.DataFrame) -> str:
    """Where these numbers came from: profile, dataset variant, seeds, test images, device, commit."""
    if not len(records):
        return "no results"
    parts = []
    for (prof, variant), g in records.groupby(["profile", "dataset_variant"]):
        p = profiles_mod.get(prof)
        seeds = ", ".join(map(str, sorted(g["seed"].unique())))
        n = ", ".join(map(str, sorted(g["n_examples"].unique()))) if "n_examples" in g else "?"
        where = f"Profile {p.name}; dataset variant: {variant}; seeds: {seeds}"
        if {"train_images", "epochs", "batch_size"} <= set(g.columns):  # what the models were trained on
            trained = g[["train_images", "epochs", "batch_size"]].drop_duplicates().dropna()
            where += "; trained on " + "; ".join(
                f"{int(a):,} images x {int(e)} epoch{'s' if int(e) != 1 else ''} (batch {int(b)})"
                for a, e, b in trained.itertuples(index=False))
        where += f"; test images: {n}"
        if "device" in g:
            where += f"; arithmetic: {arithmetic(g['device'])}; device: {'; '.join(sorted(g['device'].unique()))}"
        if "git_commit" in g:
            where += f"; code: {', '.join(sorted(g['git_commit'].astype(str).unique()))}"
        parts.append(where)
    return " | ".join(parts)


def stored(what: str, dataset: str, profile: str, seeds=(0,), missing: str | None = None,
           **kwargs) -> pd.DataFrame | None:
    """``results.require`` for a notebook: the results, or None after displaying why there are none
    (``missing``, where a section is optional: what to say instead of "No stored results yet")."""
    from IPython.display import Markdown, display

    try:
        return require(what, dataset, profile, seeds, progress=False, **kwargs)
    except AktError as exc:
        display(Markdown(missing or f"**No stored {'curves' if what == 'curves' else 'results'} yet.** {exc}"))
        return None
