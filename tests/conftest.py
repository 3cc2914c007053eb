"""Shared fixtures: tiny seeded models and small batches, single-threaded torch."""
from __future__ import annotations

import os

# The suite runs one pytest-xdist worker per core: the kernels and commands its tests start (papermill,
# nbval, the book's build, the CLI) inherit one thread each too, instead of each taking every core.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pickle
import shutil
from pathlib import Path

import pytest
import torch

from akt_core.models import resnet


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long end-to-end test (deselect with -m 'not slow')")


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The suite shares 2 cores with long jobs: keep torch on one thread."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """Nothing a unit test does may touch the project's data/ folder: the default store and data root
    point into tmp_path. (Not autouse: the book tests read the published results on purpose.)"""
    monkeypatch.setenv("AKT_STORE", str(tmp_path / "_default_store"))
    monkeypatch.setenv("AKT_DATA_ROOT", str(tmp_path / "_default_data"))


def make_model(depth: int = 8, num_classes: int = 10, in_channels: int = 3, seed: int = 0, **kw):
    torch.manual_seed(seed)
    return resnet(depth, num_classes, in_channels, **kw)


@pytest.fixture
def model():
    """A seeded Res8 for 3x32x32 inputs, 10 classes, in eval mode."""
    return make_model().eval()


@pytest.fixture
def batch():
    """8 images in [0, 1] (3x32x32) and labels, from a fixed generator."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (8,), generator=g)
    return x, y


@pytest.fixture(scope="session")
def trained_model():
    """A Res8 after 30 quick SGD steps on the synthetic data, so that gradients and probabilities
    are meaningful (not those of a random network). Eval mode, no gradients left."""
    from akt_core.data import load, to_float

    torch.manual_seed(0)
    torch.set_num_threads(1)
    m = resnet(8)
    tr = load("synthetic", "train")
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    m.train()
    for _ in range(30):
        idx = torch.randint(0, len(tr), (32,), generator=g)
        loss = torch.nn.functional.cross_entropy(m(to_float(tr.x[idx])), tr.y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.zero_grad(set_to_none=True)
    return m.eval()


@pytest.fixture(scope="session")
def synthetic_test_batch():
    from akt_core.data import load, to_float

    te = load("synthetic", "test")
    return to_float(te.x[:32]), te.y[:32]


# ---- the whole pipeline at a toy size, fast enough for the unit suite ----------------------------
def tiny_profile():
    from akt_core import profiles as P

    datasets = ("mnist", "cifar10", "cifar100", "synthetic")
    return P.Profile("tiny", n_train=dict.fromkeys(datasets, 64), n_test=40, epochs=dict.fromkeys(datasets, 1),
                     batch_size=32, n_curve=24, published=False, description="unit tests", eval_batch_size=50,
                     n_whitebox=12, n_autoattack=8, autoattack_eps=("16/256",))


def build_under(prof, what: str, root: Path) -> tuple[list[str], object]:
    """``results.require(what)`` on synthetic data under the unregistered profile ``prof`` into a store
    at ``root``, the profile registered only while building; returns the build's log lines and rows."""
    from akt_core import profiles as P
    from akt_core import results as RS
    from akt_core.store import Store

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(P.PROFILES, prof.name, prof)
        logs: list[str] = []
        log = lambda *a: logs.append(" ".join(map(str, a)))
        df = RS.require(what, "synthetic", prof.name, compute=True, store=Store(root), progress=False, log=log)
    return logs, df


@pytest.fixture(scope="session")
def tiny_built(tmp_path_factory, worker_id):
    """Every table and the curves on 64 synthetic training images, 1 epoch, under a 'tiny' profile,
    built once per test run. The profile is registered only while building (and, through ``tiny``,
    during each test that uses it), so it never shows up in other tests' profile lists.

    Under pytest-xdist the first worker to get here builds it into the run's shared temporary folder
    (a file lock keeps the others waiting) and every worker then works on its own copy, so tests that
    change their store see only their own worker's changes, as they would in one process."""
    from filelock import FileLock

    from akt_core.store import Store

    prof = tiny_profile()
    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if worker_id != "master" else base) / "tiny_shared"
    with FileLock(str(shared) + ".lock"):
        if not (shared / "built.pkl").exists():
            logs, df = build_under(prof, "all", shared / "store")
            with open(shared / "built.tmp", "wb") as f:
                pickle.dump((logs, df), f)
            (shared / "built.tmp").replace(shared / "built.pkl")
    with open(shared / "built.pkl", "rb") as f:
        logs, df = pickle.load(f)
    root = tmp_path_factory.mktemp("tiny_store")
    shutil.copytree(shared / "store", root, dirs_exist_ok=True)
    return {"root": root, "store": Store(root), "logs": logs, "df": df, "profile": prof}


@pytest.fixture
def tiny(tiny_built, monkeypatch):
    """``tiny_built`` with its 'tiny' profile registered for the duration of one test."""
    from akt_core import profiles as P

    monkeypatch.setitem(P.PROFILES, "tiny", tiny_built["profile"])
    return tiny_built
