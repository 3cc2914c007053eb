"""Shared fixtures: tiny seeded models and small batches, single-threaded torch."""
from __future__ import annotations

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
@pytest.fixture(scope="session")
def tiny_built(tmp_path_factory):
    """Every table and the curves on 64 synthetic training images, 1 epoch, under a 'tiny' profile,
    built once per session. The profile is registered only while building (and, through ``tiny``,
    during each test that uses it), so it never shows up in other tests' profile lists."""
    from akt_core import profiles as P
    from akt_core import results as RS
    from akt_core.store import Store

    datasets = ("mnist", "cifar10", "cifar100", "synthetic")
    prof = P.Profile("tiny", n_train=dict.fromkeys(datasets, 64), n_test=40, epochs=dict.fromkeys(datasets, 1),
                     batch_size=32, n_curve=24, published=False, description="unit tests", eval_batch_size=50,
                     n_whitebox=12, n_autoattack=8, autoattack_eps=("16/256",))
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(P.PROFILES, "tiny", prof)
        root = tmp_path_factory.mktemp("tiny_store")
        store = Store(root)
        logs: list[str] = []
        log = lambda *a: logs.append(" ".join(map(str, a)))
        df = RS.require("all", "synthetic", "tiny", compute=True, store=store, progress=False, log=log)
    return {"root": root, "store": store, "logs": logs, "df": df, "profile": prof}


@pytest.fixture
def tiny(tiny_built, monkeypatch):
    """``tiny_built`` with its 'tiny' profile registered for the duration of one test."""
    from akt_core import profiles as P

    monkeypatch.setitem(P.PROFILES, "tiny", tiny_built["profile"])
    return tiny_built
