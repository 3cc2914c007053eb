"""Content-addressed cache for expensive artefacts and tidy CSV result records.

Layout under the store root (``data/`` in the project, ``$AKT_STORE`` to move it):

``cache/<kind>/<key>.pt`` + ``<key>.json``   checkpoints, crafted sets, teacher logits (git-ignored)
``cache/partial/<key>.pt``                   per-epoch training state, so a killed run resumes
``results/<profile>/records.csv``            one row per model x attack x source x seed (committed
``results/<profile>/curves.csv``             per-epoch clean/adversarial accuracy  for published
``results/<profile>/runs.csv``               one row per built artefact: wall time, images/s  profiles)
``weights/manifest.csv`` + ``weights/<profile>/<dataset>/<key>.pt``  published models (committed, read-only)

A key is a hash of an artefact's full config (including its dependencies' keys and
``RESULTS_VERSION``), never of the git commit. Every write goes to a temporary file first and is
renamed into place, so a killed run leaves no partial entry. The ``.json`` sidecar holds the config
and the payload's SHA-256; an entry whose hash or config does not match is reported, deleted and
rebuilt, never used.

Published weights (``akt_core.zoo``) are a read-only tier that ``load`` checks before the cache: a
model listed in ``weights/manifest.csv`` is never trained again. A published file whose SHA-256 or
config does not match its manifest is an error that names the file: it is never used, and never
silently retrained over.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd
import torch

from . import RESULTS_VERSION, AktError
from .schema import SCHEMAS, validate

ENV_STORE = "AKT_STORE"
#: results files already parsed and checked, by (path, kind, hash of their bytes): ``Store.read``
_READ_MEMO: dict[tuple[str, str, bytes], pd.DataFrame] = {}
_READ_MEMO_SIZE = 64
WEIGHTS_MANIFEST = "manifest.csv"
LOW_SPACE = 64 * 2**20  #: free bytes under which a failed torch write is reported as a full disk


def config_key(config: dict) -> str:
    """16 hex digits of SHA-256 over the canonical JSON of ``config`` and ``RESULTS_VERSION``."""
    blob = json.dumps({"config": config, "results_version": RESULTS_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file renamed into place; nothing is left behind on a failure
    (a full disk, a kill signal)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except RuntimeError as exc:  # torch reports a full disk as a failed write, never as "no space"
        if shutil.disk_usage(path.parent).free < LOW_SPACE:
            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


def save_checked(obj: Any, path: Path) -> None:
    """``obj`` saved atomically with its own SHA-256 inside the file (``load_checked`` verifies it)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    blob = buf.getvalue()
    atomic_torch_save({"sha256": hashlib.sha256(blob).hexdigest(), "payload": blob}, path)


