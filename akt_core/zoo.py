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
that takes images in [0, 1] (RobustBench's convention); ``akt weights`` lists what is published,
``publish`` (its own module) adds a build's models, ``fetch`` downloads them outside a checkout.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
import torch.nn as nn

from . import AktError, check_choice
from . import data as data_mod
from . import methods as methods_mod
from . import profiles as profiles_mod
from .beyond import AUTOATTACK_STANDARD
from .evaluate import logits
from .graph import STATIC_ALIASES, VARIANTS, Experiment
from .models import ExitView, for_dataset
from .provenance import device_name, machine_kind
from .store import WEIGHTS_MANIFEST, Store, atomic_torch_save, atomic_write_text, read_sidecar, sha256_file

MANIFEST_COLUMNS = ("key", "name", "dataset", "profile", "seed", "dataset_variant", "blackbox", "depth", "method",
                    "clean_acc", "n_test", "bytes", "sha256", "file", "git_commit", "device", "torch_version")
N_FINGERPRINT = 8  #: test images whose logits fingerprint a model
#: the variant names of the paper whose model is a static source (the same node): ``graph.STATIC_ALIASES`` turned round
ALIASES = {variant: node for node, variant in STATIC_ALIASES.items()}
#: the total size the tracked weights must stay under (issue 40: the tracked tree may grow to 100 MiB;
#: this leaves room for the code, the results and the book)
SIZE_LIMIT_BYTES = 90 * 2**20


def model_for(dataset: str, depth: int, method: str) -> nn.Module:
    """A fresh model of ``depth`` for ``dataset`` (multi-exit where the method trains one)."""
    return for_dataset(data_mod.spec(dataset), depth, methods_mod.get(method).multi_exit)


FINGERPRINT_SUMS = "SHA256SUMS"  #: under ``weights/fingerprints``: the fingerprint images' checksums
#: a fingerprint made on another machine kind matches when every logit is within this and every argmax agrees
#: (other CPUs' kernels differ in the last bits: 2-4e-6 seen between an Intel Xeon and an AMD EPYC)
FINGERPRINT_ATOL = 1e-4
#: manifest column -> where the model's sidecar says the same (the row is checked against it before a load)
SIDECAR_FIELDS = {"key": ("key",), "name": ("config", "name"), "dataset": ("config", "dataset"),
                  "seed": ("config", "seed"), "method": ("config", "method"), "depth": ("config", "depth"),
                  "profile": ("provenance", "profile"), "sha256": ("sha256",)}


def _sums(store: Store) -> dict[str, str]:
    path = store.weights / "fingerprints" / FINGERPRINT_SUMS
    if not path.exists():
        return {}
    return dict(reversed(line.split(maxsplit=1)) for line in path.read_text().splitlines() if line.strip())


def fingerprint_images(store: Store, dataset: str, data_root: str | Path | None = None) -> torch.Tensor:
    """The ``N_FINGERPRINT`` fixed test images of ``dataset`` (uint8), kept with the weights so that a
    fingerprint can be checked without the dataset; taken from the test split the first time, and
    checked against ``fingerprints/SHA256SUMS`` every time after."""
    folder = store.weights / "fingerprints"
    path = folder / f"{dataset}.pt"
    if path.exists():
        want = _sums(store).get(path.name)
        if want is None or sha256_file(path) != want:
            raise AktError(f"the fingerprint images {path} do not match {folder / FINGERPRINT_SUMS} "
                           f"({'no entry' if want is None else 'another sha256'}): damaged or replaced; restore "
                           "them (git checkout -- data/weights)")
        return torch.load(path, weights_only=True)["x"]
    test = data_mod.load(dataset, "test", data_root)
    idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:N_FINGERPRINT]
    atomic_torch_save({"x": test.x[idx].clone(), "index": idx, "dataset_variant": test.variant}, path)
    sums = {**_sums(store), path.name: sha256_file(path)}
    atomic_write_text("".join(f"{h}  {n}\n" for n, h in sorted(sums.items())), folder / FINGERPRINT_SUMS)
    return test.x[idx]


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


