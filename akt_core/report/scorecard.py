"""The book's first screen: do the paper's claims hold? A few computed findings, then one grid of
datasets x C1-C5, one column per profile with stored results and one for the paper's own numbers,
each cell a four-state verdict (``verdicts``) linked to the page that holds its evidence, the evidence
of every cell in a toggle below it, and a few computed sentences per dataset.
"""
from __future__ import annotations

import html

import pandas as pd

from .. import data as data_mod
from .. import profiles as profiles_mod
from .. import zoo
from ..book import BY_STEM, DATASETS
from ..results import require, stored_seeds
from ..store import Store
from . import unstated
from .claims import all_claims
from .references import REFERENCES
from .style import state_colour
from .tables import arithmetic
from .verdicts import INCOMPLETE, ONE_SEED, PAPER_EVIDENCE, PAPER_STATE, STATEMENTS, STATES
from .whitebox import eps_words

#: the page holding each claim's evidence (its notebook, from the book's plan)
EVIDENCE = {"C1": "tables_2_4_variants", "C2": "tables_2_4_variants", "C3": "tables_2_4_variants",
            "C4": "tables_8_10_attacks", "C5": "figs_3_4_convergence"}
PAPER = PAPER_STATE  #: the scorecard column of the paper's own numbers
ERRATA = "errata"  #: the errata chapter (book/errata.md), where an implausible cell links
COLUMNS = ["dataset", "claim", "column", "state", "one_seed", "short", "evidence", "seeds", "arithmetic", "page"]


def scorecard(profiles: tuple[str, ...] | None = None) -> pd.DataFrame:
    """One row per (dataset, claim, column): column is a published profile with stored results or
    ``PAPER``; ``state``, whether it rests on one seed, its short line and evidence, ``seeds``, the
    ``arithmetic`` of its records (``tables.arithmetic``; the paper states none) and the evidence page's
    name. The verdicts are those of the pages themselves (``claims.all_claims`` on each dataset's stored
    seeds), so the two always agree."""
    profiles = profiles or tuple(p.name for p in profiles_mod.PROFILES.values() if p.published)
    rows = []
    for profile in profiles:
        records = Store().read(profile, "records")
        for ds in DATASETS:
            seeds = stored_seeds(profile, ds)
            if not seeds:
                continue
            ours = records[(records["dataset"] == ds) & records["seed"].isin(seeds)]
            arith = arithmetic(ours["device"])
            for r in all_claims(ds, profile, seeds).to_dict("records"):
                page = BY_STEM[EVIDENCE[r["claim"]]].executed(ds, profile)
                rows.append({"dataset": ds, "claim": r["claim"], "column": profile, "state": r["reproduction"],
                             "one_seed": bool(r["one_seed"]), "short": r["short"], "evidence": r["evidence"],
                             "seeds": ", ".join(map(str, seeds)), "arithmetic": arith, "page": page})
                if not any(x["dataset"] == ds and x["claim"] == r["claim"] and x["column"] == PAPER for x in rows):
                    rows.append({"dataset": ds, "claim": r["claim"], "column": PAPER, "state": r[PAPER_STATE],
                                 "one_seed": False, "short": r[PAPER_EVIDENCE][:160],
                                 "evidence": r[PAPER_EVIDENCE], "seeds": "one run", "arithmetic": "not stated",
                                 "page": page})
    return pd.DataFrame(rows, columns=COLUMNS)


def _has_sweep(dataset: str, profile: str) -> bool:
    """Whether the eps sweep (``beyond``'s ``sweep``) of ``dataset`` is stored under ``profile``, every
    panel of it (``whitebox.missing_panels``)."""
    from .. import AktError
    from .whitebox import missing_panels

    try:
        sweep = require("sweep", dataset, profile, stored_seeds(profile, dataset, "robustness") or [0],
                        progress=False)
    except AktError:
        return False
    return not missing_panels(sweep)


def _listing(claims: list[str]) -> str:
    return claims[0] if len(claims) == 1 else ", ".join(claims[:-1]) + " and " + claims[-1]


def _seeds_words(seeds: str) -> str:
    n = len(seeds.split(","))
    return f"seed {seeds}, one seed" if n == 1 else f"seeds {seeds}"


