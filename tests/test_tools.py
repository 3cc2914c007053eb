"""The maintenance scripts under tools/ that the background queue runs unattended."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pandas as pd

from akt_core.store import Store

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # an import error here is what stopped a session's queue
    return module


def test_merge_rows_replaces_kept_rows_without_doubling_them(tmp_path):
    published = ROOT / "data" / "results" / "full-data" / "records.csv"
    store = Store(tmp_path / "store")
    (tmp_path / "store" / "results" / "full-data").mkdir(parents=True)
    shutil.copy(published, tmp_path / "store" / "results" / "full-data" / "records.csv")
    before = pd.read_csv(published, dtype={"key": str})
    kept = tmp_path / "kept"
    kept.mkdir()
    changed = before.head(3).copy()
    changed["n_examples"] = 1000
    changed["correct"] = [15, 25, 35]
    changed["accuracy"] = [1.5, 2.5, 3.5]
    changed.to_csv(kept / "records.csv", index=False)

    _tool("merge_rows").main(kept, "full-data", store)

    after = pd.read_csv(tmp_path / "store" / "results" / "full-data" / "records.csv", dtype={"key": str})
    assert len(after) == len(before)  # replaced, not doubled
    merged = after.set_index("key").loc[changed["key"], "accuracy"].tolist()
    assert merged == [1.5, 2.5, 3.5]


def test_background_build_refuses_an_unknown_precision_before_touching_anything(tmp_path):
    """PRECISION (issue 40: fp32 or bf16) is checked first: exit 2 naming the value and the choices,
    and no work folder made."""
    import os
    import subprocess

    work = tmp_path / "bg"
    out = subprocess.run(["bash", str(ROOT / "tools" / "background_build.sh"), str(work)], capture_output=True,
                         text=True, env={**os.environ, "PRECISION": "fp16"}, timeout=60)
    assert out.returncode == 2 and "PRECISION=fp16 is unknown; valid choices: fp32, bf16" in out.stderr
    assert not work.exists()
