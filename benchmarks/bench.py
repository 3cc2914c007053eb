"""Throughput and wall-time figures for the companion (run by `make bench`, never by the tests).

Prints, in one run:
0. steady-state training steps of Res8 and Res26 (clean training, CIFAR-shaped data, batch 128 and
   256) after a warm-up epoch: our loop with and without ``allocator.keep_freed_memory``, against a
   plain channels-last PyTorch loop (no augmentation, default allocator), each in a fresh process;
1. training throughput (images/s) of Res8 and Res26 for every method (CIFAR-shaped data);
2. attack throughput of our FGSM, I-FGSM and PGD against torchattacks' on the same model and
   batch, as a ratio (ours / theirs; target >= 1.0);
3. the wall time of the smoke profile for MNIST, CIFAR-10 and CIFAR-100 (target <= 10 min on 2
   cores), in a temporary store, on the local datasets (`make data` first);
4. bf16 autocast against float32 (issue 40): training throughput of Res8 and Res26, clean and
   adversarial-transfer training, MNIST- and CIFAR-10-shaped data, batch 256 (``--precision-only``
   runs this part alone).
Results are also written to benchmarks/results.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from akt_core import attacks, data, methods, profiles, provenance, results
from akt_core.models import MultiExitResNet, resnet
from akt_core.store import Store
from akt_core.train import TrainInputs, train_model


def method_inputs(m: methods.Method, x: torch.Tensor, y: torch.Tensor, spec: data.DatasetSpec,
                  g: torch.Generator) -> TrainInputs:
    """Training inputs for method ``m`` on images ``x`` (on any device), with random stand-ins for
    what it reads from other models (D_adv signs, teacher logits, a live teacher, a peer)."""
    n, (c, h, w), k, dev = len(x), x.shape[1:], spec.num_classes, x.device
    inp = TrainInputs(data.Split(x, y, "random"), spec.augment, attacks.EPS)
    if m.uses_dadv:
        inp.dadv_sign = torch.randint(-1, 2, (4, n, c, h, w), dtype=torch.int8, generator=g).to(dev)
    if m.live_teacher:  # ARD, RSLAD: a Res26 teacher runs on every batch
        inp.teacher_model = resnet(26, k, c, spec.mean, spec.std).to(dev).eval()
    elif m.static_teachers:  # SA-MDRAD-style: cached logits of several clean teachers, (n, M, K)
        inp.teacher = torch.randn(n, len(m.static_teachers), k, generator=g).to(dev)
    elif m.teacher:
        inp.teacher = torch.randn(n, k, generator=g).to(dev)
        inp.teacher_adv = torch.randn(4, n, k, generator=g).to(dev)
    if m.peer:  # PeerAiD: the peer trains in the same loop
        inp.peer_model = resnet(m.params["peer_depth"], k, c, spec.mean, spec.std)
    return inp


def training_throughput(n: int = 1024, batch: int = 128, dataset: str = "cifar10", device: str | None = None,
                        method_names: tuple[str, ...] | None = None, depths: tuple[int, ...] = (8, 26),
                        bf16: bool = False, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
                        cuda_graphs: bool = False) -> list[dict]:
    """Images/s of one epoch of every method (or ``method_names``) at each depth, on ``dataset``-shaped
    random images (or ``x``, ``y``) kept on ``device``."""
    spec = data.spec(dataset)
    g = torch.Generator().manual_seed(0)
    if x is None:
        x = torch.randint(0, 256, (n, spec.channels, spec.size, spec.size), dtype=torch.uint8, generator=g)
        y = torch.randint(0, spec.num_classes, (n,), generator=g)
    if device is not None:
        x, y = x.to(device), y.to(device)
    cfg = {**profiles.get("reduced").as_config(dataset), "epochs": 1, "batch_size": batch}
    rows = []
    for depth in depths:
        for name in method_names or tuple(methods.METHODS):
            m = methods.get(name)
            inp = method_inputs(m, x, y, spec, g)
            net = MultiExitResNet if m.multi_exit else resnet  # NEO-KD: an exit after each stage
            model = net(depth, spec.num_classes, spec.channels, spec.mean, spec.std)
            res = train_model(model, m, m.params, cfg, inp, seed=0, bf16=bf16, progress=False, cuda_graphs=cuda_graphs)
            rows.append({"depth": depth, "method": name, "images_per_s": round(res.images_per_s, 1)})
            print(f"  train Res{depth:<2d} {name:10s} {res.images_per_s:8.1f} images/s", flush=True)
    return rows


def precision_throughput(n: int = 4096, batch: int = 256) -> list[dict]:
    """Issue 40: images/s of ``cln`` and ``adv-trans`` training at Res8 and Res26 in float32 and under
    bf16 autocast, on MNIST- and CIFAR-10-shaped data; ``speedup`` is bf16 / float32 of the same row."""
    rows = []
    for dataset in ("mnist", "cifar10"):
        print(f"  {dataset}")
        pair = [training_throughput(n, batch, dataset, method_names=("cln", "adv-trans"), bf16=b) for b in (False, True)]
        for fp32, bf16 in zip(*pair):
            rows.append({"dataset": dataset, "depth": fp32["depth"], "method": fp32["method"],
                         "fp32_images_per_s": fp32["images_per_s"], "bf16_images_per_s": bf16["images_per_s"],
                         "speedup": round(bf16["images_per_s"] / fp32["images_per_s"], 3)})
            print(f"  Res{fp32['depth']:<2d} {fp32['method']:10s} bf16 / fp32 = {rows[-1]['speedup']:.2f}", flush=True)
    return rows


STEP_VARIANTS = ("ours", "ours, default malloc", "plain loop")


def _step_probe(variant: str, depth: int, batch: int, steps: int = 20) -> float:
    """Images/s of ``steps`` clean-training steps after a warm-up epoch of as many, in this process."""
    from akt_core import allocator

    spec = data.spec("cifar10")
    g = torch.Generator().manual_seed(0)
    n = batch * steps
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, 10, (n,), generator=g)
    torch.manual_seed(0)
    model = resnet(depth, 10, 3, spec.mean, spec.std)
    if variant == "plain loop":  # what a short script would do: no augmentation, no curves, no resume
        model = model.to(memory_format=torch.channels_last).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        times = []
        for _epoch in range(2):
            t0 = time.perf_counter()
            for idx in torch.randperm(n, generator=g).split(batch):
                xb = (x[idx].float() / 255).contiguous(memory_format=torch.channels_last)
                loss = torch.nn.functional.cross_entropy(model(xb), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            times.append(time.perf_counter() - t0)
        return n / times[1]
    if variant == "ours, default malloc":
        allocator._done = False  # keep_freed_memory() then does nothing in this process
    cfg = {**profiles.get("reduced").as_config("cifar10"), "epochs": 2, "batch_size": batch}
    m = methods.get("cln")
    res = train_model(model, m, m.params, cfg, TrainInputs(data.Split(x, y, "random"), True, attacks.EPS),
                      seed=0, progress=False)
    return n / (res.curves[1]["wall_s"] - res.curves[0]["wall_s"])


def step_throughput(depths: tuple[int, ...] = (8, 26), batches: tuple[int, ...] = (128, 256)) -> list[dict]:
    """``_step_probe`` of every variant, each in a fresh process (the allocator setting is per process)."""
    import subprocess

    rows = []
    for depth in depths:
        for batch in batches:
            row = {"depth": depth, "batch": batch}
            for variant in STEP_VARIANTS:
                out = subprocess.run([sys.executable, __file__, "--step-probe", variant, str(depth), str(batch)],
                                     capture_output=True, text=True, check=True).stdout
                row[variant] = round(float(out.strip().splitlines()[-1]), 1)
            row["ratio"] = round(row["ours"] / row["plain loop"], 3)
            rows.append(row)
            print(f"  Res{depth:<2d} batch {batch}: ours {row['ours']:7.1f}, default malloc "
                  f"{row['ours, default malloc']:7.1f}, plain loop {row['plain loop']:7.1f} images/s; "
                  f"ours / plain {row['ratio']:.2f}", flush=True)
    return rows


def attack_ratio(batch: int = 256, repeats: int = 7) -> list[dict]:
    import torchattacks

    spec = data.spec("cifar10")
    torch.manual_seed(0)
    model = resnet(8, 10, 3, spec.mean, spec.std).eval()
    x, y = torch.rand(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    eps = attacks.EPS
    pairs = {
        "FGSM": (lambda: attacks.fgsm(model, x, y, eps), torchattacks.FGSM(model, eps=eps)),
        "I-FGSM": (lambda: attacks.ifgsm(model, x, y, eps, eps / 5, 5), torchattacks.BIM(model, eps, eps / 5, 5)),
        "PGD-20": (lambda: attacks.pgd(model, x, y, eps, eps / 4, 20), torchattacks.PGD(model, eps, eps / 4, 20)),
    }
    rows = []
    for name, (ours, theirs) in pairs.items():
        fns = [ours, lambda: theirs(x, y)]
        best = [float("inf"), float("inf")]
        for f in fns:
            f()  # warm-up
        for _ in range(repeats):  # interleaved, best of `repeats`, so load on the machine hits both alike
            for i, f in enumerate(fns):
                t = time.perf_counter()
                f()
                best[i] = min(best[i], time.perf_counter() - t)
        a, b = batch / best[0], batch / best[1]
        rows.append({"attack": name, "ours_images_per_s": round(a, 1), "torchattacks_images_per_s": round(b, 1),
                     "ratio": round(a / b, 3)})
        print(f"  {name:7s} ours {a:8.1f} img/s  torchattacks {b:8.1f} img/s  ratio {a / b:.2f}", flush=True)
    return rows


def smoke_wall_time(data_root: str | None) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        for ds in ("mnist", "cifar10", "cifar100"):
            t = time.perf_counter()
            results.require("all", ds, "smoke", compute=True, store=Store(tmp), data_root=data_root,
                          device="cpu", progress=False, log=lambda *a: None)
            out[ds] = round(time.perf_counter() - t, 1)
            print(f"  smoke {ds:9s} {out[ds]:7.1f} s", flush=True)
        out["total"] = round(time.perf_counter() - t0, 1)
    print(f"  smoke, all three datasets: {out['total']:.1f} s ({out['total'] / 60:.1f} min; target <= 10 min)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--skip-smoke", action="store_true")
    ap.add_argument("--precision-only", action="store_true", help="only part 4 (bf16 against float32)")
    ap.add_argument("--step-probe", nargs=3, metavar=("VARIANT", "DEPTH", "BATCH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step_probe:
        variant, depth, batch = args.step_probe
        print(_step_probe(variant, int(depth), int(batch)))
        return
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "device": provenance.device_name(torch.device("cpu")), "commit": provenance.git_commit()}
    print(f"benchmark on {info['device']}, torch {info['torch']}")
    out = Path(__file__).with_name("results.json")
    if args.precision_only:
        print("4. bf16 autocast against float32 (training, batch 256)")
        old = json.loads(out.read_text()) if out.exists() else {}
        out.write_text(json.dumps({**old, "precision": {**info, "rows": precision_throughput()}}, indent=1))
        return
    print("0. steady-state training steps, ours against a plain loop (clean training, CIFAR-10 shapes)")
    info["steps"] = step_throughput()
    print("1. training throughput")
    info["training"] = training_throughput()
    print("2. attack throughput, ours / torchattacks (Res8, batch 256)")
    info["attacks"] = attack_ratio()
    if not args.skip_smoke:
        print("3. smoke profile wall time")
        info["smoke_s"] = smoke_wall_time(args.data_root)
    print("4. bf16 autocast against float32 (training, batch 256)")
    info["precision"] = {"rows": precision_throughput()}
    out.write_text(json.dumps(info, indent=1))


if __name__ == "__main__":
    sys.exit(main())
