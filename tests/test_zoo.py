"""Published weights: publishing a build, loading a model, refusing a damaged file, and a build that
trains nothing because its models are published. Also checks the committed data/weights."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from akt_core import AktError, publish, zoo
from akt_core import graph as G
from akt_core import profiles as P
from akt_core import results as RS
from akt_core import runner as RN
from akt_core.evaluate import logits
from akt_core.store import Store, sha256_file

ROOT = Path(__file__).resolve().parent.parent
COMMIT = "0123456789ab"


@pytest.fixture
def source(tiny, tmp_path, monkeypatch):
    """A copy of the tiny build's store, as if a clean checkout at COMMIT had made it, under a
    published copy of the tiny profile."""
    monkeypatch.setitem(P.PROFILES, "tiny", dataclasses.replace(tiny["profile"], published=True))
    src = tmp_path / "bg"
    shutil.copytree(tiny["root"], src)
    for csv in (src / "results" / "tiny").glob("*.csv"):
        df = pd.read_csv(csv, dtype=str, keep_default_na=False)
        if "git_commit" in df:  # curves name no commit: publish takes their model's run's
            df["git_commit"] = COMMIT
            df.to_csv(csv, index=False)
    return Store(src)


@pytest.fixture
def published(source, tmp_path):
    dest = Store(tmp_path / "project")
    added = publish.publish(source.root, "tiny", store=dest, log=lambda *a: None)
    return dest, added


def test_publish_lists_every_trained_model_and_the_files_agree(published, source):
    dest, added = published
    runs = source.read("tiny", "runs")
    assert set(added["key"]) == set(runs.loc[runs["kind"] == "model", "key"])
    m = dest.manifest()
    assert list(m.columns) == list(zoo.MANIFEST_COLUMNS)
    for r in m.itertuples():
        f = dest.weights / r.file
        assert sha256_file(f) == r.sha256 and f.stat().st_size == r.bytes
        # byte for byte the cache entry the records were scored with
        assert sha256_file(source.cache / "model" / f"{r.key}.pt") == r.sha256
    assert (m["git_commit"] == COMMIT).all()


def test_published_clean_accuracy_is_the_stored_clean_record(published):
    """The manifest's clean accuracy is recomputed from the published file and equals the record."""
    dest, _ = published
    rec = dest.read("tiny", "records")
    clean = rec[rec["attack"] == "clean"].set_index("model")["accuracy"]
    m = dest.manifest().set_index("name")
    for variant in ("Res8(adv-trans)", "Res26(adv)", "Res8(dist-adv)"):
        assert m.loc[variant, "clean_acc"] == pytest.approx(clean[variant], abs=1e-4)
    assert m.loc["static:Res26", "clean_acc"] == pytest.approx(clean["Res26(cln)"], abs=1e-4)


def test_results_rows_are_merged(published, source):
    dest, _ = published
    for what in ("records", "curves", "runs"):
        assert len(dest.read("tiny", what)) == len(source.read("tiny", what)) > 0


def test_load_reproduces_the_fingerprint_and_takes_images_in_0_1(published):
    dest, _ = published
    model = zoo.load("Res8(adv-trans)", "synthetic", "tiny", store=dest)
    assert not model.training
    x = zoo.fingerprint_images(dest, "synthetic")
    row = dest.manifest().set_index("name").loc["Res8(adv-trans)"]
    want = torch.tensor(json.loads((dest.weights / row["file"]).with_suffix(".json").read_text())["fingerprint"])
    assert torch.equal(logits(model, x), want)  # the batched, channels-last path that made it: exact
    with torch.no_grad():  # a plain call on images in [0, 1]: the same up to float rounding of the layout
        assert torch.allclose(model(x.float() / 255), want, atol=1e-5)
    res = zoo.check(dest)
    assert res["ok"].all() and (res["result"] == "exact").all(), res
    # the paper's clean names are the static sources
    assert torch.equal(zoo.load("Res26(cln)", "synthetic", "tiny", store=dest).fc.weight,
                       zoo.load("static:Res26", "synthetic", "tiny", store=dest).fc.weight)


