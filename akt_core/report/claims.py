"""Claims C1-C5 on one dataset's stored results: the four-state verdicts of ``verdicts`` on the mean
over the seeds and, with several seeds, on each seed alone; beside them the same rule on the paper's
own numbers. With one seed the seed spread comes from a named stand-in (``noise``). Never computes:
it reads whatever the store holds."""
from __future__ import annotations

import pandas as pd

from .. import AktError
from .. import data as data_mod
from .. import profiles as profiles_mod
from ..book import DATASETS
from ..graph import GROUPS
from ..results import require, stored_seeds
from .references import our_cells
from .verdicts import PAPER_EVIDENCE, PAPER_STATE, STATES, Noise, build_claims, verdict_table


def stored_or_none(what: str, dataset: str, profile: str, seeds, blackbox: str = "held-out", **kw) -> pd.DataFrame | None:
    """The stored results (``require`` without computing), None where there are none."""
    try:
        return require(what, dataset, profile, seeds, compute=False, blackbox=blackbox, progress=False, **kw)
    except AktError:
        return None


def measured_noise(dataset: str, profile: str, blackbox: str = "held-out") -> Noise | None:
    """The seed spread of every comparison on ``dataset`` under ``profile``, where it has several seeds."""
    seeds = stored_seeds(profile, dataset)
    if len(seeds) < 2:
        return None
    recs = {g: stored_or_none(g, dataset, profile, seeds, blackbox) for g in GROUPS}
    curves = stored_or_none("curves", dataset, profile, seeds, blackbox)
    claims = build_claims(dataset, {g: our_cells(r, dataset, g) for g, r in recs.items()}, curves)
    name = f"{data_mod.spec(dataset).title} {profile}, seeds {', '.join(map(str, seeds))}"
    return Noise.measured(claims, name)


def _by_distance(profile: str) -> list[str]:
    """The published profiles, nearest to ``profile`` first (their order in ``profiles.PROFILES``; on a
    tie the cheaper one)."""
    order = list(profiles_mod.PROFILES)
    at = order.index(profile)
    return sorted((p for p in order if profiles_mod.PROFILES[p].published), key=lambda p: (abs(order.index(p) - at),
                                                                                          order.index(p)))


def noise(dataset: str, profile: str, blackbox: str = "held-out") -> Noise | None:
    """The seed spread a one-seed verdict on ``dataset`` under ``profile`` uses: ``profile``'s own where
    it has several seeds (for its per-seed columns), else the same dataset's at the nearest profile with
    several seeds, else every other dataset's at the nearest profile that has any (the largest, named)."""
    for p in _by_distance(profile):
        if (n := measured_noise(dataset, p, blackbox)) is not None:
            return n
    for p in _by_distance(profile):
        got = [n for ds in DATASETS if ds != dataset and (n := measured_noise(ds, p, blackbox)) is not None]
        if got:
            return Noise.pooled(got, "the largest of " + "; ".join(n.name for n in got)
                                + f" (no two seeds of {data_mod.spec(dataset).title} under any profile)")
    return None


def all_claims(dataset: str, profile: str, seeds=(0,), blackbox: str = "held-out",
               tolerance: float = 5.0) -> pd.DataFrame:
    """claim, statement, verdict (``reproduction``) with its short line and evidence, one column per seed
    with several seeds, and the verdict on the paper's own numbers. ``tolerance`` is the tables' marking
    threshold, not a verdict margin (the verdicts weigh each difference against its measured noise)."""
    seeds = [int(s) for s in seeds]
    recs = {g: stored_or_none(g, dataset, profile, seeds, blackbox) for g in GROUPS}
    curves = stored_or_none("curves", dataset, profile, seeds, blackbox)
    # the stand-in spread is the one measured under the default (held-out) protocol: the static one is
    # stored for the published seeds only, and a model's retraining is what moves a cell most
    ours = noise(dataset, profile)
    paper = noise(dataset, "paper")
    out = verdict_table(dataset, recs, curves, ours, paper).rename(columns={"state": "reproduction"})
    if len(seeds) > 1:
        at = list(out.columns).index("evidence") + 1
        for i, s in enumerate(seeds):
            one = {g: (r[r["seed"] == s] if r is not None else None) for g, r in recs.items()}
            c = curves[curves["seed"] == s] if curves is not None else None
            words = dict(zip(*verdict_table(dataset, one, c, ours, paper)[["claim", "state"]].T.values))
            out.insert(at + i, f"seed {s}", [words.get(c, "not evaluated here") for c in out["claim"]])
    out.attrs["noise"] = ours.name if ours is not None else None
    out.attrs["paper_noise"] = paper.name if paper is not None else None
    return out