def progress(store: Store | None = None) -> pd.DataFrame:
    """How far each published profile and dataset's training has come: one row per (profile, dataset)
    with weights, its main ``seeds`` (a held-out source's seed less ``Experiment.heldout_offset``), the
    models ``akt build all`` trains for them (``Experiment.models_to_train``, held-out black box), and
    how many of those are published. A dataset trained across sessions shows here before it has any
    scores."""
    m, offset = published(store), Experiment.heldout_offset
    rows = []
    for (profile, dataset), g in m.groupby(["profile", "dataset"], sort=False):
        heldout = g["name"].str.startswith("heldout:")
        seeds = sorted({int(s) for s in g.loc[~heldout, "seed"]} | {int(s) - offset for s in g.loc[heldout, "seed"]})
        variant = str(g["dataset_variant"].iloc[0])
        planned = {n.key for seed in seeds
                   for n in Experiment(dataset, profile, seed, dataset_variant=variant).models_to_train()}
        rows.append({"profile": profile, "dataset": dataset, "seeds": seeds, "planned": len(planned),
                     "done": len(planned & set(g["key"]))})
    return pd.DataFrame(rows, columns=["profile", "dataset", "seeds", "planned", "done"])


def check_row(store: Store, row) -> dict:
    """The sidecar of the manifest row ``row`` after checking that both describe the same model
    (``SIDECAR_FIELDS``): a manifest whose names were swapped would load another model."""
    sidecar = (store.weights / row["file"]).with_suffix(".json")
    info = read_sidecar(sidecar)
    for col, path in SIDECAR_FIELDS.items():
        value = info
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if str(value) != str(row[col]):
            raise AktError(f"{store.weights / WEIGHTS_MANIFEST}: the row of {row['name']} ({row['dataset']}, "
                           f"{row['profile']}, seed {row['seed']}) says {col} = {row[col]!r}, its file's sidecar "
                           f"{sidecar} says {value!r}: the manifest does not describe that file; restore it "
                           "(git checkout -- data/weights)")
    return info


def _seed(seed) -> int:
    try:
        if isinstance(seed, bool) or int(seed) != float(seed) or int(seed) < 0:
            raise ValueError
        return int(seed)
    except (TypeError, ValueError):
        raise AktError(f"seed {seed!r} is not a seed: give a whole number >= 0") from None


def best_profile(name: str, dataset: str, store: Store | None = None) -> str:
    """The published profile with the most training behind it (the last of ``profiles.PROFILES``) that
    has ``name`` on ``dataset``."""
    m = published(store)
    node = ALIASES.get(name, name)
    have = set(m.loc[(m["dataset"] == dataset) & (m["name"] == node), "profile"]) if len(m) else set()
    for p in reversed(profiles_mod.PROFILES):
        if p in have:
            return p
    raise AktError(f"{name} is not published for {dataset!r} under any profile; published: {_summary(m)}")


def _fetch_root() -> Path | None:
    """The root of the store of downloaded weights, where ``load`` may fetch a missing file."""
    from . import fetch

    try:
        return fetch.cache_root()
    except Exception:  # noqa: BLE001 - no cache folder: nothing is ever fetched
        return None