def test_load_names_the_choices(published):
    dest, _ = published
    with pytest.raises(AktError, match="unknown published model 'Res9'.*Res8\\(adv-trans\\)"):
        zoo.load("Res9", "synthetic", "tiny", store=dest)
    with pytest.raises(AktError, match="not published for seed 7.*published seeds: 0"):
        zoo.load("Res8(adv)", "synthetic", "tiny", seed=7, store=dest)
    with pytest.raises(AktError, match="no published weights for 'mnist'"):
        zoo.load("Res8(adv)", "mnist", "tiny", store=dest)


def test_a_tampered_file_is_refused_never_retrained_over(published):
    dest, _ = published
    row = dest.manifest().set_index("name").loc["Res8(adv)"]
    f = dest.weights / row["file"]
    blob = bytearray(f.read_bytes())
    blob[-100] ^= 0x01
    f.write_bytes(bytes(blob))
    with pytest.raises(AktError, match=f"published weights {f}.*do not match the sha256"):
        zoo.load("Res8(adv)", "synthetic", "tiny", store=dest)
    with pytest.raises(AktError, match="do not match the sha256"):
        RN.Runner(G.Experiment("synthetic", "tiny"), dest, progress=False, log=lambda *a: None).model(
            G.Experiment("synthetic", "tiny", dataset_variant="generated").model("Res8(adv)"))
    assert f.read_bytes() == bytes(blob)  # left as it is, for the user to restore


def test_a_build_whose_models_are_published_trains_nothing(published, monkeypatch):
    dest, _ = published
    shutil.rmtree(dest.cache, ignore_errors=True)
    (dest.results / "tiny" / "records.csv").unlink()  # every record must be scored again, from the weights
    monkeypatch.setattr(RN, "train_model", lambda *a, **k: pytest.fail("a published model was trained"))
    df = RS.require("all", "synthetic", "tiny", compute=True, store=dest, progress=False, log=lambda *a: None)
    assert len(df) and not (dest.cache / "model").exists()


def test_rows_from_a_dirty_tree_are_not_published(source, tmp_path):
    runs = source.results / "tiny" / "runs.csv"
    df = pd.read_csv(runs, dtype=str, keep_default_na=False)
    df["git_commit"] = COMMIT + "-dirty"
    df.to_csv(runs, index=False)
    with pytest.raises(AktError, match="-dirty.*only rows and models from committed code"):
        publish.publish(source.root, "tiny", store=Store(tmp_path / "p"), log=lambda *a: None)


def test_nothing_is_written_when_one_row_is_from_a_dirty_tree(source, tmp_path):
    """All rows are checked before any weight or row is written: a refused publish leaves no file."""
    curves = source.read("tiny", "curves")
    runs = source.results / "tiny" / "runs.csv"
    df = pd.read_csv(runs, dtype=str, keep_default_na=False)
    df.loc[df["key"] == curves["key"].iloc[0], "git_commit"] = COMMIT + "-dirty"  # one model's run
    df.to_csv(runs, index=False)
    dest = Store(tmp_path / "p")
    with pytest.raises(AktError, match="curves rows was made by code at commit '0123456789ab-dirty'|-dirty"):
        publish.publish(source.root, "tiny", store=dest, log=lambda *a: None)
    assert not _written(tmp_path / "p")


def _written(root: Path) -> list[Path]:
    """The files under a store root, but the lock files (in its ignored cache)."""
    return [p for p in root.rglob("*") if p.is_file() and "locks" not in p.parts] if root.exists() else []


def test_unpublished_profile_is_refused(tmp_path):
    with pytest.raises(AktError, match="profile 'smoke' is not published"):
        publish.publish(tmp_path, "smoke", store=Store(tmp_path / "p"))


# ---- the committed weights ---------------------------------------------------------------------
COMMITTED = Store(ROOT / "data")


