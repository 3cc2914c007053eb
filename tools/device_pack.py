"""Carry a CIFAR copy to a GPU machine whose calls take at most 64 MiB: a lossy JPEG pack.

A lossless CIFAR copy is about 115 MB (WebP) or 180 MB (decoded), too large for one call. ``pack``
loads both splits through ``akt_core.data.load`` (any copy it reads: the ImageFolder, torchvision's
pickles), encodes each image as a JPEG of the given quality and writes one ``.npz`` (53.6 MiB for
CIFAR-10 at quality 75). ``unpack`` writes it back as an ImageFolder copy
``DEST/<name>/{train,test}/<class>/<index>.jpg`` with a ``VARIANT`` file (``jpeg75``), which
``data.load`` reads in the same order; every result computed from it records that lossy variant
(``akt_core.pixels``: its pixels are not the published ones, so it never reuses their models).

    python tools/device_pack.py pack cifar10 .device/cifar10.npz [--quality 75] [--root ROOT] [--max-mib 60]
    python tools/device_pack.py unpack .device/cifar10.npz DEST

Bad input (an unknown dataset, a quality outside 1..95, a pack over the limit, a damaged pack) is an
error naming it, with exit code 2; nothing partial is left.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np

from akt_core import AktError, check_choice, data

PACKABLE = ("cifar10", "cifar100")  #: MNIST (11 MB) travels as it is


def pack(name: str, out: Path, quality: int = 75, root: str | None = None, max_mib: float = 60.0) -> int:
    """Write ``name``'s two splits as JPEGs of ``quality`` into ``out``; returns its size in bytes."""
    from PIL import Image

    check_choice("dataset to pack", name, PACKABLE)
    if not 1 <= quality <= 95:
        raise AktError(f"--quality {quality}: give 1..95 (PIL's useful JPEG range)")
    arrays: dict[str, np.ndarray] = {"name": np.array(name), "quality": np.array(quality)}
    for split in data.SPLITS:
        s = data.load(name, split, root)
        chunks = []
        for img in s.x.permute(0, 2, 3, 1).numpy():
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=quality)
            chunks.append(buf.getvalue())
        arrays[f"{split}_jpeg"] = np.frombuffer(b"".join(chunks), dtype=np.uint8)
        arrays[f"{split}_offsets"] = np.cumsum([0] + [len(c) for c in chunks]).astype(np.int64)
        arrays[f"{split}_labels"] = s.y.numpy()
    tmp = out.with_name(out.name + ".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    size = tmp.stat().st_size
    if size > max_mib * 2**20:
        tmp.unlink()
        raise AktError(f"{out}: {size / 2**20:.1f} MiB at quality {quality} is over {max_mib} MiB; lower --quality")
    os.replace(tmp, out)
    return size


def unpack(pack_file: Path, dest: Path) -> Path:
    """Write the pack as an ImageFolder copy under ``dest`` (with its ``VARIANT``); returns its folder."""
    try:
        with np.load(pack_file) as z:
            arrays = {k: z[k] for k in z.files}
        name, quality = str(arrays["name"]), int(arrays["quality"])
        classes = data.spec(name).classes or tuple(f"{k:03d}" for k in range(data.spec(name).num_classes))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise AktError(f"{pack_file} is not a pack made by `device_pack.py pack` ({type(exc).__name__}: {exc})") from exc
    folder, tmp = dest / name, dest / f".{name}.partial"
    if folder.exists():
        raise AktError(f"{folder} exists already: remove it or unpack elsewhere")
    shutil.rmtree(tmp, ignore_errors=True)  # what a killed unpack left
    for split in data.SPLITS:
        jpeg, offsets, labels = (arrays[f"{split}_{k}"] for k in ("jpeg", "offsets", "labels"))
        for i, label in enumerate(labels):
            path = tmp / split / classes[label] / f"{i:06d}.jpg"  # index order: the canonical order again
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(jpeg[offsets[i]:offsets[i + 1]].tobytes())
    (tmp / "VARIANT").write_text(f"jpeg{quality}\n")
    os.replace(tmp, folder)
    return folder


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("name")
    p.add_argument("out", type=Path)
    p.add_argument("--quality", type=int, default=75)
    p.add_argument("--root", default=None)
    p.add_argument("--max-mib", type=float, default=60.0)
    u = sub.add_parser("unpack")
    u.add_argument("pack_file", type=Path)
    u.add_argument("dest", type=Path)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "pack":
            size = pack(args.name, args.out, args.quality, args.root, args.max_mib)
            print(f"{args.out}: {size / 2**20:.1f} MiB at JPEG quality {args.quality}")
        else:
            print(f"unpacked into {unpack(args.pack_file, args.dest)}")
    except AktError as exc:
        print(f"device_pack: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
