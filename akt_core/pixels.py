"""Which pixels a copy of a dataset holds, whatever its file format: the name its results carry.

A model is a pure function of its configuration, and the configuration names the data by its
*variant*. Two copies with the same pixels in the same order train the same model, so they must carry
the same variant, whatever files they come in; a copy with other pixels (a lossy ``jpeg75`` copy,
a damaged or a different dataset) must never carry the published models' variant.

The rule (``variant_of``): a split's content digest (``digest``: sha256 of its labels and images in
the canonical order, class then file name without its extension) is looked up in
``PUBLISHED_PIXELS``. The pixels the published models saw carry the name registered there, from any
copy: torchvision's CIFAR pickles with the same pixels reuse every published model and row of the
lossless WebP copy (named ``webp-lossless`` because that copy delivered them first). Other pixels keep
their copy's own label (``jpeg75``, ``png``), and where that label is the published one the digest's
first 12 hex digits are appended, so that no other pixels ever share a published cache key.

The registered digests were computed from the offline copies that trained the published models
(``tools/pixel_digests.py`` prints them); the loader logs, for any copy, whether it matches. A copy of
torchvision's own download could not be compared here (no internet), so whether its pixels equal the
offline copies' is shown to each user when it is first loaded (``describe``), not assumed.
"""
from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import torch

from . import AktError

#: (dataset, split) -> (sha256 of the decoded labels and images, the variant the published models'
#: cache keys carry). Computed from ``../shared/data`` with ``tools/pixel_digests.py``.
PUBLISHED_PIXELS: dict[tuple[str, str], tuple[str, str]] = {
    ("mnist", "train"): ("6ec8b2bda93d92536a92256ebf1a467ebbbf3d2091d83fd0148536a007e75caa", "original"),
    ("mnist", "test"): ("6bfdba1d84ed554183b4828e8b6c889f7fd8244ce69e5c88134d85558440207b", "original"),
    ("cifar10", "train"): ("bd9a6e15b4aa3f0eeb3edeab691ca4d4840698517618e7f885c2c2dbc51ee422", "webp-lossless"),
    ("cifar10", "test"): ("8209c4b0164fa5708aa6d2b0c4bbcd3838d365db3cc3607adfa77cf00462cc92", "webp-lossless"),
    ("cifar100", "train"): ("f1928b687faac77d48889b0e3cd4bcde95ece89816938a0799b7722aa839f1c0", "webp-lossless"),
    ("cifar100", "test"): ("442a4732b3a7d35c7a8ba249d378544552f55e64d5835c07ffe2623b41da0bae", "webp-lossless"),
}


def digest(x: torch.Tensor, y: torch.Tensor) -> str:
    """sha256 of the labels (int64, little-endian) and then the uint8 images (N, C, H, W), in order."""
    h = hashlib.sha256()
    h.update(y.to(torch.int64).contiguous().numpy().astype("<i8").tobytes())
    h.update(x.contiguous().numpy().tobytes())
    return h.hexdigest()


def variant_of(name: str, split: str, x: torch.Tensor, y: torch.Tensor, label: str, sha: str | None = None) -> str:
    """The variant a split of ``name`` carries: the published name when its pixels are the published
    ones, else ``label`` (the copy's own), suffixed with its digest if ``label`` is a published name.
    ``sha``: ``digest(x, y)`` where already known (the decoded cache keeps it)."""
    known = PUBLISHED_PIXELS.get((name, split))
    if known is None:
        return label
    sha = sha or digest(x, y)
    if sha == known[0]:
        return known[1]
    return f"{label}-{sha[:12]}" if label == known[1] else label


def describe(name: str, split: str, variant: str) -> str:
    """One line for the log: whether a loaded split holds the published models' pixels."""
    known = PUBLISHED_PIXELS.get((name, split))
    if known is None:
        return f"{name} {split}: {variant} (no published pixels registered)"
    same = variant == known[1]
    return (f"{name} {split}: {variant}, " + ("the pixels the published models saw" if same else
            "other pixels than the published models saw (their weights and rows are not reused)"))


def canonical_order(labels: list[int], names: list[str]) -> np.ndarray:
    """The permutation that sorts samples by class, then by file name without its extension (the
    order an ImageFolder copy is decoded in)."""
    stems = [n.rsplit(".", 1)[0] for n in names]
    return np.array(sorted(range(len(labels)), key=lambda i: (labels[i], stems[i])), dtype=np.int64)


#: torchvision's CIFAR pickles: folder, files per split, label field
CIFAR_PICKLES = {"cifar10": ("cifar-10-batches-py", {"train": [f"data_batch_{i}" for i in range(1, 6)],
                                                     "test": ["test_batch"]}, b"labels"),
                 "cifar100": ("cifar-100-python", {"train": ["train"], "test": ["test"]}, b"fine_labels")}


def read_cifar_pickles(name: str, root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of torchvision's CIFAR pickles under ``root``, in the canonical order (class, then
    file name): the same tensors as an ImageFolder copy of the same pixels. A damaged file is an
    AktError naming it."""
    folder, files, label_field = CIFAR_PICKLES[name]
    xs, ys, names = [], [], []
    for f in files[split]:
        path = root / folder / f
        try:
            with open(path, "rb") as fh:
                batch = pickle.load(fh, encoding="bytes")
            xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            ys += [int(v) for v in batch[label_field]]
            names += [n.decode() if isinstance(n, bytes) else str(n) for n in batch[b"filenames"]]
        except (OSError, EOFError, pickle.UnpicklingError, KeyError, ValueError) as exc:
            raise AktError(f"{path} cannot be read as a CIFAR pickle ({type(exc).__name__}: {exc}); "
                           "replace it with an intact copy") from exc
    order = canonical_order(ys, names)
    x = torch.from_numpy(np.concatenate(xs)[order]).contiguous()
    return x, torch.tensor(ys, dtype=torch.int64)[torch.from_numpy(order)]
