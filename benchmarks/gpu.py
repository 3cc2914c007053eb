"""GPU figures for issue 2 (run on a CUDA machine by ``benchmarks/gpu_session.sh``, never by the tests).

Prints, in one run, and writes as JSON (``--out``):

1. **layout and precision**: training throughput (images/s) of Res8 and Res26 (``cln``, MNIST
   data kept on the GPU, the paper's batch of 256, one epoch of 60,000 images after a warm-up) in
   fp32 NCHW, fp32 channels-last (the default on a GPU: float32 with PyTorch's TF32 convolutions),
   bf16 autocast channels-last (``--bf16``) and the latter with ``cudnn.benchmark``;
2. every paper method's training throughput in the default mode;
3. **whether bf16 autocast changes results beyond noise**: Res8(cln) trained with the paper profile's
   MNIST settings (all 60,000 images, 20 epochs, batch 256) in fp32 and in bf16 for two seeds, each
   scored on the full test set, clean and under white-box FGSM at 16/256, with fp32 and with bf16
   inference. The seed-to-seed spread is the noise the precision's effect is compared with. One
   epoch trained twice with the same seed says whether the GPU run is deterministic.
4. (``--parts graphs``) **launch overhead**: every paper method's epoch through ``train.py`` eagerly
   and with ``--cuda-graphs`` (``akt_core.cuda_graphs``), and the bare ``cln`` step eager and replayed as
   one CUDA graph (``graphed_step``).
5. (``--parts stacked``) **K models in one step**: K independent Res26 trained one after another,
   against their parameters stacked and run as one vmapped step (``stacked_step``).

``--quick`` shrinks everything (a plumbing check that runs on the CPU too).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from bench import training_throughput  # benchmarks/ is on sys.path when this file runs

from akt_core import attacks, data, evaluate, graph, methods, profiles, provenance
from akt_core.models import resnet
from akt_core.train import TrainInputs, train_model

MODES = {  # name: (bf16, memory format, cudnn.benchmark)
    "fp32 NCHW": (False, torch.contiguous_format, False),
    "fp32 channels-last": (False, torch.channels_last, False),
    "bf16 channels-last": (True, torch.channels_last, False),
    "bf16 channels-last + cudnn.benchmark": (True, torch.channels_last, True),
}
PAPER_METHODS = ("cln", "self-adv", "adv", "dist-cln", "dist-adv", "adv-trans")


def _set_mode(amp_fmt_bench: tuple[bool, torch.memory_format, bool]) -> bool:
    bf16, fmt, bench = amp_fmt_bench
    evaluate.MEMORY_FORMAT = fmt
    torch.backends.cudnn.benchmark = bench
    return bf16


def layout_and_precision(x: torch.Tensor, y: torch.Tensor, n: int) -> list[dict]:
    rows = []
    for mode, setting in MODES.items():
        bf16 = _set_mode(setting)
        training_throughput(batch=256, dataset="mnist", method_names=("cln",), depths=(8, 26), bf16=bf16,
                            x=x[:1024], y=y[:1024])  # warm-up: kernels, cuDNN's choices
        for r in training_throughput(batch=256, dataset="mnist", method_names=("cln",), depths=(8, 26), bf16=bf16,
                                     x=x[:n], y=y[:n]):
            rows.append({"mode": mode, **r, "ms_per_step": round(1000 * 256 / r["images_per_s"], 3)})
            print(f"  {mode:38s} Res{r['depth']:<2d} {r['images_per_s']:9.0f} images/s", flush=True)
    _set_mode(MODES["fp32 channels-last"])
    return rows


def _train_res8(x, y, cfg: dict, seed: int, bf16: bool) -> tuple[torch.nn.Module, float]:
    spec = data.spec("mnist")
    torch.manual_seed(seed)
    model = resnet(8, spec.num_classes, spec.channels, spec.mean, spec.std)
    m = methods.get("cln")
    res = train_model(model, m, m.params, cfg, TrainInputs(data.Split(x, y, "original"), False, attacks.EPS),
                      seed=seed, bf16=bf16, progress=False)
    return model, res.wall_s


def precision_effect(x, y, xt, yt, epochs: int, seeds: tuple[int, ...]) -> dict:
    cfg = {**profiles.get("paper").as_config("mnist"), "epochs": epochs}
    rows = []
    for seed in seeds:
        for train_amp in (False, True):
            model, wall = _train_res8(x, y, cfg, seed, train_amp)
            x_fgsm = evaluate.craft(attacks.ATTACKS["FGSM"], model, xt, yt, attacks.EPS)
            for eval_amp in (False, True):
                row = {"seed": seed, "train": "bf16" if train_amp else "fp32", "eval": "bf16" if eval_amp else "fp32",
                       "clean": evaluate.accuracy(model, xt, yt, bf16=eval_amp),
                       "fgsm_whitebox": evaluate.accuracy(model, x_fgsm, yt, bf16=eval_amp), "train_s": round(wall, 1)}
                rows.append(row)
                print(f"  seed {seed} train {row['train']} eval {row['eval']}: clean {row['clean']:.2f} % "
                      f"FGSM(white-box) {row['fgsm_whitebox']:.2f} %  ({wall:.0f} s)", flush=True)
    # determinism: one epoch, same seed, same mode, twice
    one = {**cfg, "epochs": 1}
    a, _ = _train_res8(x, y, one, seeds[0], True)
    b, _ = _train_res8(x, y, one, seeds[0], True)
    diff = max((pa - pb).abs().max().item() for pa, pb in zip(a.state_dict().values(), b.state_dict().values())
               if pa.is_floating_point())
    print(f"  same seed, one epoch twice: max |weight difference| {diff:.3g}"
          f" ({'bit-for-bit' if diff == 0 else 'not bit-for-bit'})", flush=True)
    return {"epochs": epochs, "rows": rows, "repeat_max_abs_diff": diff}


def summarise(eff: dict) -> list[str]:
    """Seed spread vs precision effect, per metric, with fp32 inference (the records' ``correct`` uses
    the runner's mode; both are printed above)."""
    import pandas as pd

    df = pd.DataFrame(eff["rows"])
    lines = []
    for metric in ("clean", "fgsm_whitebox"):
        t = df[df["eval"] == "fp32"].pivot_table(index="seed", columns="train", values=metric)
        if {"fp32", "bf16"} <= set(t.columns) and len(t) > 1:
            seed_spread = (t["fp32"].max() - t["fp32"].min() + t["bf16"].max() - t["bf16"].min()) / 2
            prec = (t["bf16"] - t["fp32"]).abs().mean()
            lines.append(f"{metric}: |bf16 - fp32| training {prec:.2f} points on average; "
                         f"seed-to-seed spread {seed_spread:.2f} points")
        ev = df.pivot_table(index=["seed", "train"], columns="eval", values=metric)
        lines.append(f"{metric}: |bf16 - fp32| inference {(ev['bf16'] - ev['fp32']).abs().max():.2f} points at most")
    return lines


def graphed_step(x: torch.Tensor, y: torch.Tensor, depths: tuple[int, ...] = (8, 26), steps: int = 200,
                 batch: int = 256, warmup: int = 10) -> list[dict]:
    """How much of a training step is launch overhead: the ``cln`` step (gather the batch, forward,
    cross-entropy, backward, SGD with momentum and weight decay) eagerly, and the same step captured
    once as a CUDA graph (``torch.cuda.CUDAGraph``, the whole-network capture of PyTorch's CUDA-graphs
    notes: static index buffer, warm-up on a side stream, gradients allocated inside the capture) and
    replayed. A probe for deciding whether train.py should replay graphs; the library does not."""
    import torch.nn.functional as F

    if x.device.type != "cuda":
        print("  CUDA graphs need a GPU: skipped", flush=True)
        return []
    spec = data.spec("mnist")
    g = torch.Generator(device=x.device).manual_seed(0)
    order = torch.randint(0, len(x), (warmup + steps, batch), device=x.device, generator=g)  # each step's batch
    rows = []
    for depth in depths:
        for mode in ("eager", "CUDA graph"):
            try:
                torch.manual_seed(0)
                model = evaluate.layout(resnet(depth, spec.num_classes, spec.channels, spec.mean, spec.std)
                                        .to(x.device)).train()
                opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
                idx = order[0].clone()

                def body() -> torch.Tensor:
                    loss = F.cross_entropy(model(evaluate.layout(data.to_float(x[idx]))), y[idx])
                    loss.backward()
                    opt.step()
                    return loss

                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):  # warm-up: cuDNN's choices, momentum buffers
                    for i in range(warmup):
                        idx.copy_(order[i])
                        opt.zero_grad(set_to_none=True)
                        body()
                torch.cuda.current_stream().wait_stream(side)
                if mode == "CUDA graph":
                    graph_ = torch.cuda.CUDAGraph()
                    opt.zero_grad(set_to_none=True)
                    with torch.cuda.graph(graph_):
                        body()
                    run = graph_.replay
                else:
                    def run() -> None:
                        opt.zero_grad(set_to_none=True)
                        body()
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                for i in range(warmup, warmup + steps):
                    idx.copy_(order[i])
                    run()
                torch.cuda.synchronize()
                dt = time.perf_counter() - t0
                row = {"depth": depth, "mode": mode, "images_per_s": round(steps * batch / dt, 1),
                       "ms_per_step": round(1000 * dt / steps, 3)}
                print(f"  Res{depth:<2d} {mode:10s} {row['images_per_s']:9.0f} images/s "
                      f"({row['ms_per_step']:.2f} ms per step)", flush=True)
            except Exception as exc:  # a probe: report and go on
                row = {"depth": depth, "mode": mode, "error": f"{type(exc).__name__}: {exc}"}
                print(f"  Res{depth:<2d} {mode:10s} failed: {row['error']}", flush=True)
            rows.append(row)
    return rows


