"""Datasets as uint8 tensors in memory, and augmentation on tensors (airbench's approach).

Sources, tried in this order for ``load(name, split, root)``:
1. a local root prepared by ``akt prepare-data`` (or any copy in the same layout):
   MNIST as torchvision's raw IDX files ``<root>/MNIST/raw/*-ubyte``; CIFAR as an ImageFolder tree
   ``<root>/<name>/{train,test}/<class>/*.{webp,png,jpg}`` (the layout of ``../shared/data``), or
   torchvision's pickles ``<root>/cifar-10-batches-py`` / ``<root>/cifar-100-python``;
2. torchvision's download into ``root`` when ``download=True`` (for users with internet).
A requested dataset that is missing is an error with instructions, never a fallback to other data.
``synthetic`` is generated in memory (deterministic), for hermetic tests.

Decoded tensors are cached beside the source as ``<root>/<name>/<split>-<variant>.decoded.pt``, with
their checksum and the folder's listing (a damaged cache, or one made from other files, is decoded
again; a read-only root is decoded in memory). An ImageFolder copy's class folders are checked against
the dataset's classes, and every loaded split against its shape, dtype, label range and number of
images (``check_split``).
The *variant* names the pixels the numbers came from (``pixels.variant_of``): the pixels the
published models saw carry their name from any copy (``original`` for MNIST's IDX files,
``webp-lossless`` for CIFAR, whether from the lossless ImageFolder copy or torchvision's pickles,
both decoded in the canonical order: class, then file name); other pixels keep their copy's label
(``jpeg<q>``: a lossy JPEG copy, such as one packed small enough for a GPU call).
"""
from __future__ import annotations

import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from . import AktError, check_choice, pixels

ENV_ROOT = "AKT_DATA_ROOT"
DECODED_SUFFIX = ".decoded.pt"  #: decoded ImageFolder splits, cached with their checksum beside the source


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    channels: int
    size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: bool  # random crop (4-pixel padding) + horizontal flip during training
    title: str = ""  #: the name the book writes
    sizes: tuple[int, int] | None = None  #: images in (train, test); None: any (generated data)
    classes: tuple[str, ...] | None = None  #: an ImageFolder copy's class folders, in label order (None: any names)

    def size_of(self, split: str) -> int | None:
        return None if self.sizes is None else self.sizes[SPLITS.index(split)]


#: CIFAR-10's classes in its label order (alphabetical: an ImageFolder copy sorts into the same order)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec("mnist", 1, 28, 10, (0.1307,), (0.3081,), False, "MNIST", (60_000, 10_000)),
    "cifar10": DatasetSpec("cifar10", 3, 32, 10, (0.4914, 0.4822, 0.4465),
                           (0.2470, 0.2435, 0.2616), True, "CIFAR-10", (50_000, 10_000), CIFAR10_CLASSES),
    "cifar100": DatasetSpec("cifar100", 3, 32, 100, (0.5071, 0.4865, 0.4409),
                            (0.2673, 0.2564, 0.2762), True, "CIFAR-100", (50_000, 10_000)),
    "synthetic": DatasetSpec("synthetic", 3, 32, 10, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), True, "synthetic"),
}
SPLITS = ("train", "test")
#: the paper's datasets, in the order of its tables' rows (Tables 2-4): declared here only
PAPER_DATASETS: tuple[str, ...] = ("mnist", "cifar10", "cifar100")


def spec(name: str) -> DatasetSpec:
    check_choice("dataset", name, DATASETS)
    return DATASETS[name]


@dataclass
class Split:
    """One split of a dataset: images (N, C, H, W) uint8, labels (N,) int64, and where they came from."""

    x: torch.Tensor
    y: torch.Tensor
    variant: str

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, n: int | None, seed: int = 0) -> "Split":
        """A fixed random subset of ``n`` examples (all when ``n`` is None), the same for every seed of a run."""
        if n is None or n >= len(self):
            return self
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        idx = idx.to(self.x.device)
        return Split(self.x[idx], self.y[idx], self.variant)

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.x.to(device), self.y.to(device), self.variant)


def default_root() -> Path:
    """``$AKT_DATA_ROOT``, else ``data/datasets`` in the project (ignored by git)."""
    env = os.environ.get(ENV_ROOT)
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data" / "datasets"