def test_committed_manifest_agrees_with_its_files_and_the_size_limit():
    m = COMMITTED.manifest()
    files = sorted(p.relative_to(COMMITTED.weights).as_posix() for p in COMMITTED.weights.glob("*/*/*.pt"))
    assert sorted(m["file"]) == files if len(m) else files == []
    for r in m.itertuples():
        f = COMMITTED.weights / r.file
        assert sha256_file(f) == r.sha256 and f.stat().st_size == r.bytes, f
        assert not str(r.git_commit).endswith("-dirty")
    total = sum(p.stat().st_size for p in COMMITTED.weights.rglob("*") if p.is_file())
    assert total < zoo.SIZE_LIMIT_BYTES


def test_committed_weights_reproduce_their_fingerprints():
    """Exact on the machine kind that made them; other CPUs' kernels may differ in the last bits."""
    res = zoo.check(COMMITTED)
    if not len(res):
        pytest.skip("no published weights yet")
    assert res["ok"].all(), res[~res["ok"]]


def test_every_committed_result_row_comes_from_committed_code():
    """The book shows only rows made by committed code: each stored row (records, robustness, runs;
    curves through their model's run) names a clean commit, in the published results and the reruns."""
    from akt_core.provenance import from_dirty_tree

    roots = [ROOT / "data"] + sorted((ROOT / "data" / "reruns").glob("*"))
    checked = 0
    for root in roots:
        for folder in sorted((root / "results").glob("*")):
            profile, store = folder.name, Store(root)
            runs = store.read(profile, "runs")
            trained = set(runs["key"]) if len(runs) else set()
            for what in ("records", "robustness", "runs"):
                df = store.read(profile, what)
                if len(df):
                    bad = df[df["git_commit"].map(from_dirty_tree)]
                    assert bad.empty, f"{folder}/{what}.csv: {len(bad)} rows of {sorted(bad['git_commit'].unique())}"
                    checked += len(df)
            curves = store.read(profile, "curves")
            if len(curves):  # a curve belongs to a trained model whose run row names its commit
                assert curves["key"].isin(trained).all(), f"{folder}/curves.csv: rows without a run"
    assert checked > 500
    assert from_dirty_tree("859e3a83f38f-dirty") and from_dirty_tree("unknown") and from_dirty_tree("")
    assert not from_dirty_tree("859e3a83f38f")


# ---- integrity of what is published (issue 38): a wrong model, a lost row, a changed number --------
def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in _written(root)}


