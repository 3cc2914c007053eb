"""The book's pages, declared once (as showyourwork declares each figure with the one script that
makes it): which notebook makes each page, for which table group, datasets and profiles, under which
title.

Every page is executed with the profile ``make book`` shows (``reduced`` by default) once per dataset;
a page marked ``beside`` is also executed with each profile of ``BESIDE`` on the datasets that profile
covers, and listed right after the book profile's copy of the same dataset (issue 15: the full-data
CIFAR-10 tables beside the reduced ones).

``tools/execute_notebooks.py`` executes this plan (the notebooks it names are written from their
MyST sources ``notebooks/*.md`` by ``tools/sync_notebooks.py``), ``book/_ext/launch_paths.py`` maps
executed pages back to their notebooks, and the tests check ``_toc.yml`` against ``toc_files``.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import check_choice
from . import data as data_mod
from .graph import DATASET_OF_ROW, table_for

DATASETS = DATASET_OF_ROW  #: the paper's datasets, in its tables' order (``data.PAPER_DATASETS``)
EXECUTED = "book/_executed"  #: where executed copies go (git-ignored), as the table of contents names them


@dataclass(frozen=True)
class Page:
    stem: str  #: notebooks/<stem>.ipynb
    heading: str  #: the title, with {dataset} and, for a table group, {table}
    group: str | None = None  #: the paper's table group the page shows (``graph.GROUPS``), if any
    datasets: tuple[str, ...] = DATASETS  #: one executed copy per dataset, in the book's order; () = once
    results: str = "records"  #: the results file whose stored seeds the page is executed with
    beside: bool = False  #: also executed for each ``BESIDE`` profile, on the datasets it covers

    def title(self, dataset: str, profile: str | None = None) -> str:
        """The page's title on ``dataset``; a copy executed for a ``BESIDE`` profile names it."""
        words = data_mod.spec(dataset).title
        title = self.heading.format(dataset=words, table=table_for(self.group, dataset).number if self.group else "")
        return f"{title}, {profile} profile" if self.has_copy(dataset, profile) else title

    def executed(self, dataset: str | None, profile: str | None = None) -> str:
        """The executed copy's name (no suffix) for ``dataset`` (None for a page executed once) under
        ``profile``: the book profile's copy (``profile`` None), or, where this page has one, the copy
        of a ``BESIDE`` profile (``<stem>_<dataset>_<profile>``). A profile without a copy of its own
        gets the book profile's."""
        name = self.stem if not self.datasets else f"{self.stem}_{dataset}"
        return f"{name}_{profile}" if self.has_copy(dataset, profile) else name

    def has_copy(self, dataset: str | None, profile: str | None) -> bool:
        """Whether this page has a copy of its own for ``profile`` (a ``BESIDE`` profile) on ``dataset``."""
        return bool(profile and self.beside and dataset in BESIDE.get(profile, ()) and dataset in self.datasets)


#: published profiles the book shows beside its own, with the datasets each covers (issue 15: the
#: full-data CIFAR-10 graph, trained across sessions on a CPU; issue 40: CIFAR-100 too, and MNIST at the
#: paper's own scale)
BESIDE: dict[str, tuple[str, ...]] = {"full-data": ("cifar10", "cifar100"), "paper": ("mnist",)}


ONCE_DATASET = "cifar10"  #: the dataset of pages executed once (Table 1 is measured at 32x32, CIFAR-10)
PAGES: tuple[Page, ...] = (
    Page("table1_cost", "Table 1: model cost on edge devices", datasets=()),
    Page("tables_2_4_variants", "Table {table}: {dataset}", "variants", beside=True),
    Page("tables_5_7_sources", "Table {table}: {dataset}", "sources", beside=True),
    Page("tables_8_10_attacks", "Table {table}: {dataset}", "attacks", beside=True),
    Page("figs_3_4_convergence", "Figures 3–4: {dataset}", datasets=("cifar10", "mnist", "cifar100"), beside=True),
    # the comparisons beyond the paper run on the seeds of the later methods, so that every row of a
    # table averages the same runs; the later methods themselves stay at the book's profile
    Page("beyond_robustness", "White-box attacks and eps sweep: {dataset}", results="robustness", beside=True),
    Page("beyond_compare", "Later methods compared: {dataset}", results="robustness"),
    Page("unstated_choices", "What the unstated choices change", datasets=()),
)
BY_STEM = {p.stem: p for p in PAGES}


def copies(page: Page, datasets: tuple[str, ...] | list[str] = DATASETS) -> list[str | None]:
    """The datasets ``page`` is executed for (None once for a page executed once), in the book's order."""
    return [None] if not page.datasets else [d for d in page.datasets if d in datasets]


def sections(page: Page, datasets: tuple[str, ...] | list[str] = DATASETS) -> list[tuple[str | None, str | None]]:
    """Every executed copy of ``page`` as (dataset, profile), in the book's order: per dataset the
    book profile's copy (profile None), then one per ``BESIDE`` profile that covers the dataset."""
    out: list[tuple[str | None, str | None]] = []
    for d in copies(page, datasets):
        out.append((d, None))
        out += [(d, prof) for prof in BESIDE if page.has_copy(d, prof)]
    return out


def toc_files() -> set[str]:
    """Every executed page the table of contents must list."""
    return {f"{EXECUTED}/{p.executed(d, prof)}" for p in PAGES for d, prof in sections(p)}