def missing(name: str, root: Path) -> AktError:
    return AktError(
        f"dataset {name!r} not found under {root}. Either prepare a local copy "
        f"(`akt prepare-data --source ../shared/data --root {root}`), point {ENV_ROOT} or --data-root "
        "at an existing copy, or pass download=True / --download to fetch it with torchvision.")


_IDX_MAGIC = {1: "labels", 3: "images"}  #: IDX of unsigned bytes (type 0x08): number of dimensions


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped or not); a damaged one is an AktError naming it."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise AktError(f"{path} cannot be read ({exc}); replace it with an intact copy") from exc
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08 or data[3] not in _IDX_MAGIC:
        raise AktError(f"{path} is not an IDX file of unsigned bytes (header {data[:4].hex()})")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = len(data) - 4 - 4 * ndim
    if body != int(np.prod(dims)):
        raise AktError(f"{path} is truncated or damaged: its header says {dims} ({int(np.prod(dims)):,} bytes), "
                       f"it holds {body:,}")
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _load_mnist(root: Path, split: str, download: bool) -> Split:
    raw = root / "MNIST" / "raw"
    stem = "train" if split == "train" else "t10k"
    img, lab = raw / f"{stem}-images-idx3-ubyte", raw / f"{stem}-labels-idx1-ubyte"
    if not img.exists() and download:
        import torchvision
        torchvision.datasets.MNIST(str(root), train=split == "train", download=True)
    if not img.exists():
        raise missing("mnist", root)
    x = torch.from_numpy(read_idx(img).copy()).unsqueeze(1)
    y = torch.from_numpy(read_idx(lab).astype(np.int64))
    return Split(x, y, pixels.variant_of("mnist", split, x, y, "original"))


IMAGE_SUFFIXES = (".webp", ".png", ".jpg", ".jpeg")  #: what an ImageFolder copy's class folders may hold


def _listing(folder: Path) -> str:
    """A digest of every file under ``folder``'s class folders (class/name and size in bytes): what
    the decoded cache is tied to, so that an image added, removed or replaced after the first decode
    is seen (0.3 s for CIFAR's 50,000 files)."""
    import hashlib

    out = []
    for cls in sorted((d for d in os.scandir(folder) if d.is_dir()), key=lambda d: d.name):
        out += [(f"{cls.name}/{f.name}", f.stat().st_size) for f in os.scandir(cls.path) if f.is_file()]
    return hashlib.sha256(repr(sorted(out)).encode()).hexdigest()


def check_classes(name: str, found: list[str], where: Path) -> None:
    """The class folders of an ImageFolder copy of ``name`` against its spec: its names where the spec
    lists them, else their number. A missing class would shift every later label by one."""
    d = spec(name)
    want = list(d.classes) if d.classes else None
    if want is not None and found != want:
        missing, extra = sorted(set(want) - set(found)), sorted(set(found) - set(want))
        raise AktError(f"{where} has the class folders of another dataset than {name}: missing {missing}, "
                       f"unexpected {extra} (every label after a missing class would shift)")
    if want is None and len(found) != d.num_classes:
        raise AktError(f"{where} has {len(found)} class folders, {name} has {d.num_classes}")


