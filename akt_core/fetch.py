"""Published weights on demand, for an installed package that has no checkout beside it (as
RobustBench's ``load_model`` downloads a model the first time it is asked for).

The files are the checkout's ``data/weights/`` served over HTTP: ``manifest.csv``, then per model its
sidecar (``<profile>/<dataset>/<key>.json``) and its state dict (``.pt``). They land in a local store
(``$AKT_WEIGHTS_CACHE``, else the user's cache folder) with the same layout, so ``zoo.load`` checks them
as it checks a checkout's: the state dict against the manifest's SHA-256 (a file that differs is
refused and not kept), the manifest row against the sidecar. Downloads are pooch's, a maintained
library made for exactly this.

Where from: ``$AKT_WEIGHTS_URL``, else the raw files of the repository named in ``_config.yml`` once
that is the real one (``akt_repository_placeholder: false``); until then a clear error says to set
the variable.
"""
from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

from . import AktError
from .store import WEIGHTS_MANIFEST, Store

ENV_URL = "AKT_WEIGHTS_URL"
ENV_CACHE = "AKT_WEIGHTS_CACHE"
CONFIG = Path(__file__).resolve().parent.parent / "_config.yml"  #: where the repository URL lives (a checkout)


def base_url() -> str:
    """The URL ``data/weights/`` is served under, ending in a slash (module docstring)."""
    url = os.environ.get(ENV_URL)
    if url:
        return url if url.endswith("/") else url + "/"
    if CONFIG.exists():
        text = CONFIG.read_text()
        repo = re.search(r"^repository:\s*\n\s+url:\s*(\S+)", text, re.M)
        branch = re.search(r"^\s+branch:\s*(\S+)", text, re.M)
        placeholder = re.search(r"akt_repository_placeholder:\s*true", text)
        if repo and not placeholder:
            owner_name = repo.group(1).rstrip("/").removeprefix("https://github.com/")
            return f"https://raw.githubusercontent.com/{owner_name}/{branch.group(1) if branch else 'main'}/data/weights/"
    raise AktError(f"no published weights here and no URL to fetch them from: set {ENV_URL} to where data/weights/ "
                   "is served (the repository's URL in _config.yml is still a placeholder)")


def cache_root() -> Path:
    """The local store the downloads land in."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(env)
    import pooch

    return Path(pooch.os_cache("akt-companion"))


def _retrieve(relative: str, dest: Path, sha256: str | None = None) -> Path:
    """``base_url() + relative`` into ``dest`` (checked against ``sha256`` where given): an AktError
    naming the URL when it cannot be fetched or does not match."""
    import pooch

    url = base_url() + relative
    try:
        return Path(pooch.retrieve(url, known_hash=f"sha256:{sha256}" if sha256 else None, fname=dest.name,
                                   path=dest.parent, progressbar=False))
    except ValueError as exc:  # pooch: the hash does not match; the download is not kept
        raise AktError(f"{url} does not match its sha256 in the manifest ({sha256[:12]}...): refused, not kept "
                       f"({str(exc).splitlines()[0][:120]})") from exc
    except Exception as exc:  # noqa: BLE001 - HTTP errors, no network: one message naming the URL
        raise AktError(f"cannot fetch {url} ({type(exc).__name__}: {str(exc)[:160]})") from exc


def remote_store() -> Store:
    """The local store of downloaded weights, with the manifest fetched again (a cached copy is used,
    with a warning, when it cannot be)."""
    store = Store(cache_root())
    manifest = store.weights / WEIGHTS_MANIFEST
    fresh = manifest.with_name(f".{manifest.name}.new")
    try:
        fresh.unlink(missing_ok=True)
        _retrieve(WEIGHTS_MANIFEST, fresh)
        fresh.replace(manifest)
    except AktError:
        if not manifest.exists():
            raise
        warnings.warn(f"the manifest could not be fetched again from {base_url()}; using the copy in {manifest}")
    return store


def model_files(store: Store, row) -> None:
    """Fetch the sidecar and the state dict of the manifest ``row`` into ``store`` (what is there
    already and matches is kept)."""
    pt = store.weights / row["file"]
    _retrieve(Path(row["file"]).with_suffix(".json").as_posix(), pt.with_suffix(".json"))
    _retrieve(row["file"], pt, row["sha256"])
