"""What the verdicts compare our cells with: the paper's cells and clean accuracies, and where an
erratum shows the paper's clean accuracy is out of reach, a published reference (``REFERENCES``)."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..graph import TABLES, table_for
from .tables import cells_of, paper_numbers

PAPER_N = 10_000  #: test images behind each of the paper's cells (the full test sets)


@dataclass(frozen=True)
class Reference:
    """Where an erratum shows the paper's clean accuracy is out of reach for these models: the best
    published clean accuracy of the same architecture, which replaces the paper's level for the floor."""

    model: str  #: the paper's model it replaces (its clean accuracy sets the scale)
    value: float  #: the published accuracy, in %
    source: str  #: what was measured, in words
    cite: str  #: its key in references.bib
    erratum: int  #: the errata chapter's section that shows the paper's number is out of reach

    @property
    def implausible(self) -> str:
        return f"implausible (erratum {self.erratum})"


#: CIFAR-100 (erratum 5): CRD's benchmark trains ResNet-20 of the same 16/32/64 width to 69.06 % on the
#: 100 fine labels (ResNet-32: 71.14 %); Res26 lies between them, so ResNet-20's is the conservative
#: reference. Every variant's reference is the paper's clean accuracy scaled by the same factor.
REFERENCES = {"cifar100": Reference("Res26(cln)", 69.06, "ResNet-20 (16/32/64 channels) on the 100 fine labels",
                                    "tian2020crd", 5)}


def missing_cells(cells: pd.DataFrame | None, dataset: str, group: str) -> list[str]:
    """The cells of ``group``'s table on ``dataset`` that ``cells`` (``our_cells``) lack for any of its
    seeds, as "model column" in the table's order: every cell when there are none, [] when complete (a
    graph still training has scored some cells and not others)."""
    table = table_for(group, dataset)
    want = [(m, c) for m in table.targets for c, _, _ in table.columns]
    if cells is None or not len(cells):
        return [f"{m} {c}" for m, c in want]
    have = set(zip(cells["model"], cells["column"], cells["seed"]))
    seeds = cells["seed"].unique()
    return [f"{m} {c}" for m, c in want if any((m, c, s) not in have for s in seeds)]


def paper_cells(dataset: str, group: str) -> pd.DataFrame:
    p = paper_numbers()
    num = table_for(group, dataset).number
    p = p[(p["table"] == num) & (p["dataset"] == dataset)].dropna(subset=["value"])
    return pd.DataFrame({"model": p["model"], "column": p["column"], "seed": 0, "accuracy": p["value"],
                         "n_examples": PAPER_N})


def our_cells(records: pd.DataFrame | None, dataset: str, group: str) -> pd.DataFrame | None:
    if records is None or not len(records):
        return None
    return cells_of(records, table_for(group, dataset))[["model", "column", "seed", "accuracy", "n_examples"]]


def paper_clean(dataset: str) -> dict[str, float]:
    """The paper's clean accuracy per model on ``dataset`` (Tables 2-10; the first table that has it)."""
    p = paper_numbers()
    p = p[(p["dataset"] == dataset) & (p["column"] == "clean") & p["table"].isin([n for n in TABLES])]
    return p.dropna(subset=["value"]).groupby("model")["value"].first().to_dict()


def reference_clean(dataset: str) -> dict[str, float]:
    """The clean accuracy the floor is a share of, per model: the paper's, or where ``REFERENCES`` has
    the dataset, the paper's scaled so that the reference model reaches the published accuracy."""
    paper = paper_clean(dataset)
    ref = REFERENCES.get(dataset)
    if ref is None:
        return paper
    scale = ref.value / paper[ref.model]
    return {m: v * scale for m, v in paper.items()}