def _decode_imagefolder(folder: Path, name: str) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Decode one split of an ImageFolder copy of ``name`` in the canonical order (class, then file
    name without its extension: ``pixels.canonical_order``): class folders checked against the spec,
    files that are not images skipped with a warning (``Thumbs.db``, ``.DS_Store``), an image of
    another size refused (naming it). Returns the copy's own label (``pixels.variant_of`` names it)."""
    import warnings

    from PIL import Image

    d = spec(name)
    classes = sorted(e.name for e in os.scandir(folder) if e.is_dir())
    check_classes(name, classes, folder)
    xs, ys, exts, skipped = [], [], set(), []
    for label, cls in enumerate(classes):
        for f in sorted((folder / cls).iterdir(), key=lambda f: (f.stem, f.name)):
            if f.suffix.lower() not in IMAGE_SUFFIXES or not f.is_file():
                skipped.append(f)
                continue
            exts.add(f.suffix.lower())
            try:
                with Image.open(f) as im:
                    arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
            except OSError as exc:
                raise AktError(f"{f} cannot be decoded as an image ({exc}); replace the copy") from exc
            if arr.shape != (d.size, d.size, 3):
                raise AktError(f"{f} is {arr.shape[1]}x{arr.shape[0]}, {name} images are {d.size}x{d.size}")
            xs.append(arr)
            ys.append(label)
    if skipped:
        warnings.warn(f"{folder}: skipped {len(skipped)} file(s) that are not images "
                      f"({', '.join(p.name for p in skipped[:3])}{', ...' if len(skipped) > 3 else ''})")
    if not xs:
        raise AktError(f"{folder} holds no images")
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2).contiguous()
    quality = (folder.parent / "VARIANT").read_text().strip() if (folder.parent / "VARIANT").exists() else None
    variant = quality or ("jpeg" if exts & {".jpg", ".jpeg"} else "webp-lossless" if exts == {".webp"} else "png")
    return x, torch.tensor(ys, dtype=torch.int64), variant


def _load_cifar(name: str, root: Path, split: str, download: bool) -> Split:
    folder = root / name / split
    if folder.is_dir():
        from .store import load_checked, save_checked

        listing = _listing(folder)
        for cached in sorted((root / name).glob(f"{split}-*{DECODED_SUFFIX}")):
            blob = load_checked(cached, "decoded dataset cache")  # a damaged one is removed: decoded again
            if blob is not None and blob.get("listing") == listing:
                x, y, label = blob["x"], blob["y"], blob["variant"]
                return Split(x, y, pixels.variant_of(name, split, x, y, label, blob.get("digest")))
            cached.unlink(missing_ok=True)  # made from other files: stale
        x, y, label = _decode_imagefolder(folder, name)
        sha = pixels.digest(x, y)  # kept with the tensors (the cache's checksum vouches for both)
        try:
            save_checked({"x": x, "y": y, "variant": label, "listing": listing, "digest": sha},
                         root / name / f"{split}-{label}{DECODED_SUFFIX}")
        except OSError:  # a read-only copy: decode in memory every time
            pass
        return Split(x, y, pixels.variant_of(name, split, x, y, label, sha))
    pickles = root / pixels.CIFAR_PICKLES[name][0]
    if not pickles.is_dir():
        if not download:
            raise missing(name, root)
        import torchvision
        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        cls(str(root), train=split == "train", download=True)  # downloads and checks the pickles' md5
    x, y = pixels.read_cifar_pickles(name, root, split)  # in the canonical order, as an ImageFolder copy
    return Split(x, y, pixels.variant_of(name, split, x, y, "original"))


