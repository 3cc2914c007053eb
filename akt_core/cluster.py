"""Building the experiment graph on Dask distributed: ``akt build --jobs N`` (a local cluster of N
worker processes) or ``--scheduler ADDRESS`` (a running Dask scheduler: a Slurm/PBS cluster through
``dask-jobqueue``, or several GPU boxes each running ``dask worker``).

Each cached node (a model, D_adv, teacher logits) is one Dask task; its dependencies' tasks are its
arguments, so Dask starts it once they are done, on any worker, and runs a lost worker's task again
elsewhere. A node is a pure function of its config, so where and when it runs changes nothing but the
wall time: on the CPU the stored tensors and rows are bit-for-bit those of the serial build (each
worker uses the client's thread count).

Workers need no shared file system. A task receives its direct dependencies' payloads (from the
tasks that built them, or read from the client's store, published weights included), builds its node
in a private temporary store with the ordinary ``runner.Runner``, and returns what it built: the
payload, its provenance and the result rows it wrote. The client is the one writer of the real store,
through the same ``Store.append`` and ``Store.save`` (rows first, then the artefact), so a failure
anywhere leaves no artefact without its rows. Every worker must run the client's code (checked:
``provenance.code_digest``) and find the dataset under the same data root or ``$AKT_DATA_ROOT``.

GPUs: a task that trains on CUDA asks for one ``GPU`` resource, so a worker started with
``--resources GPU=1`` (one per GPU, each with its ``CUDA_VISIBLE_DEVICES``) runs one at a time.

What Dask does not do, kept here: the graph walk (``graph.walk``), the one writer, and one soft
dependency. A model's curve source (heldout:Res26) only scores its per-epoch adversarial curve, never
enters its training (``runner.start_deps``), so the static sources train beside it instead of after
it, which takes one Res26 off the critical path (issue 21): such a task trains first, then leaves its
worker thread (``secede``) until the curve source's task is done, and scores its curve then.
"""
from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch

from . import AktError
from . import profiles as profiles_mod
from .graph import Experiment, Node, walk
from .provenance import code_digest
from .runner import curve_source, start_deps
from .store import Store

BUILT_KINDS = ("model", "dadv", "logits")  #: node kinds that are built and cached (records are not nodes)
CONNECT_TIMEOUT_S = 10  #: how long ``--scheduler`` waits for the scheduler to answer


@dataclass
class Built:
    """What a task returns: one node's payload, its provenance sidecar and the rows it wrote."""

    kind: str
    key: str
    config: dict
    payload: Any
    provenance: dict
    rows: dict[str, list[dict]] = field(default_factory=dict)  #: results file -> rows


@dataclass(frozen=True)
class Job:
    """Everything a worker needs besides the node and its dependencies' payloads."""

    exp: Experiment
    prof: profiles_mod.Profile  #: carried along: a profile registered at run time (tests) is unknown there
    data_root: str | None
    device: str
    bf16: bool
    cuda_graphs: bool
    threads: int
    commit: str
    digest: str


_RUNNERS: dict = {}  #: per worker process and experiment, a Runner whose loaded data every task reuses


def _waiter(store: Store, soft: dict[str, str]):
    """``Runner.wait_for`` on a worker: the curve source's payload, from its task (whose future the
    client shares in the Dask ``Variable`` named ``soft[node key]``), saved into the task's store; the
    worker thread is given back while waiting, so that the task it waits for can run there."""
    def wait_for(node: Node) -> None:
        from dask.distributed import Variable, rejoin, secede

        future = Variable(soft[node.key]).get()
        secede()
        try:
            d = future.result()
        finally:
            rejoin()
        store.save(d.kind, d.key, d.config, d.payload, d.provenance)
    return wait_for


def _task_runner(job: Job, store: Store, deps: tuple[Built, ...]):
    """A worker's Runner for one task, on ``store`` (holding ``deps``' payloads): the worker's loaded
    data shared (read only), its store and caches its own, since a task waiting for its curve source
    (``secede``) lets another task run in this process meanwhile."""
    from .runner import Runner

    if code_digest() != job.digest:
        raise AktError(f"this worker runs other code than the client (akt_core digest {code_digest()[:12]} vs "
                       f"{job.digest[:12]}): install the client's commit {job.commit} on every worker")
    torch.set_num_threads(job.threads)  # as many as the client uses: CPU results stay bit-for-bit
    profiles_mod.PROFILES.setdefault(job.prof.name, job.prof)
    for d in deps:
        store.save(d.kind, d.key, d.config, d.payload, d.provenance)
    ident = (job.exp, job.data_root, job.device, job.bf16, job.cuda_graphs)
    if ident not in _RUNNERS:
        _RUNNERS[ident] = Runner(job.exp, store, job.data_root, job.device, False, progress=False,
                                 log=print, bf16=job.bf16, cuda_graphs=job.cuda_graphs)
    runner = _RUNNERS[ident].fork(store)
    runner.commit = job.commit
    return runner


