"""akt: prepare data, train a variant, build a table's results, show the store.

Exit code 2 with a one-line message on bad input (unknown dataset, profile, variant, missing data).
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import time
from pathlib import Path

from . import AktError, __version__, choices, forensics, graph, offline, profiles, publish, results, runner, zoo
from . import data as data_mod
from .schema import SEED_LIMIT
from .store import Store


def _seed(text: str) -> int:
    """A seed on the command line: a whole number with 0 <= seed < 2**63 (torch's range)."""
    try:
        seed = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed {text!r} is not a whole number") from None
    if not 0 <= seed < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"seed {seed} is outside 0 <= seed < 2**63")
    return seed


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="mnist", help=f"one of: {', '.join(data_mod.DATASETS)}")
    p.add_argument("--profile", default="smoke", help=f"one of: {', '.join(profiles.PROFILES)}")
    p.add_argument("--seed", type=_seed, nargs="+", default=[0], help="one or more seeds (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--cuda-graphs", action="store_true", help="on a GPU, replay each training step as a CUDA "
                   "graph (falls back to eager if capture fails; not yet verified on a GPU); ignored on the CPU")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast of training and scoring, on a GPU "
                   "or the CPU (default float32; on a GPU with TF32 convolutions, faster there for these small "
                   "networks); recorded in every row's device")
    p.add_argument("--data-root", default=None, help=f"local dataset root (default ${data_mod.ENV_ROOT} "
                   "or data/datasets)")
    p.add_argument("--download", action="store_true", help="let torchvision download missing datasets")
    p.add_argument("--blackbox", default="held-out", help="black-box sources: held-out (default) or static")
    p.add_argument("--choice", action="append", metavar="NAME=VALUE", help="a non-default unstated choice, "
                   "repeatable: " + "; ".join(f"{c.name}={'|'.join(c.others)} (default {c.default})"
                                              for c in choices.CHOICES.values() if c.name != "blackbox"))
    p.add_argument("--store", default=None, help="store root (default $AKT_STORE or data/)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


BUILD_CHOICES = (*graph.GROUPS, "curves", "all", *graph.EVALUATIONS, "forensics")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="akt", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"akt {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare-data", help="lay out offline dataset copies as a local root")
    p.add_argument("--source", default="../shared/data", help="folder with mnist/, cifar10/, cifar100/")
    p.add_argument("--root", default=None, help="where to put them (default $AKT_DATA_ROOT or data/datasets)")
    p.add_argument("--datasets", nargs="+", default=list(data_mod.PAPER_DATASETS))
    p = sub.add_parser("train", help="train one variant (and whatever it depends on)")
    p.add_argument("variant", help=f"one of: {', '.join(graph.ALL_VARIANTS)}")
    _common(p)
    p = sub.add_parser("build", help="compute the results of a table group, the curves, all of them, "
                                     "or the white-box / eps-sweep evaluations beyond the paper")
    p.add_argument("what", help=f"one of: {', '.join(BUILD_CHOICES)}")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="build up to N independent models at once on a local Dask cluster of N worker "
                        "processes (for a GPU; default 1: in this process; needs the 'cluster' extra)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="build on the running Dask scheduler at ADDRESS (tcp://HOST:PORT), e.g. a Slurm "
                        "cluster's (dask-jobqueue) or several GPU boxes' (book: How to reproduce)")
    p.add_argument("--targets", nargs="+", default=None, metavar="MODEL",
                   help=f"only these models' records ({', '.join(graph.EVALUATIONS)} only), e.g. 'Res8(adv-trans)'")
    _common(p)
    p = sub.add_parser("show", help="show the cache and the stored records")
    p.add_argument("--profile", default=None, help="only this profile's records")
    p.add_argument("--store", default=None)
    sub.add_parser("profiles", help="list the run profiles")
    p = sub.add_parser("weights", help="list the published weights (--check: verify files and fingerprints)")
    p.add_argument("--profile", default=None)
    p.add_argument("--dataset", default=None)
    p.add_argument("--check", action="store_true", help="check every file's sha256 and fingerprint")
    p.add_argument("--store", default=None)
    p = sub.add_parser("publish", help="publish the models and results a build stored elsewhere "
                                       "(a background run's store) into this store's weights and results")
    p.add_argument("--from", dest="source", required=True, metavar="STORE", help="the store the build wrote")
    p.add_argument("--profile", required=True, help="a published profile")
    p.add_argument("--dataset", default=None, help="only this dataset")
    p.add_argument("--data-root", default=None, help="the dataset copy the models were trained on")
    p.add_argument("--store", default=None)
    return ap


