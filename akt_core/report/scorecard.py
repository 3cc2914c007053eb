"""The book's first screen: do the paper's claims hold? One grid of datasets x C1-C5, one column per
profile with stored results and one for the paper's own numbers, each cell a four-state verdict
(``verdicts``) linked to the page that holds its evidence, and a few computed sentences per dataset.
"""
from __future__ import annotations

import html

import pandas as pd

from .. import data as data_mod
from .. import profiles as profiles_mod
from ..book import BY_STEM, DATASETS
from ..results import stored_seeds
from . import unstated
from .claims import all_claims
from .verdicts import STATEMENTS, STATES

COLOURS = {"supported": "#1a7f37", "contradicted": "#cf222e", "within noise": "#bf8700",
           "untestable at this budget": "#6e7781", "not enough results": "#6e7781", "no numbers": "#6e7781"}
#: the page holding each claim's evidence (its notebook, from the book's plan)
EVIDENCE = {"C1": "tables_2_4_variants", "C2": "tables_2_4_variants", "C3": "tables_2_4_variants",
            "C4": "tables_8_10_attacks", "C5": "figs_3_4_convergence"}
PAPER = "paper's numbers"


def scorecard(profiles: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One row per (dataset, claim, column): column is a published profile with stored results or
    ``PAPER``; ``state``, ``evidence``, ``seeds`` and the evidence page's name. The verdicts are those of
    the pages themselves (``claims.all_claims`` on each dataset's stored seeds), so the two always agree."""
    profiles = profiles or tuple(p.name for p in profiles_mod.PROFILES.values() if p.published)
    rows = []
    for profile in profiles:
        for ds in DATASETS:
            seeds = stored_seeds(profile, ds)
            if not seeds:
                continue
            for r in all_claims(ds, profile, seeds).to_dict("records"):
                page = BY_STEM[EVIDENCE[r["claim"]]].executed(ds, profile)
                rows.append({"dataset": ds, "claim": r["claim"], "column": profile, "state": r["reproduction"],
                             "evidence": r["evidence"], "seeds": ", ".join(map(str, seeds)), "page": page})
                if not any(x["dataset"] == ds and x["claim"] == r["claim"] and x["column"] == PAPER for x in rows):
                    rows.append({"dataset": ds, "claim": r["claim"], "column": PAPER, "state": r["paper's numbers"],
                                 "evidence": r["paper's evidence"], "seeds": "one run", "page": page})
    return pd.DataFrame(rows, columns=["dataset", "claim", "column", "state", "evidence", "seeds", "page"])


def _has_sweep(dataset: str, profile: str) -> bool:
    """Whether the eps sweep (``beyond``'s ``sweep``) of ``dataset`` is stored under ``profile``, every
    panel of it (``whitebox.missing_panels``)."""
    from .. import AktError, beyond
    from .whitebox import missing_panels

    try:
        sweep = beyond.require("sweep", dataset, profile, stored_seeds(profile, dataset, "robustness") or [0],
                               progress=False)
    except AktError:
        return False
    return not missing_panels(sweep)


def sentences(card: pd.DataFrame, dataset: str, link_prefix: str = "_executed/") -> str:
    """What holds on ``dataset``, per profile, in words computed from ``card``."""
    out = []
    for column, g in card[card["dataset"] == dataset].groupby("column", sort=False):
        if column == PAPER:
            continue
        by = {s: list(g.loc[g["state"] == s, "claim"]) for s in STATES}
        parts = [f"{s}: {', '.join(c)}" for s, c in by.items() if c]
        seeds = g["seeds"].iloc[0]
        out.append(f"**{data_mod.spec(dataset).title}, {column}** (seed{'s' if ',' in seeds else ''} {seeds}): "
                   + "; ".join(parts) + ".")
        if "C1" in by["contradicted"]:
            out.append("C1 fails on how weak the transfer attacks are against the clean models" + (
                f": the <a href='{link_prefix}{BY_STEM['beyond_robustness'].executed(dataset, column)}.html'>eps sweep</a> "
                "shows at which budget ours fall to the paper's numbers." if _has_sweep(dataset, column) else
                " (the eps sweep that would show at which budget ours fall to the paper's numbers is not stored "
                "for this profile yet)."))
            static = unstated.verdicts("blackbox", "static", dataset) if column == unstated.choices_mod.MEASURED_PROFILE \
                else pd.DataFrame()
            if len(static):
                c1 = static.set_index("claim").loc["C1"]
                out.append(f"With the attacks crafted on the training-time static models instead (the "
                           f"<a href='{link_prefix}{BY_STEM['unstated_choices'].executed(None)}.html'>static "
                           f"protocol</a>, retrained beside the default on one machine), C1 is {c1['other']} "
                           f"(held-out there: {c1['default']}).")
    paper = card[(card["dataset"] == dataset) & (card["column"] == PAPER)]
    judged = paper[paper["state"] != "no numbers"]
    held = list(judged.loc[judged["state"] == "supported", "claim"])
    if len(judged):
        rest = [c for c in judged["claim"] if c not in held]
        verdict = (f"supports all of {', '.join(held)}" if not rest else
                   f"supports {', '.join(held) or 'none'}, not {', '.join(rest)}")
        out.append(f"The same rule on the paper's own numbers (one run, binomial noise only) {verdict}"
                   + (" (Figs. 3-4 give no numbers for C5)." if len(judged) < len(paper) else "."))
    return " ".join(out)


def markdown(card: pd.DataFrame, link_prefix: str = "_executed/") -> str:
    """The grid as an HTML table inside Markdown (coloured cells, each linked to its evidence page, the
    evidence as a tooltip), the legend and the sentences; ``link_prefix`` leads from the including page
    to the executed pages."""
    if not len(card):
        return "**No stored results yet**: the scorecard fills in once a published profile has results.\n"
    columns = list(dict.fromkeys([c for c in card["column"] if c != PAPER])) + [PAPER]
    claims = list(STATEMENTS)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["dataset", "claim", *columns])
    body = []
    for ds in DATASETS:
        sub = card[card["dataset"] == ds]
        if not len(sub):
            continue
        for i, claim in enumerate(claims):
            cells = [f"<td rowspan='{len(claims)}'><b>{data_mod.spec(ds).title}</b></td>"] if i == 0 else []
            cells.append(f"<td title='{html.escape(STATEMENTS[claim])}'>{claim}</td>")
            for col in columns:
                r = sub[(sub["claim"] == claim) & (sub["column"] == col)]
                if not len(r):
                    cells.append("<td>–</td>")
                    continue
                r = r.iloc[0]
                colour = COLOURS.get(r["state"], "#6e7781")
                cells.append(f"<td style='background:{colour};color:white;text-align:center'>"
                             f"<a style='color:white' href='{link_prefix}{r['page']}.html' "
                             f"title='{html.escape(r['evidence'])}'>{html.escape(r['state'])}</a></td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
    legend = ("Each cell applies one rule to the claim's comparisons (`akt_core.report.verdicts`): a difference "
              "must exceed twice its noise (the seed-to-seed spread of that difference, or a named stand-in "
              "with one seed, combined with the binomial error of each accuracy). **supported**: every "
              "comparison holds; **contradicted**: one goes the other way; **within noise**: none fails but "
              "one is smaller than its noise; **untestable at this budget**: a compared model reaches less "
              "than 85 % of the paper's clean accuracy for it, or a teacher is below its student. Hover a "
              "cell for its numbers; click it for the page with the evidence.")
    claims_list = "\n".join(f"- **{c}**: {s}" for c, s in STATEMENTS.items())
    text = "\n\n".join(sentences(card, ds, link_prefix) for ds in DATASETS if (card["dataset"] == ds).any())
    if absent := [ds for ds in DATASETS if not (card["dataset"] == ds).any()]:
        text += ("\n\n**No stored results yet** for " + ", ".join(data_mod.spec(ds).title for ds in absent)
                 + " under any published profile: " + "; ".join(
                     f"`akt build all --dataset {ds} --profile {profiles_mod.DEFAULT}`" for ds in absent) + " makes them.")
    return (f"<table class='scorecard'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>\n\n"
            f"{legend}\n\n{claims_list}\n\n{text}\n")
