"""Publishing a build: a background run's (or another machine's) finished models become published
weights (``zoo``'s layout: file, sidecar with the fingerprint, manifest row) and its results rows
join the project's, under one lock, never overwriting a published result, and only from committed
code. ``akt publish --from STORE --profile PROFILE`` runs it.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import torch

from . import AktError
from . import data as data_mod
from . import profiles as profiles_mod
from .evaluate import correct, logits
from .provenance import device_name, from_dirty_tree
from .schema import SCHEMAS
from .store import WEIGHTS_MANIFEST, Store, atomic_write_text, locked, read_sidecar, sha256_file
from .zoo import MANIFEST_COLUMNS, fingerprint_images, model_for

#: results files merged by ``publish`` and the columns that identify a row in each
RESULT_FILES = {what: schema.unique for what, schema in SCHEMAS.items()}


def _clean_commit(commit: str, what: str) -> None:
    if from_dirty_tree(commit):
        raise AktError(f"{what} was made by code at commit {commit!r}: only rows and models from committed "
                       "code are published (commit, rebuild, then publish)")


#: the columns of a results row that are its result, not its provenance: a row of an already published
#: key that differs in one of these is a conflict (an empty value filled in is not)
VALUE_COLUMNS = {"records": ("accuracy", "correct", "n_examples", "model_key"),
                 "robustness": ("accuracy", "correct", "n_examples", "model_key"),
                 "curves": ("clean_acc", "adv_acc", "train_loss", "lr"),
                 "runs": ("name", "kind", "seed")}


def _conflicts(old: pd.DataFrame, new: pd.DataFrame, what: str) -> list[str]:
    """Rows of ``new`` whose key is published in ``old`` with another result (``VALUE_COLUMNS``)."""
    if not len(old) or not len(new):
        return []
    keys = list(RESULT_FILES[what])
    both = new.merge(old, on=keys, suffixes=("", "_published"))
    out = []
    for col in VALUE_COLUMNS[what]:
        if col not in both or f"{col}_published" not in both:
            continue
        a, b = both[col], both[f"{col}_published"]
        num_a, num_b = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
        numeric = num_a.notna() & num_b.notna()
        text = ~numeric & a.notna() & b.notna() & (a.astype(str) != b.astype(str))
        differ = (numeric & ((num_a - num_b).abs() > 1e-9)) | text
        for r in both[differ].head(3).itertuples(index=False):
            d = r._asdict()
            out.append(f"{what} {'/'.join(str(d[k]) for k in keys)}: {col} {d[f'{col}_published']} published, "
                       f"{d[col]} in the source")
    return out


def _check_space(dest: Store, todo: list[Path]) -> None:
    """Refuse before any copy when the weights folder cannot be written or the disk lacks the room."""
    for folder in (dest.weights, dest.results):
        probe = next(p for p in (folder, *folder.parents) if p.exists())  # the nearest folder that exists
        if not os.access(probe, os.W_OK):
            raise AktError(f"{probe} is not writable: nothing was published (fix its permissions and publish again)")
    need = sum(p.stat().st_size for p in todo) + 16 * 2**20  # the files, and room for the CSVs
    free = shutil.disk_usage(next(p for p in (dest.root, *dest.root.parents) if p.exists())).free
    if free < need:
        raise AktError(f"no space left on the device of {dest.root}: publishing needs {need / 2**20:.1f} MiB, "
                       f"{free / 2**20:.1f} MiB are free; nothing was published")


def _copy_model(src: Store, dest: Store, row, prof, data_root) -> dict:
    """Publish one finished model of ``src``: the checked file, its sidecar with the fingerprint and
    the machine kind that made it, and its manifest row."""
    pt, meta = src.cache / "model" / f"{row.key}.pt", src.cache / "model" / f"{row.key}.json"
    _clean_commit(row.git_commit, f"model {row.name} ({row.key})")
    info = read_sidecar(meta)
    if info.get("sha256") != sha256_file(pt):
        raise AktError(f"cache entry {pt} does not match its sidecar's sha256; rebuild it before publishing")
    cfg = info["config"]
    out = dest.weights / prof.name / row.dataset / f"{row.key}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model_for(row.dataset, cfg["depth"], cfg["method"])
    model.load_state_dict(torch.load(pt, map_location="cpu", weights_only=True))
    model.eval()
    test = data_mod.load(row.dataset, "test", data_root)
    if test.variant != row.dataset_variant:
        raise AktError(f"model {row.name} was trained on {row.dataset} {row.dataset_variant!r}, the local "
                       f"test set is {test.variant!r}: point --data-root at the same copy")
    test = test.subset(prof.n_test)
    acc = 100.0 * correct(model, test.x, test.y, prof.eval_batch_size) / len(test)
    fp = logits(model, fingerprint_images(dest, row.dataset, data_root)).tolist()
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        shutil.copyfile(pt, tmp)
        tmp.replace(out)
        atomic_write_text(json.dumps({**info, "fingerprint": fp, "clean_acc": acc,
                                      "fingerprint_device": device_name(torch.device("cpu"))},
                                     indent=1, sort_keys=True), out.with_suffix(".json"))
    except BaseException:
        tmp.unlink(missing_ok=True)
        out.unlink(missing_ok=True)
        raise
    return {"key": row.key, "name": row.name, "dataset": row.dataset, "profile": prof.name,
            "seed": int(cfg["seed"]), "dataset_variant": row.dataset_variant, "blackbox": row.blackbox,
            "depth": cfg["depth"], "method": cfg["method"], "clean_acc": round(acc, 4),
            "n_test": len(test), "bytes": out.stat().st_size, "sha256": info["sha256"],
            "file": out.relative_to(dest.weights).as_posix(), "git_commit": row.git_commit,
            "device": row.device, "torch_version": row.torch_version}


def publish(source: str | Path, profile: str, dataset: str | None = None, store: Store | None = None,
            data_root: str | Path | None = None, log=print) -> pd.DataFrame:
    """Publish what the store at ``source`` built under ``profile``: every finished model becomes
    published weights of ``store`` (default: the project's ``data/``), and every results row
    (records, curves, runs, robustness) is merged into ``store``'s results. Returns the manifest rows added.

    Refused, with nothing written: rows or models from uncommitted code; a row whose key is already
    published with another result (``VALUE_COLUMNS``: never overwritten); a folder that cannot be
    written or a disk without room for the files. One lock (in the store's cache) serialises
    publishes into one store, and the manifest and results are read again under it, so two publishes
    at once lose no row."""
    prof = profiles_mod.get(profile)
    if not prof.published:
        raise AktError(f"profile {profile!r} is not published (published: "
                       f"{', '.join(p.name for p in profiles_mod.PROFILES.values() if p.published)})")
    if dataset is not None:
        data_mod.spec(dataset)
    src, dest = Store(source), store or Store()
    if src.root.resolve() == dest.root.resolve():
        raise AktError(f"--from {source} is this store itself; publish from the store a build wrote")
    runs = src.read(profile, "runs")
    if not len(runs):
        raise AktError(f"no runs.csv rows under {src.results / profile}: nothing was built there under {profile!r}")
    commit_of = dict(zip(runs["key"], runs["git_commit"]))
    lock = dest.cache / "locks" / "publish.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with locked(lock):
        merged = _rows_to_merge(src, dest, profile, dataset, commit_of)  # every row checked before any write
        models = runs[(runs["kind"] == "model") & ((runs["dataset"] == dataset) if dataset else True)]
        have = dest.manifest()
        done = set(have["key"]) if len(have) else set()
        todo = [r for r in models.itertuples(index=False)
                if r.key not in done and (src.cache / "model" / f"{r.key}.pt").exists()]
        _check_space(dest, [src.cache / "model" / f"{r.key}.pt" for r in todo])
        added = []
        for row in todo:
            added.append(_copy_model(src, dest, row, prof, data_root))
            log(f"[publish] {row.dataset} {row.name} seed {added[-1]['seed']}: clean {added[-1]['clean_acc']:.2f} %, "
                f"{added[-1]['bytes']:,} bytes")
        if added:
            manifest = pd.concat([have, pd.DataFrame(added)], ignore_index=True) if len(have) else pd.DataFrame(added)
            manifest = manifest[list(MANIFEST_COLUMNS)].sort_values(["profile", "dataset", "seed", "name"], kind="stable")
            atomic_write_text(manifest.to_csv(index=False, float_format="%.6g", lineterminator="\n"),
                              dest.weights / WEIGHTS_MANIFEST)
        for what, rows in merged.items():
            old = dest.read(profile, what)
            if len(old):  # published rows stay as they are; only new keys (or filled-in values) are added
                keys = list(RESULT_FILES[what])
                same = rows.merge(old[keys], on=keys, how="left", indicator=True)["_merge"].eq("both").to_numpy()
                rows = pd.concat([rows[~same], _filled(old, rows[same], what)], ignore_index=True)
            dest.append(profile, what, rows.to_dict("records"), unique=RESULT_FILES[what])
    return pd.DataFrame(added, columns=list(MANIFEST_COLUMNS))


def _rows_to_merge(src: Store, dest: Store, profile: str, dataset: str | None,
                   commit_of: dict[str, str]) -> dict[str, pd.DataFrame]:
    """Every results file's rows of ``src`` to merge (only ``dataset``'s, if given), after checking them
    all: each names a clean commit (curves: their model's run's), none conflicts with a published row."""
    merged, conflicts = {}, []
    for what in RESULT_FILES:
        rows = src.read(profile, what)
        rows = rows[rows["dataset"] == dataset] if dataset and len(rows) else rows
        if not len(rows):
            continue
        commits = rows["git_commit"] if "git_commit" in rows else rows["key"].map(commit_of).fillna("unknown")
        for commit in commits.unique():
            _clean_commit(commit, f"{int((commits == commit).sum())} {what} rows")
        conflicts += _conflicts(dest.read(profile, what), rows, what)
        merged[what] = rows
    if conflicts:
        raise AktError("already published with another result (a published row is never overwritten; "
                       "publish into a rerun store instead): " + "; ".join(conflicts[:5])
                       + (f"; and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""))
    return merged


def _filled(old: pd.DataFrame, new: pd.DataFrame, what: str) -> pd.DataFrame:
    """The published rows of ``new``'s keys, with the values ``new`` fills in where they were empty."""
    if not len(new):
        return new
    keys = list(RESULT_FILES[what])
    base = old.merge(new[keys], on=keys)
    upd = new.set_index(keys)
    base = base.set_index(keys)
    for col in VALUE_COLUMNS[what]:
        if col in base and col in upd:
            base[col] = base[col].where(base[col].notna(), upd[col].reindex(base.index))
    return base.reset_index()