def sentences(card: pd.DataFrame, dataset: str, link_prefix: str = "_executed/") -> str:
    """What holds on ``dataset``, per profile, in words computed from ``card``."""
    out = []
    for column, g in card[card["dataset"] == dataset].groupby("column", sort=False):
        if column == PAPER:
            continue
        by = {s: list(g.loc[g["state"] == s, "claim"]) for s in (*STATES, INCOMPLETE)}
        parts = [f"{s}: {', '.join(c)}" for s, c in by.items() if c]
        seeds = g["seeds"].iloc[0]
        out.append(f"**{data_mod.spec(dataset).title}, {column} profile** (seed{'s' if ',' in seeds else ''} {seeds}; "
                   f"{g['arithmetic'].iloc[0]}): "
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
    judged = paper[paper["state"].isin(STATES)]
    held = list(judged.loc[judged["state"] == "supported", "claim"])
    if dataset in REFERENCES and len(paper):
        out.append(f"The paper's own {data_mod.spec(dataset).title} numbers get no verdict: its clean accuracies "
                   f"are out of reach for these models (erratum {REFERENCES[dataset].erratum}).")
    elif len(judged):
        rest = [c for c in judged["claim"] if c not in held]
        verdict = (f"supports all of {', '.join(held)}" if not rest else
                   f"supports {', '.join(held) or 'none'}, not {', '.join(rest)}")
        out.append(f"The same rule on the paper's own numbers (one run each, with our seed spread as its noise) "
                   f"{verdict}" + (" (Figs. 3-4 give no numbers for C5)." if len(judged) < len(paper) else "."))
    return " ".join(out)


def _whitebox_max(profile: str, dataset: str) -> pd.DataFrame:
    """Per white-box budget, the largest accuracy of any of the paper's variants under white-box PGD-20
    (``robustness.csv``), with its model: eps_256, accuracy, model, n_examples."""
    seeds = stored_seeds(profile, dataset, "robustness")
    if not seeds:
        return pd.DataFrame()
    try:
        wb = require("whitebox", dataset, profile, seeds, progress=False)
    except Exception:  # noqa: BLE001 - nothing stored is no finding, never a failed book
        return pd.DataFrame()
    wb = wb[wb["attack"] == "PGD-20"]
    if not len(wb):
        return pd.DataFrame()
    cell = wb.groupby(["eps_256", "model"], as_index=False).agg(accuracy=("accuracy", "mean"),
                                                                n_examples=("n_examples", "first"))
    return cell.loc[cell.groupby("eps_256")["accuracy"].idxmax()].sort_values("eps_256", ascending=False)


#: the most any model may keep under white-box PGD-20 for a dataset's robustness to be called
#: transfer-only (points of accuracy, at every white-box budget measured)
TRANSFER_ONLY = 5.0


def whitebox_finding(profiles: tuple[str, ...] | None = None) -> str:
    """How much of the paper's variants' accuracy white-box PGD-20 leaves, per dataset at the largest
    published profile that measured it (computed from ``robustness.csv``), and on which datasets that
    makes their robustness transfer-only (no model above ``TRANSFER_ONLY`` at any budget)."""
    profiles = profiles or tuple(p.name for p in profiles_mod.PROFILES.values() if p.published)
    out, low = [], []
    for ds in DATASETS:
        for profile in reversed(profiles):  # the profile with the most data first
            top = _whitebox_max(profile, ds)
            if not len(top):
                continue
            at = ", ".join(f"{r.accuracy:.1f} % at {eps_words(r.eps_256)}" + (f" ({r.model})" if r.accuracy > 0 else "")
                           for r in top.itertuples())
            out.append(f"{data_mod.spec(ds).title} ({profile}): {at}")
            if top["accuracy"].max() <= TRANSFER_ONLY:
                low.append(data_mod.spec(ds).title)
            break
    if not out:
        return ""
    text = ("**White-box PGD-20** (20 steps on the attacked model's own gradients) against the paper's eight "
            "models; the best of them keeps, per budget: " + "; ".join(out) + ".")
    if low:
        text += (f" On {_listing(low)} no model keeps more than {TRANSFER_ONLY:g} % of its test images: the "
                 "robustness in the paper's tables is robustness to *transfer* attacks only, and none of these "
                 "models withstands an attacker who can compute gradients.")
    return text


def findings(card: pd.DataFrame, link_prefix: str = "_executed/", progress: pd.DataFrame | None = None) -> str:
    """The landing page's first sentences, each computed: where the claims hold and on how many seeds,
    what white-box PGD-20 does, and what could not be tested and why. ``progress`` (default
    ``zoo.progress()``): the training under way, named for each profile and dataset with published
    weights but no verdict yet."""
    out = []
    for column in [c for c in dict.fromkeys(card["column"]) if c != PAPER]:
        g = card[card["column"] == column]
        parts, untestable = [], []
        for ds in DATASETS:
            sub = g[g["dataset"] == ds]
            if not len(sub):
                continue
            by = {s: list(sub.loc[sub["state"] == s, "claim"]) for s in (*STATES, INCOMPLETE)}
            if len(by[STATES[3]]) == len(sub):
                untestable.append(data_mod.spec(ds).title)
                continue
            said = [f"{_listing(c)} {'are' if len(c) > 1 else 'is'} {s}" if s != INCOMPLETE else
                    f"{_listing(c)} {'wait' if len(c) > 1 else 'waits'} for cells not computed yet"
                    for s, c in by.items() if c]
            parts.append(f"on {data_mod.spec(ds).title} ({_seeds_words(sub['seeds'].iloc[0])}) "
                         + ", ".join(said))
        if untestable:
            parts.append(f"{_listing(untestable)} {'are' if len(untestable) > 1 else 'is'} untestable at this "
                         f"budget (every claim compares a model below the clean-accuracy floor)")
        p = profiles_mod.get(column)
        ds = "cifar10" if (g["dataset"] != "mnist").any() else "mnist"  # the settings of what the column covers
        n = p.n_train_for(ds)
        size = (f"{'all' if n is None else f'{n:,}'} training images, {p.epochs_for(ds)} epochs on "
                f"{'CIFAR' if ds == 'cifar10' else 'MNIST'}")
        out.append(f"**{column[0].upper() + column[1:]} profile** ({size}): " + "; ".join(parts) + ".")
    if wb := whitebox_finding():
        out.append(wb)
    missing = [p for p in profiles_mod.PROFILES.values() if p.published and p.name not in set(card["column"])]
    one_seed = sorted({f"{data_mod.spec(r.dataset).title} {r.column}" for r in card.itertuples() if r.one_seed})
    progress = zoo.progress() if progress is None else progress
    training = set(progress["profile"])  # a profile in training is named below, with how far it has come
    untested = [f"nothing at the `{p.name}` profile ({p.description}) has been run yet, so no verdict is at "
                "the paper's own scale" for p in missing if p.name not in training]
    scored = set(zip(card["column"], card["dataset"]))
    for r in progress.itertuples():
        if (r.profile, r.dataset) in scored and r.done == r.planned:
            continue
        state = ("trained, not yet scored" if r.done == r.planned else
                 f"{r.done} of {r.planned} models trained and published so far, the rest in training")
        seeds = f"seed{'s' if len(r.seeds) > 1 else ''} {', '.join(map(str, r.seeds))}"
        then = ("the claims whose tables are complete have verdicts, the rest wait for theirs"
                if (r.profile, r.dataset) in scored else "its verdicts come once every model is trained and scored")
        untested.append(f"{data_mod.spec(r.dataset).title} at the `{r.profile}` profile ({seeds}): {state} (see "
                        f"<a href='zoo.html'>Published models</a>); {then}")
    if one_seed:
        untested.append(f"{_listing(one_seed)} {'rest' if len(one_seed) > 1 else 'rests'} on one seed, judged with "
                        f"a stand-in seed spread (marked *({ONE_SEED})*)")
    if untested:
        out.append("**Not tested yet:** " + "; ".join(untested) + ".")
    return "\n\n".join(out) + "\n"


def _cell(r: pd.Series, link_prefix: str) -> str:
    state = str(r["state"])
    implausible = state.startswith("implausible")
    colour = state_colour(state)
    href = f"{ERRATA}.html" if implausible else f"{link_prefix}{r['page']}.html"
    mark = f"<br><i>({ONE_SEED})</i>" if r["one_seed"] else ""
    return (f"<td style='background:{colour};color:white;text-align:center'>"
            f"<a style='color:white' href='{href}' title='{html.escape(str(r['evidence']))}'>"
            f"{html.escape(state)}</a>{mark}</td>")


def _evidence_list(card: pd.DataFrame, columns: list[str]) -> str:
    """Every cell's short line and evidence, readable without hovering (touch screens)."""
    items = []
    for ds in DATASETS:
        sub = card[card["dataset"] == ds]
        for claim in STATEMENTS:
            for col in columns:
                r = sub[(sub["claim"] == claim) & (sub["column"] == col)]
                if not len(r):
                    continue
                r = r.iloc[0]
                items.append(f"<li><b>{data_mod.spec(ds).title}, {claim}, {html.escape(col)}</b>: "
                             f"{html.escape(str(r['state']))}{f' ({ONE_SEED})' if r['one_seed'] else ''}: "
                             f"{html.escape(str(r['short']))}<br><small>{html.escape(str(r['evidence']))}</small></li>")
    return ("<details class='scorecard-evidence'><summary>The evidence of every cell</summary><ul>"
            + "".join(items) + "</ul></details>")


def arithmetic_line(card: pd.DataFrame) -> str:
    """Which arithmetic each column's numbers were computed in, per dataset (issue 40: bf16 autocast
    is a recorded choice, never a silent one)."""
    ours = card[card["column"] != PAPER].drop_duplicates(["column", "dataset"])
    parts = [f"**{column}**: " + "; ".join(
                 f"{a} ({', '.join(data_mod.spec(d).title for d in h['dataset'])})"
                 for a, h in g.groupby("arithmetic", sort=False))
             for column, g in ours.groupby("column", sort=False)]
    tail = "; the paper states none." if (card["column"] == PAPER).any() else "."
    return ("Arithmetic of each column's training and scoring (crafting the attacks is float32 everywhere): "
            + " · ".join(parts) + tail)


def markdown(card: pd.DataFrame, link_prefix: str = "_executed/") -> str:
    """The grid as an HTML table inside Markdown (coloured cells, each linked to its evidence page, the
    evidence in a toggle below and as a tooltip), the rule and the sentences; ``link_prefix`` leads from
    the including page to the executed pages."""
    if not len(card):
        return "**No stored results yet**: the scorecard fills in once a published profile has results.\n"
    columns = list(dict.fromkeys([c for c in card["column"] if c != PAPER])) + [PAPER]
    claims = list(STATEMENTS)
    head = "".join(f"<th>{h}</th>" for h in ["dataset", "claim", *(
        html.escape(c) if c == PAPER else f"{html.escape(c)} profile<br><small>(our runs)</small>" for c in columns)])
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
                cells.append(_cell(r.iloc[0], link_prefix) if len(r) else "<td>–</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
    legend = ("One rule decides every cell (`akt_core.report.verdicts`, stated in full in the Results chapter "
              "under *How to read a table*): each comparison a claim rests on must clear the threshold the claim's "
              "words set by more than twice its noise; **supported** when all do, **contradicted** when one is "
              "beyond its noise on the wrong side, **within noise** otherwise, and first **untestable at this "
              "budget** when a compared model is below the clean-accuracy floor; **not enough results** (no verdict "
              "yet) while a claim's tables are incomplete. *(1 seed)*: the seed spread is a "
              "stand-in measured at another profile. Click a cell for the page with its evidence; every cell's "
              "numbers are in the toggle below the grid.")
    claims_list = "\n".join(f"- **{c}**: {s}" for c, s in STATEMENTS.items())
    text = "\n\n".join(sentences(card, ds, link_prefix) for ds in DATASETS if (card["dataset"] == ds).any())
    if absent := [ds for ds in DATASETS if not (card["dataset"] == ds).any()]:
        text += ("\n\n**No stored results yet** for " + ", ".join(data_mod.spec(ds).title for ds in absent)
                 + " under any published profile: " + "; ".join(
                     f"`akt build all --dataset {ds} --profile {profiles_mod.DEFAULT}`" for ds in absent) + " makes them.")
    return (f"<div class='scorecard-wrap'><table class='scorecard'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table></div>\n\n{arithmetic_line(card)}\n\n"
            f"{_evidence_list(card, columns)}\n\n"
            f"{legend}\n\n{claims_list}\n\n{text}\n")
