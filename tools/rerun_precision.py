"""Issue 40's precision probe: train published models again under bf16 autocast and score them as the
paper's tables do, into a rerun folder that the book sets beside the published records
(``report.reruns``: same configurations, hence the same keys; the arithmetic is in each row's ``device``).

    AKT_DATA_ROOT=data/datasets .venv/bin/python tools/rerun_precision.py --dataset cifar10 \\
        --profile full-data --seed 0 --variants "Res26(cln)" "Res8(adv-trans)" \\
        --scratch /tmp/probe --out data/reruns/bf16-2026-12-07

Each variant trains in a scratch store of its own (under ``--scratch``, never published), seeded with
the published float32 weights of every model it reads (its teacher, the D_adv sources, the held-out
black-box source) so that nothing it reads was trained in bf16. What differs from the published run
is then bf16 autocast in the variant's own training, in its teacher's logits and in its scoring;
crafting (D_adv and the attacks) stays float32 (``Runner``). Its ``runs``, ``curves`` and ``records``
rows go to ``--out``/results/<profile>/. Run it from a clean checkout: rows of uncommitted code are refused.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # this checkout's akt_core, not another checkout's installed one
    sys.path.insert(0, str(ROOT))

from akt_core import AktError, check_choice  # noqa: E402
from akt_core.graph import ALL_VARIANTS, Experiment, table_cells, table_for, walk  # noqa: E402
from akt_core.provenance import from_dirty_tree, git_commit  # noqa: E402
from akt_core.results import evaluate  # noqa: E402
from akt_core.runner import Runner  # noqa: E402
from akt_core.store import Store  # noqa: E402


def seed_scratch(scratch: Store, published: Store, exp: Experiment, variant: str) -> int:
    """Put the published weights of every model ``variant`` reads (not the variant itself) into
    ``scratch``'s cache; returns how many. An unpublished one is an error naming it."""
    target = exp.model(variant)
    nodes = [n for n in walk([target, exp.blackbox_source(26)]) if n.kind == "model" and n.key != target.key]
    for n in nodes:
        state = published.load_published(n.key, n.config)
        if state is None:
            raise AktError(f"{n.name} (key {n.key}) is not published in {published.weights}: the probe reads "
                           "published float32 models only; train and publish it first")
        scratch.save("model", n.key, n.config, state, published.sidecar("model", n.key).get("provenance"))
    return len(nodes)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--profile", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", nargs="+", required=True, help="the paper's variant names")
    ap.add_argument("--scratch", required=True, help="a folder for the scratch stores (models, arrays)")
    ap.add_argument("--out", required=True, help="the rerun folder: rows go to OUT/results/PROFILE/")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--store", default=None, help="the store whose published weights are read (default $AKT_STORE or data/)")
    args = ap.parse_args(argv)
    try:
        for v in args.variants:
            check_choice("variant", v, ALL_VARIANTS)
        if from_dirty_tree(git_commit()):
            raise AktError(f"the checkout has uncommitted changes ({git_commit()}): commit first, so that every "
                           "row names the code that made it")
        published = Store(args.store)
        for v in args.variants:
            scratch = Store(Path(args.scratch) / re.sub(r"\W+", "_", v).strip("_"))
            scratch.results = Path(args.out) / "results"
            runner = Runner(Experiment(args.dataset, args.profile, args.seed), scratch, args.data_root, "cpu",
                            bf16=True, progress=False)
            print(f"[probe] {v}: {seed_scratch(scratch, published, runner.exp, v)} published models seeded; "
                  f"{runner.provenance()['device']}", flush=True)
            runner.model(runner.exp.model(v))
            evaluate(runner, [c for c in table_cells(table_for("variants", args.dataset)) if c[0] == v])
    except AktError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
