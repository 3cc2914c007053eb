"""Erratum 5 in numbers (issue 40): CIFAR-100's superclasses, the top-5 and superclass counts on
hand-made logits, and the reading of a hand-made table."""
from __future__ import annotations

import pandas as pd
import torch

from akt_core import forensics as F
from akt_core.report import forensics as RF


def test_the_superclasses_partition_the_hundred_fine_classes_in_label_order():
    fines = [f for group in F.SUPERCLASSES.values() for f in group]
    assert len(F.SUPERCLASSES) == 20 and len(fines) == len(set(fines)) == 100
    assert list(F.FINE) == sorted(fines) and F.FINE[:3] == ("apple", "aquarium_fish", "baby")
    coarse = F.superclass_of()
    assert F.FINE[int((coarse == list(F.SUPERCLASSES).index("people")).nonzero()[0])] == "baby"


class Fixed(torch.nn.Module):
    """Returns the given logits whatever the images (one row per image)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[: len(x)]


def test_top5_and_superclass_counts_on_hand_made_logits():
    fine = {f: i for i, f in enumerate(F.FINE)}
    logits = torch.zeros(3, 100)
    logits[0, fine["boy"]] = 5.0  # true 'girl': wrong fine class, right superclass (people), girl in the top 5
    logits[0, fine["girl"]] = 4.0
    logits[1, fine["whale"]] = 5.0  # true 'tractor': wrong everywhere, tractor not in the top 5
    for k, f in enumerate(("rose", "tulip", "bus", "bee")):
        logits[1, fine[f]] = 4.0 - k
    logits[2, fine["oak_tree"]] = 5.0  # true 'oak_tree': right
    y = torch.tensor([fine["girl"], fine["tractor"], fine["oak_tree"]])
    x = torch.zeros(3, 3, 32, 32, dtype=torch.uint8)
    model = Fixed(logits)
    assert F.count("clean (top-5)")(model, x, y) == 2
    assert F.count("clean (superclass)")(model, x, y) == 2


def test_the_reading_names_the_nearest_reading_and_whether_any_is_within_tolerance():
    t = pd.DataFrame({"model": ["Res26(cln)", "Res8(cln)"], "paper (Table 4)": [87.05, 83.44],
                      "top-1": [70.0, 60.0], "top-5": [90.0, 86.0], "superclass (20)": [80.0, 72.0]})
    text = RF.reading(t, "full-data")
    assert "top-5: 2 of 2 models within 5 points" in text and "nearest the paper's column is top-5." in text
    t["top-5"] = [95.0, 95.0]
    assert "no reading comes within the tolerance for any model" in RF.reading(t, "full-data")
    assert "Not measured yet" in RF.reading(pd.DataFrame(), "reduced")
