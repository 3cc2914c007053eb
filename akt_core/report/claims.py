"""Claims C1-C5 on one dataset's stored results: the four-state verdicts of ``verdicts`` on the mean
over the seeds and, with several seeds, on each seed alone; beside them the same rule on the paper's
own numbers. Never computes: it reads whatever the store holds."""
from __future__ import annotations

import pandas as pd

from .. import AktError
from ..book import DATASETS
from ..results import require, stored_seeds
from .verdicts import _our_cells, build_claims, stand_in_spread, verdict_table

GROUPS = ("variants", "sources", "attacks")


def _stored(what: str, dataset: str, profile: str, seeds, blackbox: str = "held-out", **kw) -> pd.DataFrame | None:
    """The stored results (``require`` without computing), None where there are none."""
    try:
        return require(what, dataset, profile, seeds, compute=False, blackbox=blackbox, progress=False, **kw)
    except AktError:
        return None




def stand_in(profile: str, blackbox: str = "held-out"):
    """The seed-spread stand-in of ``profile`` (``verdicts.stand_in_spread``) from every dataset with
    several stored seeds."""
    per = {}
    for ds in DATASETS:
        seeds = stored_seeds(profile, ds)
        if not seeds:
            continue
        recs = {g: _stored(g, ds, profile, seeds, blackbox) for g in GROUPS}
        per[ds] = build_claims(ds, {g: _our_cells(r, ds, g) for g, r in recs.items()}, None)
    return stand_in_spread(per)


def all_claims(dataset: str, profile: str, seeds=(0,), blackbox: str = "held-out",
               tolerance: float = 5.0) -> pd.DataFrame:
    """claim, statement, verdict (``reproduction``) with its evidence, one column per seed with several
    seeds, and the verdict on the paper's own numbers. ``tolerance`` is the tables' marking threshold,
    not a verdict margin (the verdicts weigh each difference against its measured noise)."""
    seeds = [int(s) for s in seeds]
    recs = {g: _stored(g, dataset, profile, seeds, blackbox) for g in GROUPS}
    curves = _stored("curves", dataset, profile, seeds, blackbox)
    noise = stand_in(profile, blackbox)
    t = verdict_table(dataset, recs, curves, noise)
    out = t.rename(columns={"state": "reproduction"})
    if len(seeds) > 1:
        at = list(out.columns).index("evidence") + 1
        for i, s in enumerate(seeds):
            one = {g: (r[r["seed"] == s] if r is not None else None) for g, r in recs.items()}
            c = curves[curves["seed"] == s] if curves is not None else None
            words = dict(zip(*verdict_table(dataset, one, c, noise)[["claim", "state"]].T.values))
            out.insert(at + i, f"seed {s}", [words.get(c, "not evaluated here") for c in out["claim"]])
    return out