def _synthetic(split: str, n_train: int = 2000, n_test: int = 500) -> Split:
    """Ten classes of noisy coloured stripes: learnable in one epoch, hermetic, deterministic."""
    g = torch.Generator().manual_seed(1234 if split == "train" else 4321)
    n = n_train if split == "train" else n_test
    y = torch.arange(n) % 10
    freq = (1 + y % 5).float().view(-1, 1, 1, 1)
    phase = (y // 5).float().view(-1, 1, 1, 1) * np.pi / 2
    grid = torch.linspace(0, 2 * np.pi, 32).view(1, 1, 1, 32)
    colour = torch.stack([(y % 3 == c).float() for c in range(3)], 1).view(-1, 3, 1, 1)
    img = 0.5 + 0.35 * torch.sin(freq * grid + phase) * (0.5 + colour)
    img = img.expand(-1, 3, 32, 32) + 0.15 * torch.randn(n, 3, 32, 32, generator=g)
    x = (img.clamp(0, 1) * 255).round().to(torch.uint8)
    return Split(x, y.long(), "generated")


def check_split(s: Split, name: str, where: str | Path, split: str | None = None) -> Split:
    """``s`` if it is ``split`` of ``name``: (N, C, H, W) uint8 images of the dataset's shape, as many
    int64 labels in 0..K-1, as many images as the split has (``DatasetSpec.sizes``); else an AktError
    naming ``where`` it came from."""
    d = spec(name)
    n = d.size_of(split) if split is not None else None
    if n is not None and len(s.x) != n:
        raise AktError(f"{where}: {len(s.x):,} images, the {split} split of {name} has {n:,} "
                       "(an incomplete or padded copy)")
    want = (d.channels, d.size, d.size)
    if s.x.dtype != torch.uint8 or s.x.ndim != 4 or tuple(s.x.shape[1:]) != want:
        raise AktError(f"{where}: images are {s.x.dtype} {tuple(s.x.shape)}, {name} needs uint8 (N, {', '.join(map(str, want))})")
    if s.y.dtype != torch.int64 or s.y.ndim != 1 or len(s.y) != len(s.x):
        raise AktError(f"{where}: {len(s.x)} images but labels of shape {tuple(s.y.shape)} ({s.y.dtype})")
    if len(s.y) and (int(s.y.min()) < 0 or int(s.y.max()) >= d.num_classes):
        bad = s.y[(s.y < 0) | (s.y >= d.num_classes)][0]
        raise AktError(f"{where}: label {int(bad)} is outside 0..{d.num_classes - 1} for {name}")
    return s


def load(name: str, split: str, root: str | Path | None = None, download: bool = False) -> Split:
    """Load one split of ``name`` as uint8 tensors (see the module docstring for the sources)."""
    spec(name)
    check_choice("split", split, SPLITS)
    if name == "synthetic":
        return _synthetic(split)
    root = Path(root) if root is not None else default_root()
    loaded = _load_mnist(root, split, download) if name == "mnist" else _load_cifar(name, root, split, download)
    return check_split(loaded, name, f"{name} {split} under {root}", split)


def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``t`` (drawn on the CPU) on ``device`` without stalling the host: a plain copy to a GPU waits
    for all queued GPU work first, so a copy per training step would serialise CPU and GPU. Pinned
    memory lets the copy queue behind that work instead. Same values either way."""
    if torch.device(device).type != "cuda" or t.device.type != "cpu":
        return t.to(device)
    return t.pin_memory().to(device, non_blocking=True)


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1]."""
    return x.float().div_(255)


@dataclass(frozen=True)
class Crops:
    """The random draws of one augmentation of ``n`` images: crop offsets and horizontal flips."""

    dy: torch.Tensor
    dx: torch.Tensor
    flip: torch.Tensor
    pad: int


def draw_crops(n: int, generator: torch.Generator, device: torch.device | str = "cpu", pad: int = 4) -> Crops:
    """Draw crop offsets and flips for ``n`` images from ``generator`` (on the CPU, so the same seed
    gives the same crops on every device), in the order ``augment`` always drew them: dy, dx, flip."""
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    device = torch.device(device)
    return Crops(to_device(dy, device), to_device(dx, device), to_device(flip, device), pad)


def apply_crops(x: torch.Tensor, crops: Crops) -> torch.Tensor:
    """Random crop with zero padding and horizontal flip, as drawn in ``crops``, on a whole batch.

    ``x`` is (N, C, H, W) of any dtype: augmenting uint8 images (or int8 D_adv signs) and converting
    afterwards gives the same values as augmenting their float copies, with 4x smaller temporaries.
    """
    n, c, h, w = x.shape
    pad, dev = crops.pad, x.device
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    rows = (crops.dy.view(n, 1) + torch.arange(h, device=dev)).view(n, 1, h, 1)
    cols = crops.dx.view(n, 1) + torch.arange(w, device=dev)
    cols = torch.where(crops.flip.view(n, 1), cols.flip(1), cols).view(n, 1, 1, w)
    return padded[torch.arange(n, device=dev).view(n, 1, 1, 1), torch.arange(c, device=dev).view(1, c, 1, 1),
                  rows, cols]


def augment(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop with ``pad``-pixel zero padding and random horizontal flip, on a whole batch of any
    dtype on any device; randomness comes from ``generator`` (``draw_crops``)."""
    return apply_crops(x, draw_crops(len(x), generator, x.device, pad))


def batches(n: int, batch_size: int, generator: torch.Generator | None = None,
            drop_last: bool = False) -> Iterator[torch.Tensor]:
    """Index batches over ``range(n)``: shuffled with ``generator``, in order without one."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for i in range(0, stop, batch_size):
        yield order[i:i + batch_size]