def load(name: str, dataset: str, profile: str | None = None, seed: int = 0, blackbox: str = "held-out",
         dataset_variant: str | None = None, store: Store | None = None) -> nn.Module:
    """A published model in eval mode, taking images in [0, 1]: a paper variant (``Res8(adv-trans)``),
    a later method, an exit (``Res26(neo-kd)/exit1``) or a source (``static:Res20``, ``heldout:Res26``).
    ``profile`` defaults to the best one it is published under (``best_profile``). Without a ``store``
    and outside a checkout the files are fetched on demand (``fetch``). Its manifest row is checked
    against its sidecar and its SHA-256 against the manifest; the model is the exact one the records
    scored."""
    from .graph import ALL_VARIANTS

    if store is None:  # the project's store; an installed package without one fetches (``fetch``)
        store = Store()
        if not len(store.manifest()):
            from . import fetch

            store = fetch.remote_store()
    seed = _seed(seed)
    exit_k = None
    if name in ALL_VARIANTS and ALL_VARIANTS[name].exit is not None:
        exit_k, name = ALL_VARIANTS[name].exit, ALL_VARIANTS[name].base
    node_name = ALIASES.get(name, name)
    profile = profile if profile is not None else best_profile(node_name, dataset, store)
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
    if not (store.weights / row["file"]).exists() and store.root == _fetch_root():
        from . import fetch

        fetch.model_files(store, row)
    check_row(store, row)
    model = model_for(dataset, int(row["depth"]), row["method"])
    model.load_state_dict(store.load_published(row["key"]))
    model.eval()
    return ExitView(model, exit_k).eval() if exit_k is not None else model


def check(store: Store | None = None) -> pd.DataFrame:
    """Every published model against its manifest row and sidecar: file present, SHA-256, the same
    model named in both, and the fingerprint (its logits on ``weights/fingerprints/<dataset>.pt``):
    exact on the machine kind that made it, within ``FINGERPRINT_ATOL`` with every argmax equal on
    another. One row per model: ``result`` says which, or why it failed; ``ok``."""
    store = store or Store()
    here = machine_kind(device_name(torch.device("cpu")))
    rows = []
    for r in published(store).to_dict("records"):
        out = {"name": r["name"], "dataset": r["dataset"], "profile": r["profile"], "seed": r["seed"],
               "file": r["file"], "max_abs_diff": float("nan"), "ok": False}
        try:
            info = check_row(store, r)
            model = load(r["name"], r["dataset"], r["profile"], int(r["seed"]), r["blackbox"], r["dataset_variant"], store)
            want = torch.tensor(info["fingerprint"])
            got = logits(model, fingerprint_images(store, r["dataset"]))
            diff = float((got - want).abs().max())
            made = info.get("fingerprint_device")
            same_kind = made is not None and machine_kind(made) == here
            out["max_abs_diff"] = diff
            if torch.equal(got, want):
                out.update(result="exact", ok=True)
            elif same_kind:
                out["result"] = f"FAILED: not exact on the machine kind that made it ({here})"
            elif diff <= FINGERPRINT_ATOL and torch.equal(got.argmax(1), want.argmax(1)):
                out.update(result=f"within {FINGERPRINT_ATOL:g}, argmax equal (fingerprinted on "
                                  f"{machine_kind(made) if made else 'an unrecorded machine'})", ok=True)
            else:
                out["result"] = f"FAILED: fingerprint differs by {diff:.3g} (argmax equal: " \
                                f"{bool(torch.equal(got.argmax(1), want.argmax(1)))})"
        except AktError as exc:
            out["result"] = f"FAILED: {exc}"
        rows.append(out)
    return pd.DataFrame(rows, columns=["name", "dataset", "profile", "seed", "file", "max_abs_diff", "result", "ok"])


#: what ``summary`` shows of each published model beside its manifest row: (column, results file, attack,
#: source, eps in 1/256 or None): the paper's protocol (transfer from the held-out Res26 at 16/256) and
#: white-box PGD-20 and AutoAttack (torchattacks' standard version shortened to 10 iterations per attack)
SUMMARY_COLUMNS = (("FGSM transfer", "records", "FGSM", "Res26", None),
                   ("I-FGSM transfer", "records", "I-FGSM", "Res26", None),
                   ("PGD-20 @ 16/256", "robustness", "PGD-20", "white-box", 16.0),
                   ("PGD-20 @ 8/255", "robustness", "PGD-20", "white-box", 8 / 255 * 256),
                   ("AutoAttack (10 it.) @ 16/256", "robustness", "AutoAttack", "white-box", 16.0),
                   ("AutoAttack (100 it.) @ 8/255", "robustness", AUTOATTACK_STANDARD, "white-box", 8 / 255 * 256))


