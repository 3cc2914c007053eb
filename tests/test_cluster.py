"""The experiment graph on Dask distributed (``akt_core.cluster``): a local cluster on loopback."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pandas as pd
import pytest
import torch

from akt_core import AktError
from akt_core import cluster as CL
from akt_core import graph as G
from akt_core import results as RS
from akt_core.store import Store

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.slow


def _built(store: Store) -> dict[str, G.Node]:
    nodes = G.walk(G.Experiment("synthetic", "tiny", dataset_variant="generated").models_to_train())
    return {n.key: n for n in nodes if n.kind in CL.BUILT_KINDS}


def _same_as_serial(store: Store, serial: Store) -> None:
    """Every artefact the serial build stored, the same tensors; the same curves, one runs row each."""
    built = _built(serial)
    assert {p.stem for kind in CL.BUILT_KINDS for p in (store.cache / kind).glob("*.json")} == set(built)
    for key, node in built.items():  # the same tensors (the files differ: torch.save records the file name)
        par, ser = (s.load(node.kind, key, node.config) for s in (store, serial))
        pairs = [(par[k], ser[k]) for k in ser] if isinstance(ser, dict) else [(par, ser)]
        assert all(torch.equal(a, b) for a, b in pairs), node.name
    drop = ["wall_s"]  # curves scored after their source was stored are the same numbers
    par_c, ser_c = (c[c["key"].isin(built)].drop(columns=drop).sort_values(["key", "epoch"]).reset_index(drop=True)
                    for c in (s.read("tiny", "curves") for s in (store, serial)))  # other tests add to the fixture's
    assert par_c.equals(ser_c) and par_c.loc[~par_c["model"].str.startswith("heldout:"), "adv_acc"].notna().all()
    runs = store.read("tiny", "runs")  # one row per built artefact, none lost
    assert len(runs) == len(set(runs["key"])) == len(built)
    assert not list((store.cache / "partial").glob("*"))


@pytest.fixture
def local_cluster():
    """A local cluster of two worker processes (``require(jobs=2)``'s), fresh for each test: no test's
    patch of its workers reaches the next test."""
    with CL.client_for(jobs=2) as client:
        yield client


def _build(store: Store, client):
    """What ``require("all", jobs=2)`` builds, on the test's client (whose workers the test reaches into)."""
    from akt_core.results import models_read
    from akt_core.runner import Runner

    runner = Runner(G.Experiment("synthetic", "tiny", 0), store, progress=False, log=lambda *a: None)
    needs = [c for g in G.GROUPS for c in G.table_cells(G.table_for(g, "synthetic"))]
    return CL.build(runner, models_read(runner.exp, needs, True), client=client)


def test_require_with_jobs_builds_on_the_cluster_and_scores_each_crafted_set_as_a_task(tiny, tmp_path, monkeypatch):
    """``require(jobs=2)`` hands the models it reads to ``cluster.build`` (stood in for here by the
    fixture's models), then scores each crafted set as a Dask task on a local cluster of two workers
    (``cluster.score``): the records are those of the serial build."""
    calls = []

    def fake_build(runner, roots, jobs=1, scheduler=None, client=None):
        calls.append(({n.name for n in roots}, jobs, scheduler))
        for node in G.walk(roots):  # what the workers would have stored: the fixture's artefacts
            if node.kind in CL.BUILT_KINDS and not runner.store.has(node.kind, node.key):
                d = tiny["store"]
                runner.store.save(node.kind, node.key, node.config, d.load(node.kind, node.key, node.config),
                                  d.sidecar(node.kind, node.key).get("provenance", {}))
        return 0

    monkeypatch.setattr(CL, "build", fake_build)
    df = RS.require("all", "synthetic", "tiny", compute=True, store=Store(tmp_path), progress=False,
                    log=lambda *a: None, jobs=2)
    assert len(calls) == 1 and calls[0][1:] == (2, None) and "Res8(adv-trans)" in calls[0][0]
    cols = ["key", "accuracy", "correct"]
    assert df.sort_values("key")[cols].reset_index(drop=True).equals(
        tiny["df"].sort_values("key")[cols].reset_index(drop=True))


def _kill_first_training(marker: str) -> None:
    """Run on every worker: the first training anywhere kills its own worker process mid-task."""
    from akt_core import train

    real = train.train_model

    def dying(*args, **kwargs):
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # only the first call, on any worker
        except FileExistsError:
            return real(*args, **kwargs)
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)

    train.train_model = dying
    import akt_core.runner

    akt_core.runner.train_model = dying


