"""Beyond the paper: white-box PGD-20 and AutoAttack, and an eps sweep, on the paper's models.

The paper evaluates only black-box transfer attacks at one budget (eps = 16/256). A reader asks two
more questions, answered here with the same models, test data, store and provenance as the paper's
tables (records go to ``robustness.csv`` beside ``records.csv``, scored by ``results.score``, the loop of
the paper's tables):

``whitebox``
    Each target attacked on itself with PGD-20 (Madry et al. 2018: uniform random start, step eps/4,
    20 steps, the field's 2/255 at 8/255) and with AutoAttack (Croce & Hein 2020, torchattacks'
    implementation, ``attacks.autoattack``), at the paper's eps 16/256 and at the field's 8/255.
``autoattack``
    The standard AutoAttack (``AUTOATTACK_STANDARD``: 100 steps per gradient attack, as RobustBench
    reports it) on the paper's variants, on PGD-20's images at both budgets, beside the same chain
    with 10 steps on the same images (``AUTOATTACK_10``), so that the two compare like for like; the
    ``whitebox`` build's AutoAttack is that 10-step chain too, on fewer images.
``sweep``
    Accuracy against eps for FGSM and I-FGSM transferred from the held-out black-box Res26 (the
    paper's protocol, eps/5 x 5 steps) and for white-box PGD-20, so that a reader sees at which eps
    our models reach the paper's reported numbers (``report.matching_eps``).

White-box attacks run on ``profile.n_whitebox`` test images (AutoAttack on ``profile.n_autoattack``;
0 skips it), a fixed random subset shared by every target; AutoAttack's images are the first of
PGD-20's, and PGD-20 runs once more on exactly those (``PGD_ON_AA``), so the two compare like for
like. PGD's random start is seeded per (record, seed), so a record is a pure function of its key.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from . import AktError, check_choice, results
from . import data as data_mod
from . import profiles as profiles_mod
from .attacks import ATTACKS, EPS, autoattack, pgd
from .evaluate import craft
from .graph import (
    BEYOND_VARIANTS,
    EVALUATIONS,
    EXIT_BASES,
    EXIT_VARIANTS,
    RES8_VARIANTS,
    VARIANTS,
    Experiment,
    Node,
    exit_field,
)
from .results import AdversarialSet, check_request, score, select_stored
from .runner import Runner
from .store import Store, config_key

#: the paper's budget and the field's (RobustBench / AutoAttack convention on CIFAR)
WHITEBOX_EPS: dict[str, float] = {"16/256": EPS, "8/255": 8 / 255}
#: eps grid of the sweep, in 1/256 units as the paper writes its budget
SWEEP_EPS_256: tuple[int, ...] = (2, 4, 8, 16, 32, 64)
SWEEP_TRANSFER = ("FGSM", "I-FGSM")
#: the comparison beyond the paper: the paper's reference Res8 models, every later method, and each
#: exit of the multi-exit Res26(neo-kd) as an edge model of its own
COMPARE_TARGETS: tuple[str, ...] = ("Res8(cln)", "Res8(adv)", "Res8(adv-trans)",
                                    *(v for v in BEYOND_VARIANTS if v not in EXIT_BASES), *EXIT_VARIANTS)
#: the paper's columns in the comparison (Tables 2-4: clean and the four attacks from the held-out Res26)
COMPARE_PAPER_COLUMNS: tuple[tuple[str, int | None], ...] = (("clean", None),) + tuple((a, 26) for a in ATTACKS)
WHITEBOX_SOURCE = "white-box"


@dataclass(frozen=True)
class Need:
    """One record: ``target`` under ``attack`` at ``eps``, crafted on the held-out black-box source of
    depth ``source`` (transfer) or on the target itself (``source=None``, white-box)."""

    target: str
    attack: str
    source: int | None
    eps: float


Attack = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, float], torch.Tensor]


def pgd20(seed: int, device: torch.device) -> Attack:
    """White-box PGD-20: uniform random start, step eps/4 (= 2/255 at eps 8/255), 20 steps. One
    generator seeded with ``seed`` draws the starts of all batches in turn."""
    g = torch.Generator(device=device).manual_seed(seed)
    return lambda m, x, y, eps: pgd(m, x, y, eps, eps / 4, 20, random_start=True, generator=g)


def autoattack_std(seed: int, device: torch.device) -> Attack:
    """AutoAttack, standard version (see ``attacks.autoattack`` for its step counts)."""
    return lambda m, x, y, eps: autoattack(m, x, y, eps, seed=seed)


def autoattack_100(seed: int, device: torch.device) -> Attack:
    """AutoAttack with the original's 100 steps per gradient attack (RobustBench's standard)."""
    return lambda m, x, y, eps: autoattack(m, x, y, eps, seed=seed, steps=100)


#: the standard AutoAttack's record name: on ``n_whitebox`` images (PGD-20's), the ``autoattack`` build
AUTOATTACK_STANDARD = "AutoAttack-100"
#: the 10-step chain of the ``whitebox`` build's "AutoAttack", run by the ``autoattack`` build on the
#: standard's images: the two chains side by side on the same images
AUTOATTACK_10 = "AutoAttack-10 (PGD-20 images)"
#: PGD-20 again, on AutoAttack's (fewer) images: the control that makes the two comparable. AutoAttack
#: here runs 10 steps per gradient attack, not the original 100, on a subset of PGD-20's images; where
#: it reports a higher accuracy than PGD-20, this record says whether its images or its strength differ.
PGD_ON_AA = "PGD-20 (AA images)"
#: white-box attacks by record name: each maps (seed, device) to an attack (model, x, y, eps) -> x_adv
WHITEBOX_ATTACKS: dict[str, Callable[[int, torch.device], Attack]] = {"PGD-20": pgd20, "AutoAttack": autoattack_std,
                                                                      PGD_ON_AA: pgd20,
                                                                      AUTOATTACK_STANDARD: autoattack_100,
                                                                      AUTOATTACK_10: autoattack_std}
#: the ``autoattack`` build's records, on PGD-20's images
AUTOATTACK_BUILD = (AUTOATTACK_10, AUTOATTACK_STANDARD)
#: the records made on ``profile.n_autoattack`` test images (the first of PGD-20's ``n_whitebox``)
ON_AUTOATTACK_IMAGES = ("AutoAttack", PGD_ON_AA)


def needs(what: str, dataset: str, profile: str, targets: tuple[str, ...] | None = None) -> list[Need]:
    """Every robustness record ``what`` (``whitebox``, ``sweep`` or ``compare``) shows on ``dataset``
    under ``profile``, or only those of ``targets``."""
    check_choice("robustness result", what, EVALUATIONS)
    data_mod.spec(dataset)
    prof = profiles_mod.get(profile)
    out: list[Need] = []
    if what in ("whitebox", "compare"):
        every, aa = (VARIANTS, RES8_VARIANTS) if what == "whitebox" else (COMPARE_TARGETS, COMPARE_TARGETS)
        for words, eps in WHITEBOX_EPS.items():
            out += [Need(t, "PGD-20", None, eps) for t in every]
            if prof.n_autoattack and words in prof.autoattack_eps:
                out += [Need(t, a, None, eps) for t in aa for a in ON_AUTOATTACK_IMAGES]
    elif what == "autoattack":  # the standard AutoAttack and the 10-step chain on PGD-20's images, both budgets
        out += [Need(t, a, None, eps) for eps in WHITEBOX_EPS.values() for t in VARIANTS for a in AUTOATTACK_BUILD]
    else:
        for k in SWEEP_EPS_256:
            for t in VARIANTS:
                out += [Need(t, a, 26, k / 256) for a in SWEEP_TRANSFER] + [Need(t, "PGD-20", None, k / 256)]
    if targets is not None:
        for t in targets:
            check_choice("target", t, {n.target for n in out})
        out = [n for n in out if n.target in targets]
    return out


def paper_cells(what: str, targets: tuple[str, ...] | None = None) -> list[tuple[str, str, int | None]]:
    """The records of the paper's protocol (``records.csv``) that ``what`` shows: for ``compare``, the
    clean and transfer columns of Tables 2-4 for each compared model; nothing for the other groups."""
    if what != "compare":
        return []
    return [(t, a, s) for t in (targets or COMPARE_TARGETS) for a, s in COMPARE_PAPER_COLUMNS]


def n_examples(prof: profiles_mod.Profile, attack: str) -> int | None:
    return prof.n_autoattack if attack in ON_AUTOATTACK_IMAGES else prof.n_whitebox


def record_key(exp: Experiment, need: Need) -> str:
    src = exp.blackbox_source(need.source).key if need.source else WHITEBOX_SOURCE
    return config_key({"kind": "robustness", "target": exp.model(need.target).key, "attack": need.attack,
                       "source": src, "eps": round(need.eps, 8), "n": n_examples(exp.prof, need.attack),
                       **exit_field(need.target)})


def missing_sets(runner: Runner, todo: list[Need]) -> list[tuple[Need, ...]]:
    """The records of ``todo`` the store lacks, grouped by the set they are scored on: transfer sets
    are crafted once per (attack, source, eps) for every target, white-box sets once per target."""
    e = runner.exp
    have = runner.store.read(e.profile, "robustness")
    have_keys = set(have["key"]) if len(have) else set()
    groups: dict[tuple, list[Need]] = {}
    for nd in todo:
        if record_key(e, nd) not in have_keys:
            groups.setdefault((nd.attack, nd.source, nd.eps) if nd.source else (nd,), []).append(nd)
    return [tuple(members) for members in groups.values()]


def set_models(exp: Experiment, members: tuple[Need, ...]) -> tuple[Node, ...]:
    """The models ``record_set(members)`` reads: its targets and, for a transfer set, its source."""
    src = (exp.blackbox_source(members[0].source),) if members[0].source else ()
    return tuple(exp.model(nd.target) for nd in members) + src


def record_set(runner: Runner, members: tuple[Need, ...]) -> AdversarialSet:
    """The set ``members`` (one group of ``missing_sets``) are scored on, and their records' fields."""
    e, bs, nd0 = runner.exp, runner.exp.prof.eval_batch_size, members[0]
    test = runner.test.subset(n_examples(e.prof, nd0.attack))
    rows = [(nd.target, {"key": record_key(e, nd), "dataset": e.dataset, "model": nd.target, "attack": nd.attack,
                         "source": f"Res{nd.source}" if nd.source else WHITEBOX_SOURCE,
                         "eps": round(nd.eps, 6), "eps_256": round(nd.eps * 256, 3)}) for nd in members]
    if nd0.source:
        src = e.blackbox_source(nd0.source)
        return AdversarialSet(
            test, f"[attack] {nd0.attack} eps {nd0.eps:.4f} on {src.name} over {len(test)} test images",
            source=lambda: runner.model(src),
            attack=lambda m, x, y: craft(ATTACKS[nd0.attack], m, x, y, nd0.eps, bs), rows=rows)
    seed = int(record_key(e, nd0)[:8], 16)  # random starts: a pure function of the record
    return AdversarialSet(
        test, f"[attack] white-box {nd0.attack} eps {nd0.eps:.4f} on {nd0.target} over {len(test)} test images",
        source=lambda: runner.target(nd0.target),
        attack=lambda m, x, y: craft(WHITEBOX_ATTACKS[nd0.attack](seed, runner.device), m, x, y, nd0.eps, bs),
        rows=rows)


