"""What the unstated choices change (issue 20): for each measured choice (``choices.MEASURED``), the
move of every table cell from the default to the other value, paired seed by seed, weighed against
the seed-to-seed spread of the same cell under the default, and the claims' verdicts under both.

Both values are read from the measurement's stores (``choices.measured_stores``: one per run, each the
default retrained beside the choices on one machine); a move pairs the two values within one run, and
a seed measured in several runs counts once, from the first. The seed spread comes from the published
results. A cell *moves* when ``|other - default|`` (mean over the measured seeds) exceeds that cell's
standard deviation over the published seeds. Never computes: it reads the stores.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from .. import choices as choices_mod
from ..graph import GROUPS, table_cells, table_for
from ..store import Store
from .claims import noise as measured_noise
from .claims import stored_or_none
from .tables import cells_of
from .verdicts import verdict_table


def _stores(store: Store | Sequence[Store] | None) -> list[Store]:
    """``store`` as a list of measurement stores (default: every run's, ``choices.measured_stores``)."""
    if store is None:
        return choices_mod.measured_stores()
    return [store] if isinstance(store, Store) else list(store)


def _records(group: str, dataset: str, profile: str, seeds, store: Store, **kw) -> pd.DataFrame | None:
    """Stored results of ``store``, None where there are none."""
    return stored_or_none(group, dataset, profile, seeds, store=store, **kw)


def _tidy(records: pd.DataFrame | None, dataset: str, group: str) -> pd.DataFrame:
    if records is None or not len(records):
        return pd.DataFrame(columns=["table", "model", "column", "seed", "accuracy"])
    table = table_for(group, dataset)
    return cells_of(records, table)[["model", "column", "seed", "accuracy"]].assign(table=table.number)


def measured_pairs(name: str, value: str, dataset: str, profile: str = choices_mod.MEASURED_PROFILE,
                   seeds=choices_mod.MEASURED_SEEDS, store=None) -> list[tuple[Store, int]]:
    """(store, seed) for each seed among ``seeds`` for which a run (``store``: one or several, default
    every run's) holds a record of every table cell under the other value (the records of models it
    leaves untouched are the default's own, so some exist before it is run), and so under the default;
    the first such run of each seed."""
    kw = choices_mod.experiment_kwargs(name, value)

    def complete(st: Store, seed: int) -> bool:
        for g in GROUPS:
            r, d = _records(g, dataset, profile, [seed], st, **kw), _records(g, dataset, profile, [seed], st)
            if any(x is None or len(x) < len(table_cells(table_for(g, dataset))) for x in (r, d)):
                return False
        return True

    out: list[tuple[Store, int]] = []
    for seed in seeds:
        run = next((st for st in _stores(store) if complete(st, seed)), None)
        if run is not None:
            out.append((run, seed))
    return out


def measured_seeds(name: str, value: str, dataset: str, profile: str = choices_mod.MEASURED_PROFILE,
                   seeds=choices_mod.MEASURED_SEEDS, store=None) -> list[int]:
    """The seeds of ``measured_pairs``, in order."""
    return [seed for _, seed in measured_pairs(name, value, dataset, profile, seeds, store)]


def measured_runs(name: str, value: str, dataset: str, profile: str = choices_mod.MEASURED_PROFILE,
                  seeds=choices_mod.MEASURED_SEEDS, store=None) -> str:
    """Which run measured which seed, compactly (the summary table's ``runs`` column): ``"0: 12-02,
    1: 12-03"`` for seed 0 from ``choices-2026-12-02`` and seed 1 from ``choices-2026-12-03``."""
    return runs_words(measured_pairs(name, value, dataset, profile, seeds, store))


def runs_words(pairs: list[tuple[Store, int]]) -> str:
    """A run named by its date (``choices-YYYY-MM-DD``) is written MM-DD; any other by its name."""
    def short(name: str) -> str:
        m = re.search(r"\d{4}-(\d{2}-\d{2})$", name)
        return m.group(1) if m else name

    return ", ".join(f"{seed}: {short(st.root.name)}" for st, seed in pairs)


def _paired(group: str, name: str, value: str, dataset: str, profile: str,
            pairs) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The records of ``group`` under the default and under the other value, each seed from its run."""
    kw = choices_mod.experiment_kwargs(name, value)
    base = [_records(group, dataset, profile, [seed], st) for st, seed in pairs]
    other = [_records(group, dataset, profile, [seed], st, **kw) for st, seed in pairs]

    def joined(parts: list) -> pd.DataFrame | None:
        parts = [r for r in parts if r is not None]
        return pd.concat(parts, ignore_index=True) if parts else None

    return joined(base), joined(other)


def moves(name: str, value: str, dataset: str, profile: str = choices_mod.MEASURED_PROFILE,
          seeds=choices_mod.MEASURED_SEEDS, store=None, spread_store=None) -> pd.DataFrame:
    """One row per table cell: table, model, column, default and other (means over the measured
    seeds, ``measured_pairs``: each seed's two values from one run of ``store``), move = other -
    default, spread (the cell's sd over the seeds of ``spread_store``, default the published results),
    n_seeds (of the move) and moved (|move| > spread). Empty when the other value has no stored records."""
    pairs = measured_pairs(name, value, dataset, profile, seeds, store)
    if not pairs:
        return pd.DataFrame(columns=["table", "model", "column", "default", "other", "move", "spread", "n_seeds",
                                     "moved"])
    rows = []
    for g in GROUPS:
        base, other = (_tidy(r, dataset, g) for r in _paired(g, name, value, dataset, profile, pairs))
        published = _tidy(_records(g, dataset, profile, list(seeds), spread_store or Store()), dataset, g)
        keys = ["table", "model", "column"]
        spread = published.groupby(keys)["accuracy"].std(ddof=1).rename("spread")
        paired = other.merge(base, on=[*keys, "seed"], suffixes=("_other", "_default"))
        cell = paired.groupby(keys).agg(default=("accuracy_default", "mean"), other=("accuracy_other", "mean"),
                                        n_seeds=("seed", "nunique"))
        rows.append(cell.join(spread).reset_index())
    df = pd.concat(rows, ignore_index=True)
    df["move"] = df["other"] - df["default"]
    df["moved"] = df["move"].abs() > df["spread"]
    return df[["table", "model", "column", "default", "other", "move", "spread", "n_seeds", "moved"]]


def verdicts(name: str, value: str, dataset: str, profile: str = choices_mod.MEASURED_PROFILE,
             seeds=choices_mod.MEASURED_SEEDS, store=None) -> pd.DataFrame:
    """claim, default and other: the four-state verdicts on the measured seeds (``measured_pairs``:
    each seed's two values from one run of ``store``) under both values."""
    pairs = measured_pairs(name, value, dataset, profile, seeds, store)
    if not pairs:
        return pd.DataFrame(columns=["claim", "default", "other"])
    noise = measured_noise(dataset, profile)
    recs = {g: _paired(g, name, value, dataset, profile, pairs) for g in (*GROUPS, "curves")}

    def states(i: int) -> dict[str, str]:
        t = verdict_table(dataset, {g: recs[g][i] for g in GROUPS}, recs["curves"][i], noise)
        return dict(zip(t["claim"], t["state"]))

    base, other = states(0), states(1)
    return pd.DataFrame([{"claim": c, "default": base[c], "other": other.get(c, "not evaluated")} for c in base])


#: the rows of ``protocols_grid`` per model: the paper's number, then ours under each black-box protocol
PROTOCOL_ROWS = ("paper", "held-out", "static")


def protocols(dataset: str, profile: str = choices_mod.MEASURED_PROFILE, store=None) -> pd.DataFrame:
    """Tables 2-4's cells under both black-box protocols beside the paper's: model, column, paper,
    held-out and static (means over the seeds both have), in the paper's order. Empty until the
    static protocol is measured on ``dataset``."""
    from .tables import paper_numbers

    m = moves("blackbox", "static", dataset, profile, store=store)
    m = m[m["table"] == table_for("variants", dataset).number]
    if not len(m):
        return pd.DataFrame(columns=["model", "column", "paper", "held-out", "static"])
    p = paper_numbers()
    p = p[(p["table"] == table_for("variants", dataset).number) & (p["dataset"] == dataset)]
    out = m.merge(p[["model", "column", "value"]], on=["model", "column"], how="left")
    out = out.rename(columns={"value": "paper", "default": "held-out", "other": "static"})
    order = {v: i for i, v in enumerate(table_for("variants", dataset).targets)}
    cols = {c: i for i, (c, _, _) in enumerate(table_for("variants", dataset).columns)}
    out = out.sort_values(["model", "column"], key=lambda s: s.map(order if s.name == "model" else cols))
    return out[["model", "column", "paper", "held-out", "static"]].reset_index(drop=True)


def published_protocols(dataset: str, profile: str, store: Store | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both black-box protocols on the published models of ``profile``: the models are the same under
    either (their per-epoch curves are always scored on the held-out Res26), only the attacks' sources
    differ, so no retraining and no other machine enter the comparison. Returns Tables 2-4's cells in
    ``protocols``' form and the claims' verdicts (claim, held-out, static), on the seeds whose static
    records are stored; both empty until there are some."""
    from .claims import all_claims
    from .tables import paper_numbers

    store = store or Store()
    rec = store.read(profile, "records")
    seeds = sorted(int(s) for s in rec.loc[(rec["dataset"] == dataset) & (rec["blackbox"] == "static"), "seed"]
                   .unique()) if len(rec) else []
    empty = (pd.DataFrame(columns=["model", "column", "paper", "held-out", "static"]),
             pd.DataFrame(columns=["claim", "held-out", "static"]))
    if not seeds:
        return empty
    table = table_for("variants", dataset)
    cells = {}
    for protocol in ("held-out", "static"):
        r = stored_or_none("variants", dataset, profile, seeds, protocol, store=store)
        if r is None:
            return empty
        cells[protocol] = cells_of(r, table).groupby(["model", "column"])["accuracy"].mean().rename(protocol)
    long = pd.concat(cells.values(), axis=1).reset_index()
    p = paper_numbers()
    p = p[(p["table"] == table.number) & (p["dataset"] == dataset)][["model", "column", "value"]]
    long = long.merge(p.rename(columns={"value": "paper"}), on=["model", "column"], how="left")
    verdicts = {k: all_claims(dataset, profile, seeds, k).set_index("claim")["reproduction"] for k in cells}
    return (long[["model", "column", "paper", "held-out", "static"]],
            pd.DataFrame(verdicts).rename_axis("claim").reset_index())


def protocols_grid(long: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """``protocols``' table as a grid the width of the paper's table: a row per model and source
    (the paper's, held-out, static), a column per column of the paper's table, in the paper's order."""
    if not len(long):
        return long
    table = table_for("variants", dataset)
    grid = (long.melt(id_vars=["model", "column"], value_vars=list(PROTOCOL_ROWS), var_name="source")
            .pivot(index=["model", "source"], columns="column", values="value"))
    rows = [(m, k) for m in table.targets for k in PROTOCOL_ROWS if (m, k) in grid.index]
    return grid.reindex(index=pd.MultiIndex.from_tuples(rows, names=["model", "source"]),
                        columns=[c for c, _, _ in table.columns if c in grid.columns]).rename_axis(columns=None)


def protocol_gap(long: pd.DataFrame, dataset: str, far: float = 5.0) -> str:
    """A computed sentence on the gap to the paper's transfer numbers, from ``protocols``' table: over
    Table 2-4's attacked cells that lie more than ``far`` points from the paper's under the held-out
    protocol, the median of ours minus the paper's under each protocol, and how many come closer under
    the static one. Empty until the static protocol is measured on ``dataset``."""
    t = long.dropna(subset=["paper"])
    t = t[(t["column"] != "clean") & ((t["held-out"] - t["paper"]).abs() > far)]
    if not len(t):
        return ""
    gap = {k: t[k] - t["paper"] for k in ("held-out", "static")}
    med = {k: float(np.median(g)) for k, g in gap.items()}
    closer = int((gap["static"].abs() < gap["held-out"].abs()).sum())
    table = table_for("variants", dataset).number
    verdict = ("closes most of the gap" if abs(med["static"]) < abs(med["held-out"]) / 2 else
               "narrows the gap" if abs(med["static"]) < abs(med["held-out"]) else "does not close the gap")
    models = ", ".join(dict.fromkeys(t["model"]))
    return (f"Table {table} ({dataset}): over the {len(t)} attacked cells more than {far:g} points from the paper's "
            f"under the held-out protocol ({models}), ours minus the paper's is a median of "
            f"{med['held-out']:+.1f} points under the held-out protocol and {med['static']:+.1f} under the static "
            f"one; {closer} of them come closer to the paper under the static protocol. The static protocol "
            f"{verdict}.")


def summary(profile: str = choices_mod.MEASURED_PROFILE) -> pd.DataFrame:
    """One row per measured (choice, dataset): what the choice is, the seeds measured, how many cells
    move beyond their seed spread, the largest move (and its cell), the median seed spread, and the
    verdicts that change."""
    rows = []
    for name, value, datasets in choices_mod.MEASURED:
        c = choices_mod.CHOICES[name]
        for ds in datasets:
            m = moves(name, value, ds, profile)
            row = {"choice": name, "default": c.default, "other": value, "dataset": ds}
            if not len(m):
                rows.append({**row, "seeds": "not measured yet"})
                continue
            big = m.loc[m["move"].abs().idxmax()]
            v = verdicts(name, value, ds, profile)
            flips = [f"{r.claim}: {r.default} → {r.other}" for r in v.itertuples() if r.default != r.other]
            pairs = measured_pairs(name, value, ds, profile)
            rows.append({**row, "seeds": ", ".join(str(seed) for _, seed in pairs),
                         "runs": runs_words(pairs),
                         "cells moved": f"{int(m['moved'].sum())} of {len(m)}",
                         "largest move": f"{big['move']:+.1f} (Table {int(big['table'])}, {big['model']}, {big['column']})",
                         "median seed spread": round(float(np.nanmedian(m["spread"])), 2),
                         "verdicts that change": "; ".join(flips) or "none"})
    return pd.DataFrame(rows)


def reading(summary_table: pd.DataFrame) -> str:
    """Computed sentences on ``summary``: per measured (choice, dataset) how many cells move beyond
    their seed spread, the largest move and the verdicts that change; then what is not measured yet."""
    rows = summary_table.to_dict("records")
    out = []
    for r in rows:
        if r["seeds"] == "not measured yet":
            continue
        plural = "s" if "," in r["seeds"] else ""
        out.append(f"**{r['choice']} = {r['other']}** ({r['dataset']}, seed{plural} {r['seeds']}): {r['cells moved']} "
                   f"cells move beyond their seed spread (median spread {r['median seed spread']:.1f} points); the "
                   f"largest move is {r['largest move']}; "
                   + ("no verdict changes." if r["verdicts that change"] == "none"
                      else f"verdicts that change: {r['verdicts that change']}."))
    todo = [f"{r['choice']} = {r['other']} on {r['dataset']}" for r in rows if r["seeds"] == "not measured yet"]
    if todo:
        out.append("Not measured yet: " + ", ".join(todo) + ".")
    return "\n\n".join(out) if out else "Nothing measured yet."
