"""Damaged files and bad input (issue 17): every fault gives the right result or an AktError (exit 2
on the command line) naming the file or value, and leaves no partial file and no lost row."""
from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from akt_core import AktError, report
from akt_core import graph as G
from akt_core import runner as RN
from akt_core.store import Store

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ROOT / "data" / "results"


@pytest.fixture
def damaged(tmp_path):
    """A copy of the committed reduced records, and the lines of its CSV to damage."""
    st = Store(tmp_path)
    (tmp_path / "results" / "reduced").mkdir(parents=True)
    path = tmp_path / "results" / "reduced" / "records.csv"
    shutil.copy(PUBLISHED / "reduced" / "records.csv", path)
    return st, path, path.read_text().splitlines(keepends=True)


# ---- results files --------------------------------------------------------------------------------
@pytest.mark.parametrize("profile", sorted(p.name for p in PUBLISHED.iterdir() if p.is_dir()))
@pytest.mark.parametrize("what", ["records", "curves", "runs", "robustness"])
def test_committed_results_files_pass_their_schema(profile, what):
    Store(ROOT / "data").read(profile, what)  # raises on any fault


def test_a_file_damaged_after_a_read_is_checked_again(damaged):
    """Store.read remembers a checked file by its bytes, never by its name or size: the same file read
    again after one digit changed in place (same size, same second) is parsed and checked anew."""
    st, path, lines = damaged
    first = st.read("reduced")
    first.loc[0, "accuracy"] = -1.0  # the caller's copy: what it does to it never reaches the store
    assert st.read("reduced")["accuracy"].iloc[0] != -1.0
    f = lines[3].split(",")
    f[6] = f[6][:-1] + ("1" if f[6][-1] != "1" else "2")  # the last digit of an accuracy: same size
    damaged_text = "".join(lines[:3] + [",".join(f)] + lines[4:])
    assert len(damaged_text) == sum(map(len, lines))
    path.write_text(damaged_text)
    with pytest.raises(AktError, match=f"{path}, line 4: accuracy .* does not match correct / n_examples"):
        st.read("reduced")


def test_a_duplicated_row_is_an_error_naming_both_lines(damaged):
    st, path, lines = damaged
    path.write_text("".join(lines + [lines[5]]))
    with pytest.raises(AktError, match=f"{path}, line {len(lines) + 1}: the same key as line 6"):
        st.read("reduced")


def test_a_cut_line_is_an_error_not_a_lost_seed(damaged):
    st, path, lines = damaged
    cut = lines[-1][: lines[-1].index(",", 60) - 2]  # inside a number, the rest of the line gone
    path.write_text("".join(lines[:-1] + [cut]))
    with pytest.raises(AktError, match=f"line {len(lines)}: .* is empty"):
        st.read("reduced")


def test_an_accuracy_that_contradicts_its_counts_is_an_error(damaged):
    st, path, lines = damaged
    f = lines[3].split(",")
    f[6] = str(float(f[6]) + 0.5)  # accuracy, with correct and n_examples unchanged
    path.write_text("".join(lines[:3] + [",".join(f)] + lines[4:]))
    with pytest.raises(AktError, match=f"{path}, line 4: accuracy .* does not match correct / n_examples"):
        st.read("reduced")


def test_a_non_numeric_accuracy_names_the_file_and_value(damaged):
    st, path, lines = damaged
    f = lines[2].split(",")
    f[6] = "9x.5"
    path.write_text("".join(lines[:2] + [",".join(f)] + lines[3:]))
    with pytest.raises(AktError, match=f"{path}, line 3: accuracy = '9x.5' is not a number"):
        st.read("reduced")


def test_a_line_with_too_many_fields_names_the_file(damaged):
    st, path, lines = damaged
    path.write_text("".join(lines[:2] + [lines[2].rstrip("\n") + ",extra,fields\n"] + lines[3:]))
    with pytest.raises(AktError, match=f"{path} cannot be read as CSV"):
        st.read("reduced")


def test_a_bad_row_is_never_appended(tmp_path):
    st = Store(tmp_path)
    row = {"key": "k", "model": "m", "attack": "clean", "source": "-", "eps": 0, "accuracy": 50.0, "correct": 5,
           "n_examples": 10, "model_key": "mk", "profile": "p", "dataset": "synthetic", "seed": 0,
           "dataset_variant": "v", "blackbox": "held-out", "git_commit": "abc"}
    st.append("p", "records", [row])
    with pytest.raises(AktError, match="accuracy 60.0 does not match"):
        st.append("p", "records", [{**row, "key": "j", "accuracy": 60.0}])
    with pytest.raises(AktError, match="seed = -1 is outside"):
        st.append("p", "records", [{**row, "key": "j", "seed": -1}])
    assert st.read("p")["key"].tolist() == ["k"]  # the file is as it was


