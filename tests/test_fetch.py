"""Published weights on demand (issue 35): zoo.load outside a checkout fetches the manifest, the
sidecar and the state dict from a URL (here a server on 127.0.0.1 serving data/weights), refuses a
download whose sha256 differs and names a file the server lacks."""
from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest
import torch

from akt_core import AktError, fetch, zoo
from akt_core.evaluate import logits
from akt_core.store import Store

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = ROOT / "data" / "weights"
NAME, DATASET, PROFILE = "Res8(adv-trans)", "cifar10", "full-data"


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A copy of data/weights served on 127.0.0.1; the download cache in tmp_path; the project's
    store replaced by an empty one (as in an installed package)."""
    if not (WEIGHTS / "manifest.csv").exists():
        pytest.skip("no published weights")
    site = tmp_path / "site"
    shutil.copytree(WEIGHTS, site)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv(fetch.ENV_URL, f"http://127.0.0.1:{server.server_port}/")
    monkeypatch.setenv(fetch.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.setenv("AKT_STORE", str(tmp_path / "no-checkout"))
    yield site, tmp_path / "cache"
    server.shutdown()


def _row(site: Path):
    import pandas as pd

    m = pd.read_csv(site / "manifest.csv", dtype={"key": str, "sha256": str})
    return m[(m["name"] == NAME) & (m["dataset"] == DATASET) & (m["profile"] == PROFILE) & (m["seed"] == 0)].iloc[0]


def test_a_model_is_fetched_by_name_checked_and_reproduces_its_fingerprint(served):
    site, cache = served
    model = zoo.load(NAME, DATASET, PROFILE)
    row = _row(site)
    assert (cache / "weights" / row["file"]).is_file()
    local = zoo.load(NAME, DATASET, PROFILE, store=Store(ROOT / "data"))
    x = zoo.fingerprint_images(Store(ROOT / "data"), DATASET)
    assert torch.equal(logits(model, x), logits(local, x))
    assert zoo.load(NAME, DATASET) is not None  # the profile defaults to the best published one


def test_a_download_whose_sha256_differs_is_refused_and_not_kept(served):
    site, cache = served
    row = _row(site)
    f = site / row["file"]
    blob = bytearray(f.read_bytes())
    blob[-100] ^= 0x01
    f.write_bytes(bytes(blob))
    with pytest.raises(AktError, match=r"does not match its sha256 in the manifest"):
        zoo.load(NAME, DATASET, PROFILE)
    assert not (cache / "weights" / row["file"]).exists()


def test_a_file_the_server_lacks_is_named(served):
    site, _ = served
    row = _row(site)
    (site / row["file"]).unlink()
    with pytest.raises(AktError, match=f"cannot fetch http://127.0.0.1:\\d+/{row['file']}"):
        zoo.load(NAME, DATASET, PROFILE)


def test_without_a_url_the_error_says_what_to_set(monkeypatch, tmp_path):
    monkeypatch.delenv(fetch.ENV_URL, raising=False)
    monkeypatch.setattr(fetch, "CONFIG", tmp_path / "absent.yml")
    with pytest.raises(AktError, match=f"set {fetch.ENV_URL}"):
        fetch.base_url()