def summary(store: Store | None = None) -> pd.DataFrame:
    """Every published model with what the stored results say of it, joined on its key (records'
    ``model_key``): name (the paper's variant name where the node has one), dataset, profile, seed,
    clean accuracy, the ``SUMMARY_COLUMNS`` (NaN where not evaluated), size, sha256 and file."""
    store = store or Store()
    m = published(store)
    if not len(m):
        return pd.DataFrame()
    alias = {v: k for k, v in ALIASES.items()}
    out = m.assign(model=m["name"].map(lambda n: alias.get(n, n)), MiB=(m["bytes"] / 2**20).round(2))
    for column, what, attack, source, eps in SUMMARY_COLUMNS:
        values = {}
        for profile in out["profile"].unique():
            rows = store.read(profile, what)
            if not len(rows):
                continue
            sel = rows[(rows["attack"] == attack) & (rows["source"] == source) & (rows["blackbox"] == "held-out")]
            if eps is not None:
                sel = sel[(sel["eps_256"] - eps).abs() < 1e-3]
            values.update(sel.groupby("model_key")["accuracy"].mean().to_dict())
        out[column] = out["key"].map(values)
    cols = ["model", "dataset", "profile", "seed", "clean_acc", *(c[0] for c in SUMMARY_COLUMNS), "MiB", "sha256", "file"]
    return reading_order(out[cols].rename(columns={"clean_acc": "clean"}))


def reading_order(df: pd.DataFrame) -> pd.DataFrame:
    """Rows grouped by profile and dataset (in the manifest's order of first appearance), then by seed,
    and within a seed the paper's variants in its tables' order, later methods, static and held-out
    sources last."""
    def rank(model: str) -> tuple:
        if model in VARIANTS:
            return 0, list(VARIANTS).index(model), model
        return 1 + model.startswith("static:") + 2 * model.startswith("heldout:"), 0, model

    first = {c: {v: i for i, v in enumerate(dict.fromkeys(df[c]))} for c in ("profile", "dataset")}
    order = sorted(range(len(df)), key=lambda i: (first["profile"][df["profile"].iat[i]],
                                                  first["dataset"][df["dataset"].iat[i]],
                                                  int(df["seed"].iat[i]), rank(df["model"].iat[i])))
    return df.iloc[order].reset_index(drop=True)


def summary_markdown(store: Store | None = None, link_prefix: str = "../data/weights/") -> str:
    """``summary`` as Markdown for the book, one table per profile and dataset: accuracies in %, a dash
    where not evaluated, and a download link to each file named by its sha256's first 12 digits
    (``link_prefix`` leads from the page to ``data/weights``)."""
    df = summary(store)
    if not len(df):
        return "**No published weights yet.**\n"
    short = {"FGSM transfer": "FGSM", "I-FGSM transfer": "I-FGSM", "PGD-20 @ 16/256": "PGD-20 16/256",
             "PGD-20 @ 8/255": "PGD-20 8/255", "AutoAttack (10 it.) @ 16/256": "AA (10 it.) 16/256",
             "AutoAttack (100 it.) @ 8/255": "AA (standard) 8/255"}
    head = [c for c in df.columns if c not in ("dataset", "profile", "sha256", "file")]
    parts = []
    for (profile, dataset), g in df.groupby(["profile", "dataset"], sort=False):
        lines = [f"## {data_mod.spec(dataset).title}, `{profile}` profile", "",
                 "| " + " | ".join([*(short.get(c, c) for c in head), "download (sha256)"]) + " |",
                 "|" + "---|" * (len(head) + 1)]
        for r in g.to_dict("records"):
            cells = ["–" if pd.isna(r[c]) else f"{r[c]:.2f}" if isinstance(r[c], float) else str(r[c]) for c in head]
            lines.append("| " + " | ".join([*cells, f"{{download}}`{r['sha256'][:12]} <{link_prefix}{r['file']}>`"])
                         + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def _summary(m: pd.DataFrame) -> str:
    if not len(m):
        return "none"
    return ", ".join(f"{d} ({p}): {n}" for (p, d), n in m.groupby(["profile", "dataset"]).size().items())