def view(table: pd.DataFrame):
    """``all_claims``' table for a page: per claim its state (coloured, marked when it rests on one seed)
    and the one line that decides it, each seed's state and the paper's; the full evidence of every
    claim behind a toggle. An ``IPython.display.HTML``."""
    import html

    from IPython.display import HTML

    from .style import state_colour
    from .verdicts import ONE_SEED

    def badge(state: str, one_seed: bool = False) -> str:
        colour = state_colour(state)
        mark = f" ({ONE_SEED})" if one_seed else ""
        return (f"<span style='background:{colour};color:white;padding:1px 6px;border-radius:3px;"
                f"white-space:nowrap'>{html.escape(state)}{mark}</span>")

    seeds = [c for c in table.columns if c.startswith("seed ")]
    head = "".join(f"<th>{h}</th>" for h in ["claim", "reproduction", "why", *seeds, PAPER_STATE])
    rows, details = [], []
    for r in table.to_dict("records"):
        cells = [f"<td title='{html.escape(r['statement'])}'><b>{r['claim']}</b></td>",
                 f"<td>{badge(r['reproduction'], r['one_seed'])}</td>", f"<td>{html.escape(r['short'])}</td>",
                 *(f"<td>{badge(r[s])}</td>" for s in seeds), f"<td>{badge(r[PAPER_STATE])}</td>"]
        rows.append("<tr>" + "".join(cells) + "</tr>")
        details.append(f"<li><b>{r['claim']}</b>: {html.escape(r['statement'])}<br>ours: "
                       f"{html.escape(r['evidence'])}<br>paper's: {html.escape(r[PAPER_EVIDENCE])}</li>")
    return HTML("<table class='claims' style='font-size:0.85em'><thead><tr>" + head + "</tr></thead><tbody>"
                + "".join(rows) + "</tbody></table><details><summary>Every comparison's numbers</summary><ul>"
                + "".join(details) + "</ul></details>")


def noise_words(table: pd.DataFrame, dataset: str) -> str:
    """One paragraph for a claims section: where the rule is stated, which seed spread this page's
    one-seed verdicts use (``all_claims``' ``noise``), and the floor's reference where it is not the paper's."""
    from .references import REFERENCES

    text = ("Each claim is judged by the one rule stated in the Results chapter (`akt_core.report.verdicts`): "
            "its comparisons must clear the thresholds its words set by more than twice their noise; a claim "
            "whose models stay below 85 % of their reference clean accuracy is *untestable at this budget*. "
            "`why` is the comparison that decides; the toggle below the table gives every comparison's numbers.")
    if table["one_seed"].any():
        text += (f" With one seed, the seed spread is a stand-in: **{table.attrs.get('noise') or 'none measured'}** "
                 "(marked *(1 seed)*).")
    if table.attrs.get("paper_noise") and table[PAPER_STATE].isin(STATES).any():
        text += f" The paper's own numbers (one run each) are judged with the seed spread of {table.attrs['paper_noise']}."
    if (ref := REFERENCES.get(dataset)) is not None:
        text += (f" The floor's reference on this dataset is not the paper's (erratum {ref.erratum}: out of reach for "
                 f"these models) but {ref.value:g} % for {ref.source} (Tian et al. 2020, CRD), each variant "
                 f"scaled by the paper's own ratio to {ref.model}.")
    return text
