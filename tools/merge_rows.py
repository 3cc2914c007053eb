"""Merge result CSVs kept aside (a background run's own rows) back into a store, row by row.

    python tools/merge_rows.py KEPT_DIR PROFILE [STORE]

Each file is read and checked against its schema, and merged with ``Store.append`` under the same
unique columns ``akt publish`` uses, so rows that the checkout already holds are replaced, not doubled.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from akt_core.schema import validate
from akt_core.store import Store
from akt_core.zoo import RESULT_FILES


def main(kept: Path, profile: str, store: Store) -> None:
    for what, unique in RESULT_FILES.items():
        path = kept / f"{what}.csv"
        if path.exists():
            rows = validate(pd.read_csv(path, keep_default_na=False, na_values=[""],
                                        dtype={"key": str, "model_key": str}), what, path)
            store.append(profile, what, rows.to_dict("records"), unique=unique)
            print(f"[merge] {len(rows)} {what} rows from {path}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], Store(sys.argv[3] if len(sys.argv) > 3 else None))
