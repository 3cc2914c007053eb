"""Building the experiment graph's nodes: training models, crafting D_adv, teacher logits.

``Runner`` builds one node on demand, with its dependencies, and caches everything in the store:
a model is read from the published weights or the cache, else trained (``train.train_model``);
D_adv is Algorithm 1's step 2 (FGSM on every training image from every static source, once); teacher
logits are the distillation targets of Eq. (11). ``cluster.build`` builds independent nodes as Dask
tasks (``akt build --jobs N`` or ``--scheduler ADDRESS``). Scoring records is ``results.score``.
"""
from __future__ import annotations

import copy
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch

from . import RESULTS_VERSION, pixels
from . import choices as choices_mod
from . import data as data_mod
from . import methods as methods_mod
from . import profiles as profiles_mod
from .attacks import ATTACKS
from .evaluate import craft, layout, logits
from .graph import ALL_VARIANTS, Experiment, Node
from .inputs import INPUTS, dadv_images
from .models import ExitView, for_dataset
from .provenance import device_name, git_commit, resolve_device
from .store import Store
from .train import TrainInputs, score_adv_curve, train_model


def curve_source(node: Node) -> Node | None:
    """The model whose FGSM set ``node``'s per-epoch adversarial curve is scored on, if any. It is a
    dependency of scoring only, never of training: ``cluster.build`` starts ``node`` while it trains."""
    key = node.config.get("curve_source")
    return next(d for d in node.deps if d.key == key) if key else None