def stacked_step(x: torch.Tensor, y: torch.Tensor, depth: int = 26, ks: tuple[int, ...] = (1, 2, 4),
                 steps: int = 50, batch: int = 256, warmup: int = 5) -> list[dict]:
    """Whether training K independent models of one architecture in one step pays while steps are
    launch-bound (issue 21): the ``cln`` step of K models one after another (eager), against the K
    models' parameters stacked (``torch.func.stack_module_state``) and run as one vmapped forward and
    backward (``functional_call``; BatchNorm statistics stacked too), with one SGD over the stacked
    tensors (elementwise, so the same update as K optimisers). Each model sees its own batch. A probe:
    the library trains one model per process (``build --jobs``)."""
    import copy

    import torch.nn.functional as F
    from torch.func import functional_call, stack_module_state, vmap

    spec = data.spec("mnist")
    g = torch.Generator(device=x.device).manual_seed(0)
    rows = []
    for k in ks:
        order = torch.randint(0, len(x), (warmup + steps, k, batch), device=x.device, generator=g)
        for mode in ("one after another", "stacked (vmap)"):
            try:
                torch.manual_seed(0)
                models = [evaluate.layout(resnet(depth, spec.num_classes, spec.channels, spec.mean, spec.std)
                                          .to(x.device)).train() for _ in range(k)]
                if mode == "stacked (vmap)":
                    params, buffers = stack_module_state(models)
                    base = copy.deepcopy(models[0]).to("meta")
                    opt = torch.optim.SGD(params.values(), lr=0.01, momentum=0.9, weight_decay=1e-4)

                    def fwd(p, b, xb):
                        return functional_call(base, (p, b), (xb,))

                    def step(i: int) -> None:
                        idx = order[i]
                        xb = data.to_float(x[idx])  # (K, B, C, H, W)
                        out = vmap(fwd)(params, buffers, xb)
                        loss = F.cross_entropy(out.flatten(0, 1), y[idx].flatten(), reduction="sum") / batch
                        opt.zero_grad(set_to_none=True)
                        loss.backward()  # the sum of the K mean losses: each model gets its own gradient
                        opt.step()
                else:
                    opts = [torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4) for m in models]

                    def step(i: int) -> None:
                        for j, (m, o) in enumerate(zip(models, opts)):
                            idx = order[i, j]
                            loss = F.cross_entropy(m(evaluate.layout(data.to_float(x[idx]))), y[idx])
                            o.zero_grad(set_to_none=True)
                            loss.backward()
                            o.step()
                for i in range(warmup):
                    step(i)
                _sync(x.device)
                t0 = time.perf_counter()
                for i in range(warmup, warmup + steps):
                    step(i)
                _sync(x.device)
                dt = time.perf_counter() - t0
                row = {"depth": depth, "models": k, "mode": mode, "ms_per_step": round(1000 * dt / steps, 3),
                       "images_per_s_per_model": round(steps * batch / dt, 1)}
                print(f"  Res{depth} x{k} {mode:18s} {row['ms_per_step']:8.2f} ms per step of all {k}, "
                      f"{row['images_per_s_per_model']:9.0f} images/s per model", flush=True)
            except Exception as exc:  # a probe: report and go on
                row = {"depth": depth, "models": k, "mode": mode, "error": f"{type(exc).__name__}: {exc}"}
                print(f"  Res{depth} x{k} {mode:18s} failed: {row['error']}", flush=True)
            rows.append(row)
    return rows


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def training_estimate(methods_rows: list[dict], dataset: str = "mnist") -> list[dict]:
    """Training time of each model of the paper profile's ``build all`` from one-epoch throughputs
    (Res8 and Res26 measured; other depths interpolated linearly in time per step): a lower bound,
    without scoring, per-epoch curves and start-up."""
    prof = profiles.get("paper")
    n = {"mnist": 60000, "cifar10": 50000, "cifar100": 50000}[dataset]  # training images
    steps = n // prof.batch_size * prof.epochs_for(dataset)
    ms = {(r["depth"], r["method"]): 1000 * prof.batch_size / r["images_per_s"] for r in methods_rows}
    out = []
    for node in graph.Experiment(dataset, "paper").models_to_train():
        name, depth, method = node.name, node.config["depth"], node.config["method"]
        lo, hi = ms[(8, method)], ms[(26, method)]
        t = steps * (lo + (hi - lo) * (depth - 8) / 18) / 1000
        out.append({"key": node.key, "model": name, "depth": depth, "method": method, "train_s": round(t, 1)})
    return out


