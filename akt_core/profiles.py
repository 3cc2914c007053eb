"""Run profiles as data: how much data, how many epochs, how big a batch. Never a code path.

``paper`` is exactly the paper's protocol (Sec. 3.1: full data, 20/80/80 epochs, batch 256). The
others shrink only data and time, never the method, so every number they give answers the same
question at lower precision; they are labelled wherever they appear.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from . import check_choice


@dataclass(frozen=True)
class Profile:
    name: str
    n_train: int | None  #: training images per dataset (None: all); a fixed random subset
    n_test: int | None  #: test images for the tables (None: the full test set)
    epochs: dict[str, int]  #: per dataset
    batch_size: int
    n_curve: int  #: test images for the per-epoch clean/adversarial curves (Figs. 3-4)
    published: bool  #: results committed to git and shown by the book
    description: str
    lr: float = 0.1
    momentum: float = 0.9
    lr_milestones: tuple[float, float] = (0.5, 0.75)  #: fractions of all steps where lr drops x0.1
    weight_decay: dict[str, float] = field(default_factory=lambda: {
        "mnist": 1e-4, "cifar10": 1e-4, "cifar100": 5e-4, "synthetic": 1e-4})
    eval_batch_size: int = 500

    def epochs_for(self, dataset: str) -> int:
        return self.epochs[dataset]

    @property
    def label(self) -> str:
        """The visible tag every number from this profile carries."""
        return f"{self.name} profile" if self.name == "paper" else f"{self.name.upper()} profile: {self.description}"

    def as_config(self, dataset: str) -> dict:
        """The part of the profile that changes a model trained on ``dataset`` (goes into cache keys)."""
        d = asdict(self)
        return {"n_train": d["n_train"], "epochs": self.epochs[dataset], "batch_size": self.batch_size,
                "lr": self.lr, "momentum": self.momentum, "lr_milestones": list(self.lr_milestones),
                "weight_decay": self.weight_decay[dataset], "n_curve": self.n_curve}


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke", n_train=1000, n_test=300, batch_size=128, n_curve=200, published=False,
        epochs={"mnist": 1, "cifar10": 1, "cifar100": 1, "synthetic": 2},
        description="1,000 training and 300 test images, 1 epoch; checks the plumbing, not the paper"),
    "reduced": Profile(
        "reduced", n_train=10000, n_test=None, batch_size=128, n_curve=1000, published=True,
        epochs={"mnist": 6, "cifar10": 6, "cifar100": 6, "synthetic": 4},
        description="10,000 training images, 6 epochs, full test sets; "
                    "sized for a 2-core CPU"),
    "paper": Profile(
        "paper", n_train=None, n_test=None, batch_size=256, n_curve=2000, published=True,
        epochs={"mnist": 20, "cifar10": 80, "cifar100": 80, "synthetic": 4},
        description="the paper's protocol: full data, 20/80/80 epochs, batch 256"),
}


def get(name: str) -> Profile:
    check_choice("profile", name, PROFILES)
    return PROFILES[name]
