"""The content-addressed cache and the tidy CSV records."""
from __future__ import annotations

import copy
import hashlib
import json
import warnings

import pytest
import torch

from akt_core import RESULTS_VERSION
from akt_core import store as S
from akt_core.store import Store, config_key

pytestmark = pytest.mark.usefixtures("isolated")

CFG = {"kind": "model", "name": "Res8(adv)", "dataset": "synthetic", "epochs": 2, "lr": 0.1,
       "lr_milestones": [0.5, 0.75], "params": {"lam": 0.5, "source_choice": "random"},
       "seed": 0, "curve_source": None, "deps": ["aaaa", "bbbb"]}


def test_config_key_format_and_definition():
    k = config_key(CFG)
    assert len(k) == 16 and all(c in "0123456789abcdef" for c in k)
    blob = json.dumps({"config": CFG, "results_version": RESULTS_VERSION}, sort_keys=True)
    assert k == hashlib.sha256(blob.encode()).hexdigest()[:16]


def test_config_key_stable_under_key_order_and_copies():
    shuffled = dict(reversed(list(CFG.items())))
    shuffled["params"] = dict(reversed(list(CFG["params"].items())))
    assert config_key(shuffled) == config_key(CFG) == config_key(copy.deepcopy(CFG))


def _mutations(cfg):
    """Every field changed once, including nested ones."""
    for k, v in cfg.items():
        new = copy.deepcopy(cfg)
        if isinstance(v, dict):
            for kk in v:
                n2 = copy.deepcopy(cfg)
                n2[k][kk] = "changed"
                yield f"{k}.{kk}", n2
            continue
        new[k] = {"x": 1} if v is None else v + 1 if isinstance(v, (int, float)) else \
            v[::-1] if isinstance(v, list) else v + "!"
        yield k, new
        dropped = copy.deepcopy(cfg)
        del dropped[k]
        yield f"-{k}", dropped


def test_config_key_sensitive_to_every_field():
    base = config_key(CFG)
    keys = {}
    for what, cfg in _mutations(CFG):
        keys[what] = config_key(cfg)
        assert keys[what] != base, what
    assert len(set(keys.values())) == len(keys)
    assert config_key({**CFG, "extra": 0}) != base
    assert config_key({**CFG, "lr": 1}) != config_key({**CFG, "lr": 1.0})


def test_config_key_depends_on_results_version(monkeypatch):
    base = config_key(CFG)
    monkeypatch.setattr(S, "RESULTS_VERSION", RESULTS_VERSION + 1)
    assert config_key(CFG) != base


def _no_tmp(root):
    return not [p for p in root.rglob("*") if p.name.endswith(".tmp")]


def test_save_load_round_trip(tmp_path):
    st = Store(tmp_path)
    payload = {"w": torch.randn(3, 4), "b": torch.arange(5, dtype=torch.int8)}
    key = config_key(CFG)
    assert st.load("model", key, CFG) is None
    st.save("model", key, CFG, payload, {"git_commit": "abc"})
    got = st.load("model", key, CFG)
    assert set(got) == {"w", "b"} and torch.equal(got["w"], payload["w"]) and torch.equal(got["b"], payload["b"])
    meta = json.loads((tmp_path / "cache" / "model" / f"{key}.json").read_text())
    assert meta["config"] == CFG and meta["key"] == key and meta["kind"] == "model"
    assert meta["provenance"] == {"git_commit": "abc"} and meta["results_version"] == RESULTS_VERSION
    assert meta["sha256"] == hashlib.sha256((tmp_path / "cache" / "model" / f"{key}.pt").read_bytes()).hexdigest()
    assert _no_tmp(tmp_path)
    ent = st.entries()
    assert ent.to_dict("records")[0] | {"mb": 0} == {"kind": "model", "key": key, "name": "Res8(adv)",
                                                     "dataset": "synthetic", "mb": 0}


