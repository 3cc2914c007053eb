"""Execute the companion's notebooks with papermill, for the book (``make book``).

Each notebook in ``notebooks/`` is run once per dataset (``table1_cost`` once) with ``profile``,
``dataset`` and ``compute=False`` injected, and written to ``book/_executed/`` under the name the
book's ``_toc.yml`` expects (``<notebook>_<dataset>.ipynb``), its title naming the table and the
dataset; the pages shown beside the book's profile are run once more under their own profile
(``akt_core.book.BESIDE``: ``<notebook>_cifar10_full-data.ipynb``). With ``compute=False`` the
notebooks only read stored results, so this never trains. Notebooks run two at a time
(``--workers``), each worker reusing one kernel (a fresh namespace per notebook), in ``notebooks/``
as working directory; each is printed with its wall time; the first failure stops the run with a
non-zero exit status (``--keep-going`` runs the rest first). The claims scorecard and the profiles'
table that the first page includes are written first.

``--in-place`` instead executes ``notebooks/*.ipynb`` themselves with their default parameters and
stores the outputs in them (``make notebooks``): those outputs are what ``make test`` (nbval)
compares against.

Usage::

    python tools/execute_notebooks.py [--profile reduced] [--datasets mnist cifar10 cifar100]
                                      [--out book/_executed] [--kernel python3] [--only NAME ...]
    python tools/execute_notebooks.py --in-place
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
if str(ROOT) not in sys.path:  # akt_core from this checkout, installed or not
    sys.path.insert(0, str(ROOT))
from akt_core import book, profiles  # noqa: E402  (the book's pages, declared once)

DATASETS = book.DATASETS
#: notebook stem -> run once per dataset (True) or once (False); the order is the book's
PLAN = {p.stem: bool(p.datasets) for p in book.PAGES}


def stored_seeds(profile: str, dataset: str, what: str = "records") -> list[int]:
    """Every seed with stored ``what`` rows (``records`` or ``robustness``) of ``dataset`` under
    ``profile`` ([0] if none), so that the book shows each published seed (mean and spread where there
    are several)."""
    from akt_core.results import stored_seeds as seeds_of

    return seeds_of(profile, dataset, what) or [0]


def jobs(profile: str, datasets: list[str], out: Path, only: list[str] | None) -> list[tuple[Path, Path, dict, str | None]]:
    """(source notebook, executed notebook, parameters, title) in the book's order
    (``akt_core.book.sections``): every page under ``profile``, and the pages the book shows beside it
    under their own profile (``akt_core.book.BESIDE``). The title is None for a page executed once."""
    todo = []
    for page in book.PAGES:
        if only and page.stem not in only:
            continue
        for ds, beside in book.sections(page, datasets):
            dataset = ds or book.ONCE_DATASET
            shown = beside or profile
            todo.append((NOTEBOOKS / f"{page.stem}.ipynb", out / f"{page.executed(ds, beside)}.ipynb",
                         {"profile": shown, "dataset": dataset, "compute": False,
                          "seeds": stored_seeds(shown, dataset, page.results)},
                         page.title(dataset, beside) if page.datasets else None))
    return todo


SCORECARD = "scorecard.md"  #: included by book/intro.md and book/results.md


def write_scorecard(out: Path, profile: str) -> None:
    """The claims scorecard (``akt_core.report.scorecard``) of every published profile with stored
    results, as Markdown the first page and the Results page include; beside it the landing page's
    findings, the white-box finding, the profiles' table, which profiles the book shows and each
    chapter's download line (``akt_core.book.DOWNLOADS``) for the book's ``profile``."""
    import warnings

    from akt_core import zoo
    from akt_core.report import forensics, rule_markdown
    from akt_core.report import scorecard as S
    from akt_core.report.seeds import spread_markdown
    from akt_core.results import stored_seeds as seeds_of
    from akt_core.store import atomic_write_text

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        card = S.scorecard()
    atomic_write_text(S.markdown(card), out / SCORECARD)
    atomic_write_text(S.findings(card), out / book.FINDINGS_PAGE)
    atomic_write_text(S.whitebox_finding() + "\n", out / book.WHITEBOX_PAGE)
    atomic_write_text(book.profiles_markdown(), out / book.PROFILES_PAGE)
    atomic_write_text(book.book_profile_markdown(profile), out / book.BOOK_PROFILE_PAGE)
    atomic_write_text(rule_markdown(), out / book.RULE_PAGE)
    atomic_write_text(spread_markdown(), out / book.SEEDS_PAGE)
    atomic_write_text(zoo.summary_markdown(), out / book.ZOO_PAGE)
    with_cifar100 = tuple(p.name for p in profiles.PROFILES.values() if p.published and seeds_of(p.name, "cifar100"))
    atomic_write_text(forensics.markdown(with_cifar100), out / book.ERRATUM5_PAGE)
    for page in book.DOWNLOADS:
        atomic_write_text(book.downloads_markdown(page, profile, ROOT / "data"), out / book.downloads_file(page))
    print(f"[scorecard] {len(card)} verdicts -> {_rel(out / SCORECARD)} ({time.perf_counter() - t0:.1f} s)", flush=True)


def _rel(path: Path) -> Path:
    try:
        return path.relative_to(ROOT)
    except ValueError:
        return path


def retitle(path: Path, title: str) -> None:
    """Replace the first level-1 heading of the notebook at ``path`` by ``title``."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.split("\n")
        for i, line in enumerate(lines):
            if line.startswith("# "):
                lines[i] = f"# {title}"
                cell.source = "\n".join(lines)
                nbformat.write(nb, path)
                return
    raise ValueError(f"{path.name} has no level-1 heading to retitle")


