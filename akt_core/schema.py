"""The results files' schema (``data/README.md``), checked on every read and before every write.

A damaged results file must never change a number silently: a duplicated row would count as a
second seed, a cut line would drop one, a non-numeric or self-contradicting accuracy would be
averaged in. ``validate`` rejects each of these with an :class:`AktError` that names the file, the
line and the column, so the book fails loudly instead of printing a wrong table.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import AktError

SEED_LIMIT = 2**63  #: seeds are 0 <= seed < 2**63 (torch.manual_seed's range)
ACCURACY_TOL = 1e-3  #: |accuracy - 100 correct / n| allowed: the CSVs keep 6 significant digits


@dataclass(frozen=True)
class Schema:
    unique: tuple[str, ...]  #: the columns that identify a row
    required: tuple[str, ...]  #: columns every row fills
    numeric: tuple[str, ...] = ()  #: columns that are numbers (where filled)
    whole: tuple[str, ...] = ()  #: numeric columns that are whole numbers
    accuracy: bool = False  #: accuracy == 100 * correct / n_examples


_PROV = ("dataset", "seed", "dataset_variant", "blackbox")
_RECORD = ("key", "model", "attack", "source", "eps", "accuracy", "correct", "n_examples", "model_key", "profile",
           *_PROV, "git_commit")
SCHEMAS: dict[str, Schema] = {
    "records": Schema(("key",), _RECORD, ("eps", "accuracy", "correct", "n_examples", "seed", "wall_s"),
                      ("correct", "n_examples", "seed"), accuracy=True),
    "robustness": Schema(("key",), (*_RECORD, "eps_256"),
                         ("eps", "eps_256", "accuracy", "correct", "n_examples", "seed", "wall_s"),
                         ("correct", "n_examples", "seed"), accuracy=True),
    "curves": Schema(("key", "epoch"), ("key", "model", "epoch", "lr", "train_loss", "wall_s", *_PROV),
                     ("epoch", "lr", "train_loss", "wall_s", "clean_acc", "adv_acc", "seed"), ("epoch", "seed")),
    "runs": Schema(("key",), ("key", "kind", "name", "profile", "wall_s", "images_per_s", *_PROV, "git_commit"),
                   ("wall_s", "cpu_s", "images_per_s", "seed"), ("seed",)),
}


def _where(source: str, df: pd.DataFrame, mask: pd.Series) -> str:
    """'<file>, line N' of the first row where ``mask`` holds (line 1 is the header)."""
    i = int(np.flatnonzero(mask.to_numpy())[0])
    return f"{source}, line {int(df.index[i]) + 2}"


def validate(df: pd.DataFrame, what: str, source: str | Path) -> pd.DataFrame:
    """``df`` (as read from ``source``, index = row number) with its numeric columns as numbers, or
    :class:`AktError` naming the file, line and column of the first fault."""
    if what not in SCHEMAS:
        return df
    s, source = SCHEMAS[what], str(source)
    if not len(df):
        return df
    missing = [c for c in s.required if c not in df.columns]
    if missing:
        raise AktError(f"{source} lacks the columns {missing} (a {what} file has {', '.join(s.required)})")
    df = df.copy()
    for col in s.numeric:
        if col not in df.columns:
            continue
        num = pd.to_numeric(df[col], errors="coerce")
        bad = num.isna() & df[col].notna()
        if bad.any():
            raise AktError(f"{_where(source, df, bad)}: {col} = {df[col][bad].iloc[0]!r} is not a number")
        df[col] = num
    for col in s.required:
        empty = df[col].isna()
        if empty.any():
            raise AktError(f"{_where(source, df, empty)}: {col} is empty (a cut or damaged line?)")
    for col in s.whole:
        if col in df.columns:
            frac = df[col].notna() & (df[col] % 1 != 0)
            if frac.any():
                raise AktError(f"{_where(source, df, frac)}: {col} = {df[col][frac].iloc[0]} is not a whole number")
            if df[col].notna().all():
                df[col] = df[col].astype("int64")
    seed = df["seed"]
    out = (seed < 0) | (seed >= SEED_LIMIT)
    if out.any():
        raise AktError(f"{_where(source, df, out)}: seed = {seed[out].iloc[0]} is outside 0 <= seed < 2**63")
    dup = df.duplicated(subset=list(s.unique), keep="first")
    if dup.any():
        first = df[df.duplicated(subset=list(s.unique), keep=False)].index[0] + 2
        raise AktError(f"{_where(source, df, dup)}: the same {'/'.join(s.unique)} as line {first} "
                       "(a duplicated row would count twice)")
    if s.accuracy:
        n = df["n_examples"]
        wrong = (n <= 0) | (df["correct"] < 0) | (df["correct"] > n) | \
            ((df["accuracy"] - 100.0 * df["correct"] / n.where(n > 0)).abs() > ACCURACY_TOL)
        if wrong.any():
            r = df[wrong].iloc[0]
            raise AktError(f"{_where(source, df, wrong)}: accuracy {r['accuracy']} does not match "
                           f"correct / n_examples = {r['correct']} / {r['n_examples']}")
    return df
