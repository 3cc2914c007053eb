"""Results: scoring records and reading them back for a table or figure.

``score`` is the one loop behind every record, the paper's tables and the evaluations beyond the
paper alike: each adversarial set is crafted once (on a black-box source, or on the target for a
white-box attack) and every target that reads it is scored on it (Sec. 3.2's black-box protocol).
``require`` builds what a table group or the curves need (``compute=True``) and returns the stored
rows of the profile's current settings; ``select_stored`` leaves out rows of models trained under an
earlier definition of a profile (other keys).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
import torch.nn as nn

from . import AktError, check_choice
from . import choices as choices_mod
from . import data as data_mod
from . import profiles as profiles_mod
from .attacks import ATTACKS
from .evaluate import correct, craft
from .graph import (
    BLACKBOX,
    EVALUATIONS,
    GROUPS,
    STATIC_ALIASES,
    Experiment,
    Node,
    figure_variants,
    table_cells,
    table_for,
)
from .runner import Runner
from .store import Store


@dataclass
class AdversarialSet:
    """One crafted set and the records scored on it: ``attack`` maps the images (uint8 ``test.x``) to
    the evaluated images; ``source`` (loaded before the clock starts) is the model it is crafted on,
    None for clean images. ``rows`` are (target variant, the record's leading fields)."""

    test: data_mod.Split
    log: str = ""
    source: Callable[[], nn.Module] | None = None
    attack: Callable[[nn.Module | None, torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    rows: list[tuple[str, dict]] = field(default_factory=list)
    #: (model, images, labels) -> how many are right, where "right" is not the top-1 prediction
    #: (``forensics``: top-5, superclass); None: top-1 (``evaluate.correct``)
    count: Callable[[nn.Module, torch.Tensor, torch.Tensor], int] | None = None


def score(runner: Runner, csv: str, sets: list[AdversarialSet]) -> None:
    """Craft each set once, score every target on it, append the records to ``csv`` set by set.

    A record's ``wall_s`` is crafting (shared by its set) plus scoring; never the training of a model
    that had to be built first (that is in ``runs.csv``)."""
    e, bs = runner.exp, runner.exp.prof.eval_batch_size
    for s in sets:
        src = s.source() if s.source else None  # trained or loaded before the clock starts
        if s.log:
            runner.log(s.log)
        t0 = time.perf_counter()
        x_eval = s.test.x if s.attack is None else s.attack(src, s.test.x, s.test.y)
        craft_s = time.perf_counter() - t0
        rows = []
        for target, fields in s.rows:
            model = runner.target(target)
            t1 = time.perf_counter()
            k = s.count(model, x_eval, s.test.y) if s.count else correct(model, x_eval, s.test.y, bs, runner.bf16)
            rows.append({**fields, "accuracy": round(100.0 * k / len(s.test), 4), "correct": k,
                         "n_examples": len(s.test), "model_key": e.model(target).key,
                         **choices_mod.column(e.model(target).config),
                         **runner.provenance(wall_s=round(craft_s + time.perf_counter() - t1, 2))})
        runner.store.append(e.profile, csv, rows)


def missing_groups(runner: Runner, needs: list[tuple[str, str, int | None]]) -> list[tuple[str, int | None, list[str]]]:
    """The records of ``needs`` the store lacks, as (attack, source depth, targets): one crafted set each."""
    e = runner.exp
    have = runner.store.read(e.profile)
    have_keys = set(have["key"]) if len(have) else set()
    missing: dict[tuple[str, int | None], list[str]] = {}
    for target, attack, source in needs:
        if e.record_key(target, attack, source) not in have_keys:
            missing.setdefault((attack, source), []).append(target)
    return [(attack, source, list(dict.fromkeys(targets))) for (attack, source), targets in missing.items()]


def record_set(runner: Runner, attack: str, source: int | None, targets: list[str]) -> AdversarialSet:
    """The set of ``attack`` crafted on the black-box source of depth ``source`` (clean images for
    ``clean``) and the records of ``targets`` scored on it."""
    e = runner.exp
    rows = [(t, {"key": e.record_key(t, attack, source), "dataset": e.dataset, "model": t, "attack": attack,
                 "source": f"Res{source}" if source else "-",
                 "eps": round(e.eps, 6) if attack != "clean" else 0.0}) for t in targets]
    if attack == "clean":
        return AdversarialSet(runner.test, rows=rows)
    node = e.blackbox_source(source)
    return AdversarialSet(
        runner.test, f"[attack] {attack} on {node.name} over {len(runner.test)} test images",
        source=lambda: runner.model(node),
        attack=lambda m, x, y: craft(ATTACKS[attack], m, x, y, e.eps, e.prof.eval_batch_size),
        rows=rows)


def set_models(exp: Experiment, attack: str, source: int | None, targets: list[str]) -> tuple[Node, ...]:
    """The models ``record_set(attack, source, targets)`` reads: its targets and its black-box source."""
    return tuple(exp.model(t) for t in targets) + ((exp.blackbox_source(source),) if source else ())


def evaluate(runner: Runner, needs: list[tuple[str, str, int | None]], client=None) -> pd.DataFrame:
    """Records of the paper's tables for (target variant, attack, source depth) triples; scores the
    missing ones, crafting each (attack, source) once (``score``); with a Dask ``client``, each
    crafted set and its records as one task (``cluster.score``)."""
    e, p = runner.exp, runner.exp.profile
    groups = missing_groups(runner, needs)
    if client is not None and groups:
        from . import cluster

        cluster.score(runner, "records", [cluster.SetTask(record_set, g, set_models(e, *g), f"{g[0]}-{g[1]}")
                                          for g in groups], client)
    else:
        score(runner, "records", [record_set(runner, *g) for g in groups])
    out = runner.store.read(p)
    keys = {e.record_key(*n) for n in needs}
    return out[out["key"].isin(keys)].reset_index(drop=True)


def models_read(exp: Experiment, needs: list[tuple[str, str, int | None]], curves: bool) -> list[Node]:
    """The model nodes that scoring ``needs`` (and, with ``curves``, Figs. 3-4) reads: targets and
    black-box sources (their dependencies follow through ``walk``)."""
    roots = [exp.model(t) for t, _, _ in needs] + [exp.blackbox_source(s) for _, _, s in needs if s]
    if curves:
        roots += [exp.model(v) for v in figure_variants()]
    return roots


def keys_per_run(stored: pd.DataFrame, dataset: str, profile: str, blackbox: str,
                 keys_of: Callable[[Experiment], set[str]], choices=()) -> set[str]:
    """The union of ``keys_of(experiment)`` over every (seed, dataset variant) present in ``stored``."""
    keys: set[str] = set()
    for seed, variant in stored[["seed", "dataset_variant"]].drop_duplicates().itertuples(index=False):
        keys |= keys_of(Experiment(dataset, profile, int(seed), dataset_variant=str(variant), blackbox=blackbox,
                                   choices=choices))
    return keys


def current_keys(what: str, dataset: str, profile: str, stored: pd.DataFrame, blackbox: str = "held-out",
                 choices=()) -> set[str]:
    """Keys of the records (or, for ``curves``, the models) that ``what`` needs under the profile's
    current settings, for every (seed, dataset variant) present in ``stored``. Pure: no data is read."""
    return keys_per_run(stored, dataset, profile, blackbox, _keys_of(what, dataset), choices)


@lru_cache(maxsize=None)
def _keys_of(what: str, dataset: str) -> Callable[[Experiment], frozenset[str]]:
    """For one run (an Experiment): the keys of the records ``what`` needs, or of the models whose
    curves Figs. 3-4 draw. Pure, so remembered per run and profile definition: a book page asks for
    the same keys many times, and each costs hashing the run's whole graph."""
    if what == "curves":
        return _remembered(lambda e: frozenset(e.model(v).key for v in figure_variants()))
    groups = list(GROUPS) if what == "all" else [what] if what in GROUPS else []
    needs = [n for g in groups for n in table_cells(table_for(g, dataset))]
    return _remembered(lambda e: frozenset(e.record_key(*n) for n in needs))


def _remembered(keys: Callable[[Experiment], frozenset[str]]) -> Callable[[Experiment], frozenset[str]]:
    """``keys`` remembered per (run, the settings of its profile as now registered)."""
    memo = lru_cache(maxsize=256)(lambda exp, _settings: keys(exp))
    return lambda exp: memo(exp, repr(profiles_mod.get(exp.profile)))


def stored_seeds(profile: str, dataset: str, what: str = "records", store: Store | None = None) -> list[int]:
    """The seeds with stored ``what`` rows (``records`` or ``robustness``) of ``dataset`` under
    ``profile`` (none: [])."""
    df = (store or Store()).read(profile, what)
    return sorted(int(s) for s in df.loc[df["dataset"] == dataset, "seed"].unique()) if len(df) else []


def select_stored(df: pd.DataFrame, what: str, dataset: str, profile: str, seeds: list[int], blackbox: str,
                  dataset_variant: str | None, keys_of: Callable[[Experiment], set[str]],
                  choices=()) -> pd.DataFrame:
    """Stored rows of one dataset, seeds and black-box choice, of one dataset variant, whose keys are
    those of the profile's current settings and the unstated ``choices`` (``keys_of`` per run): rows
    of models trained under an earlier definition of the profile, or other choices, have other keys
    and are left out. (Curves belong to a model, whatever protocol later attacks it: their
    ``blackbox`` column is not filtered on.)"""
    if not len(df):
        return df
    df = df[(df["dataset"] == dataset) & (df["seed"].isin(seeds))]
    if what != "curves":  # a clean record is no attack: the same key and row under either protocol
        df = df[(df["blackbox"] == blackbox) | (df["source"] == "-")]
    if dataset_variant is not None:
        df = df[df["dataset_variant"] == dataset_variant]
    elif df["dataset_variant"].nunique() > 1:
        raise AktError(f"stored {what} for {dataset!r} ({profile}) come from several dataset variants; "
                       f"pass dataset_variant= one of: {', '.join(sorted(df['dataset_variant'].unique()))}")
    return df[df["key"].isin(keys_per_run(df, dataset, profile, blackbox, keys_of, choices))]


def check_request(what: str, valid, dataset: str, profile: str, blackbox: str, seeds, jobs: int = 1) -> list[int]:
    """The validation every ``require`` shares, before any work (``valid``: the results it builds);
    returns the seeds as ints."""
    if not (isinstance(jobs, int) and jobs >= 1):
        raise AktError(f"jobs={jobs!r}: give a whole number of processes, at least 1")
    check_choice("result", what, valid)
    data_mod.spec(dataset)
    profiles_mod.get(profile)
    check_choice("black-box source choice", blackbox, BLACKBOX)
    return [int(s) for s in seeds]


def require(what: str, dataset: str, profile: str, seeds=(0,), compute: bool = False,
            store: Store | None = None, data_root: str | Path | None = None, device: str | None = None,
            blackbox: str = "held-out", download: bool = False, progress: bool = True, log=print,
            dataset_variant: str | None = None, bf16: bool = False, jobs: int = 1, choices=(),
            cuda_graphs: bool = False, scheduler: str | None = None,
            targets: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Records (tables) or per-epoch curves (figures) for ``what`` on ``dataset`` under ``profile``:
    the one entry point for every result the book shows.

    ``what`` is a table group (``variants``, ``sources``, ``attacks``), ``curves`` (Figs. 3-4),
    ``all``, or an evaluation beyond the paper (``EVALUATIONS``, built by ``beyond.robustness``:
    ``targets`` narrows it to some models; it takes no unstated ``choices``).

    With ``compute=False`` only stored results are read (the book's mode: it never trains); with
    ``compute=True`` whatever the store lacks is built, and nothing else. Results of different
    dataset variants (e.g. lossless vs jpeg75) are never mixed: pass ``dataset_variant`` to choose.
    ``bf16``: bf16 autocast (``Runner``); ``cuda_graphs``: replay the training steps as CUDA
    graphs there. ``jobs`` > 1 builds independent models at once on a local Dask cluster of that many
    worker processes, ``scheduler`` on a running Dask scheduler (``cluster.build``). ``choices``:
    non-default unstated choices (``choices.CHOICES``, e.g. ``{"decay": "all"}``); only the models they
    touch are trained again.
    """
    if what in EVALUATIONS:
        from . import beyond

        if choices_mod.normalise(choices):
            raise AktError(f"unstated choices apply to {', '.join(GROUPS)}, curves and all, not to {what!r}")
        return beyond.robustness(what, dataset, profile, seeds, compute, store, data_root, device, blackbox,
                                 download, progress, log, dataset_variant, targets, bf16, jobs, scheduler,
                                 cuda_graphs)
    if targets is not None:
        raise AktError(f"targets apply to {', '.join(EVALUATIONS)}, not to {what!r}")
    seeds = check_request(what, (*GROUPS, "curves", "all"), dataset, profile, blackbox, seeds, jobs)
    choices = choices_mod.normalise(choices)
    store = store or Store()
    groups = list(GROUPS) if what == "all" else [what] if what in GROUPS else []
    if compute:
        for seed in seeds:
            runner = Runner(Experiment(dataset, profile, seed, blackbox=blackbox, choices=choices), store,
                            data_root, device, download, progress, log, bf16, cuda_graphs)
            needs = [n for g in groups for n in table_cells(table_for(g, dataset))]
            if jobs > 1 or scheduler is not None:  # the models, then each crafted set, as Dask tasks
                from . import cluster

                with cluster.client_for(jobs, scheduler) as client:
                    cluster.build(runner, models_read(runner.exp, needs, what in ("curves", "all")), jobs,
                                  scheduler, client=client)
                    if needs:
                        evaluate(runner, needs, client=client)
            elif needs:
                evaluate(runner, needs)
            if what in ("curves", "all"):
                for v in figure_variants():
                    runner.model(runner.exp.model(v))
    kind = "curves" if what == "curves" else "records"
    df = select_stored(store.read(profile, kind), kind, dataset, profile, seeds, blackbox, dataset_variant,
                       _keys_of(what, dataset), choices)
    if len(df):
        if kind == "curves":  # the clean Res8 is the static source model: show it under its variant name
            df = df.assign(model=df["model"].replace(STATIC_ALIASES))
            df = df[df["model"].isin(figure_variants())]
    if not len(df):
        raise AktError(f"no stored {kind} for {what!r} on {dataset!r} under profile {profile!r} (seeds {seeds}); "
                       f"compute them with `akt build {what} --dataset {dataset} --profile {profile}` "
                       "or `make reproduce`, or pass compute=True")
    return df.reset_index(drop=True)