def test_a_swapped_manifest_never_loads_the_other_model_and_check_fails(published, capsys):
    from akt_core import cli

    dest, _ = published
    path = dest.weights / "manifest.csv"
    m = pd.read_csv(path, dtype=str, keep_default_na=False)
    a, b = (m.index[m["name"] == n][0] for n in ("Res8(adv)", "Res8(adv-trans)"))
    m.loc[a, "name"], m.loc[b, "name"] = "Res8(adv-trans)", "Res8(adv)"
    m.to_csv(path, index=False)
    with pytest.raises(AktError, match=r"says name = 'Res8\(adv-trans\)', its file's sidecar .* says 'Res8\(adv\)'"):
        zoo.load("Res8(adv-trans)", "synthetic", "tiny", store=dest)
    res = zoo.check(dest)
    assert set(res.loc[~res["ok"], "name"]) == {"Res8(adv)", "Res8(adv-trans)"}
    with pytest.raises(SystemExit) as exit_:
        cli.main(["weights", "--check", "--store", str(dest.root)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "2 of" in err and "Res8(adv-trans) (synthetic, tiny, seed 0" in err


def test_a_file_replaced_by_another_model_or_damaged_fingerprints_fail_the_check(published):
    dest, _ = published
    m = dest.manifest().set_index("name")
    adv, trans = dest.weights / m.loc["Res8(adv)", "file"], dest.weights / m.loc["Res8(adv-trans)", "file"]
    shutil.copyfile(adv, trans)  # another model's weights, with the manifest's sha256 made to fit
    path = dest.weights / "manifest.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[df["name"] == "Res8(adv-trans)", "sha256"] = sha256_file(trans)
    df.to_csv(path, index=False)
    res = zoo.check(dest).set_index("name")
    assert not res.loc["Res8(adv-trans)", "ok"] and "sha256" in res.loc["Res8(adv-trans)", "result"]
    assert res.drop(index="Res8(adv-trans)")["ok"].all()
    fp = dest.weights / "fingerprints" / "synthetic.pt"
    blob = bytearray(fp.read_bytes())
    blob[-50] ^= 0x01
    fp.write_bytes(bytes(blob))
    res = zoo.check(dest).set_index("name").drop(index="Res8(adv-trans)")  # which fails on its sha256 first
    assert not res["ok"].any() and res["result"].str.contains("fingerprint images .* do not match").all()


def test_a_fingerprint_from_another_machine_kind_matches_within_the_tolerance_only_there(published):
    dest, _ = published
    m = dest.manifest().set_index("name")
    sidecar = (dest.weights / m.loc["Res8(adv)", "file"]).with_suffix(".json")
    info = json.loads(sidecar.read_text())
    info["fingerprint"] = (torch.tensor(info["fingerprint"]) + 3e-6).tolist()  # rounding of another CPU
    sidecar.write_text(json.dumps(info))
    assert zoo.check(dest).set_index("name").loc["Res8(adv)", "result"].startswith("FAILED: not exact on the machine")
    info["fingerprint_device"] = "cpu: another CPU (family 1 model 2, AVX2) x2 threads"
    sidecar.write_text(json.dumps(info))
    row = zoo.check(dest).set_index("name").loc["Res8(adv)"]
    assert row["ok"] and row["result"].startswith(f"within {zoo.FINGERPRINT_ATOL:g}, argmax equal")
    info["fingerprint"] = (torch.tensor(info["fingerprint"]) + 1e-2).tolist()  # not rounding: another model
    sidecar.write_text(json.dumps(info))
    assert not zoo.check(dest).set_index("name").loc["Res8(adv)", "ok"]


def test_a_damaged_sidecar_is_an_error_naming_it(published):
    dest, _ = published
    sidecar = (dest.weights / dest.manifest().set_index("name").loc["Res8(adv)", "file"]).with_suffix(".json")
    sidecar.write_bytes(b"\xff\xfe not json")
    with pytest.raises(AktError, match=f"the sidecar {sidecar} cannot be read \\(UnicodeDecodeError"):
        zoo.load("Res8(adv)", "synthetic", "tiny", store=dest)


def test_publishing_never_overwrites_a_published_result(published, source):
    dest, _ = published
    before = _snapshot(dest.root)
    rec = source.results / "tiny" / "records.csv"
    df = pd.read_csv(rec, dtype=str, keep_default_na=False)
    key = df["key"].iloc[0]
    n = int(df.loc[0, "n_examples"])
    df.loc[0, "correct"] = str(int(df.loc[0, "correct"]) - 1 if int(df.loc[0, "correct"]) else 1)
    df.loc[0, "accuracy"] = str(100 * int(df.loc[0, "correct"]) / n)
    df.to_csv(rec, index=False)
    with pytest.raises(AktError, match=f"already published with another result.*records {key}: accuracy"):
        publish.publish(source.root, "tiny", store=dest, log=lambda *a: None)
    assert _snapshot(dest.root) == before


def test_publishing_the_same_rows_again_changes_nothing(published, source):
    dest, _ = published
    before = _snapshot(dest.root)
    assert not len(publish.publish(source.root, "tiny", store=dest, log=lambda *a: None))
    assert {k: v for k, v in _snapshot(dest.root).items() if "locks" not in k} == before


def test_two_publishes_at_once_lose_no_manifest_row(tiny, source, tmp_path):
    import threading

    # two stores, each with half of the models: published into one project at the same time
    runs = source.read("tiny", "runs")
    models = sorted(runs.loc[runs["kind"] == "model", "key"])
    halves = (models[: len(models) // 2], models[len(models) // 2:])
    sources = []
    for i, keep in enumerate(halves):
        root = tmp_path / f"half{i}"
        shutil.copytree(source.root, root)
        for key in set(models) - set(keep):
            for f in (root / "cache" / "model").glob(f"{key}.*"):
                f.unlink()
        sources.append(root)
    dest = Store(tmp_path / "project")
    errors = []

    def run(root):
        try:
            publish.publish(root, "tiny", store=dest, log=lambda *a: None)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in sources]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and sorted(dest.manifest()["key"]) == models


def test_publishing_without_room_or_rights_writes_nothing(published, source, monkeypatch):
    dest = Store(source.root.parent / "empty")
    with monkeypatch.context() as mp:
        mp.setattr(publish.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
        with pytest.raises(AktError, match="no space left on the device of .*nothing was published"):
            publish.publish(source.root, "tiny", store=dest, log=lambda *a: None)
    assert not _written(dest.root)
    with monkeypatch.context() as mp:
        mp.setattr(publish.os, "access", lambda p, mode: False)  # as a read-only folder (root ignores modes)
        with pytest.raises(AktError, match="is not writable: nothing was published"):
            publish.publish(source.root, "tiny", store=dest, log=lambda *a: None)
    assert not _written(dest.root)


def test_a_seed_given_as_text_loads_and_a_bad_seed_is_named(published):
    dest, _ = published
    assert zoo.load("Res8(adv)", "synthetic", "tiny", seed="0", store=dest) is not None
    with pytest.raises(AktError, match="seed 'x' is not a seed"):
        zoo.load("Res8(adv)", "synthetic", "tiny", seed="x", store=dest)


def test_a_results_row_of_another_profile_is_an_error_naming_its_line(published):
    dest, _ = published
    rec = dest.results / "tiny" / "records.csv"
    df = pd.read_csv(rec, dtype=str, keep_default_na=False)
    df.loc[2, "profile"] = "bogus"
    df.to_csv(rec, index=False)
    with pytest.raises(AktError, match=f"{rec}, line 4: profile = 'bogus', but the file holds the 'tiny'"):
        dest.read("tiny", "records")


def test_the_zoo_summary_joins_each_model_to_its_stored_results(published):
    dest, _ = published
    s = zoo.summary(dest).set_index("model")
    assert set(s.index) == {"Res26(cln)" if n == "static:Res26" else "Res8(cln)" if n == "static:Res8" else n
                            for n in dest.manifest()["name"]}
    recs = dest.read("tiny", "records")
    key = dest.manifest().set_index("name").loc["Res8(adv-trans)", "key"]
    want = recs[(recs["model_key"] == key) & (recs["attack"] == "FGSM") & (recs["source"] == "Res26")]["accuracy"]
    assert s.loc["Res8(adv-trans)", "FGSM transfer"] == pytest.approx(want.mean())
    assert pd.isna(s.loc["heldout:Res26", "FGSM transfer"])  # a source is not scored as a target
    md = zoo.summary_markdown(dest)
    assert md.count("{download}`") == len(s) and "| – |" in md and "## synthetic, `tiny` profile" in md


def test_the_zoo_lists_each_seed_in_the_papers_variant_order_sources_last():
    rows = [("heldout:Res26", 1000), ("static:Res14", 0), ("Res8(adv)", 1), ("Res8(adv-trans)", 0),
            ("Res26(cln)", 0), ("Res8(rslad)", 0), ("Res26(adv)", 0)]
    df = pd.DataFrame([{"model": m, "seed": s, "profile": "p", "dataset": "d"} for m, s in rows])
    got = zoo.reading_order(df)[["model", "seed"]].values.tolist()
    assert got == [["Res26(cln)", 0], ["Res26(adv)", 0], ["Res8(adv-trans)", 0], ["Res8(rslad)", 0],
                   ["static:Res14", 0], ["Res8(adv)", 1], ["heldout:Res26", 1000]]


def _manifest_rows(nodes, dataset="cifar100", profile="full-data"):
    return pd.DataFrame([{"key": n.key, "name": n.name, "dataset": dataset, "profile": profile,
                          "seed": n.config["seed"], "dataset_variant": "v"} for n in nodes])


def test_progress_counts_the_published_models_of_the_planned_build(monkeypatch):
    """A seed's build trains 14 models: the four static sources (Res26(cln) and Res8(cln) are two of
    them), the six other variants and the four held-out sources (seed + 1000). A held-out source alone
    names its main seed; a key outside the plan does not count."""
    ex = G.Experiment("cifar100", "full-data", 0, dataset_variant="v")
    plan = ex.models_to_train()
    assert len(plan) == 14 and sum(n.name.startswith("heldout:") for n in plan) == 4
    some = _manifest_rows([ex.heldout_source(26), ex.static_source(26)])
    stray = some.iloc[:1].assign(key="not-in-the-plan", name="heldout:Res20")
    monkeypatch.setattr(zoo, "published", lambda store=None: pd.concat([some, stray], ignore_index=True))
    row = zoo.progress().iloc[0]
    assert (row["profile"], row["dataset"], row["seeds"], row["planned"], row["done"]) == \
        ("full-data", "cifar100", [0], 14, 2)


def test_the_findings_name_the_training_under_way_until_its_verdicts_exist(monkeypatch):
    from akt_core.report import scorecard as S

    monkeypatch.setattr(S, "whitebox_finding", lambda: "")
    ex = G.Experiment("cifar100", "full-data", 0, dataset_variant="v")
    card = pd.DataFrame([{"dataset": "mnist", "claim": "C1", "column": "full-data", "state": "supported",
                          "one_seed": False, "seeds": "0, 1"}])
    for nodes, words in ((ex.models_to_train()[:3], "3 of 14 models trained and published so far"),
                         (ex.models_to_train(), "trained, not yet scored")):
        monkeypatch.setattr(zoo, "published", lambda store=None, n=nodes: _manifest_rows(n))
        text = S.findings(card)
        assert f"CIFAR-100 at the `full-data` profile (seed 0): {words}" in text
    scored = pd.concat([card, card.assign(dataset="cifar100")], ignore_index=True)
    assert "CIFAR-100 at the" not in S.findings(scored)


def _probe():
    import importlib.util

    spec = importlib.util.spec_from_file_location("rerun_precision", ROOT / "tools" / "rerun_precision.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_precision_probe_trains_only_its_variant_in_bf16_and_scores_the_published_cells(published, tmp_path,
                                                                                              monkeypatch, capsys):
    """Issue 40's bf16 probe (``tools/rerun_precision.py``): the variant trains again under bf16 autocast
    from the published float32 models it reads (nothing else trains), and its records carry the keys
    of the published records they stand beside, with the arithmetic in ``device``."""
    dest, _ = published
    monkeypatch.setenv("AKT_GIT_COMMIT", COMMIT)
    out = tmp_path / "rerun"
    args = ["--dataset", "synthetic", "--profile", "tiny", "--variants", "Res8(adv-trans)",
            "--scratch", str(tmp_path / "scratch"), "--out", str(out)]
    assert _probe().main([*args, "--store", str(dest.root)]) == 0
    again, pub = Store(out).read("tiny", "records"), dest.read("tiny", "records")
    cells = pub[(pub["model"] == "Res8(adv-trans)") & pub["source"].isin(["-", "Res26"])]
    assert len(cells) == 5 and set(again["key"]) == set(cells["key"])
    assert again["device"].str.endswith(", bf16 autocast").all()
    runs = Store(out).read("tiny", "runs")
    trained = runs.loc[runs["kind"] == "model", "key"]
    assert list(trained) == [G.Experiment("synthetic", "tiny", dataset_variant=cells["dataset_variant"].iloc[0])
                             .model("Res8(adv-trans)").key]
    # a dependency that is not published: exit 2 naming it, and no row written
    assert _probe().main([*args, "--store", str(tmp_path / "empty"), "--out", str(tmp_path / "none")]) == 2
    assert "is not published" in capsys.readouterr().err and not (tmp_path / "none").exists()
