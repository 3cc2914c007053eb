"""Run profiles as data: how much data, how many epochs, how big a batch. Never a code path.

``paper`` is exactly the paper's protocol (Sec. 3.1: full data, 20/80/80 epochs, batch 256). The
others shrink only data and time, never the method, so every number they give answers the same
question at lower precision; they are labelled wherever they appear.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import check_choice
from .data import DATASETS


@dataclass(frozen=True)
class Profile:
    name: str
    n_train: dict[str, int | None]  #: training images per dataset (None: all); a fixed random subset
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
    n_whitebox: int | None = 1000  #: test images for white-box PGD and the eps sweep (None: all)
    n_autoattack: int | None = 0  #: test images for AutoAttack (None: all; 0: not run in this profile)
    autoattack_eps: tuple[str, ...] = ("16/256", "8/255")  #: the budgets (``beyond.WHITEBOX_EPS`` keys) AutoAttack runs at

    def epochs_for(self, dataset: str) -> int:
        return self.epochs[dataset]

    def n_train_for(self, dataset: str) -> int | None:
        return self.n_train[dataset]

    def settings(self, dataset: str) -> str:
        """What this profile does on ``dataset``, in words (for labels)."""
        n = self.n_train_for(dataset)
        train = "all training images" if n is None else f"{n:,} training images"
        test = "full test set" if self.n_test is None else f"{self.n_test:,} test images"
        e = self.epochs_for(dataset)
        return f"{train}, {e} epoch{'s' if e != 1 else ''}, batch {self.batch_size}, {test}"

    @property
    def label(self) -> str:
        """The visible tag every number from this profile carries."""
        return f"{self.name} profile" if self.name == "paper" else f"{self.name.upper()} profile: {self.description}"

    def label_for(self, dataset: str | tuple[str, ...]) -> str:
        """``label`` with this profile's settings on ``dataset`` (or on each of several)."""
        names = (dataset,) if isinstance(dataset, str) else dataset
        return f"{self.label} ({'; '.join(f'{d}: {self.settings(d)}' for d in names)})"

    def as_config(self, dataset: str) -> dict:
        """The part of the profile that changes a model trained on ``dataset`` (goes into cache keys)."""
        return {"n_train": self.n_train_for(dataset), "epochs": self.epochs[dataset], "batch_size": self.batch_size,
                "lr": self.lr, "momentum": self.momentum, "lr_milestones": list(self.lr_milestones),
                "weight_decay": self.weight_decay[dataset], "n_curve": self.n_curve}


_DATASETS = tuple(DATASETS)

#: CIFAR needs more epochs than MNIST to mean anything: Res8(cln) on 10,000 CIFAR-10 images reaches
#: 50.9 % after 6 epochs, 58.9 % with 20,000 images x 5 epochs and 60.3 % with 10,000 x 10 (seed 0,
#: full test set, measured on this project's CPU), so CIFAR trains 10 epochs. ``reduced`` runs AutoAttack
#: on 100 test images at the paper's 16/256 only: on one thread of this CPU, 50 MNIST images took 2 s
#: (APGD-CE), 6 s (APGD-T), 12 s (FAB-T) and over a minute (Square, 5,000 queries) on one Res8.
PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke", n_train=dict.fromkeys(_DATASETS, 1000), n_test=300, batch_size=128, n_curve=200, published=False,
        epochs={"mnist": 1, "cifar10": 1, "cifar100": 1, "synthetic": 2}, n_whitebox=100, n_autoattack=20,
        description="1,000 training and 300 test images, 1 epoch; checks the plumbing, not the paper"),
    "reduced": Profile(
        "reduced", n_train={"mnist": 10000, "cifar10": 10000, "cifar100": 10000, "synthetic": 10000},
        n_test=None, batch_size=128, n_curve=1000, published=True,
        epochs={"mnist": 6, "cifar10": 10, "cifar100": 10, "synthetic": 4}, n_whitebox=500, n_autoattack=100,
        autoattack_eps=("16/256",),
        description="training subsets and few epochs, full test sets; sized for one dataset "
                    "in under an hour on a 2-core CPU"),
    # Issue 15: all 50,000 CIFAR-10 images with the paper's batch and schedule shape, as many epochs as
    # let the whole CIFAR-10 graph (8 source models, D_adv, Res26(adv), five Res8 students, curves,
    # Tables 3/6/9, white-box and sweep) fit about 8 CPU-hours on the 2-core development machine:
    # about 1,400 s per epoch of the whole graph (Res26 at ~290 images/s, Res8 at ~890) plus ~2,000 s
    # of crafting and evaluation. Trained in the background across sessions; finished models are
    # published as weights (``data/weights``).
    "full-data": Profile(
        "full-data", n_train=dict.fromkeys(_DATASETS, None), n_test=None, batch_size=256, n_curve=1000,
        published=True, epochs={"mnist": 16, "cifar10": 16, "cifar100": 16, "synthetic": 4},
        n_whitebox=1000, n_autoattack=0,
        description="all training images, 16 epochs, batch 256, full test sets; trained on a 2-core CPU "
                    "in the background across sessions"),
    "paper": Profile(
        "paper", n_train=dict.fromkeys(_DATASETS, None), n_test=None, batch_size=256, n_curve=2000,
        published=True,
        epochs={"mnist": 20, "cifar10": 80, "cifar100": 80, "synthetic": 4}, n_whitebox=None, n_autoattack=1000,
        description="the paper's protocol: full data, 20/80/80 epochs, batch 256"),
}


#: the profile the notebooks read by default and a newcomer builds first (under an hour per dataset on a CPU)
DEFAULT = "reduced"


def get(name: str) -> Profile:
    check_choice("profile", name, PROFILES)
    return PROFILES[name]
