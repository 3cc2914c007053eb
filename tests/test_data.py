"""Datasets: synthetic data, subsets, augmentation, errors, and prepare() on fake offline copies."""
from __future__ import annotations

import dataclasses
import gzip
import re
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from akt_core import AktError, offline
from akt_core import data as D

pytestmark = pytest.mark.usefixtures("isolated")


# ---- synthetic ------------------------------------------------------------------------------
def test_synthetic_shapes_and_dtype():
    tr, te = D.load("synthetic", "train"), D.load("synthetic", "test")
    assert tr.x.shape == (2000, 3, 32, 32) and te.x.shape == (500, 3, 32, 32)
    assert tr.x.dtype == torch.uint8 and tr.y.dtype == torch.int64
    assert tr.variant == te.variant == "generated"
    assert torch.equal(torch.bincount(tr.y), torch.full((10,), 200))
    assert not torch.equal(tr.x[:500], te.x)
    assert tr.x.min() == 0 or tr.x.max() == 255  # uses the uint8 range


def test_synthetic_deterministic():
    a, b = D.load("synthetic", "train"), D.load("synthetic", "train")
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_spec_matches_synthetic():
    s = D.spec("synthetic")
    assert (s.channels, s.size, s.num_classes) == (3, 32, 10)
    assert D.spec("mnist").augment is False and D.spec("cifar10").augment is True
    assert D.spec("cifar100").num_classes == 100


def test_to_float():
    x = torch.tensor([0, 51, 255], dtype=torch.uint8)
    assert torch.equal(D.to_float(x), torch.tensor([0.0, 0.2, 1.0]))
    assert D.to_float(x).dtype == torch.float32


# ---- subsets --------------------------------------------------------------------------------
def _indexed_split(n=50):
    return D.Split(torch.arange(n).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone(), torch.arange(n), "t")


def test_subset_deterministic_sorted():
    s = _indexed_split()
    a, b = s.subset(10, seed=3), s.subset(10, seed=3)
    assert torch.equal(a.y, b.y) and torch.equal(a.x, b.x)
    assert len(a) == 10 and a.variant == "t"
    assert torch.equal(a.y, a.y.sort().values) and len(set(a.y.tolist())) == 10
    assert torch.equal(a.x[:, 0, 0, 0], a.y)  # images stay with their labels
    assert not torch.equal(s.subset(10, seed=4).y, a.y)
    assert s.subset(None) is s and s.subset(50) is s and s.subset(99) is s


def test_smaller_subsets_are_nested_in_larger_ones():
    """AutoAttack's images (profile.n_autoattack) are among PGD-20's (profile.n_whitebox): the book says so."""
    s = _indexed_split()
    small, large = set(s.subset(7).y.tolist()), set(s.subset(30).y.tolist())
    assert small < large


def test_subset_default_seed_is_zero():
    s = _indexed_split()
    assert torch.equal(s.subset(10).y, s.subset(10, seed=0).y)


# ---- augmentation ---------------------------------------------------------------------------
def _crops(img, pad):
    c, h, w = img.shape
    p = torch.nn.functional.pad(img, (pad, pad, pad, pad))
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = p[:, dy:dy + h, dx:dx + w]
            yield crop
            yield crop.flip(-1)