def hide_injected(path: Path) -> None:
    """Tag the cell papermill injected into the executed notebook at ``path`` (``injected-parameters``)
    ``remove-cell``, as the sources tag their own parameters cell: the page shows no plumbing. (The
    sources' other cells carry their tags already: ``notebooks/*.md``.)"""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(nb, path)


def _parameters_of(path: Path) -> set[str]:
    import papermill as pm

    return set(pm.inspect_notebook(str(path)))


_KERNELS = threading.local()  #: one kernel per worker thread, reused from notebook to notebook
_STARTED: list = []  #: every kernel manager started, shut down at the end


def _kernel(kernel: str):
    """This worker's kernel, started in ``notebooks/`` on first use. A kernel's start and the imports
    of torch, pandas and matplotlib are most of a notebook's time; each notebook still gets a fresh
    namespace (``%reset -f`` before it runs), only the imported modules are shared."""
    from jupyter_client.manager import KernelManager

    km = getattr(_KERNELS, "km", None)
    if km is None or not km.is_alive():
        km = KernelManager(kernel_name=kernel)
        km.start_kernel(cwd=str(NOTEBOOKS))
        _KERNELS.km = km
        _STARTED.append(km)
    return km


def _run(nb, km) -> None:
    import nbformat
    from nbclient import NotebookClient

    reset = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%reset -f\nimport matplotlib.pyplot\n"
                                                                      "matplotlib.pyplot.close('all')")])
    for book_ in (reset, nb):
        NotebookClient(book_, km=km, resources={"metadata": {"path": str(NOTEBOOKS)}}, timeout=600).execute()