PROFILES_PAGE = "profiles.md"  #: the run profiles as a table, written beside the scorecard, included by intro.md and setup.md
BOOK_PROFILE_PAGE = "book_profile.md"  #: which profiles the book shows, included by results.md
FINDINGS_PAGE = "findings.md"  #: the landing page's computed findings, included by intro.md
RULE_PAGE = "verdict_rule.md"  #: the verdicts' rule in words (``verdicts.rule_markdown``), included by results.md
ERRATUM5_PAGE = "erratum5.md"  #: erratum 5 in numbers (``report.forensics``), included by book/errata.md
ZOO_PAGE = "zoo.md"  #: every published model (``zoo.summary_markdown``), included by book/zoo.md
WHITEBOX_PAGE = "whitebox_finding.md"  #: the white-box finding, included by intro.md's findings and beyond.md
#: how far the seeds move each profile's cells (``report.seeds.spread_markdown``), included by results.md
SEEDS_PAGE = "seed_spread.md"


def _stored_words(profile: str, data_root=None) -> str:
    """The datasets and seeds with stored records under ``profile``, in words ("none" when none)."""
    from .results import stored_seeds
    from .store import Store

    store = Store(data_root) if data_root is not None else None
    got = [(d, stored_seeds(profile, d, store=store)) for d in DATASETS]
    words = [f"{data_mod.spec(d).title} (seed{'s' if len(s) > 1 else ''} {', '.join(map(str, s))})" for d, s in got if s]
    return ", ".join(words) or "none"


def profiles_markdown(data_root=None) -> str:
    """Every run profile (``profiles.PROFILES``, its one declaration) as a Markdown table: what it
    trains on per dataset, how many test images its curves use, and what the store holds of it."""
    from . import profiles as profiles_mod

    rows = ["| profile | what it is | " + " | ".join(data_mod.spec(d).title for d in DATASETS)
            + " | curve images | stored results |",
            "|---|---|" + "---|" * len(DATASETS) + "---|---|"]
    for p in profiles_mod.PROFILES.values():
        cells = [p.settings(d) for d in DATASETS]
        stored = _stored_words(p.name, data_root) if p.published else "not published (git-ignored)"
        rows.append(f"| `{p.name}` | {p.description} | " + " | ".join(cells) + f" | {p.n_curve:,} | {stored} |")
    return "\n".join(rows) + "\n"


def book_profile_markdown(profile: str, data_root=None) -> str:
    """Which profiles the book shows, from the profiles' declarations and the store: the book's own
    (every page), then each ``BESIDE`` profile on the datasets it covers, and the published profiles
    with no stored results."""
    from . import profiles as profiles_mod

    p = profiles_mod.get(profile)
    text = [f"This book shows the **`{p.name}` profile** on every page: {p.description} "
            f"({'; '.join(f'{data_mod.spec(d).title}: {p.settings(d)}' for d in DATASETS)}). "
            f"Stored: {_stored_words(p.name, data_root)}."]
    for b, datasets in BESIDE.items():
        if b == profile:
            continue
        q = profiles_mod.get(b)
        text.append(f"Beside the {', '.join(data_mod.spec(d).title for d in datasets)} pages stands a second "
                    f"copy of each, titled *…, {b} profile*: the same notebook run on the **`{b}` profile** "
                    f"({q.description}). Stored: {_stored_words(b, data_root)}.")
    empty = [q.name for q in profiles_mod.PROFILES.values() if q.published and _stored_words(q.name, data_root) == "none"]
    if empty:
        text.append(f"No results are stored yet under {', '.join(f'`{n}`' for n in empty)}; "
                    "the scorecard gives each profile with results a column of its own.")
    return " ".join(text) + "\n"


#: the results files (``data/results/<profile>/<name>.csv``) behind each chapter page of ``book/``:
#: its download line, ``downloads_markdown``, is written to ``_executed/downloads_<page>.md`` and
#: included by ``book/<page>.md``
DOWNLOADS: dict[str, tuple[str, ...]] = {
    "results_variants": ("records", "runs"),
    "results_sources": ("records", "runs"),
    "results_attacks": ("records", "runs"),
    "results_convergence": ("curves", "runs"),
    "beyond": ("robustness", "records", "runs"),
}
PAPER_NUMBERS = "paper_tables.csv"  #: the paper's own numbers, under ``data/``


def downloads_file(page: str) -> str:
    """The name (under ``_executed/``) of chapter ``page``'s download line."""
    check_choice("chapter with downloads", page, DOWNLOADS)
    return f"downloads_{page}.md"


def downloads_markdown(page: str, profile: str, data_root) -> str:
    """Chapter ``page``'s download line: each of its results files (``DOWNLOADS``) that ``data_root``
    holds for the book's ``profile`` and for each ``BESIDE`` profile, then the paper's numbers. Links
    are relative to ``book/``, where the including page lives."""
    from pathlib import Path

    root = Path(data_root)
    parts = []
    for prof, words in ((profile, f"the published `{profile}` profile"),
                        *((b, f"the `{b}` {', '.join(data_mod.spec(d).title for d in ds)} pages")
                          for b, ds in BESIDE.items() if b != profile)):
        links = [f"{{download}}`{name}.csv <../data/results/{prof}/{name}.csv>`" for name in DOWNLOADS[page]
                 if (root / "results" / prof / f"{name}.csv").is_file()]
        if links:
            parts.append(f"{', '.join(links)} ({words})")
    parts.append(f"{{download}}`the paper's numbers <../data/{PAPER_NUMBERS}>`")
    return f"**Download the numbers behind these pages:** {'; '.join(parts)}. Their columns: `data/README.md`.\n"