def test_augment_is_crop_of_padded_or_its_mirror():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(12, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    out = D.augment(x, g)
    assert out.shape == x.shape and out.dtype == x.dtype
    flips = 0
    for xi, oi in zip(x, out):
        matches = [i for i, c in enumerate(_crops(xi, 4)) if torch.equal(c, oi)]
        assert matches, "output is not a crop (or mirrored crop) of the 4-padded input"
        flips += matches[0] % 2
    assert 0 < flips < 12  # both flipped and unflipped images occur
    assert not torch.equal(out, x)


def test_augment_uint8_and_pad_zero_is_identity_or_mirror():
    g = torch.Generator().manual_seed(5)
    x = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    out = D.augment(x, g, pad=0)
    assert out.dtype == torch.uint8
    same = [torch.equal(o, i) for o, i in zip(out, x)]
    mirror = [torch.equal(o, i.flip(-1)) for o, i in zip(out, x)]
    assert all(s or m for s, m in zip(same, mirror))
    assert any(same) and any(mirror)


def test_augment_same_seed_same_result():
    x = torch.rand(16, 3, 32, 32)
    a = D.augment(x, torch.Generator().manual_seed(9))
    b = D.augment(x, torch.Generator().manual_seed(9))
    c = D.augment(x, torch.Generator().manual_seed(10))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augment_padding_is_zero():
    """A crop shifted by the maximum offset shows a 4-pixel zero border somewhere."""
    x = torch.ones(64, 1, 8, 8)
    out = D.augment(x, torch.Generator().manual_seed(0))
    zeros_per_image = (out == 0).flatten(1).sum(1)
    assert zeros_per_image.max() > 0 and (zeros_per_image == 0).any()
    assert set(out.unique().tolist()) <= {0.0, 1.0}


# ---- batches --------------------------------------------------------------------------------
def test_batches():
    assert [b.tolist() for b in D.batches(5, 2)] == [[0, 1], [2, 3], [4]]
    assert [b.tolist() for b in D.batches(5, 2, drop_last=True)] == [[0, 1], [2, 3]]
    shuffled = torch.cat(list(D.batches(10, 3, torch.Generator().manual_seed(0))))
    assert sorted(shuffled.tolist()) == list(range(10))
    assert len(list(D.batches(3, 8, drop_last=True))) == 1  # fewer than one batch: keep it


# ---- errors ---------------------------------------------------------------------------------
def test_unknown_dataset_names_choices():
    with pytest.raises(AktError) as err:
        D.load("imagenet", "train")
    msg = str(err.value)
    assert "'imagenet'" in msg
    for name in ("mnist", "cifar10", "cifar100", "synthetic"):
        assert name in msg


def test_unknown_split():
    with pytest.raises(AktError, match="'val'.*train, test"):
        D.load("synthetic", "val")


def test_missing_mnist_mentions_prepare_data(tmp_path):
    with pytest.raises(AktError) as err:
        D.load("mnist", "train", root=tmp_path)
    assert "prepare-data" in str(err.value) and str(tmp_path) in str(err.value)


def test_missing_cifar_mentions_prepare_data(tmp_path):
    with pytest.raises(AktError, match="prepare-data"):
        D.load("cifar100", "test", root=tmp_path)


def test_data_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv(D.ENV_ROOT, str(tmp_path / "here"))
    assert D.default_root() == tmp_path / "here"
    with pytest.raises(AktError, match="here"):
        D.load("mnist", "test")


# ---- prepare() on fake offline copies -------------------------------------------------------
def _idx(arr: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


@pytest.fixture
def fake_source(tmp_path, monkeypatch):
    # the fakes are tiny: their specs say so (sizes, and CIFAR-10's two classes), every other check stays
    import dataclasses

    from akt_core import pixels

    monkeypatch.setattr(pixels, "PUBLISHED_PIXELS", {})  # the fakes are not the published pixels: nothing registered
    monkeypatch.setitem(D.DATASETS, "mnist", dataclasses.replace(D.DATASETS["mnist"], sizes=(3, 3)))
    monkeypatch.setitem(D.DATASETS, "cifar10", dataclasses.replace(D.DATASETS["cifar10"], sizes=(4, 4),
                                                                   classes=("cat", "dog")))
    rng = np.random.default_rng(0)
    src = tmp_path / "source"
    (src / "mnist").mkdir(parents=True)
    mn = {"train": (rng.integers(0, 256, (3, 28, 28)), np.array([7, 0, 3])),
          "t10k": (rng.integers(0, 256, (3, 28, 28)), np.array([1, 9, 9]))}
    for stem, (imgs, labs) in mn.items():
        with gzip.open(src / "mnist" / f"{stem}-images-idx3-ubyte.gz", "wb") as fh:
            fh.write(_idx(imgs))
        with gzip.open(src / "mnist" / f"{stem}-labels-idx1-ubyte.gz", "wb") as fh:
            fh.write(_idx(labs))
    import hashlib

    (src / "mnist" / "SHA256SUMS").write_text("".join(
        f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}\n" for f in sorted((src / "mnist").glob("*.gz"))))

    from PIL import Image

    (src / "cifar10").mkdir()
    cif = {}
    with zipfile.ZipFile(src / "cifar10" / "cifar10.zip", "w") as z:
        for split in ("train", "test"):
            # written in an order unlike the sorted one, to check that decoding sorts
            for cls, names in (("dog", ["b", "a"]), ("cat", ["z", "c"])):
                for name in names:
                    arr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                    cif[(split, cls, name)] = arr
                    p = tmp_path / f"{split}-{cls}-{name}.png"
                    Image.fromarray(arr).save(p)
                    z.write(p, f"cifar10/{split}/{cls}/{name}.png")
    return src, mn, cif


def test_prepare_and_load_mnist(fake_source, tmp_path):
    src, mn, _ = fake_source
    root = tmp_path / "root"
    assert offline.prepare(src, root, names=("mnist",)) == root
    assert sorted(p.name for p in (root / "MNIST" / "raw").iterdir()) == [
        "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
    for split, stem in (("train", "train"), ("test", "t10k")):
        s = D.load("mnist", split, root)
        imgs, labs = mn[stem]
        assert s.x.shape == (3, 1, 28, 28) and s.x.dtype == torch.uint8
        assert np.array_equal(s.x[:, 0].numpy(), imgs)
        assert s.y.tolist() == labs.tolist() and s.y.dtype == torch.int64
        assert s.variant == "original"
    offline.prepare(src, root, names=("mnist",))  # idempotent
    assert not list(root.rglob("*.tmp"))


def test_prepare_and_load_cifar_png(fake_source, tmp_path):
    src, _, cif = fake_source
    root = tmp_path / "root"
    offline.prepare(src, root, names=("cifar10",))
    assert (root / "cifar10" / "train" / "cat").is_dir()
    assert not list(root.glob(".*partial*"))
    for split in ("train", "test"):
        for attempt in range(2):  # second time from the decoded cache
            s = D.load("cifar10", split, root)
            assert s.variant == "png"
            assert s.x.shape == (4, 3, 32, 32) and s.x.dtype == torch.uint8
            assert s.y.tolist() == [0, 0, 1, 1]  # cat < dog, sorted
            order = [("cat", "c"), ("cat", "z"), ("dog", "a"), ("dog", "b")]
            for i, (cls, name) in enumerate(order):
                assert np.array_equal(s.x[i].permute(1, 2, 0).numpy(), cif[(split, cls, name)])
        assert (root / "cifar10" / f"{split}-png{D.DECODED_SUFFIX}").exists()
    offline.prepare(src, root, names=("cifar10",))  # idempotent: kept as it is


def test_prepare_missing_archive_and_unknown_name(tmp_path):
    with pytest.raises(AktError, match="cifar100.zip"):
        offline.prepare(tmp_path, tmp_path / "root", names=("cifar100",))
    with pytest.raises(AktError, match="'svhn'"):
        offline.prepare(tmp_path, tmp_path / "root", names=("svhn",))
    with pytest.raises(AktError, match="mnist"):
        offline.prepare(tmp_path, tmp_path / "root", names=("mnist",))


def test_to_device_on_the_cpu_keeps_values_and_dtype():
    t = torch.arange(10, dtype=torch.int64)
    out = D.to_device(t, torch.device("cpu"))
    assert out.dtype == torch.int64 and torch.equal(out, t)


# ---- damaged sources and caches (issue 17) -----------------------------------------------------
def _listing(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")) if root.exists() else []


def test_prepare_checks_the_sums_the_source_ships(fake_source, tmp_path):
    src, _, _ = fake_source
    lab = src / "mnist" / "train-labels-idx1-ubyte.gz"
    lab.write_bytes(gzip.compress(_idx(np.array([7, 0, 255]))))  # a tampered labels file
    root = tmp_path / "root"
    with pytest.raises(AktError, match=f"{lab} does not match its SHA-256 in .*SHA256SUMS"):
        offline.prepare(src, root, names=("mnist",))
    assert not list(root.rglob("*-ubyte"))


def test_labels_out_of_range_are_refused_at_load_and_nothing_is_left(fake_source, tmp_path):
    src, _, _ = fake_source
    (src / "mnist" / "SHA256SUMS").unlink()
    (src / "mnist" / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(np.array([7, 0, 255]))))
    root = tmp_path / "root"
    with pytest.raises(AktError, match="label 255 is outside 0..9 for mnist"):
        offline.prepare(src, root, names=("mnist",))
    assert not [p for p in _listing(root) if p.endswith("ubyte") or p.endswith(".tmp")]


@pytest.mark.parametrize("damage", ["truncated-idx", "truncated-gz", "not-gzip"])
def test_a_damaged_mnist_file_is_an_error_naming_it(damage, fake_source, tmp_path):
    src, mn, _ = fake_source
    (src / "mnist" / "SHA256SUMS").unlink()
    gz = src / "mnist" / "t10k-images-idx3-ubyte.gz"
    if damage == "truncated-idx":
        gz.write_bytes(gzip.compress(_idx(mn["t10k"][0])[:-100]))
    elif damage == "truncated-gz":
        gz.write_bytes(gz.read_bytes()[:-50])
    else:
        gz.write_bytes(b"this is not gzip")
    root = tmp_path / "root"
    with pytest.raises(AktError, match="t10k-images-idx3-ubyte"):
        offline.prepare(src, root, names=("mnist",))
    assert not [p for p in _listing(root) if p.endswith("ubyte") or p.endswith(".tmp")]


@pytest.mark.parametrize("damage", ["truncated", "crc"])
def test_a_damaged_cifar_zip_is_an_error_and_leaves_nothing(damage, fake_source, tmp_path):
    src, _, _ = fake_source
    z = src / "cifar10" / "cifar10.zip"
    blob = bytearray(z.read_bytes())
    if damage == "truncated":
        blob = blob[: len(blob) // 2]
    else:  # one flipped byte inside the first member's data: its CRC-32 fails
        blob[200] ^= 0xFF
    z.write_bytes(bytes(blob))
    root = tmp_path / "root"
    with pytest.raises(AktError, match=f"{z} cannot be extracted"):
        offline.prepare(src, root, names=("cifar10",))
    assert _listing(root) == []


def test_names_and_source_are_checked_before_any_work(fake_source, tmp_path):
    src, _, _ = fake_source
    root = tmp_path / "root"
    with pytest.raises(AktError, match="unknown dataset 'bogus'"):
        offline.prepare(src, root, names=("mnist", "bogus"))
    with pytest.raises(AktError, match="is not a folder"):
        offline.prepare(tmp_path / "nowhere", root, names=("mnist",))
    assert not root.exists()


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_damaged_decoded_cache_is_decoded_again(damage, fake_source, tmp_path):
    src, _, _ = fake_source
    root = tmp_path / "root"
    offline.prepare(src, root, names=("cifar10",))
    good = D.load("cifar10", "test", root)
    cache = root / "cifar10" / f"test-png{D.DECODED_SUFFIX}"
    blob = bytearray(cache.read_bytes())
    if damage == "flip":
        blob[len(blob) - 300] ^= 0x01
    else:
        blob = blob[: len(blob) // 2]
    cache.write_bytes(bytes(blob))
    with pytest.warns(UserWarning, match="decoded dataset cache .* is damaged"):
        again = D.load("cifar10", "test", root)
    assert torch.equal(again.x, good.x) and torch.equal(again.y, good.y)
    assert D.load("cifar10", "test", root).x.shape == good.x.shape  # rebuilt: loads quietly now


def test_a_read_only_cifar_root_decodes_in_memory(fake_source, tmp_path, monkeypatch):
    from akt_core import store

    src, _, _ = fake_source
    root = tmp_path / "root"
    offline.prepare(src, root, names=("cifar10",))
    for f in (root / "cifar10").glob(f"*{D.DECODED_SUFFIX}"):
        f.unlink()

    def read_only(obj, path):
        raise OSError(30, "Read-only file system", str(path))

    monkeypatch.setattr(store, "save_checked", read_only)  # (the suite may run as root, who writes anyway)
    assert len(D.load("cifar10", "train", root)) == 4
    assert not list((root / "cifar10").glob(f"*{D.DECODED_SUFFIX}"))


def test_check_split_names_the_fault():
    good = D.load("synthetic", "test")
    with pytest.raises(AktError, match="here: label 10 is outside 0..9"):
        D.check_split(D.Split(good.x, torch.full_like(good.y, 10), "v"), "synthetic", "here")
    with pytest.raises(AktError, match="here: images are torch.float32"):
        D.check_split(D.Split(good.x.float(), good.y, "v"), "synthetic", "here")


# ---- a copy that is not the dataset (issue 38): refused before it can shift a label -----------------
def _zip(src, tmp_path, layout: dict[str, dict[str, list]], extra: dict[str, bytes] | None = None) -> None:
    """``src/cifar10/cifar10.zip`` with ``layout`` (split -> class -> images as HxWx3 arrays) and
    ``extra`` files (member name -> bytes)."""
    from PIL import Image

    archive = src / "cifar10" / "cifar10.zip"
    archive.unlink(missing_ok=True)
    with zipfile.ZipFile(archive, "w") as z:
        for split, classes in layout.items():
            for cls, images in classes.items():
                for i, arr in enumerate(images):
                    p = tmp_path / f"img-{split}-{cls}-{i}.png"
                    Image.fromarray(arr).save(p)
                    z.write(p, f"cifar10/{split}/{cls}/{i}.png")
        for name, blob in (extra or {}).items():
            z.writestr(name, blob)


def _img(rng, size=32):
    return rng.integers(0, 256, (size, size, 3), dtype=np.uint8)


def _two(rng, size=32):
    return [_img(rng, size), _img(rng, size)]


@pytest.mark.parametrize("case,words", [
    ("test lacks a class", "missing ['dog']"),
    ("a class missing from both splits", "missing ['dog']"),
    ("one image too many", "5 images, the test split of cifar10 has 4"),
    ("an image of another size", "is 36x36, cifar10 images are 32x32"),
])
def test_a_copy_that_is_not_the_dataset_is_refused_and_nothing_is_left(case, words, fake_source, tmp_path):
    src, _, _ = fake_source
    rng = np.random.default_rng(1)
    layout = {"train": {"cat": _two(rng), "dog": _two(rng)}, "test": {"cat": _two(rng), "dog": _two(rng)}}
    if case == "test lacks a class":
        del layout["test"]["dog"]
    elif case == "a class missing from both splits":
        del layout["test"]["dog"], layout["train"]["dog"]
    elif case == "one image too many":
        layout["test"]["dog"].append(_img(rng))
    else:
        layout["test"]["dog"][1] = _img(rng, 36)
    _zip(src, tmp_path, layout)
    root = tmp_path / "root"
    with pytest.raises(AktError, match=re.escape(words)):
        offline.prepare(src, root, names=("cifar10",))
    assert not root.exists()  # the root it created is gone again: nothing half-valid is left


def test_files_that_are_not_images_are_skipped_with_a_warning(fake_source, tmp_path):
    src, _, _ = fake_source
    rng = np.random.default_rng(2)
    layout = {"train": {"cat": _two(rng), "dog": _two(rng)}, "test": {"cat": _two(rng), "dog": _two(rng)}}
    _zip(src, tmp_path, layout, {"cifar10/test/cat/Thumbs.db": b"\0" * 10})
    root = tmp_path / "root"
    with pytest.warns(UserWarning, match="skipped 1 file.*Thumbs.db"):
        offline.prepare(src, root, names=("cifar10",))
    assert len(D.load("cifar10", "test", root)) == 4


def test_an_image_added_after_the_first_decode_is_seen(fake_source, tmp_path):
    from PIL import Image

    src, _, _ = fake_source
    root = tmp_path / "root"
    offline.prepare(src, root, names=("cifar10",))
    first = D.load("cifar10", "test", root)
    new = np.zeros((32, 32, 3), dtype=np.uint8)
    Image.fromarray(new).save(root / "cifar10" / "test" / "cat" / "a.png")  # sorts first in its class
    D.DATASETS["cifar10"] = dataclasses.replace(D.DATASETS["cifar10"], sizes=(4, 5))  # undone by fake_source
    again = D.load("cifar10", "test", root)
    assert len(again) == len(first) + 1 and not again.x[0].any()  # decoded again, not the stale cache


def test_a_half_extracted_copy_is_removed_by_the_next_run_and_runs_are_serialised(fake_source, tmp_path):
    import threading

    src, _, _ = fake_source
    root = tmp_path / "root"
    stale = root / ".cifar10.abc123.partial" / "cifar10" / "train"
    stale.mkdir(parents=True)
    (stale / "junk.bin").write_bytes(b"\0" * 1000)
    errors = []

    def run():
        try:
            offline.prepare(src, root, names=("cifar10",))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors  # the second waits for the first, then finds the copy in place
    assert not list(root.glob(".*.partial")) and len(D.load("cifar10", "train", root)) == 4


# ---- the pixels, not the copy's label (akt_core.pixels) -------------------------------------------
def _write_cifar_pickles(root, splits: dict) -> None:
    """torchvision's CIFAR-10 layout: five training batches and a test batch of (data, labels, filenames),
    the samples shuffled, each batch a pickle."""
    import pickle

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for split, (x, y, names) in splits.items():
        order = np.random.default_rng(1).permutation(len(y))
        files = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
        for f, part in zip(files, np.array_split(order, len(files))):
            batch = {b"data": x[part].reshape(len(part), 3 * 32 * 32), b"labels": [int(y[i]) for i in part],
                     b"filenames": [names[i].encode() for i in part]}
            with open(folder / f, "wb") as fh:
                pickle.dump(batch, fh)


def test_the_same_pixels_carry_the_published_name_from_any_copy_and_other_pixels_never_do(
        fake_source, tmp_path, monkeypatch):
    """An ImageFolder copy and torchvision's pickles of the same pixels decode to the same tensors (the
    canonical order: class, then file name) and carry the published variant; a copy with one pixel
    changed keeps its own label, suffixed with its digest where that label is the published name."""
    from akt_core import pixels as PX

    src, _, cif = fake_source
    folder_root = tmp_path / "folder"
    offline.prepare(src, folder_root, names=("cifar10",))
    ref = {split: D.load("cifar10", split, folder_root) for split in ("train", "test")}
    assert ref["train"].variant == "png"  # nothing registered yet: the copy's own label
    for split, s in ref.items():
        monkeypatch.setitem(PX.PUBLISHED_PIXELS, ("cifar10", split), (PX.digest(s.x, s.y), "webp-lossless"))
    assert D.load("cifar10", "train", folder_root).variant == "webp-lossless"  # from the decoded cache too

    names = {split: [(cls, n) for cls in ("cat", "dog") for n in sorted(n for s2, c, n in cif if s2 == split and c == cls)]
             for split in ("train", "test")}
    pickled = {split: (np.stack([cif[(split, c, n)].transpose(2, 0, 1) for c, n in names[split]]),
                       np.array([("cat", "dog").index(c) for c, _ in names[split]]), [f"{n}.png" for _, n in names[split]])
               for split in ("train", "test")}
    _write_cifar_pickles(tmp_path / "pickles", pickled)
    for split in ("train", "test"):
        s = D.load("cifar10", split, tmp_path / "pickles")
        assert torch.equal(s.x, ref[split].x) and torch.equal(s.y, ref[split].y)
        assert s.variant == "webp-lossless"

    x, y, names_ = pickled["train"]
    x = x.copy()
    x[0, 0, 0, 0] ^= 1  # one pixel of one image, one bit: other pixels
    _write_cifar_pickles(tmp_path / "lossy", {"train": (x, y, names_), "test": pickled["test"]})
    assert D.load("cifar10", "train", tmp_path / "lossy").variant == "original"
    other = D.load("cifar10", "train", tmp_path / "lossy")
    monkeypatch.setitem(PX.PUBLISHED_PIXELS, ("cifar10", "train"), (PX.PUBLISHED_PIXELS[("cifar10", "train")][0],
                                                                     "original"))
    named = D.load("cifar10", "train", tmp_path / "lossy").variant
    assert named == f"original-{PX.digest(other.x, other.y)[:12]}"


def test_a_damaged_cifar_pickle_is_an_error_naming_it(fake_source, tmp_path):
    _, _, cif = fake_source
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(AktError, match="test_batch"):
        D.load("cifar10", "test", tmp_path)


def test_the_registered_mnist_pixels_are_those_of_the_offline_copy(tmp_path):
    """``PUBLISHED_PIXELS`` for MNIST against the shared offline copy (CIFAR's take a minute to decode:
    ``tools/pixel_digests.py`` prints them all)."""
    from akt_core import pixels as PX

    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    if not (shared / "mnist").is_dir():
        pytest.skip(f"no offline copy at {shared}")
    root = offline.prepare(shared, tmp_path, names=("mnist",))
    for split in ("train", "test"):
        s = D.load("mnist", split, root)
        assert (PX.digest(s.x, s.y), s.variant) == PX.PUBLISHED_PIXELS[("mnist", split)]


def test_device_pack_round_trip_is_a_lossy_variant_in_the_same_order(fake_source, tmp_path, capsys):
    """tools/device_pack.py: pack a copy as JPEGs, unpack it as an ImageFolder, load it: the same labels
    in the same order, the images close but not equal, and the variant ``jpeg75`` (never the source's);
    bad input exits 2 naming it and leaves nothing."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("device_pack", Path(__file__).resolve().parents[1] / "tools" / "device_pack.py")
    dp = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dp)
    src, _, _ = fake_source
    root = offline.prepare(src, tmp_path / "root", names=("cifar10",))
    pack = tmp_path / "pack" / "cifar10.npz"
    assert dp.main(["pack", "cifar10", str(pack), "--root", str(root)]) == 0
    assert dp.main(["unpack", str(pack), str(tmp_path / "dest")]) == 0
    for split in ("train", "test"):
        a, b = D.load("cifar10", split, root), D.load("cifar10", split, tmp_path / "dest")
        assert b.variant == "jpeg75" and a.variant == "png"
        assert torch.equal(a.y, b.y) and a.x.shape == b.x.shape and not torch.equal(a.x, b.x)
        # the same image at each index (JPEG error on noise is large, but far below another image's)
        err = (a.x.float() - b.x.float()).abs().mean((1, 2, 3))
        other = (a.x.float() - b.x.roll(1, 0).float()).abs().mean((1, 2, 3))
        assert (err < other).all()
    assert dp.main(["unpack", str(pack), str(tmp_path / "dest")]) == 2  # never over an existing copy
    assert dp.main(["pack", "cifar10", str(tmp_path / "q.npz"), "--quality", "0", "--root", str(root)]) == 2
    assert dp.main(["pack", "svhn", str(tmp_path / "s.npz"), "--root", str(root)]) == 2
    (tmp_path / "bad.npz").write_bytes(b"not a pack")
    assert dp.main(["unpack", str(tmp_path / "bad.npz"), str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err
    assert "--quality 0" in err and "'svhn'" in err and "bad.npz" in err and "exists already" in err
    assert sorted(p.name for p in tmp_path.glob("*.npz*")) == ["bad.npz"]  # no refused pack, no partial one
    assert not (tmp_path / "other").exists()
