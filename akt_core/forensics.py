"""Erratum 5, measured: which accuracy of our CIFAR-100 models, if any, is the paper's Table 4 clean column?

The paper reports 87.05 % for Res26(cln) and 83.44 % for Res8(cln) on CIFAR-100, CIFAR-10-level
numbers that ResNets of 0.37 M parameters do not reach on the 100 fine labels. Three readings would
make them plausible: a top-5 accuracy, the 20 superclasses (CIFAR-100's coarse labels), or another
dataset. This scores every paper variant of the store's CIFAR-100 models, on clean test images, by

``clean (top-5)``
    the true fine label among the five largest logits;
``clean (superclass)``
    the superclass of the predicted fine label is the true superclass (``SUPERCLASSES``: the
    dataset's own 20 coarse labels, whose fine classes are fixed by its definition);

as records of ``records.csv`` beside the top-1 ``clean`` record (the tables ignore them: they are no
column of the paper's). ``report.forensics`` sets them beside the paper's clean column.
"""
from __future__ import annotations

import pandas as pd
import torch

from .graph import VARIANTS, Experiment
from .results import AdversarialSet, score, select_stored
from .runner import Runner
from .store import Store

#: CIFAR-100's 20 superclasses and the five fine classes of each (the dataset's coarse labels; the
#: offline copies carry only the fine ones)
SUPERCLASSES: dict[str, tuple[str, ...]] = {
    "aquatic mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit and vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household electrical devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large man-made outdoor things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large natural outdoor scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large omnivores and herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium-sized mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles 1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles 2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
#: the fine classes in label order (alphabetical: the official order, and an ImageFolder copy's)
FINE = tuple(sorted(f for fines in SUPERCLASSES.values() for f in fines))
METRICS = ("clean (top-5)", "clean (superclass)")
DATASET = "cifar100"


def superclass_of() -> torch.Tensor:
    """The superclass index of every fine label (label order ``FINE``)."""
    index = {f: i for i, fines in enumerate(SUPERCLASSES.values()) for f in fines}
    return torch.tensor([index[f] for f in FINE])


def _logits(model: torch.nn.Module, x: torch.Tensor, batch: int) -> torch.Tensor:
    from .data import to_float

    with torch.no_grad():
        return torch.cat([model(to_float(x[i:i + batch])) for i in range(0, len(x), batch)])


def count(metric: str, batch: int = 500):
    """(model, images, labels) -> how many are right under ``metric``."""
    coarse = superclass_of()

    def top5(model, x, y) -> int:
        return int((_logits(model, x, batch).topk(5, dim=1).indices == y[:, None]).any(dim=1).sum())

    def superclass(model, x, y) -> int:
        pred = _logits(model, x, batch).argmax(1).cpu()
        return int((coarse[pred] == coarse[y.cpu()]).sum())

    return {"clean (top-5)": top5, "clean (superclass)": superclass}[metric]


def evaluate(runner: Runner, targets: tuple[str, ...] = tuple(VARIANTS)) -> None:
    """Score ``targets`` (default: the paper's variants) under each of ``METRICS`` where missing."""
    e = runner.exp
    have = runner.store.read(e.profile)
    have_keys = set(have["key"]) if len(have) else set()
    sets = []
    for metric in METRICS:
        rows = [(t, {"key": e.record_key(t, metric, None), "dataset": e.dataset, "model": t, "attack": metric,
                     "source": "-", "eps": 0.0}) for t in targets if e.record_key(t, metric, None) not in have_keys]
        if rows:
            sets.append(AdversarialSet(runner.test, f"[forensics] {metric}", rows=rows,
                                       count=count(metric, e.prof.eval_batch_size)))
    score(runner, "records", sets)


def require(profile: str, seeds=(0,), compute: bool = False, store: Store | None = None, **runner_kw) -> pd.DataFrame:
    """The stored top-1 clean, top-5 and superclass records of CIFAR-100's paper variants under
    ``profile`` (computed first with ``compute``; a model missing from the store is trained then)."""
    store = store or Store()
    seeds = [int(s) for s in seeds]
    if compute:
        for seed in seeds:
            evaluate(Runner(Experiment(DATASET, profile, seed), store, **runner_kw))
    return select_stored(store.read(profile, "records"), "records", DATASET, profile, seeds, "held-out", None,
                         lambda exp: {exp.record_key(t, m, None) for t in VARIANTS for m in ("clean", *METRICS)})
