"""Published weights: the finished models of published profiles, committed with the project (a model
zoo, as RobustBench and torchdistill publish theirs).

Layout under the store root (``data/`` in the project)::

    weights/manifest.csv                       one row per published model (MANIFEST_COLUMNS)
    weights/<profile>/<dataset>/<key>.pt       its state dict: byte for byte the cache entry its build saved
    weights/<profile>/<dataset>/<key>.json     the cache sidecar (config, sha256, provenance) + fingerprint
    weights/fingerprints/<dataset>.pt          the fixed test images every fingerprint is computed on

The published file *is* the checkpoint every stored record of the model was scored with (float32, no
rounding), so each record can be recomputed from it exactly on the machine kind that made it. The
store reads this tier before its cache (``Store.load``): a build whose models are all published
trains nothing, and a damaged file is an error, never retrained over.

``load("Res8(adv-trans)", dataset="cifar10", profile="full-data")`` returns a model in eval mode
that takes images in [0, 1] (RobustBench's convention); ``akt weights`` lists what is published.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn

from . import AktError, check_choice
from . import data as data_mod
from . import methods as methods_mod
from . import profiles as profiles_mod
from .evaluate import correct, logits
from .models import ExitView, for_dataset
from .provenance import from_dirty_tree
from .store import WEIGHTS_MANIFEST, Store, atomic_torch_save, atomic_write_text, sha256_file

MANIFEST_COLUMNS = ("key", "name", "dataset", "profile", "seed", "dataset_variant", "blackbox", "depth", "method",
                    "clean_acc", "n_test", "bytes", "sha256", "file", "git_commit", "device", "torch_version")
N_FINGERPRINT = 8  #: test images whose logits fingerprint a model
#: the variant names of the paper whose model is a static source (the same node)
ALIASES = {"Res26(cln)": "static:Res26", "Res8(cln)": "static:Res8"}
#: results files merged by ``publish`` and the columns that identify a row in each
RESULT_FILES = {"records": ("key",), "curves": ("key", "epoch"), "runs": ("key",), "robustness": ("key",)}
#: the total size the tracked weights must stay under (issue 40: the tracked tree may grow to 100 MiB;
#: this leaves room for the code, the results and the book)
SIZE_LIMIT_BYTES = 90 * 2**20


def model_for(dataset: str, depth: int, method: str) -> nn.Module:
    """A fresh model of ``depth`` for ``dataset`` (multi-exit where the method trains one)."""
    return for_dataset(data_mod.spec(dataset), depth, methods_mod.get(method).multi_exit)


def fingerprint_images(store: Store, dataset: str, data_root: str | Path | None = None) -> torch.Tensor:
    """The ``N_FINGERPRINT`` fixed test images of ``dataset`` (uint8), kept with the weights so that a
    fingerprint can be checked without the dataset; taken from the test split the first time."""
    path = store.weights / "fingerprints" / f"{dataset}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)["x"]
    test = data_mod.load(dataset, "test", data_root)
    idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:N_FINGERPRINT]
    atomic_torch_save({"x": test.x[idx].clone(), "index": idx, "dataset_variant": test.variant}, path)
    return test.x[idx]


def _clean_commit(commit: str, what: str) -> None:
    if from_dirty_tree(commit):
        raise AktError(f"{what} was made by code at commit {commit!r}: only rows and models from committed "
                       "code are published (commit, rebuild, then publish)")


def publish(source: str | Path, profile: str, dataset: str | None = None, store: Store | None = None,
            data_root: str | Path | None = None, log=print) -> pd.DataFrame:
    """Publish what the store at ``source`` built under ``profile``: every finished model becomes
    published weights of ``store`` (default: the project's ``data/``), and every results row
    (records, curves, runs, robustness) is merged into ``store``'s results. Only rows and models made
    from committed code are taken. Returns the manifest rows added."""
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
    merged = {}
    for what in RESULT_FILES:  # every row is checked before anything is written
        rows = src.read(profile, what)
        rows = rows[rows["dataset"] == dataset] if dataset and len(rows) else rows
        if not len(rows):
            continue
        # curves name no commit of their own: they are the commit of their model's run
        commits = rows["git_commit"] if "git_commit" in rows else rows["key"].map(commit_of).fillna("unknown")
        for commit in commits.unique():
            _clean_commit(commit, f"{int((commits == commit).sum())} {what} rows")
        merged[what] = rows
    runs = runs[(runs["kind"] == "model") & ((runs["dataset"] == dataset) if dataset else True)]
    have = dest.manifest()
    done = set(have["key"]) if len(have) else set()
    added = []
    for row in runs.itertuples(index=False):
        pt, meta = src.cache / "model" / f"{row.key}.pt", src.cache / "model" / f"{row.key}.json"
        if row.key in done or not pt.exists():
            continue
        _clean_commit(row.git_commit, f"model {row.name} ({row.key})")
        info = json.loads(meta.read_text())
        if info.get("sha256") != sha256_file(pt):
            raise AktError(f"cache entry {pt} does not match its sidecar's sha256; rebuild it before publishing")
        cfg = info["config"]
        out = dest.weights / profile / row.dataset / f"{row.key}.pt"
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
        shutil.copyfile(pt, tmp)
        tmp.replace(out)
        atomic_write_text(json.dumps({**info, "fingerprint": fp, "clean_acc": acc}, indent=1, sort_keys=True),
                          out.with_suffix(".json"))
        added.append({"key": row.key, "name": row.name, "dataset": row.dataset, "profile": profile,
                      "seed": int(cfg["seed"]), "dataset_variant": row.dataset_variant, "blackbox": row.blackbox,
                      "depth": cfg["depth"], "method": cfg["method"], "clean_acc": round(acc, 4),
                      "n_test": len(test), "bytes": out.stat().st_size, "sha256": info["sha256"],
                      "file": out.relative_to(dest.weights).as_posix(), "git_commit": row.git_commit,
                      "device": row.device, "torch_version": row.torch_version})
        log(f"[publish] {row.dataset} {row.name} seed {cfg['seed']}: clean {acc:.2f} %, {out.stat().st_size:,} bytes")
    if added:
        manifest = pd.concat([have, pd.DataFrame(added)], ignore_index=True) if len(have) else pd.DataFrame(added)
        manifest = manifest[list(MANIFEST_COLUMNS)].sort_values(["profile", "dataset", "seed", "name"], kind="stable")
        atomic_write_text(manifest.to_csv(index=False, float_format="%.6g", lineterminator="\n"),
                          dest.weights / WEIGHTS_MANIFEST)
    for what, rows in merged.items():
        dest.append(profile, what, rows.to_dict("records"), unique=RESULT_FILES[what])
    return pd.DataFrame(added, columns=list(MANIFEST_COLUMNS))


def published(store: Store | None = None, profile: str | None = None, dataset: str | None = None) -> pd.DataFrame:
    """The manifest (optionally of one profile and dataset)."""
    m = (store or Store()).manifest()
    if not len(m):
        return pd.DataFrame(columns=list(MANIFEST_COLUMNS))
    if profile is not None:
        m = m[m["profile"] == profile]
    if dataset is not None:
        m = m[m["dataset"] == dataset]
    return m.reset_index(drop=True)


def load(name: str, dataset: str, profile: str, seed: int = 0, blackbox: str = "held-out",
         dataset_variant: str | None = None, store: Store | None = None) -> nn.Module:
    """A published model in eval mode, taking images in [0, 1]: a paper variant (``Res8(adv-trans)``),
    a later method, an exit (``Res26(neo-kd)/exit1``) or a source (``static:Res20``, ``heldout:Res26``).
    Its SHA-256 is checked against the manifest; the model is the exact one the records scored."""
    from .graph import ALL_VARIANTS

    store = store or Store()
    exit_k = None
    if name in ALL_VARIANTS and ALL_VARIANTS[name].exit is not None:
        exit_k, name = ALL_VARIANTS[name].exit, ALL_VARIANTS[name].base
    node_name = ALIASES.get(name, name)
    m = published(store, profile, dataset)
    if not len(m):
        raise AktError(f"no published weights for {dataset!r} under profile {profile!r}; "
                       f"published: {_summary(published(store))}")
    check_choice("published model", node_name, sorted(set(m["name"])) + sorted(a for a, n in ALIASES.items()
                                                                                 if n in set(m["name"])))
    rows = m[(m["name"] == node_name) & (m["seed"] == seed) & (m["blackbox"] == blackbox)]
    if dataset_variant is not None:
        rows = rows[rows["dataset_variant"] == dataset_variant]
    if not len(rows):
        seeds = sorted(m.loc[m["name"] == node_name, "seed"].unique())
        raise AktError(f"{name} ({dataset}, {profile}) is not published for seed {seed}, black-box {blackbox!r}; "
                       f"published seeds: {', '.join(map(str, seeds))}")
    if len(rows) > 1:
        raise AktError(f"{name} ({dataset}, {profile}, seed {seed}) is published for several dataset variants; "
                       f"pass dataset_variant= one of: {', '.join(sorted(rows['dataset_variant']))}")
    row = rows.iloc[0]
    model = model_for(dataset, int(row["depth"]), row["method"])
    model.load_state_dict(store.load_published(row["key"]))
    model.eval()
    return ExitView(model, exit_k).eval() if exit_k is not None else model


def check(store: Store | None = None) -> pd.DataFrame:
    """Every published model against its manifest row: file present, SHA-256, and the fingerprint (its
    logits on ``weights/fingerprints/<dataset>.pt``). One row per model with the largest logit difference."""
    store = store or Store()
    rows = []
    for r in published(store).itertuples(index=False):
        model = load(r.name, r.dataset, r.profile, int(r.seed), r.blackbox, r.dataset_variant, store)
        want = torch.tensor(json.loads((store.weights / r.file).with_suffix(".json").read_text())["fingerprint"])
        got = logits(model, fingerprint_images(store, r.dataset))
        rows.append({"name": r.name, "dataset": r.dataset, "profile": r.profile, "seed": r.seed,
                     "max_abs_diff": float((got - want).abs().max()), "exact": bool(torch.equal(got, want))})
    return pd.DataFrame(rows, columns=["name", "dataset", "profile", "seed", "max_abs_diff", "exact"])


def _summary(m: pd.DataFrame) -> str:
    if not len(m):
        return "none"
    return ", ".join(f"{d} ({p}): {n}" for (p, d), n in m.groupby(["profile", "dataset"]).size().items())