def build_task(job: Job, node: Node, soft: dict[str, str], *deps: Built) -> Built:
    """Build ``node`` on a worker from its dependencies' payloads, in a private store (a Dask task).
    ``soft``: node key -> Dask key of a dependency still being built that training need not wait for
    (the curve source): awaited after training (``Runner._train``)."""
    with tempfile.TemporaryDirectory(prefix="akt-task-") as tmp:
        store = Store(tmp)
        runner = _task_runner(job, store, deps)
        runner.wait_for = _waiter(store, soft) if soft else None
        runner.model(node) if node.kind == "model" else runner.array(node)
        info = store.sidecar(node.kind, node.key)
        payload = store.load(node.kind, node.key, node.config)
        rows = {what: store.read(job.exp.profile, what).to_dict("records") for what in ("curves", "runs")}
        return Built(node.kind, node.key, node.config, payload, info.get("provenance", {}),
                     {what: r for what, r in rows.items() if r})


def score_task(job: Job, csv: str, make: Callable, spec: tuple, *deps: Built) -> list[dict]:
    """Craft one set (``make(runner, *spec)``: an ``AdversarialSet``) and score its targets' records on
    a worker (a Dask task), from the models' payloads: the rows for ``csv``."""
    from .results import score

    with tempfile.TemporaryDirectory(prefix="akt-task-") as tmp:
        store = Store(tmp)
        runner = _task_runner(job, store, deps)
        score(runner, csv, [make(runner, *spec)])
        return store.read(job.exp.profile, csv).to_dict("records")


def _job(runner) -> Job:
    return Job(runner.exp, runner.exp.prof, None if runner.data_root is None else str(runner.data_root),
               str(runner.device), runner.bf16, runner.cuda_graphs, torch.get_num_threads(), runner.commit,
               code_digest())


def _shipped(runner, node: Node) -> Built:
    """A built node's payload from the client's store (published weights included), to send to a task."""
    return Built(node.kind, node.key, node.config, runner.store.load(node.kind, node.key, node.config),
                 runner.store.sidecar(node.kind, node.key).get("provenance", {}))


@dataclass(frozen=True)
class SetTask:
    """One crafted set as a task: ``make(runner, *spec)`` gives its ``results.AdversarialSet`` on a
    worker (``make`` a module-level function, sent by reference); ``nodes`` are the models it reads
    (targets and the model it is crafted on), shipped to the worker with the task."""

    make: Callable
    spec: tuple
    nodes: tuple[Node, ...]
    label: str


def score(runner, csv: str, sets: list[SetTask], client: Any) -> None:
    """The records of ``sets`` for ``csv`` (``records`` or ``robustness``), one Dask task per crafted
    set, from the models ``runner``'s store holds; the client appends each task's rows as it finishes."""
    from dask.distributed import as_completed

    job, e = _job(runner), runner.exp
    gpu = {"GPU": 1} if runner.device.type == "cuda" else None
    futures = {}
    for st in sets:
        nodes = {n.key: n for n in st.nodes}
        fut = client.submit(score_task, job, csv, st.make, st.spec, *(_shipped(runner, n) for n in nodes.values()),
                            key=f"{csv}-{st.label}-{e.seed}-{uuid.uuid4().hex[:8]}", pure=False, resources=gpu)
        futures[fut] = st.label
    try:
        for fut in as_completed(list(futures)):
            rows = fut.result()
            runner.store.append(e.profile, csv, rows)
            runner.log(f"[cluster] stored {len(rows)} {csv} rows of {futures[fut]}")
    except BaseException:
        client.cancel(list(futures))
        raise


def write(store: Store, profile: str, built: Built) -> None:
    """The client's write of one task's result: its rows, then its artefact."""
    for what, rows in built.rows.items():
        store.append(profile, what, rows)
    store.save(built.kind, built.key, built.config, built.payload, built.provenance)


