"""The book's pages, declared once (as showyourwork declares each figure with the one script that
makes it): which notebook makes each page, for which table group and datasets, under which title.

``tools/execute_notebooks.py`` executes this plan (the notebooks it names are written from their
MyST sources ``notebooks/*.md`` by ``tools/sync_notebooks.py``), ``book/_ext/launch_paths.py`` maps
executed pages back to their notebooks, and the tests check ``_toc.yml`` against ``toc_files``.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import data as data_mod
from .graph import DATASET_OF_ROW, table_for

DATASETS = DATASET_OF_ROW  #: the paper's datasets, in its tables' order
EXECUTED = "book/_executed"  #: where executed copies go (git-ignored), as the table of contents names them


@dataclass(frozen=True)
class Page:
    stem: str  #: notebooks/<stem>.ipynb
    heading: str  #: the title, with {dataset} and, for a table group, {table}
    group: str | None = None  #: the paper's table group the page shows (``graph.GROUPS``), if any
    datasets: tuple[str, ...] = DATASETS  #: one executed copy per dataset, in the book's order; () = once
    results: str = "records"  #: the results file whose stored seeds the page is executed with

    def title(self, dataset: str) -> str:
        words = data_mod.spec(dataset).title
        return self.heading.format(dataset=words, table=table_for(self.group, dataset).number if self.group else "")

    def executed(self, dataset: str | None) -> str:
        """The executed copy's name (no suffix) for ``dataset``; None for a page executed once."""
        return self.stem if not self.datasets else f"{self.stem}_{dataset}"


ONCE_DATASET = "cifar10"  #: the dataset of pages executed once (Table 1 is measured at 32x32, CIFAR-10)
PAGES: tuple[Page, ...] = (
    Page("table1_cost", "Table 1: model cost on edge devices", datasets=()),
    Page("tables_2_4_variants", "Table {table}: {dataset}", "variants"),
    Page("tables_5_7_sources", "Table {table}: {dataset}", "sources"),
    Page("tables_8_10_attacks", "Table {table}: {dataset}", "attacks"),
    Page("figs_3_4_convergence", "Figures 3–4: {dataset}", datasets=("cifar10", "mnist", "cifar100")),
    # the comparisons beyond the paper run on the seeds of the later methods, so that every row of a
    # table averages the same runs
    Page("beyond_robustness", "White-box attacks and eps sweep: {dataset}", results="robustness"),
    Page("beyond_compare", "Later methods compared: {dataset}", results="robustness"),
    Page("unstated_choices", "What the unstated choices change", datasets=()),
)
BY_STEM = {p.stem: p for p in PAGES}


def copies(page: Page, datasets: tuple[str, ...] | list[str] = DATASETS) -> list[str | None]:
    """The datasets ``page`` is executed for (None once for a page executed once), in the book's order."""
    return [None] if not page.datasets else [d for d in page.datasets if d in datasets]


def toc_files() -> set[str]:
    """Every executed page the table of contents must list."""
    return {f"{EXECUTED}/{p.executed(d)}" for p in PAGES for d in copies(p)}


PROFILES_PAGE = "profiles.md"  #: the run profiles as a table, written beside the scorecard, included by intro.md


def profiles_markdown() -> str:
    """Every run profile (``profiles.PROFILES``, its one declaration) as a Markdown table: what it
    trains on per dataset and whether its results are published."""
    from . import profiles as profiles_mod

    rows = ["| profile | what it is | " + " | ".join(data_mod.spec(d).title for d in DATASETS) + " | published |",
            "|---|---|" + "---|" * len(DATASETS) + "---|"]
    for p in profiles_mod.PROFILES.values():
        cells = [p.settings(d) for d in DATASETS]
        rows.append(f"| `{p.name}` | {p.description} | " + " | ".join(cells) + f" | {'yes' if p.published else 'no'} |")
    return "\n".join(rows) + "\n"