def test_config_with_tuples_round_trips(tmp_path):
    """Configs go through JSON (tuples become lists); the same config still matches."""
    st = Store(tmp_path)
    cfg = {**CFG, "lr_milestones": (0.5, 0.75)}
    st.save("dadv", "k1", cfg, torch.zeros(2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(st.load("dadv", "k1", cfg), torch.zeros(2))


def test_corrupt_payload_detected_and_removed(tmp_path):
    st = Store(tmp_path)
    st.save("model", "k", CFG, {"w": torch.randn(100)})
    pt = tmp_path / "cache" / "model" / "k.pt"
    raw = bytearray(pt.read_bytes())
    for i in range(len(raw) - 40, len(raw) - 30):
        raw[i] ^= 0xFF
    pt.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="hash"):
        assert st.load("model", "k", CFG) is None
    assert not pt.exists() and not pt.with_suffix(".json").exists()


def test_truncated_payload_detected(tmp_path):
    st = Store(tmp_path)
    st.save("model", "k", CFG, {"w": torch.randn(100)})
    pt = tmp_path / "cache" / "model" / "k.pt"
    pt.write_bytes(pt.read_bytes()[:50])
    with pytest.warns(UserWarning, match="unusable"):
        assert st.load("model", "k", CFG) is None
    assert not list((tmp_path / "cache" / "model").iterdir())


def test_config_mismatch_detected_and_removed(tmp_path):
    st = Store(tmp_path)
    st.save("model", "k", CFG, {"w": torch.randn(3)})
    with pytest.warns(UserWarning, match="config"):
        assert st.load("model", "k", {**CFG, "seed": 1}) is None
    assert not (tmp_path / "cache" / "model" / "k.pt").exists()
    assert not (tmp_path / "cache" / "model" / "k.json").exists()


def test_missing_sidecar_is_absent(tmp_path):
    st = Store(tmp_path)
    st.save("model", "k", CFG, torch.ones(1))
    (tmp_path / "cache" / "model" / "k.json").unlink()
    assert st.load("model", "k", CFG) is None


def test_partial_path_and_default_root(tmp_path, monkeypatch):
    st = Store(tmp_path)
    assert st.partial_path("abc") == tmp_path / "cache" / "partial" / "abc.pt"
    monkeypatch.setenv("AKT_STORE", str(tmp_path / "elsewhere"))
    assert Store().root == tmp_path / "elsewhere"


def test_append_replaces_and_sorts(tmp_path):
    """(A file without a schema: the schema's checks are tested on their own, below.)"""
    st = Store(tmp_path)
    assert st.read("smoke", "notes").empty
    st.append("smoke", "notes", [{"key": "b", "model": "m1", "accuracy": 50.0},
                                   {"key": "a", "model": "m2", "accuracy": 10.0}], unique=("key",))
    st.append("smoke", "notes", [{"key": "c", "model": "m3", "accuracy": 1.5},
                                   {"key": "b", "model": "m1", "accuracy": 75.25}], unique=("key",))
    st.append("smoke", "notes", [], unique=("key",))
    df = st.read("smoke", "notes")
    assert df["key"].tolist() == ["a", "b", "c"]
    assert df["accuracy"].tolist() == [10.0, 75.25, 1.5]
    csv = (tmp_path / "results" / "smoke" / "notes.csv").read_text()
    assert csv.splitlines()[0] == "key,model,accuracy"
    assert csv.endswith("\n") and "\r" not in csv
    assert _no_tmp(tmp_path)


def test_append_multi_column_unique(tmp_path):
    st = Store(tmp_path)
    st.append("p", "notes", [{"key": "k", "epoch": e, "acc": e} for e in (2, 1)], unique=("key", "epoch"))
    st.append("p", "notes", [{"key": "k", "epoch": 1, "acc": 9}, {"key": "j", "epoch": 3, "acc": 3}],
              unique=("key", "epoch"))
    df = st.read("p", "notes")
    assert list(zip(df["key"], df["epoch"], df["acc"])) == [("j", 3, 3), ("k", 1, 9), ("k", 2, 2)]


def test_read_keeps_strings_like_na(tmp_path):
    """A source named '-' or a model called 'NA' must not turn into NaN."""
    st = Store(tmp_path)
    st.append("p", "notes", [{"key": "x", "source": "-", "model": "NA"}], unique=("key",))
    df = st.read("p", "notes")
    assert df.loc[0, "source"] == "-" and df.loc[0, "model"] == "NA"


def test_atomic_writers_leave_no_temp(tmp_path):
    S.atomic_torch_save({"a": 1}, tmp_path / "sub" / "x.pt")
    S.atomic_write_text("hi", tmp_path / "sub" / "y.txt")
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["x.pt", "y.txt"]
    assert (tmp_path / "sub" / "y.txt").read_text() == "hi"


@pytest.mark.parametrize("key", ["0123456789012345", "1234e56789012345"])
def test_numeric_looking_key_round_trips(tmp_path, key):
    """config_key gives 16 hex digits; about 1 in 2,000 has no letter a-f (or only one 'e')."""
    st = Store(tmp_path)
    st.append("p", "notes", [{"key": key, "wall_s": 1.0}], unique=("key",))
    assert st.read("p", "notes")["key"].tolist() == [key]
    st.append("p", "notes", [{"key": key, "wall_s": 2.0}], unique=("key",))
    assert st.read("p", "notes")["wall_s"].tolist() == [2.0]


def test_a_commit_is_dirty_for_changed_code_never_for_the_results_a_run_writes(tmp_path, monkeypatch):
    """A run that stores rows in a tracked results CSV must not label its own later rows ``-dirty``
    (it did: 60 rows of the choices measurement); a changed line of code still does."""
    import subprocess

    from akt_core import provenance as PV

    monkeypatch.delenv("AKT_GIT_COMMIT", raising=False)
    git = lambda *a: subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path,
                                    check=True, capture_output=True)
    git("init", "-q")
    for path in ("akt_core/code.py", "data/results/reduced/records.csv", "data/reruns/r/results/reduced/runs.csv"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("a\n")
    git("add", "-A")
    git("commit", "-q", "-m", "c")
    sha = PV.git_commit(tmp_path)
    assert len(sha) == 12 and not PV.from_dirty_tree(sha)
    (tmp_path / "data/results/reduced/records.csv").write_text("a\nb\n")
    (tmp_path / "data/reruns/r/results/reduced/runs.csv").write_text("a\nb\n")
    assert PV.git_commit(tmp_path) == sha
    (tmp_path / "akt_core/code.py").write_text("b\n")
    assert PV.git_commit(tmp_path) == sha + "-dirty"