class Runner:
    """Builds nodes on demand (train, craft D_adv, teacher logits, evaluate), caching everything."""

    def __init__(self, exp: Experiment, store: Store | None = None, data_root: str | Path | None = None,
                 device: str | None = None, download: bool = False, progress: bool = True,
                 log=print, bf16: bool = False, cuda_graphs: bool = False) -> None:
        self.store = store or Store()
        self.device = resolve_device(device)
        #: bf16 autocast of training, teacher logits and scoring, only when asked (``--bf16``; crafting
        #: stays float32). On a GPU it is slower than float32 with TF32 convolutions for these small
        #: networks (``benchmarks/gpu_results``); on a CPU it is faster (``make bench``)
        self.bf16 = bf16
        #: replay each training step as a CUDA graph (``cuda_graphs``; ``--cuda-graphs``), on a GPU only
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self.progress, self.log, self.data_root = progress, log, data_root
        prof = profiles_mod.get(exp.profile)
        train = data_mod.load(exp.dataset, "train", data_root, download).subset(
            prof.n_train_for(exp.dataset))
        test = data_mod.load(exp.dataset, "test", data_root, download)
        self.train = train.to(self.device)
        # the test and curve sets live on the device too: no host-to-device copy per scored batch
        self.test = test.subset(prof.n_test).to(self.device)
        self.curve = test.subset(prof.n_curve).to(self.device)
        self.exp = replace(exp, dataset_variant=train.variant)
        if (exp.dataset, "train") in pixels.PUBLISHED_PIXELS and progress:
            log(f"[data] {pixels.describe(exp.dataset, 'train', train.variant)}")
        self.spec = data_mod.spec(exp.dataset)
        self._models: dict[str, torch.nn.Module] = {}
        self._arrays: dict[str, torch.Tensor] = {}
        self._curve_adv: dict[str, torch.Tensor] = {}  #: per curve source: the curve subset under its FGSM
        #: set in ``cluster.build_task``: blocks until another task has built a model and puts it in
        #: this runner's store. A model whose curve source is still training then trains without
        #: waiting for it (``curve_source``) and scores its adversarial curve afterwards
        self.wait_for: Callable[[Node], None] | None = None
        self.commit = git_commit()

    def fork(self, store: Store) -> "Runner":
        """A runner on ``store`` that shares this one's loaded data (read only) and nothing else: its
        own caches of models and arrays, and no ``wait_for``."""
        other = copy.copy(self)
        other.store, other._models, other._arrays, other._curve_adv, other.wait_for = store, {}, {}, {}, None
        return other

    def provenance(self, **extra) -> dict:
        e = self.exp
        return {"profile": e.profile, "dataset": e.dataset, "dataset_variant": e.dataset_variant, "seed": e.seed,
                "blackbox": e.blackbox, "train_images": len(self.train), "epochs": e.prof.epochs_for(e.dataset),
                "batch_size": e.prof.batch_size, "results_version": RESULTS_VERSION, "git_commit": self.commit,
                "torch_version": torch.__version__,
                "device": device_name(self.device, self.bf16) + (", CUDA graphs" if self.cuda_graphs else ""), **extra}

    def new_model(self, depth: int, multi_exit: bool = False) -> torch.nn.Module:
        return for_dataset(self.spec, depth, multi_exit)

    def target(self, variant: str) -> torch.nn.Module:
        """The model a record of ``variant`` scores: its trained model, or one exit of it."""
        m = self.model(self.exp.model(variant))
        k = ALL_VARIANTS[variant].exit
        return m if k is None else ExitView(m, k).eval()

    # ---- artefacts --------------------------------------------------------------------------
    def model(self, node: Node) -> torch.nn.Module:
        """The trained model of ``node`` (from the cache, or trained now with its dependencies)."""
        if node.key in self._models:
            return self._models[node.key]
        state = self.store.load("model", node.key, node.config)
        if state is None:
            state = self._train(node)
        m = self.new_model(node.config["depth"], methods_mod.get(node.config["method"]).multi_exit)
        m.load_state_dict(state)
        m = layout(m.to(self.device)).eval()
        self._models[node.key] = m
        return m

    def _train(self, node: Node) -> dict:
        cfg = node.config
        method = methods_mod.get(cfg["method"])
        torch.manual_seed(cfg["seed"])
        model = self.new_model(cfg["depth"], method.multi_exit)
        inp = TrainInputs(self.train, self.spec.augment, self.exp.eps)
        for name in method.inputs:  # each declared input's dependencies, built if the store lacks them
            INPUTS[name].load(self, node, inp)
        inp.curve_x, inp.curve_y = self.curve.x, self.curve.y
        src = curve_source(node)
        if src is not None and self.wait_for is not None and not self.store.has("model", src.key):
            inp.defer_adv_curve = True  # being trained beside this model: score its curve afterwards
        elif src is not None:
            inp.curve_adv = self.curve_adv(src)
        self.log(f"[train] {self.exp.dataset} {node.name} seed {cfg['seed']} ({cfg['epochs']} epochs, "
                 f"{len(self.train)} images, key {node.key})")
        res = train_model(model, method, cfg["params"], cfg, inp, cfg["seed"], self.bf16,
                          self.store.partial_path(node.key), self.progress, desc=node.name,
                          cuda_graphs=self.cuda_graphs)
        if inp.defer_adv_curve:
            self.log(f"[train] {node.name}: its adversarial curve waits for {src.name}")
            self.wait_for(src)
            score_adv_curve(self.new_model(cfg["depth"], method.multi_exit), res, self.curve_adv(src),
                            self.curve.y, self.bf16)
        # rows first, then the model, then the saved state goes: a failure anywhere leaves no model
        # without its rows (a rerun resumes from the finished state and writes them again)
        p = self.exp.profile
        self.store.append(p, "curves", [{"key": node.key, "dataset": self.exp.dataset, "model": node.name,
                                         "seed": cfg["seed"], "dataset_variant": self.exp.dataset_variant,
                                         "blackbox": self.exp.blackbox, "train_images": len(self.train),
                                         "epochs": cfg["epochs"], "batch_size": cfg["batch_size"],
                                         **choices_mod.column(cfg), **row}
                                        for row in res.curves])
        self._run_row(node, res.wall_s, res.images_per_s, res.cpu_s)
        prov = self.provenance(seed=cfg["seed"], n_examples=len(self.train), wall_s=round(res.wall_s, 2))
        self.store.save("model", node.key, cfg, res.state_dict, prov)
        self.store.partial_path(node.key).unlink(missing_ok=True)
        last = res.curves[-1]
        self.log(f"[train] {node.name}: clean {last.get('clean_acc', float('nan')):.2f} % "
                 f"adv {last.get('adv_acc', float('nan')):.2f} % in {res.wall_s:.0f} s "
                 f"({res.images_per_s:.0f} img/s)")
        return res.state_dict

    def curve_adv(self, src: Node) -> torch.Tensor:
        """The curve subset under FGSM on ``src``: the same set for every model scored against it."""
        if src.key not in self._curve_adv:
            self._curve_adv[src.key] = craft(ATTACKS["FGSM"], self.model(src), self.curve.x, self.curve.y,
                                             self.exp.eps)
        return self._curve_adv[src.key]

    def _run_row(self, node: Node, wall_s: float, images_per_s: float, cpu_s: float) -> None:
        """The ``runs`` row of a built ``node``: ``wall_s`` is what the clock saw (slowed by whatever
        else ran on the machine), ``cpu_s`` the CPU seconds of this process, all its threads together."""
        self.store.append(self.exp.profile, "runs", [{
            "key": node.key, "kind": node.kind, "name": node.name, **self.provenance(
                seed=node.config.get("seed", self.exp.seed)), **choices_mod.column(node.config),
            "wall_s": round(wall_s, 2), "cpu_s": round(cpu_s, 2), "images_per_s": round(images_per_s, 1)}])

    def array(self, node: Node) -> torch.Tensor:
        """A crafted set (D_adv signs) or teacher logits, from the cache or built now."""
        if node.key in self._arrays:
            return self._arrays[node.key]
        out = self.store.load(node.kind, node.key, node.config)
        if out is None:
            for dep in node.deps:  # build dependencies first, so the wall time is this node's alone
                self.model(dep) if dep.kind == "model" else self.array(dep)
            t0, c0 = time.perf_counter(), time.process_time()
            out = self._craft_dadv(node) if node.kind == "dadv" else self._teacher_logits(node)
            wall = time.perf_counter() - t0
            self._run_row(node, wall, len(self.train) * len(node.deps) / wall,  # the row before the entry
                          time.process_time() - c0)
            self.store.save(node.kind, node.key, node.config, out, self.provenance())
        out = out.to(self.device)
        self._arrays[node.key] = out
        return out

    def _craft_dadv(self, node: Node) -> torch.Tensor:
        """Algorithm 1, line 2: FGSM on every training image from every static model, once.

        Stored as sign(x' - x) in int8, which rebuilds x' = clip(x + eps * sign) bit for bit.
        """
        signs = []
        x, y = self.train.x, self.train.y
        for src in node.deps:
            self.log(f"[craft] D_adv from {src.name} on {len(x)} images")
            x_adv = craft(ATTACKS["FGSM"], self.model(src), x, y, self.exp.eps, self.exp.prof.eval_batch_size)
            signs.append(torch.sign(x_adv - data_mod.to_float(x)).to(torch.int8))
        return torch.stack(signs).cpu()

    def _teacher_logits(self, node: Node) -> torch.Tensor:
        """Teacher logits on the clean training set and, if asked, on every D_adv source: (1 + S, N, K)."""
        bs = self.exp.prof.eval_batch_size
        if node.config.get("multi"):
            return torch.stack([logits(self.model(d), self.train.x, bs, self.bf16) for d in node.deps]).cpu()
        teacher = self.model(node.deps[0])
        out = [logits(teacher, self.train.x, bs, self.bf16)]
        if len(node.deps) > 1:
            signs = self.array(node.deps[1])
            for s in range(signs.shape[0]):
                out.append(torch.cat([logits(teacher, dadv_images(self.train.x[i:i + bs], signs[s, i:i + bs],
                                                                  self.exp.eps), bs, self.bf16)
                                      for i in range(0, len(self.train), bs)]))
        return torch.stack(out).cpu()


# ---- what a model must wait for ----------------------------------------------------------------
def start_deps(node: Node) -> list[Node]:
    """The dependencies that must be stored before ``node`` starts: all of them, except a model's curve
    source (``curve_source``), which may still be training (its curve is scored later, ``Runner._train``)."""
    soft = curve_source(node) if node.kind == "model" else None
    return [d for d in node.deps if soft is None or d.key != soft.key]
