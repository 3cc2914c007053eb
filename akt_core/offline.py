"""Laying out offline dataset copies (the ``../shared/data`` format) as a local root ``data.load`` reads.

MNIST's gzipped IDX files are unpacked into ``<root>/MNIST/raw``; CIFAR zips are extracted to
``<root>/<name>/{train,test}``. Every fault is an :class:`AktError` naming the file (exit 2 on the
command line) and leaves nothing behind: the names and the source are checked before any work, a
source's ``SHA256SUMS`` is verified where it ships one, files are unpacked under unique temporary
names and checked (IDX structure, zip CRCs, then the loaded splits' shapes and labels) before they are
moved into place. Idempotent: what is already in place is kept. Two runs on one root are serialised by a
lock (``<root>/.prepare.lock``); a copy left half-extracted by a killed run is removed by the next; a
failed run on a root it created removes it again.
"""
from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

from . import AktError, check_choice
from . import data as data_mod
from .store import locked, sha256_file

OFFLINE = data_mod.PAPER_DATASETS
SUMS = "SHA256SUMS"
LOCK = ".prepare.lock"  #: serialises ``prepare`` runs on one root (POSIX flock)


def check_sums(folder: Path) -> None:
    """Verify every file listed in ``folder/SHA256SUMS`` (``sha256sum`` format), if there is one."""
    sums = folder / SUMS
    if not sums.exists():
        return
    for n, line in enumerate(sums.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[0]) != 64:
            raise AktError(f"{sums}, line {n}: expected '<sha256>  <file name>', got {line!r}")
        digest, name = parts[0].lower(), parts[1].lstrip("*")
        path = folder / name
        if not path.exists():
            raise AktError(f"{path} is listed in {sums} but missing")
        if sha256_file(path) != digest:
            raise AktError(f"{path} does not match its SHA-256 in {sums}: the copy is damaged or was changed")


def _unique_tmp(dest: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    return Path(name)


def _mnist(source: Path, root: Path) -> None:
    folder = source / "mnist"
    gzs = sorted(folder.glob("*-ubyte.gz"))
    if not any(g.name.startswith("train-images") for g in gzs):
        raise data_mod.missing("mnist", source)
    check_sums(folder)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    try:
        for gz in gzs:
            dest = raw / gz.name[:-3]
            if dest.exists():
                continue
            tmp = _unique_tmp(dest)
            try:
                with gzip.open(gz) as fin, open(tmp, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
                data_mod.read_idx(tmp)  # a truncated or damaged IDX file is refused here
            except (OSError, EOFError, zlib.error) as exc:
                raise AktError(f"{gz} cannot be unpacked ({exc}); replace it with an intact copy") from exc
            else:
                os.replace(tmp, dest)
                made.append(dest)
            finally:
                tmp.unlink(missing_ok=True)
        for split in data_mod.SPLITS:
            data_mod.load("mnist", split, root)  # shapes, dtype, label range
    except BaseException:
        for f in made:  # nothing half-valid is left in place
            f.unlink(missing_ok=True)
        raise


def _cifar(name: str, source: Path, root: Path) -> None:
    if (root / name / "test").is_dir():
        return
    archive = source / name / f"{name}.zip"
    if not archive.exists():
        raise AktError(f"no {archive}: expected the offline copy of {name} there")
    check_sums(source / name)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(f".{name}.*.partial"):  # left by a run killed mid-copy (we hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=root))
    try:
        try:
            with zipfile.ZipFile(archive) as z:
                z.extractall(tmp)  # checks every member's CRC-32
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise AktError(f"{archive} cannot be extracted ({exc}); replace it with an intact copy") from exc
        if not (tmp / name / "test").is_dir() or not (tmp / name / "train").is_dir():
            raise AktError(f"{archive} holds no {name}/train and {name}/test folders")
        os.replace(tmp / name, root / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    try:
        for split in data_mod.SPLITS:
            data_mod.load(name, split, root)  # shapes, dtype, labels; also caches the decoded split
    except AktError:
        shutil.rmtree(root / name, ignore_errors=True)  # no half-valid copy is left in place
        raise


def prepare(source: str | Path, root: str | Path | None = None, names: tuple[str, ...] = OFFLINE) -> Path:
    """Lay out the offline copies of ``names`` from ``source`` under ``root`` (default: ``data.default_root``)."""
    for name in names:  # every name before any work
        check_choice("dataset", name, OFFLINE)
    source = Path(source)
    if not source.is_dir():
        raise AktError(f"--source {source} is not a folder; it should hold mnist/, cifar10/ and cifar100/ "
                       "(the offline copies, as in ../shared/data)")
    root = Path(root) if root is not None else data_mod.default_root()
    existed = root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with locked(root / LOCK):  # a second run on the same root waits, then finds the work done
            for name in names:
                _mnist(source, root) if name == "mnist" else _cifar(name, source, root)
    except BaseException:
        if not existed:  # a failed run leaves the root as it was: absent
            shutil.rmtree(root, ignore_errors=True)
        raise
    return root