def test_cells_count_distinct_seeds_and_refuse_a_seed_twice():
    table = G.TABLES[2]
    base = {"dataset": "mnist", "attack": "clean", "source": "-"}
    rec = pd.DataFrame([{**base, "model": "Res8(adv)", "seed": s, "accuracy": a} for s, a in ((0, 90.0), (1, 94.0))])
    cell = report.reproduced(rec, table).set_index("model").loc["Res8(adv)"]
    assert (cell["mean"], cell["n_seeds"]) == (92.0, 2)
    with pytest.raises(AktError, match="share a cell and a seed"):
        report.reproduced(pd.concat([rec, rec.iloc[[1]]]), table)


# ---- write order ----------------------------------------------------------------------------------
def test_a_failed_row_write_leaves_no_model_without_its_rows(tiny, tmp_path, monkeypatch):
    """The results folder refuses the rows (read-only, full disk): the model is not stored either, and
    the rerun writes both, resuming from the finished saved state."""
    store = Store(tmp_path / "s")
    exp = G.Experiment("synthetic", "tiny", dataset_variant="generated")
    node = exp.blackbox_source(8)
    real = Store.append

    def refuse(self, profile, what, rows, unique=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Store, "append", refuse)
    runner = RN.Runner(G.Experiment("synthetic", "tiny"), store, progress=False, log=lambda *a: None)
    with pytest.raises(OSError):
        runner.model(node)
    assert not store.has("model", node.key) and store.partial_path(node.key).exists()
    monkeypatch.setattr(Store, "append", real)
    RN.Runner(G.Experiment("synthetic", "tiny"), store, progress=False, log=lambda *a: None).model(node)
    assert store.has("model", node.key) and not store.partial_path(node.key).exists()
    assert set(store.read("tiny", "curves")["key"]) == {node.key} == set(store.read("tiny", "runs")["key"])


# ---- values checked before any work ---------------------------------------------------------------
def _exit2(capsys, argv) -> str:
    from akt_core.cli import main

    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    return err


@pytest.mark.parametrize("seed", ["-1", str(2**63), str(2**64), "1.5", "one"])
def test_impossible_seeds_exit_2_before_any_work(seed, capsys, tmp_path):
    err = _exit2(capsys, ["train", "Res8(cln)", "--dataset", "synthetic", "--seed", seed, "--store", str(tmp_path)])
    assert f"seed {seed!r}" in err or f"seed {seed}" in err
    assert not any(tmp_path.iterdir())
    with pytest.raises(AktError, match="0 <= seed < 2\\*\\*63"):
        G.Experiment("synthetic", "smoke", seed=-1)


def test_a_store_that_is_a_file_exits_2_before_training(capsys, tmp_path):
    f = tmp_path / "store"
    f.write_text("not a folder")
    err = _exit2(capsys, ["train", "Res8(cln)", "--dataset", "synthetic", "--store", str(f)])
    assert f"store {f} is a file" in err


def test_show_names_an_unknown_profile_and_survives_a_bad_sidecar(capsys, tmp_path):
    err = _exit2(capsys, ["show", "--profile", "bogus", "--store", str(tmp_path)])
    assert "unknown profile 'bogus'" in err and "reduced" in err
    st = Store(tmp_path)
    st.save("model", "k1", {"name": "m"}, {"w": 1})
    (st.cache / "model" / "k2.json").write_text("{ not json")
    with pytest.warns(UserWarning, match="k2.json is damaged"):
        entries = st.entries()
    assert entries["key"].tolist() == ["k1"]


def test_make_book_with_an_unknown_profile_runs_no_notebook(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "tools/execute_notebooks.py", "--profile", "bogus", "--out",
                          str(tmp_path)], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 2 and "unknown profile 'bogus'" in out.stderr
    assert not any(tmp_path.iterdir())


def test_atomic_writes_leave_no_temporary_file_on_a_full_disk(tmp_path, monkeypatch):
    from akt_core import store as S

    def full(obj, f):
        Path(f).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(S.torch, "save", full)
    with pytest.raises(OSError):
        S.atomic_torch_save({"a": 1}, tmp_path / "x.pt")
    assert list(tmp_path.iterdir()) == []