def critical_path_s(estimate: list[dict], dataset: str = "mnist") -> float:
    """The longest chain of training times through the dependency graph of the paper profile's
    ``build all`` (crafting D_adv and teacher logits counted as free), scheduled as ``cluster.build``
    does: a model starts once its training inputs are stored and ends no earlier than its curve source."""
    from akt_core.runner import curve_source, start_deps

    secs = {r["key"]: r["train_s"] for r in estimate}
    finish: dict[str, float] = {}
    for n in graph.walk(graph.Experiment(dataset, "paper").models_to_train()):  # dependencies first
        soft = curve_source(n) if n.kind == "model" else None
        start = max((finish[d.key] for d in start_deps(n)), default=0.0)
        finish[n.key] = max(start + secs.get(n.key, 0.0), finish[soft.key] if soft is not None else 0.0)
    return max(finish.values())


def show(folder: Path) -> None:
    """Print the figures stored in a results folder (``benchmarks/gpu_results/<run>``)."""
    import pandas as pd

    thr = json.loads((folder / "gpu_throughput.json").read_text())
    print(f"{thr['device']}, torch {thr['torch']}, cuDNN {thr['cudnn']}, commit {thr['commit']}\n")
    modes = pd.DataFrame(thr["modes"]).pivot_table(index="mode", columns="depth", values="images_per_s", sort=False)
    print("training images/s (cln, batch 256)\n" + modes.rename(columns=lambda d: f"Res{d}").round(0).to_string())
    meth = pd.DataFrame(thr["methods"]).pivot_table(index="method", columns="depth", values="images_per_s", sort=False)
    # the label comes from the rows (runs before the field existed did not record it: say so, never guess)
    precisions = sorted({r.get("precision", "") for r in thr["methods"]} - {""})
    label = ", ".join(precisions) + " channels-last" if precisions else "precision not recorded by this run"
    print(f"\ntraining images/s per method ({label})\n" + meth.rename(columns=lambda d: f"Res{d}").round(0).to_string())
    est = training_estimate(thr["methods"])
    print(f"\nthe paper profile's `build all` on MNIST trains {len(est)} models: at these rates, "
          f"{sum(r['train_s'] for r in est):.0f} s of training one after another, and "
          f"{critical_path_s(est):.0f} s along its longest chain of dependencies (the least `--jobs` can "
          "reach); both without scoring, curves and start-up")
    prec = folder / "gpu_precision.json"
    if prec.exists():
        p = json.loads(prec.read_text())
        print(f"\nbf16 vs fp32 ({p['device']}): Res8(cln), {p['precision']['epochs']} epochs of the paper profile")
        print(pd.DataFrame(p["precision"]["rows"]).to_string(index=False))
        print("\n".join(p["summary"]))
        print(f"same seed twice: max |weight difference| {p['precision']['repeat_max_abs_diff']}")
    for runs in sorted(folder.glob("paper*_runs.csv")):
        r = pd.read_csv(runs)
        print(f"\npaper profile, MNIST, models trained ({runs.name}, {r['device'].iloc[0]}):")
        print(r[["name", "wall_s", "images_per_s"]].to_string(index=False))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--out", default=None, help="JSON file for the figures")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: a plumbing check (CPU too)")
    ap.add_argument("--parts", nargs="+", default=["throughput", "precision"],
                    choices=["throughput", "precision", "graphs", "stacked"],
                    help="throughput: 1 and 2 above; precision: 3; graphs: the cln step eager and as a "
                         "replayed CUDA graph (graphed_step); stacked: K models in one vmapped step "
                         "(stacked_step)")
    ap.add_argument("--show", default=None, metavar="DIR", help="print the figures stored in DIR and exit")
    args = ap.parse_args()
    if args.show:
        show(Path(args.show))
        return 0
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type != "cuda" and not args.quick:
        print("no CUDA GPU: run with --quick for a plumbing check on the CPU", file=sys.stderr)
        return 2
    info = {"torch": torch.__version__, "device": provenance.device_name(dev), "commit": provenance.git_commit(),
            "cudnn": torch.backends.cudnn.version() if dev.type == "cuda" else None}
    print(f"GPU benchmark on {info['device']}, torch {info['torch']}, cuDNN {info['cudnn']}", flush=True)
    tr, te = data.load("mnist", "train", args.data_root), data.load("mnist", "test", args.data_root)
    n_tp, epochs, seeds = (2048, 1, (0, 1)) if args.quick else (len(tr), 20, (0, 1))
    if args.quick:
        tr, te = tr.subset(2048), te.subset(500)
    x, y = tr.x.to(dev), tr.y.to(dev)
    t0 = time.perf_counter()
    if "throughput" in args.parts:
        print("1. layout and precision (cln, batch 256, one epoch)", flush=True)
        info["modes"] = layout_and_precision(x, y, n_tp)
        print("2. the paper's methods (fp32 channels-last)", flush=True)
        info["methods"] = [{**r, "precision": "fp32"} for r in training_throughput(
            batch=256, dataset="mnist", method_names=PAPER_METHODS, x=x[:n_tp], y=y[:n_tp])]
    if "graphs" in args.parts:
        print("4b. every paper method, one epoch at batch 256: train.py eager and with --cuda-graphs", flush=True)
        info["graphs_methods"] = [
            {**r, "mode": mode, "precision": "fp32"} for mode, on in (("eager", False), ("CUDA graphs", True))
            for r in training_throughput(batch=256, dataset="mnist", method_names=PAPER_METHODS, x=x[:n_tp],
                                         y=y[:n_tp], cuda_graphs=on)]
        print("4. launch overhead: the cln step (batch 256) eager and as a replayed CUDA graph", flush=True)
        info["graphs"] = graphed_step(x, y, steps=20 if args.quick else 200)
    if "stacked" in args.parts:
        print("5. K independent Res26 (cln, batch 256 each): one after another, and stacked in one vmapped step",
              flush=True)
        info["stacked"] = stacked_step(x, y, steps=3 if args.quick else 50, batch=32 if args.quick else 256,
                                       warmup=1 if args.quick else 5)
    if "precision" in args.parts:
        print(f"3. bf16 vs fp32: Res8(cln), paper profile on MNIST ({epochs} epochs, {len(tr):,} images)", flush=True)
        info["precision"] = precision_effect(x, y, te.x, te.y, epochs, seeds)
        info["summary"] = summarise(info["precision"])
        print("\n".join(info["summary"]), flush=True)
    info["wall_s"] = round(time.perf_counter() - t0, 1)
    if args.out:
        Path(args.out).write_text(json.dumps(info, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