def load_checked(path: Path, what: str = "saved state") -> Any | None:
    """What ``save_checked`` wrote to ``path``, or None (with a warning, the file removed) when it is
    absent, truncated or fails its checksum: a damaged state is never resumed from."""
    if not path.exists():
        return None
    try:
        outer = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(outer, dict) or hashlib.sha256(outer["payload"]).hexdigest() != outer["sha256"]:
            raise ValueError("checksum does not match")
        return torch.load(io.BytesIO(outer["payload"]), map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any failure means: discard and start again
        warnings.warn(f"{what} {path} is damaged ({str(exc).strip()[:120]}); discarding it and starting again")
        path.unlink(missing_ok=True)
        return None


def atomic_write_text(text: str, path: Path) -> None:
    """``text`` written to a temporary file renamed into place; nothing is left behind on a failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` for the duration (POSIX ``flock``; nothing where it is missing)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no concurrent writers are supported there
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _belongs(df: pd.DataFrame, profile: str, path: Path) -> pd.DataFrame:
    """``df`` if every row's profile is the one its file is filed under and its dataset a known one;
    else an AktError naming the file and line (a row of another profile would be shown as this one's)."""
    from .data import DATASETS

    checks = [("profile", lambda v: v == profile, f"the file holds the {profile!r} profile's rows"),
              ("dataset", lambda v: v in DATASETS, f"datasets are {', '.join(DATASETS)}")]
    for col, fine, why in checks:
        if col in df.columns and len(df):
            bad = ~df[col].astype(str).map(fine)
            if bad.any():
                i = int(bad.to_numpy().nonzero()[0][0])
                raise AktError(f"{path}, line {int(df.index[i]) + 2}: {col} = {df[col].iloc[i]!r}, but {why}")
    return df


def default_root() -> Path:
    env = os.environ.get(ENV_STORE)
    return Path(env) if env else Path(__file__).resolve().parent.parent / "data"


def read_sidecar(path: Path) -> dict:
    """A weights or cache sidecar (JSON), or an AktError naming it when it is missing or damaged."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise AktError(f"the sidecar {path} cannot be read ({type(exc).__name__}: {str(exc)[:100]}); restore it "
                       "(git checkout -- data/weights) or publish the model again") from exc


class Store:
    """The cache (artefacts by key) and the results (tidy CSV records by profile)."""

    RECORD_FILES = ("records", "curves", "runs")

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_root()
        if self.root.exists() and not self.root.is_dir():
            raise AktError(f"store {self.root} is a file, not a folder; pass --store (or set {ENV_STORE}) to a folder")
        self.cache = self.root / "cache"
        self.results = self.root / "results"
        self.weights = self.root / "weights"
        self._manifest: tuple[float, pd.DataFrame] | None = None

    # ---- published weights (read-only tier) ----------------------------------------------------
    def manifest(self) -> pd.DataFrame:
        """The published models, one row each (``zoo.MANIFEST_COLUMNS``); empty when none."""
        path = self.weights / WEIGHTS_MANIFEST
        if not path.exists():
            return pd.DataFrame()
        mtime = path.stat().st_mtime_ns
        if self._manifest is None or self._manifest[0] != mtime:
            try:
                df = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"key": str, "sha256": str})
            except Exception as exc:  # noqa: BLE001 - a damaged manifest is named, never half-read
                raise AktError(f"the weights manifest {path} cannot be read ({exc})") from exc
            missing = {"key", "file", "sha256"} - set(df.columns)
            if missing:
                raise AktError(f"the weights manifest {path} lacks the columns {sorted(missing)}")
            if df["key"].duplicated().any():
                raise AktError(f"the weights manifest {path} lists key {df['key'][df['key'].duplicated()].iloc[0]} twice")
            self._manifest = (mtime, df)
        return self._manifest[1]

    def published_paths(self, key: str) -> tuple[Path, Path] | None:
        """(weights file, sidecar) of the published model ``key``, or None when it is not published."""
        m = self.manifest()
        if not len(m) or key not in set(m["key"]):
            return None
        pt = self.weights / m.loc[m["key"] == key, "file"].iloc[0]
        return pt, pt.with_suffix(".json")

    def load_published(self, key: str, config: dict | None = None) -> Any | None:
        """The published state of ``key`` after checking its SHA-256 (and ``config``), or None when
        it is not published. A mismatch raises :class:`AktError` naming the file."""
        paths = self.published_paths(key)
        if paths is None:
            return None
        pt, meta = paths
        m = self.manifest()
        want = m.loc[m["key"] == key, "sha256"].iloc[0]
        if not pt.exists():
            raise AktError(f"published weights {pt} are listed in {self.weights / WEIGHTS_MANIFEST} but missing; "
                           "restore them (git checkout -- data/weights) or remove their manifest row")
        if sha256_file(pt) != want:
            raise AktError(f"published weights {pt} do not match the sha256 in {self.weights / WEIGHTS_MANIFEST} "
                           f"({want[:12]}...); the file is damaged or was changed. Restore it (git checkout -- "
                           "data/weights); it is not used and nothing is retrained over it")
        if config is not None:
            try:
                info = json.loads(meta.read_text())
            except (OSError, ValueError) as exc:
                raise AktError(f"the sidecar {meta} of published weights cannot be read ({exc})") from exc
            if info.get("config") != json.loads(json.dumps(config)):
                raise AktError(f"published weights {pt} were made for another config than key {key}'s")
        return torch.load(pt, map_location="cpu", weights_only=True)

    # ---- artefacts ---------------------------------------------------------------------------
    def _paths(self, kind: str, key: str) -> tuple[Path, Path]:
        base = self.cache / kind / key
        return base.with_suffix(".pt"), base.with_suffix(".json")

    def load(self, kind: str, key: str, config: dict) -> Any | None:
        """The payload under ``key``: a published model's weights (checked, see ``load_published``), else
        the cache entry, or None when absent, corrupt or made for another config."""
        if kind == "model" and (published := self.load_published(key, config)) is not None:
            return published
        pt, meta = self._paths(kind, key)
        if not pt.exists() or not meta.exists():
            return None
        try:
            info = json.loads(meta.read_text())
            if info.get("config") != json.loads(json.dumps(config)):
                raise ValueError("config does not match the key's")
            if info.get("sha256") != sha256_file(pt):
                raise ValueError("payload hash does not match")
            return torch.load(pt, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure means: rebuild
            warnings.warn(f"cache entry {kind}/{key} is unusable ({exc}); removing it and rebuilding")
            self.remove(kind, key)
            return None

    def save(self, kind: str, key: str, config: dict, payload: Any, provenance: dict | None = None) -> None:
        pt, meta = self._paths(kind, key)
        atomic_torch_save(payload, pt)
        info = {"key": key, "kind": kind, "config": config, "sha256": sha256_file(pt),
                "results_version": RESULTS_VERSION, "provenance": provenance or {}}
        atomic_write_text(json.dumps(info, indent=1, sort_keys=True), meta)

    def sidecar(self, kind: str, key: str) -> dict:
        """The sidecar of the artefact ``key`` (config, sha256, provenance): the cache entry's, else the
        published model's (``read_sidecar``: a damaged one is an error naming it); empty when neither exists."""
        meta = self._paths(kind, key)[1]
        if not meta.exists() and kind == "model" and (paths := self.published_paths(key)) is not None:
            meta = paths[1]
        return read_sidecar(meta) if meta.exists() else {}

    def remove(self, kind: str, key: str) -> None:
        for p in self._paths(kind, key):
            p.unlink(missing_ok=True)

    def partial_path(self, key: str) -> Path:
        return self.cache / "partial" / f"{key}.pt"

    def entries(self) -> pd.DataFrame:
        """One row per cached artefact: kind, key, name, size."""
        rows = []
        for meta in sorted(self.cache.glob("*/*.json")):
            try:
                info = json.loads(meta.read_text())
                info["kind"], info["key"], info["config"].get
            except (OSError, ValueError, KeyError, AttributeError) as exc:
                warnings.warn(f"cache sidecar {meta} is damaged ({exc}); left out (a build removes and rebuilds it)")
                continue
            pt = meta.with_suffix(".pt")
            rows.append({"kind": info["kind"], "key": info["key"],
                         "name": info["config"].get("name", ""),
                         "dataset": info["config"].get("dataset", ""),
                         "mb": round(pt.stat().st_size / 2**20, 2) if pt.exists() else None})
        return pd.DataFrame(rows, columns=["kind", "key", "name", "dataset", "mb"])

    # ---- records -----------------------------------------------------------------------------
    def _csv(self, profile: str, file: str) -> Path:
        return self.results / profile / f"{file}.csv"

    def read(self, profile: str, file: str = "records") -> pd.DataFrame:
        """One results file, checked against its schema (``schema.validate``): a damaged file is an
        :class:`AktError` naming the file and line, never a silently different table. A file read
        before with the same bytes is not parsed and checked again (a book page reads the same few
        files a hundred times); the caller gets its own copy."""
        path = self._csv(profile, file)
        if not path.exists():
            return pd.DataFrame()
        raw = path.read_bytes()
        memo = (str(path.resolve()), file, hashlib.blake2b(raw, digest_size=16).digest())
        if memo not in _READ_MEMO:
            try:
                df = pd.read_csv(io.BytesIO(raw), keep_default_na=False, na_values=[""],
                                 dtype={"key": str, "model_key": str})
            except (ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError is a ValueError
                raise AktError(f"{path} cannot be read as CSV ({str(exc).strip()})") from exc
            if len(_READ_MEMO) >= _READ_MEMO_SIZE:
                _READ_MEMO.pop(next(iter(_READ_MEMO)))
            _READ_MEMO[memo] = _belongs(validate(df, file, path), profile, path)
        return _READ_MEMO[memo].copy()

    def append(self, profile: str, file: str, rows: list[dict], unique: tuple[str, ...] | None = None) -> None:
        """Add ``rows``; a row whose ``unique`` columns (default: the file's schema's) match an existing
        one replaces it. The result is checked before it is written. Atomic, and serialised between
        processes (``build --jobs``) by a lock file in the cache."""
        if not rows:
            return
        unique = unique or SCHEMAS[file].unique
        new = pd.DataFrame(rows)
        path = self._csv(profile, file)
        lock = self.cache / "locks" / f"{profile}-{file}.lock"  # in the ignored cache, not beside the CSV
        lock.parent.mkdir(parents=True, exist_ok=True)
        with locked(lock):
            old = self.read(profile, file)
            df = pd.concat([old, new], ignore_index=True) if len(old) else new
            df = df.drop_duplicates(subset=list(unique), keep="last")
            df = df.sort_values(list(unique), kind="stable").reset_index(drop=True)
            validate(df, file, f"{path} (with the rows to append)")
            atomic_write_text(df.to_csv(index=False, float_format="%.6g", lineterminator="\n"), path)

    def has(self, kind: str, key: str) -> bool:
        """Whether an entry exists under ``key``, published or cached (``load`` still checks it before use)."""
        if kind == "model" and self.published_paths(key) is not None:
            return True
        return all(p.exists() for p in self._paths(kind, key))