def test_two_workers_store_the_serial_build_bit_for_bit_even_when_one_is_killed_while_training(
        tiny, tmp_path, local_cluster):
    """Two Dask worker processes build the same artefacts and curves as the serial build of the
    fixture, each once, although the first training task's worker dies in the middle of it."""
    marker = tmp_path / "killed"
    local_cluster.run(_kill_first_training, str(marker))
    store = Store(tmp_path / "store")
    assert _build(store, local_cluster) == len(_built(tiny["store"]))
    assert marker.exists()  # a worker did die: its task ran again elsewhere, with the same result
    _same_as_serial(store, tiny["store"])


def _fail_training(message: str) -> None:
    import akt_core.runner

    def fail(*args, **kwargs):
        raise RuntimeError(message)

    akt_core.runner.train_model = fail


def test_a_task_that_raises_stops_the_build_with_its_error_and_stores_nothing_partial(tiny, tmp_path, local_cluster):
    local_cluster.run(_fail_training, "injected training failure")
    store = Store(tmp_path / "store")
    with pytest.raises(RuntimeError, match="injected training failure"):
        _build(store, local_cluster)
    assert not [p for p in store.cache.rglob("*") if p.is_file() and p.parent.name != "locks"]
    assert not any(len(store.read("tiny", what)) for what in ("curves", "runs", "records"))


def test_a_scheduler_address_with_no_scheduler_is_refused(capsys, tmp_path, monkeypatch):
    from akt_core.cli import main

    monkeypatch.setattr(CL, "CONNECT_TIMEOUT_S", 2)

    with pytest.raises(SystemExit) as exc:
        main(["build", "all", "--dataset", "synthetic", "--profile", "smoke", "--scheduler", "tcp://127.0.0.1:9",
              "--store", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "tcp://127.0.0.1:9" in err and "no Dask scheduler" in err, err
    assert not list(Path(tmp_path).rglob("*.pt"))


def test_workers_running_other_code_are_refused(monkeypatch):
    job = CL.Job(G.Experiment("synthetic", "smoke"), G.profiles_mod.get("smoke"), None, "cpu", False, False, 1,
                 "abc", "0" * 64)
    with pytest.raises(AktError, match="other code than the client"):
        CL.build_task(job, G.Experiment("synthetic", "smoke").static_source(8), {})


def test_the_evaluations_beyond_the_paper_score_each_crafted_set_as_a_task(tiny, tmp_path, monkeypatch):
    """``require("whitebox"|"sweep", jobs=2)``: white-box sets (one per target, random starts seeded per record) and
    transfer sets (one per attack and eps, on the held-out source) scored as Dask tasks on two
    workers give the serial build's records, number for number. (AutoAttack is left out: its sets
    are the same kind of task, and its 5,000 Square queries would take most of the test's time.)"""
    import dataclasses
    import shutil

    from akt_core import profiles as P

    monkeypatch.setitem(P.PROFILES, "tiny", dataclasses.replace(tiny["profile"], n_autoattack=0))

    got = {}
    for name, jobs in (("serial", 1), ("dask", 2)):
        shutil.copytree(tiny["root"], tmp_path / name)
        store = Store(tmp_path / name)
        got[name] = pd.concat([RS.require(what, "synthetic", "tiny", compute=True, store=store, progress=False,
                                          log=lambda *a: None, targets=("Res8(adv)", "Res8(adv-trans)"), jobs=jobs)
                               for what in ("whitebox", "sweep")])
    cols = ["key", "model", "attack", "source", "eps", "accuracy", "correct", "n_examples"]
    serial, dask = (got[k].sort_values("key")[cols].reset_index(drop=True) for k in ("serial", "dask"))
    assert len(serial) == 2 * 2 + 6 * 3 * 2 and set(serial["attack"]) >= {"PGD-20", "I-FGSM"}
    assert dask.equals(serial)