def _prepare_data(args: argparse.Namespace) -> int:
    root = offline.prepare(Path(args.source), args.root, tuple(args.datasets))
    print(f"datasets ready under {root}")
    return 0


def _profiles(args: argparse.Namespace) -> int:
    for p in profiles.PROFILES.values():
        print(f"{p.name:8s} {p.description}")
    return 0


def _weights(args: argparse.Namespace) -> int:
    store = Store(args.store)
    if args.profile is not None:
        profiles.get(args.profile)
    if args.dataset is not None:
        data_mod.spec(args.dataset)
    if args.check:
        res = zoo.check(store)
        print(res.drop(columns=["file"]).to_string(index=False) if len(res) else "no published weights")
        bad = res[~res["ok"]] if len(res) else res
        if len(bad):
            raise AktError(f"{len(bad)} of {len(res)} published models fail the check: " + "; ".join(
                f"{r.name} ({r.dataset}, {r.profile}, seed {r.seed}, {store.weights / r.file}): {r.result}"
                for r in bad.itertuples()))
        return 0
    m = zoo.summary(store)
    if len(m):
        for column, wanted in (("profile", args.profile), ("dataset", args.dataset)):
            m = m[m[column] == wanted] if wanted else m
    if not len(m):
        print(f"no published weights under {store.weights}")
        return 0
    print(m.drop(columns=["file"]).assign(sha256=m["sha256"].str[:12]).round(2).to_string(index=False, na_rep="-"))
    print(f"{len(m)} models, {m['MiB'].sum():.2f} MiB in {store.weights}")
    return 0


def _publish(args: argparse.Namespace) -> int:
    store = Store(args.store)
    added = publish.publish(args.source, args.profile, args.dataset, store, args.data_root)
    print(f"published {len(added)} models into {store.weights}; results rows merged into "
          f"{store.results / args.profile}")
    return 0


def _show(args: argparse.Namespace) -> int:
    store = Store(args.store)
    if args.profile is not None:
        profiles.get(args.profile)
    entries = store.entries()
    print(f"cache: {store.cache} ({len(entries)} entries)")
    if len(entries):
        print(entries.groupby(["kind", "dataset"]).size().to_string())
    for prof in [args.profile] if args.profile else sorted(p.name for p in store.results.glob("*")):
        df = store.read(prof)
        if len(df):
            print(f"\nrecords, profile {prof}: {len(df)}")
            print(df.groupby(["dataset", "seed"]).size().to_string())
    return 0


def _options(args: argparse.Namespace) -> tuple[dict, dict]:
    """(what every build passes on, the CUDA-graphs option where given), after checking the profile and
    that the store can be written: a run that cannot store its work does none."""
    store = Store(args.store)
    profiles.get(args.profile)
    writable(store, args.profile)
    opts = dict(store=store, data_root=args.data_root, device=args.device, download=args.download,
                progress=not args.quiet, bf16=args.bf16)
    return opts, ({"cuda_graphs": args.cuda_graphs} if getattr(args, "cuda_graphs", False) else {})


def _train(args: argparse.Namespace) -> int:
    opts, graphs_opt = _options(args)
    chosen = choices.parse(args.choice)
    graph.check_choice("variant", args.variant, graph.ALL_VARIANTS)
    for seed in args.seed:
        t0 = time.perf_counter()
        exp = graph.Experiment(args.dataset, args.profile, seed, blackbox=args.blackbox, choices=chosen)
        r = runner.Runner(exp, **opts, **graphs_opt)
        r.model(r.exp.model(args.variant))
        print(f"{args.variant} on {args.dataset} ({args.profile}, seed {seed}) is in the store "
              f"({time.perf_counter() - t0:.0f} s in all, with what it is trained from and the "
              "black-box Res26 that scores its per-epoch curves)")
    return 0