@contextmanager
def client_for(jobs: int = 1, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client: of the running scheduler at ``scheduler``, else of a local cluster of ``jobs``
    worker processes (one thread each: torch's threads are set per task)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise AktError("building on Dask needs the 'cluster' extra: pip install -e '.[cluster]'") from exc
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            raise AktError(f"--scheduler {scheduler}: no Dask scheduler answers there ({type(exc).__name__}: {exc}); "
                           "start one (dask scheduler) or give its address as tcp://HOST:PORT") from exc
        with client:
            yield client
        return
    with LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40, resources={"GPU": 1}) as cluster, Client(cluster) as client:
        yield client


def _submit(client: Any, runner, pending: list[Node], job: Job, gpu: dict | None) -> tuple[dict[str, Any], dict]:
    """Submit one task per node of ``pending`` (dependencies first): its hard dependencies' futures (or
    their payloads from the client's store) as arguments; a curve source still being built is shared
    through a Dask ``Variable`` instead (the soft dependency). Returns the futures by node key and the
    Variables to delete once the build is over."""
    from dask.distributed import Variable

    run = uuid.uuid4().hex[:12]
    futures: dict[str, Any] = {}
    shared: dict[str, Variable] = {}  #: the futures a task may wait for after training (curve sources)
    for n in pending:  # dependencies first (walk order)
        hard = start_deps(n) if n.kind == "model" else list(n.deps)
        src = curve_source(n) if n.kind == "model" else None
        soft = {}
        if src is not None and src.key in futures:
            if src.key not in shared:
                shared[src.key] = Variable(f"akt-{run}-{src.key}", client=client)
                shared[src.key].set(futures[src.key])
            soft = {src.key: shared[src.key].name}
        args = []
        for d in hard + ([src] if src is not None and not soft else []):
            if d.key in futures:
                args.append(futures[d.key])
            else:  # built before: shipped from the client's store (published weights included)
                args.append(_shipped(runner, d))
        futures[n.key] = client.submit(build_task, job, n, soft, *args, key=f"{n.kind}-{n.name}-{n.key}",
                                       pure=False, resources=gpu)
    return futures, shared


def build(runner, roots: list[Node], jobs: int = 1, scheduler: str | None = None, client: Any = None) -> int:
    """Build the cached nodes under ``roots`` that ``runner``'s store lacks, each as a Dask task as
    soon as its dependencies are built; returns how many were built. ``client``: an existing Dask
    client (else one from ``client_for(jobs, scheduler)``)."""
    nodes = [n for n in walk(roots) if n.kind in BUILT_KINDS]
    pending = [n for n in nodes if not runner.store.has(n.kind, n.key)]
    if not pending:
        return 0
    if client is None:
        with client_for(jobs, scheduler) as c:
            return build(runner, roots, jobs, scheduler, client=c)
    cores = os.cpu_count() or 1
    if scheduler is None and runner.device.type == "cpu" and jobs * torch.get_num_threads() > cores:
        # measured (smoke MNIST, 2-core AMD EPYC): 2 workers x 2 threads took 76.8 s against 31.0 s
        # serial; 2 x 1 thread 50.8 s against 56.6 s serial on 1 thread
        runner.log(f"[cluster] {jobs} workers x {torch.get_num_threads()} threads on {cores} cores oversubscribe "
                   f"the CPU (every worker uses this process's thread count, for the same bits): set "
                   f"OMP_NUM_THREADS={max(1, cores // jobs)} for a faster build")
    from dask.distributed import as_completed

    job = _job(runner)
    gpu = {"GPU": 1} if runner.device.type == "cuda" else None
    if gpu and not any(w.get("resources", {}).get("GPU") for w in client.scheduler_info()["workers"].values()):
        raise AktError("no Dask worker offers a GPU resource: start each worker with --resources GPU=1 "
                       "(one worker per GPU, with its CUDA_VISIBLE_DEVICES)")
    futures, shared = _submit(client, runner, pending, job, gpu)
    done = 0
    try:
        for fut in as_completed(list(futures.values())):
            built = fut.result()  # a task's error is raised here, naming the node
            write(runner.store, runner.exp.profile, built)
            done += 1
            runner.log(f"[cluster] stored {built.kind} {built.config.get('name', built.key)} "
                       f"({done}/{len(futures)})")
    except BaseException:
        client.cancel(list(futures.values()))
        raise
    finally:
        for var in shared.values():
            var.delete()
    return done
