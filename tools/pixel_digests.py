"""Print the content digest (``akt_core.pixels.digest``) of every split of the paper's datasets under a
data root, as ``pixels.PUBLISHED_PIXELS`` registers them:

    python tools/pixel_digests.py [ROOT]    # default: $AKT_DATA_ROOT or data/datasets (make data)

Run on the copies that trained the published models; the digests go into ``PUBLISHED_PIXELS``.
"""
from __future__ import annotations

import sys

from akt_core import data, pixels


def main(root: str | None = None) -> None:
    for name in data.PAPER_DATASETS:
        for split in data.SPLITS:
            s = data.load(name, split, root)
            print(f'    ("{name}", "{split}"): ("{pixels.digest(s.x, s.y)}", "{s.variant}"),')


if __name__ == "__main__":
    main(*sys.argv[1:2])