def _check_build(args: argparse.Namespace, chosen: tuple) -> None:
    """Which options apply to which builds, refused before any work."""
    graph.check_choice("result", args.what, BUILD_CHOICES)
    paper = f"{', '.join(graph.GROUPS)}, curves and all"
    if args.jobs < 1 or (args.jobs > 1 and args.what == "forensics"):
        raise AktError(f"--jobs {args.jobs}: give N >= 1; N > 1 does not apply to {args.what!r}")
    if args.scheduler is not None and args.what == "forensics":
        raise AktError(f"--scheduler does not apply to {args.what!r}")
    if chosen and args.what in graph.EVALUATIONS:
        raise AktError(f"--choice applies to {paper}, not to {args.what!r}")
    if args.targets and args.what not in graph.EVALUATIONS:
        raise AktError(f"--targets applies to {', '.join(graph.EVALUATIONS)}, not to {args.what!r}")
    if args.what == "forensics" and args.dataset != forensics.DATASET:
        raise AktError(f"forensics applies to --dataset {forensics.DATASET} (erratum 5), not {args.dataset!r}")


def _build(args: argparse.Namespace) -> int:
    chosen = choices.parse(args.choice)
    _check_build(args, chosen)
    opts, graphs_opt = _options(args)
    if args.what == "forensics":  # erratum 5: top-5 and superclass accuracy of CIFAR-100's models
        df = forensics.require(args.profile, args.seed, compute=True, **opts)
        print(df.pivot_table(index="model", columns="attack", values="accuracy").round(2).to_string())
        return 0
    df = results.require(args.what, args.dataset, args.profile, args.seed, compute=True, blackbox=args.blackbox,
                         jobs=args.jobs, scheduler=args.scheduler, choices=chosen,
                         targets=tuple(args.targets) if args.targets else None, **opts, **graphs_opt)
    if "eps_256" in df:
        print(df.pivot_table(index="model", columns=["attack", "source", "eps_256"], values="accuracy").round(2).to_string())
    elif "accuracy" in df:
        print(df.pivot_table(index="model", columns=["attack", "source"], values="accuracy").round(2).to_string())
    else:
        print(df.groupby("model")[["clean_acc", "adv_acc"]].last().round(2).to_string())
    return 0


#: each command of ``akt`` and the function that runs it
COMMANDS = {"prepare-data": _prepare_data, "profiles": _profiles, "weights": _weights, "publish": _publish,
            "show": _show, "train": _train, "build": _build}


def run(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.cmd](args)


def writable(store: Store, profile: str) -> None:
    """Refuse (AktError) when the cache or the results folder of ``profile`` cannot be written: found
    before the work, not after hours of training."""
    for folder in (store.cache, store.results / profile):
        made = [p for p in (folder, *folder.parents) if not p.exists()]  # created for the probe, removed after
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".akt-write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise AktError(f"{folder} cannot be written ({exc.strerror or exc}): nothing was trained; fix its "
                           "permissions or pass --store") from exc
        finally:
            for p in made:  # deepest first: the probe leaves the store as it was
                if p.is_dir() and not any(p.iterdir()):
                    p.rmdir()


def main(argv: list[str] | None = None) -> None:
    try:
        sys.exit(run(argv))
    except AktError as exc:
        print(f"akt: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except BrokenPipeError:
        # The reader went away (`akt weights | head`): no traceback, and the SIGPIPE status a C tool would
        # give. stdout is pointed at devnull so that the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(128 + signal.SIGPIPE)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
        print(f"akt: error: no space left on the device writing {exc.filename or 'the store'}; free some space and "
              "run the same command again (finished work is kept and a rerun resumes)", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("akt: interrupted; cached work is kept and a rerun resumes", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