def evaluate(runner: Runner, todo: list[Need], client=None) -> pd.DataFrame:
    """Records beyond the paper for ``todo``; computes (and trains, through ``runner``) only what is
    missing, with the loop of the paper's tables (``results.score``), or with a Dask ``client`` each
    crafted set as one task (``cluster.score``)."""
    e, store, p = runner.exp, runner.store, runner.exp.profile
    sets = missing_sets(runner, todo)
    if client is not None and sets:
        from . import cluster

        cluster.score(runner, "robustness", [cluster.SetTask(record_set, (m,), set_models(e, m),
                                                             f"{m[0].attack}-{m[0].eps:.4f}") for m in sets], client)
    else:
        score(runner, "robustness", [record_set(runner, m) for m in sets])
    out = store.read(p, "robustness")
    keys = {record_key(e, nd) for nd in todo}
    return out[out["key"].isin(keys)].reset_index(drop=True) if len(out) else out


def robustness(what: str, dataset: str, profile: str, seeds=(0,), compute: bool = False,
               store: Store | None = None, data_root: str | Path | None = None, device: str | None = None,
               blackbox: str = "held-out", download: bool = False, progress: bool = True, log=print,
               dataset_variant: str | None = None, targets: tuple[str, ...] | None = None,
               bf16: bool = False, jobs: int = 1, scheduler: str | None = None,
               cuda_graphs: bool = False) -> pd.DataFrame:
    """Stored robustness records of ``what`` (``EVALUATIONS``), or only those of ``targets``; with
    ``compute=True`` the missing ones are built first. Called by ``results.require``, the one entry
    point for every result.

    ``jobs`` > 1 (a local Dask cluster) or ``scheduler`` (a running one): the models they read are
    built as Dask tasks first (``cluster.build``), then each crafted set with its records is one task.

    ``compare`` also returns the clean and transfer records of the compared models (from
    ``records.csv``, the paper's protocol on the full test set; their ``source`` is ``Res26`` or
    ``-``), and every row carries ``train_s``, the wall time of training its model (``runs.csv``)."""
    seeds = check_request(what, EVALUATIONS, dataset, profile, blackbox, seeds, jobs)
    store = store or Store()
    todo = needs(what, dataset, profile, targets)
    paper = paper_cells(what, targets)
    if compute:
        for seed in seeds:
            runner = Runner(Experiment(dataset, profile, seed, blackbox=blackbox), store, data_root, device,
                            download, progress, log, bf16, cuda_graphs)
            if jobs > 1 or scheduler is not None:
                from . import cluster

                roots = [n for nd in todo for n in set_models(runner.exp, (nd,))]
                with cluster.client_for(jobs, scheduler) as client:
                    cluster.build(runner, roots + results.models_read(runner.exp, paper, False), jobs, scheduler,
                                  client=client)
                    if paper:
                        results.evaluate(runner, paper, client=client)
                    evaluate(runner, todo, client=client)
                continue
            if paper:
                results.evaluate(runner, paper)
            evaluate(runner, todo)
    df = select_stored(store.read(profile, "robustness"), "robustness records", dataset, profile, seeds, blackbox,
                       dataset_variant, lambda exp: {record_key(exp, nd) for nd in todo})
    if paper:
        recs = select_stored(store.read(profile, "records"), "records", dataset, profile, seeds, blackbox,
                             dataset_variant, lambda exp: {exp.record_key(*n) for n in paper})
        if len(recs):
            recs = recs.assign(eps_256=recs["eps"] * 256)
            df = pd.concat([recs, df], ignore_index=True) if len(df) else recs
        if len(df):
            runs = store.read(profile, "runs")
            wall = dict(zip(runs["key"], runs["wall_s"])) if len(runs) else {}
            df = df.assign(train_s=df["model_key"].map(wall))
    if not len(df):
        raise AktError(f"no stored robustness records for {what!r} on {dataset!r} under profile {profile!r} "
                       f"(seeds {seeds}); compute them with `akt build {what} --dataset {dataset} --profile "
                       f"{profile}` or pass compute=True")
    return df.reset_index(drop=True)
