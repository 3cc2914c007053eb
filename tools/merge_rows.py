"""Merge result CSVs kept aside (a background run's own rows) back into a store, row by row.

    python tools/merge_rows.py KEPT_DIR PROFILE [STORE] [--choices-only]

Each file is read and checked against its schema, and merged with ``Store.append`` under the same
unique columns ``akt publish`` uses, so rows that the checkout already holds are replaced, not doubled.
``--choices-only`` takes only the rows of an unstated choice's run (``choices``: a non-empty
``choices`` column or a non-default ``blackbox``): the run's retrained default models wrote rows of
their own, which the checkout already holds from the run that published them.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # this checkout's akt_core, not another checkout's installed one
    sys.path.insert(0, str(ROOT))
from akt_core.provenance import from_dirty_tree  # noqa: E402
from akt_core.publish import RESULT_FILES  # noqa: E402
from akt_core.schema import validate  # noqa: E402
from akt_core.store import Store  # noqa: E402


def main(kept: Path, profile: str, store: Store, choices_only: bool = False) -> None:
    for what, unique in RESULT_FILES.items():
        path = kept / f"{what}.csv"
        if path.exists():
            rows = validate(pd.read_csv(path, keep_default_na=False, na_values=[""],
                                        dtype={"key": str, "model_key": str}), what, path)
            if choices_only:
                chosen = rows["choices"].notna() if "choices" in rows else pd.Series(False, index=rows.index)
                rows = rows[chosen | (rows["blackbox"] != "held-out")] if what != "curves" else rows[chosen]
            if "git_commit" in rows and rows["git_commit"].map(from_dirty_tree).any():  # published: committed code only
                raise SystemExit(f"{path} holds rows made from uncommitted code: not merged")
            store.append(profile, what, rows.to_dict("records"), unique=unique)
            print(f"[merge] {len(rows)} {what} rows from {path}")


if __name__ == "__main__":
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if set(flags) - {"--choices-only"} or not 2 <= len(args) <= 3:
        raise SystemExit(__doc__)
    main(Path(args[0]), args[1], Store(args[2] if len(args) > 2 else None), "--choices-only" in flags)
