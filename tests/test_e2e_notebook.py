"""End to end: one notebook through papermill with compute=True under the smoke profile.

Runs on real MNIST prepared from ``../shared/data`` when that folder is beside the repository, and
on the generated ``synthetic`` dataset otherwise. Trains every model the table needs into a
temporary store, so it is the slowest test (about 2 minutes on 2 cores).
"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from akt_core import offline

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"


def _text(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            d = o.get("data", {})
            # tables are HTML (report.style.show); their text/plain is only the Styler's repr
            out.append(str(d.get("text/markdown") or d.get("text/html") or d.get("text/plain") or o.get("text", "")))
    return "\n".join(out)


@pytest.mark.slow
def test_attacks_notebook_smoke_end_to_end(tmp_path, monkeypatch):
    papermill = pytest.importorskip("papermill")
    if (SHARED / "mnist").is_dir():
        dataset, root = "mnist", offline.prepare(SHARED, tmp_path / "datasets", names=("mnist",))
    else:
        dataset, root = "synthetic", None
    monkeypatch.setenv("AKT_STORE", str(tmp_path / "store"))  # inherited by the kernel
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(ROOT / "notebooks" / "tables_8_10_attacks.ipynb"), str(out),
                               parameters={"profile": "smoke", "dataset": dataset, "compute": True,
                                           "data_root": str(root) if root else None, "device": "cpu"},
                               kernel_name="python3", cwd=str(ROOT / "notebooks"), progress_bar=False)
    text = _text(nbformat.read(out, as_version=4))
    assert "SMOKE profile" in text
    assert "No stored results" not in text
    for model in ("Res8(cln)", "Res8(self-adv)", "Res8(adv)", "Res8(adv-trans)"):
        assert model in text
    records = (tmp_path / "store" / "results" / "smoke" / "records.csv").read_text().splitlines()
    # 4 Res8 models x (clean + 4 attacks), plus the header
    assert len(records) == 1 + 4 * 5
    assert ("mnist" if dataset == "mnist" else "synthetic") in records[1]
    if dataset == "mnist":
        assert ",original," in records[1]  # the dataset variant travels with every record
