"""Build what the chapter "What the unstated choices change" reads (``choices.MEASURED``), for one
seed: first the default graph of each dataset it names, then each choice's other value, retraining
only the models that value touches. Everything lands in the measurement's own store (default
``data/reruns/<choices.MEASURED_RUNS[-1]>``, so that default and choices are scored on one machine); a
killed run resumes.

    python tools/measure_choices.py --seed 0 [--store DIR] [--only NAME ...]   # --only: in that order
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # this checkout's akt_core, not another checkout's installed one
    sys.path.insert(0, str(ROOT))
from akt_core import AktError, choices  # noqa: E402
from akt_core.results import require  # noqa: E402
from akt_core.store import Store  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--store", default=None)
    ap.add_argument("--only", nargs="+", default=None,
                    help="only these choices (names), in this order (default: all, in choices.MEASURED's order)")
    args = ap.parse_args()
    store = Store(args.store) if args.store else choices.measured_store()
    for name in args.only or []:
        choices.check_choice("unstated choice", name, choices.CHOICES)
    todo = list(choices.MEASURED) if args.only is None else [m for name in args.only for m in choices.MEASURED
                                                             if m[0] == name]
    done_default = set()
    for name, value, datasets in todo:
        for ds in datasets:
            for label, kw in ((("default", {}),) if ds not in done_default else ()) + (
                    (f"{name}={value}", choices.experiment_kwargs(name, value)),):
                t0 = time.perf_counter()
                print(f"=== {ds} seed {args.seed}: {label}", flush=True)
                require("all", ds, choices.MEASURED_PROFILE, [args.seed], compute=True, store=store,
                        device="cpu", progress=False, **kw)
                print(f"=== {ds} seed {args.seed}: {label} done in {time.perf_counter() - t0:.0f} s", flush=True)
            done_default.add(ds)


if __name__ == "__main__":
    try:
        main()
    except AktError as exc:  # an unknown choice name, a damaged store: say so, exit 2
        print(f"measure_choices: error: {exc}", file=sys.stderr)
        sys.exit(2)