def _execute_one(i: int, n: int, src: Path, dst: Path, params: dict, title: str | None, kernel: str) -> str | None:
    """Execute one notebook with ``params`` injected as papermill injects them (a cell tagged
    ``injected-parameters`` after the ``parameters`` cell), in this worker's kernel; write it to
    ``dst`` (also when it fails, with the outputs so far), retitled ``title`` (the copies of one
    notebook get titles that tell them apart in the contents). None when it succeeded, else the reason."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    shown = ", ".join(f"{k}={v}" for k, v in params.items())
    t0 = time.perf_counter()
    nb = parameterize_notebook(load_notebook_node(str(src)), params, kernel_name=kernel, language="python")
    km = _kernel(kernel)
    try:
        _run(nb, km)
    except Exception as exc:  # noqa: BLE001 - report any failure with the notebook's name
        nbformat.write(nb, dst)
        km.restart_kernel()  # whatever state the failure left
        print(f"[{i}/{n}] {_rel(src)} ({shown}) FAILED after {time.perf_counter() - t0:.1f} s: "
              f"{type(exc).__name__}: {exc}\n    the partly executed notebook is {_rel(dst)}", file=sys.stderr, flush=True)
        return f"{type(exc).__name__}: {exc}"
    nbformat.write(nb, dst)
    if title:
        retitle(dst, title)
    hide_injected(dst)
    print(f"[{i}/{n}] {_rel(src)} ({shown}) -> {_rel(dst)} in {time.perf_counter() - t0:.1f} s", flush=True)
    return None


def run_papermill(profile: str, datasets: list[str], out: Path, kernel: str, only: list[str] | None,
                  keep_going: bool, workers: int = 1) -> int:
    """Execute the plan's notebooks, ``workers`` at a time (each in its own kernel; a kernel's start
    is most of a notebook's time, so two workers nearly halve the wall time on two cores)."""
    from concurrent.futures import ThreadPoolExecutor

    todo = jobs(profile, datasets, out, only)
    missing = sorted({str(_rel(src)) for src, *_ in todo if not src.exists()})
    if missing:
        print(f"execute_notebooks: missing notebooks: {', '.join(missing)}", file=sys.stderr)
        return 1
    for src in dict.fromkeys(src for src, *_ in todo):
        if "compute" not in _parameters_of(src):
            print(f"execute_notebooks: {src.name} has no `compute` parameter, so it cannot be told not "
                  "to train; refusing to execute it", file=sys.stderr)
            return 1
    out.mkdir(parents=True, exist_ok=True)
    write_scorecard(out, profile)
    t_all = time.perf_counter()
    declared = {src: _parameters_of(src) for src in dict.fromkeys(src for src, *_ in todo)}
    calls = [(i, len(todo), src, dst, {k: v for k, v in params.items() if k in declared[src]}, title, kernel)
             for i, (src, dst, params, title) in enumerate(todo, 1)]
    failed = []
    try:
        with ThreadPoolExecutor(max(1, workers)) as pool:
            futures = [pool.submit(_execute_one, *c) for c in calls]
            for c, f in zip(calls, futures):
                if f.result() is not None:
                    failed.append(c[3].name)
                    if not keep_going:
                        for g in futures:
                            g.cancel()
                        break
    finally:
        for km in _STARTED:
            km.shutdown_kernel(now=True)
    print(f"{len(todo) - len(failed)} of {len(todo)} notebooks executed in {time.perf_counter() - t_all:.1f} s "
          f"({workers} at a time)", flush=True)
    if failed:
        print(f"execute_notebooks: FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def run_in_place(kernel: str, only: list[str] | None) -> int:
    """Execute notebooks/*.ipynb with their own parameters and store the outputs in them."""
    import nbformat
    from nbclient import NotebookClient

    paths = [NOTEBOOKS / f"{stem}.ipynb" for stem in PLAN if not only or stem in only]
    for i, path in enumerate(paths, 1):
        print(f"[{i}/{len(paths)}] {_rel(path)} (in place, default parameters)", flush=True)
        t0 = time.perf_counter()
        nb = nbformat.read(path, as_version=4)
        try:
            NotebookClient(nb, kernel_name=kernel, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
        except Exception as exc:  # noqa: BLE001
            print(f"    FAILED after {time.perf_counter() - t0:.1f} s: {type(exc).__name__}: {exc}",
                  file=sys.stderr, flush=True)
            print("    the notebook was left unchanged", file=sys.stderr)
            return 1
        tmp = path.with_name(f".{path.name}.tmp")
        nbformat.write(nb, tmp)
        tmp.replace(path)
        print(f"    done in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=profiles.DEFAULT,
                    help=f"run profile whose stored results are shown (default {profiles.DEFAULT})")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), help="datasets (default: all three)")
    ap.add_argument("--out", default=str(ROOT / "book" / "_executed"), help="where executed notebooks go")
    ap.add_argument("--kernel", default="python3", help="Jupyter kernel name (default python3)")
    ap.add_argument("--only", nargs="+", default=None, choices=list(PLAN), help="only these notebooks")
    ap.add_argument("--keep-going", action="store_true", help="run the remaining notebooks after a failure")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                    help="notebooks executed at a time (default: 2, or 1 on a 1-core machine)")
    ap.add_argument("--in-place", action="store_true",
                    help="execute notebooks/*.ipynb with their default parameters and keep the outputs there")
    args = ap.parse_args(argv)
    bad = [d for d in args.datasets if d not in DATASETS]
    if bad:
        ap.error(f"unknown dataset(s) {', '.join(bad)}; valid choices: {', '.join(DATASETS)}")
    if args.profile not in profiles.PROFILES:  # before any notebook runs (make book PROFILE=...)
        ap.error(f"unknown profile {args.profile!r}; valid choices: {', '.join(profiles.PROFILES)}")
    if args.in_place:
        return run_in_place(args.kernel, args.only)
    return run_papermill(args.profile, args.datasets, Path(args.out).resolve(), args.kernel, args.only,
                         args.keep_going, args.workers)


if __name__ == "__main__":
    sys.exit(main())
