"""The paper's experiment as data: variants, their dependencies, and what each table needs.

Nodes and their dependencies (one seed of one dataset under one profile)::

    static sources Res26/20/14/8 (cln, seed s) --FGSM--> D_adv --+--> Res26(adv) --+--> teacher logits --> Res8(dist-adv)
                                                                 +--> Res8(adv)     +--> teacher logits (+ D_adv) --> Res8(adv-trans)
    Res26(cln) = static Res26 --> teacher logits --> Res8(dist-cln);   Res8(cln) = static Res8;   Res8(self-adv)
    black-box sources Res26/20/14/8 (cln, seed s + 1000, held out) --> adversarial test sets --> records

The black-box sources are independently seeded models, never used in training (``blackbox=
"held-out"``, our reading of a black-box test); ``blackbox="static"`` uses the training-time static
models instead (the other reading of the paper). Every node's key hashes its full config and its
dependencies' keys (``store.config_key``); ``require`` builds only what the store lacks.
"""
from __future__ import annotations

import json
import numbers
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Callable
from pathlib import Path

import pandas as pd
import torch

from . import AktError, RESULTS_VERSION, check_choice
from . import data as data_mod
from . import methods as methods_mod
from . import profiles as profiles_mod
from .attacks import ATTACKS, EPS, fgsm
from .evaluate import correct, craft, layout, logits
from .models import ExitView, MultiExitResNet, resnet
from .schema import SEED_LIMIT
from .store import Store, config_key
from .train import TrainInputs, train_model

SOURCE_DEPTHS = (26, 20, 14, 8)


@dataclass(frozen=True)
class Variant:
    name: str
    depth: int
    method: str
    exit: int | None = None  #: one exit of a multi-exit model, evaluated as a model of its own

    @property
    def base(self) -> str:
        """The trained model this variant reads (itself, or the multi-exit model of an exit)."""
        return self.name.split("/")[0]


VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("Res26(cln)", 26, "cln"), Variant("Res26(adv)", 26, "adv"),
    Variant("Res8(cln)", 8, "cln"), Variant("Res8(self-adv)", 8, "self-adv"), Variant("Res8(adv)", 8, "adv"),
    Variant("Res8(dist-cln)", 8, "dist-cln"), Variant("Res8(dist-adv)", 8, "dist-adv"),
    Variant("Res8(adv-trans)", 8, "adv-trans"),
]}
RES8_VARIANTS = [v for v in VARIANTS if v.startswith("Res8")]
#: Later adversarial-distillation methods (beyond the paper), same Res8 student and Res26(adv) teacher.
BEYOND_VARIANTS: dict[str, Variant] = {v.name: v for v in [
    Variant("Res8(ard)", 8, "ard"), Variant("Res8(rslad)", 8, "rslad"), Variant("Res8(sa-mdrad)", 8, "sa-mdrad"),
    Variant("Res8(peeraid)", 8, "peeraid"), Variant("Res26(neo-kd)", 26, "neo-kd"),
]}
#: Each exit of the multi-exit Res26(neo-kd) as an edge model of its own (exit 3 is the whole network).
EXIT_VARIANTS: dict[str, Variant] = {f"Res26(neo-kd)/exit{k}": Variant(f"Res26(neo-kd)/exit{k}", 26, "neo-kd", k)
                                     for k in (1, 2, 3)}
EXIT_BASES = {v.base for v in EXIT_VARIANTS.values()}  #: multi-exit models, evaluated exit by exit
ALL_VARIANTS: dict[str, Variant] = {**VARIANTS, **BEYOND_VARIANTS, **EXIT_VARIANTS}
PAPER_ATTACKS = tuple(ATTACKS)


@dataclass(frozen=True)
class TableSpec:
    """One table: its dataset, its rows (targets) and columns as (column name, attack, source depth)."""

    number: int
    group: str
    dataset: str
    targets: tuple[str, ...]
    columns: tuple[tuple[str, str, int | None], ...]


_T2 = ("Res26(cln)", "Res26(adv)", "Res8(cln)", "Res8(adv)", "Res8(dist-cln)", "Res8(dist-adv)", "Res8(adv-trans)")
_T5 = ("Res8(cln)", "Res8(self-adv)", "Res8(adv)", "Res8(adv-trans)")
_ATTACK_COLS = (("clean", "clean", None),) + tuple((a, a, 26) for a in PAPER_ATTACKS)
# Tables 5-7 name a "Res16" source; 16 is not 6n+2 and Sec. 3.1 names Res14, so we read Res14.
_SOURCE_COLS = (("clean", "clean", None),) + tuple(
    (f"FGSM@Res{16 if d == 14 else d}", "FGSM", d) for d in SOURCE_DEPTHS)
DATASET_OF_ROW = ("mnist", "cifar10", "cifar100")
TABLES: dict[int, TableSpec] = {}
for _i, _ds in enumerate(DATASET_OF_ROW):
    TABLES[2 + _i] = TableSpec(2 + _i, "variants", _ds, _T2, _ATTACK_COLS)
    TABLES[5 + _i] = TableSpec(5 + _i, "sources", _ds, _T5, _SOURCE_COLS)
    TABLES[8 + _i] = TableSpec(8 + _i, "attacks", _ds, _T5, _ATTACK_COLS)
GROUPS = {"variants": (2, 3, 4), "sources": (5, 6, 7), "attacks": (8, 9, 10)}
FIGURES = {3: "clean_acc", 4: "adv_acc"}  #: per-epoch curve each figure draws (CIFAR-10 in the paper)
BLACKBOX = ("held-out", "static")


def table_for(group: str, dataset: str) -> TableSpec:
    """The table of ``group`` (variants / sources / attacks) for ``dataset``; other datasets (e.g.
    ``synthetic``) get the group's layout under the MNIST table's number."""
    check_choice("table group", group, GROUPS)
    data_mod.spec(dataset)
    for n in GROUPS[group]:
        if TABLES[n].dataset == dataset:
            return TABLES[n]
    return replace(TABLES[GROUPS[group][0]], dataset=dataset)


@dataclass(frozen=True)
class Node:
    kind: str  # "model" | "dadv" | "logits"
    name: str
    config: dict = field(hash=False, compare=False)
    deps: tuple["Node", ...] = field(default=(), hash=False, compare=False)
    key: str = ""


def _node(kind: str, name: str, config: dict, deps: tuple[Node, ...] = ()) -> Node:
    config = {"kind": kind, "name": name, **config, "deps": [d.key for d in deps]}
    return Node(kind, name, config, deps, config_key(config))


@dataclass(frozen=True)
class Experiment:
    """One seed of one dataset under one profile; builds and names its nodes."""

    dataset: str
    profile: str
    seed: int = 0
    variant: str = "unknown"  #: dataset variant (filled in from the loaded data)
    blackbox: str = "held-out"
    heldout_offset: int = 1000  #: held-out black-box sources use seed + this
    eps: float = EPS

    def __post_init__(self) -> None:
        data_mod.spec(self.dataset)
        profiles_mod.get(self.profile)
        check_choice("black-box source choice", self.blackbox, BLACKBOX)
        if not (isinstance(self.seed, numbers.Integral) and 0 <= self.seed < SEED_LIMIT):
            raise AktError(f"seed={self.seed!r}: give a whole number with 0 <= seed < 2**63")
        if not 0 < self.eps <= 1:
            raise AktError(f"eps={self.eps!r} is impossible for images in [0, 1]; choose 0 < eps <= 1")

    @cached_property
    def prof(self) -> profiles_mod.Profile:
        return profiles_mod.get(self.profile)

    def _data_config(self) -> dict:
        return {"dataset": self.dataset, "dataset_variant": self.variant, "eps": self.eps,
                **self.prof.as_config(self.dataset)}

    def _model(self, name: str, depth: int, method: str, seed: int, deps: tuple[Node, ...] = (),
               curve: Node | None = None, teacher: Node | None = None) -> Node:
        m = methods_mod.get(method)
        cfg = {**self._data_config(), "depth": depth, "method": method, "params": m.params, "seed": seed,
               "curve_source": curve.key if curve else None}
        if teacher is not None:  # only live-teacher methods carry the field (other keys stay as they were)
            cfg["teacher"] = teacher.key
        return _node("model", name, cfg, deps + ((curve,) if curve else ()))

    def blackbox_source(self, depth: int) -> Node:
        if self.blackbox == "static":
            return self.static_source(depth)
        return self._model(f"heldout:Res{depth}", depth, "cln", self.seed + self.heldout_offset)

    def curve_source(self) -> Node:
        """Figs. 3-4 score each epoch on test images attacked (FGSM) on the black-box Res26."""
        return self.blackbox_source(26)

    def static_source(self, depth: int) -> Node:
        curve = None if (self.blackbox == "static" and depth == 26) else self.curve_source()
        return self._model(f"static:Res{depth}", depth, "cln", self.seed, curve=curve)

    def dadv(self) -> Node:
        deps = tuple(self.static_source(d) for d in SOURCE_DEPTHS)
        return _node("dadv", "D_adv", self._data_config(), deps)

    def static_logits(self, depths: tuple[int, ...]) -> Node:
        """Logits of several clean static models on the clean training set, (M, N, K) (SA-MDRAD-style)."""
        deps = tuple(self.static_source(d) for d in depths)
        return _node("logits", "logits:" + "+".join(f"static:Res{d}" for d in depths),
                     {**self._data_config(), "multi": True}, deps)

    def teacher_logits(self, teacher: str, on_dadv: bool) -> Node:
        deps = (self.model(teacher),) + ((self.dadv(),) if on_dadv else ())
        return _node("logits", f"logits:{teacher}{'+D_adv' if on_dadv else ''}", self._data_config(), deps)

    def model(self, variant: str) -> Node:
        check_choice("variant", variant, ALL_VARIANTS)
        v = ALL_VARIANTS[variant]
        if v.exit is not None:  # an exit reads the multi-exit model it belongs to
            return self.model(v.base)
        m = methods_mod.get(v.method)
        if v.method == "cln":
            return self.static_source(v.depth)
        if m.live_teacher:
            teacher = self.model(m.teacher)
            return self._model(variant, v.depth, v.method, self.seed, (teacher,), self.curve_source(), teacher)
        if m.static_teachers:
            return self._model(variant, v.depth, v.method, self.seed, (self.static_logits(m.static_teachers),),
                               self.curve_source())
        deps: tuple[Node, ...] = ()
        if m.uses_dadv:
            deps += (self.dadv(),)
        if m.teacher:
            deps += (self.teacher_logits(m.teacher, on_dadv=m.uses_dadv),)
        return self._model(variant, v.depth, v.method, self.seed, deps, self.curve_source())

    def prerequisites(self, variant: str) -> list[str]:
        """What must be trained or crafted before ``variant`` trains: the names of the model and D_adv
        nodes it depends on, dependencies first. The held-out black-box models are left out: they
        only score the per-epoch curves, never enter training. (A PeerAiD peer is not a node: it
        trains in the same run.)"""
        *deps, _ = walk([self.model(variant)])
        return [d.name for d in deps if d.kind in ("model", "dadv") and not d.name.startswith("heldout:")]

    def models_to_train(self, variants: tuple[str, ...] = tuple(VARIANTS)) -> list[Node]:
        """Every model node that scoring ``variants`` (default: the paper's) under the black-box
        protocol needs, dependencies first: the variants, what they are trained from, and the
        black-box sources. ``akt build all`` trains exactly these (when the store lacks them)."""
        roots = [self.model(v) for v in variants] + [self.blackbox_source(d) for d in SOURCE_DEPTHS]
        return [n for n in walk(roots) if n.kind == "model"]

    def record_key(self, target: str, attack: str, source: int | None) -> str:
        src = self.blackbox_source(source).key if source else None
        return config_key({"target": self.model(target).key, "attack": attack, "source": src,
                           "eps": self.eps, "n_test": self.prof.n_test, **exit_field(target)})


def walk(roots: list[Node]) -> list[Node]:
    """Every node under ``roots`` (the roots too), each once, dependencies first."""
    seen: dict[str, Node] = {}

    def visit(node: Node) -> None:
        if node.key not in seen:
            for d in node.deps:
                visit(d)
            seen[node.key] = node

    for r in roots:
        visit(r)
    return list(seen.values())


def exit_field(variant: str) -> dict:
    """``{"exit": k}`` for an exit variant, else nothing (so the keys of every other record stay as they were)."""
    k = ALL_VARIANTS[variant].exit
    return {} if k is None else {"exit": k}


# ---- provenance ------------------------------------------------------------------------------
def git_commit() -> str:
    """The checkout's commit (``-dirty`` with uncommitted changes); ``$AKT_GIT_COMMIT`` where the code
    runs from a copy without git history (a GPU machine that receives only the working tree)."""
    if os.environ.get("AKT_GIT_COMMIT"):
        return os.environ["AKT_GIT_COMMIT"]
    try:
        root = Path(__file__).resolve().parent.parent
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha + ("-dirty" if dirty else "")) if sha else "unknown"
    except Exception:  # noqa: BLE001
        return "unknown"


def device_name(device: torch.device, amp: bool = False) -> str:
    """The device in words; on a GPU also its arithmetic: float32 with TF32 convolutions (PyTorch's
    default for cuDNN) or bf16 autocast. Either changes results beyond float32 rounding."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device) + (", bf16 autocast" if amp else ", fp32/tf32")
    # float results differ between CPUs that torch runs with different kernels (AVX2, AVX512): name them
    kernels = torch.backends.cpu.get_cpu_capability()
    name, family = platform.processor() or platform.machine(), ""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines()[:30] if ":" in line)
        info = {k.strip(): v.strip() for k, v in info.items()}
        name = info.get("model name", name)
        if "cpu family" in info and "model" in info:
            family = f"family {info['cpu family']} model {info['model']}, "
    except OSError:
        pass
    return f"cpu: {name} ({family}{kernels}) x{torch.get_num_threads()} threads"


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.split(":")[0] not in ("cpu", "cuda"):
        raise AktError(f"unknown device {device!r}; valid choices: auto, cpu, cuda, cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AktError(f"device {device!r} requested but no CUDA GPU is available; use --device cpu")
    return torch.device(device)


# ---- the runner ------------------------------------------------------------------------------
class Runner:
    """Builds nodes on demand (train, craft D_adv, teacher logits, evaluate), caching everything."""

    def __init__(self, exp: Experiment, store: Store | None = None, data_root: str | Path | None = None,
                 device: str | None = None, download: bool = False, progress: bool = True,
                 log=print, amp: bool = False) -> None:
        self.store = store or Store()
        self.device = resolve_device(device)
        #: bf16 autocast, on a GPU only and only when asked (``--bf16``): on these small networks it
        #: is slower than float32 with TF32 convolutions (``benchmarks/gpu_results``)
        self.amp = amp and self.device.type == "cuda"
        self.progress, self.log, self.data_root = progress, log, data_root
        prof = profiles_mod.get(exp.profile)
        train = data_mod.load(exp.dataset, "train", data_root, download).subset(
            prof.n_train_for(exp.dataset))
        test = data_mod.load(exp.dataset, "test", data_root, download)
        self.train = train.to(self.device)
        self.test = test.subset(prof.n_test)
        self.curve = test.subset(prof.n_curve)
        self.exp = replace(exp, variant=train.variant)
        self.spec = data_mod.spec(exp.dataset)
        self._models: dict[str, torch.nn.Module] = {}
        self._arrays: dict[str, torch.Tensor] = {}
        self._curve_adv: dict[str, torch.Tensor] = {}  #: per curve source: the curve subset under its FGSM
        self.commit = git_commit()

    def provenance(self, **extra) -> dict:
        e = self.exp
        return {"profile": e.profile, "dataset": e.dataset, "dataset_variant": e.variant, "seed": e.seed,
                "blackbox": e.blackbox, "train_images": len(self.train), "epochs": e.prof.epochs_for(e.dataset),
                "batch_size": e.prof.batch_size, "results_version": RESULTS_VERSION, "git_commit": self.commit,
                "torch_version": torch.__version__, "device": device_name(self.device, self.amp), **extra}

    def _new_model(self, depth: int, multi_exit: bool = False) -> torch.nn.Module:
        s = self.spec
        if multi_exit:
            return MultiExitResNet(depth, s.num_classes, s.channels, s.mean, s.std)
        return resnet(depth, s.num_classes, s.channels, s.mean, s.std)

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
        m = self._new_model(node.config["depth"], methods_mod.get(node.config["method"]).multi_exit)
        m.load_state_dict(state)
        m = layout(m.to(self.device)).eval()
        self._models[node.key] = m
        return m

    def _train(self, node: Node) -> dict:
        cfg = node.config
        method = methods_mod.get(cfg["method"])
        inp = TrainInputs(self.train, self.spec.augment, self.exp.eps)
        for dep in node.deps:
            if dep.kind == "dadv":
                inp.dadv_sign = self.array(dep)
            elif dep.kind == "logits" and dep.config.get("multi"):
                inp.teacher = self.array(dep).permute(1, 0, 2)  # (N, M, K): all teachers of an image
            elif dep.kind == "logits":
                t = self.array(dep)
                inp.teacher = t[0]
                inp.teacher_adv = t[1:] if len(t) > 1 else None
            elif dep.key == cfg.get("teacher"):
                inp.teacher_model = self.model(dep)
        inp.curve_x, inp.curve_y = self.curve.x, self.curve.y
        if (src_key := cfg["curve_source"]):  # the same set for every model scored against it: crafted once
            if src_key not in self._curve_adv:
                src = next(d for d in node.deps if d.key == src_key)
                self._curve_adv[src_key] = craft(ATTACKS["FGSM"], self.model(src), self.curve.x, self.curve.y,
                                                 self.exp.eps)
            inp.curve_adv = self._curve_adv[src_key]
        self.log(f"[train] {self.exp.dataset} {node.name} seed {cfg['seed']} ({cfg['epochs']} epochs, "
                 f"{len(self.train)} images, key {node.key})")
        torch.manual_seed(cfg["seed"])
        model = self._new_model(cfg["depth"], method.multi_exit)
        if method.peer:  # initialised right after the student, from the same seed
            inp.peer_model = self._new_model(cfg["params"]["peer_depth"])
        res = train_model(model, method, cfg["params"], cfg, inp, cfg["seed"], self.amp,
                          self.store.partial_path(node.key), self.progress, desc=node.name)
        # rows first, then the model, then the saved state goes: a failure anywhere leaves no model
        # without its rows (a rerun resumes from the finished state and writes them again)
        p = self.exp.profile
        self.store.append(p, "curves", [{"key": node.key, "dataset": self.exp.dataset, "model": node.name,
                                         "seed": cfg["seed"], "dataset_variant": self.exp.variant,
                                         "blackbox": self.exp.blackbox, "train_images": len(self.train),
                                         "epochs": cfg["epochs"], "batch_size": cfg["batch_size"], **row}
                                        for row in res.curves],
                          unique=("key", "epoch"))
        self._run_row(node, res.wall_s, res.images_per_s)
        prov = self.provenance(seed=cfg["seed"], n_examples=len(self.train), wall_s=round(res.wall_s, 2))
        self.store.save("model", node.key, cfg, res.state_dict, prov)
        self.store.partial_path(node.key).unlink(missing_ok=True)
        last = res.curves[-1]
        self.log(f"[train] {node.name}: clean {last.get('clean_acc', float('nan')):.2f} % "
                 f"adv {last.get('adv_acc', float('nan')):.2f} % in {res.wall_s:.0f} s "
                 f"({res.images_per_s:.0f} img/s)")
        return res.state_dict

    def _run_row(self, node: Node, wall_s: float, images_per_s: float) -> None:
        self.store.append(self.exp.profile, "runs", [{
            "key": node.key, "kind": node.kind, "name": node.name, **self.provenance(
                seed=node.config.get("seed", self.exp.seed)),
            "wall_s": round(wall_s, 2), "images_per_s": round(images_per_s, 1)}], unique=("key",))

    def array(self, node: Node) -> torch.Tensor:
        """A crafted set (D_adv signs) or teacher logits, from the cache or built now."""
        if node.key in self._arrays:
            return self._arrays[node.key]
        out = self.store.load(node.kind, node.key, node.config)
        if out is None:
            for dep in node.deps:  # build dependencies first, so the wall time is this node's alone
                self.model(dep) if dep.kind == "model" else self.array(dep)
            t0 = time.perf_counter()
            out = self._craft_dadv(node) if node.kind == "dadv" else self._teacher_logits(node)
            wall = time.perf_counter() - t0
            self._run_row(node, wall, len(self.train) * len(node.deps) / wall)  # the row before the entry
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
        from .train import dadv_images

        bs = self.exp.prof.eval_batch_size
        if node.config.get("multi"):
            return torch.stack([logits(self.model(d), self.train.x, bs, self.amp) for d in node.deps]).cpu()
        teacher = self.model(node.deps[0])
        out = [logits(teacher, self.train.x, bs, self.amp)]
        if len(node.deps) > 1:
            signs = self.array(node.deps[1])
            for s in range(signs.shape[0]):
                out.append(torch.cat([logits(teacher, dadv_images(self.train.x[i:i + bs], signs[s, i:i + bs],
                                                                  self.exp.eps), bs, self.amp)
                                      for i in range(0, len(self.train), bs)]))
        return torch.stack(out).cpu()

    # ---- evaluation -------------------------------------------------------------------------
    def evaluate(self, needs: list[tuple[str, str, int | None]]) -> pd.DataFrame:
        """Records for (target variant, attack, source depth) triples; computes the missing ones.

        Adversarial test images are crafted once per (source, attack) and scored on every target.
        """
        e, p = self.exp, self.exp.profile
        have = self.store.read(p)
        have_keys = set(have["key"]) if len(have) else set()
        missing: dict[tuple[str, int | None], list[str]] = {}
        for target, attack, source in needs:
            if e.record_key(target, attack, source) not in have_keys:
                missing.setdefault((attack, source), []).append(target)
        xt, yt = self.test.x, self.test.y
        for (attack, source), targets in missing.items():
            # wall_s of a record: crafting (shared by its group) + scoring; never the training of a
            # model that had to be built first (that is in runs.csv)
            if attack == "clean":
                t0 = time.perf_counter()
                x_eval, src_name = xt, "-"
            else:
                src_node = e.blackbox_source(source)
                src_name, src_model = f"Res{source}", self.model(src_node)
                self.log(f"[attack] {attack} on {src_node.name} over {len(xt)} test images")
                t0 = time.perf_counter()
                x_eval = craft(ATTACKS[attack], src_model, xt, yt, e.eps, e.prof.eval_batch_size)
            craft_s = time.perf_counter() - t0
            rows = []
            for target in dict.fromkeys(targets):
                model = self.target(target)
                t1 = time.perf_counter()
                k = correct(model, x_eval, yt, e.prof.eval_batch_size, self.amp)
                rows.append({"key": e.record_key(target, attack, source), "dataset": e.dataset,
                             "model": target, "attack": attack, "source": src_name,
                             "eps": round(e.eps, 6) if attack != "clean" else 0.0,
                             "accuracy": round(100.0 * k / len(yt), 4), "correct": k, "n_examples": len(yt),
                             "model_key": e.model(target).key,
                             **self.provenance(wall_s=round(craft_s + time.perf_counter() - t1, 2))})
            self.store.append(p, "records", rows, unique=("key",))
        out = self.store.read(p)
        keys = {e.record_key(*n) for n in needs}
        return out[out["key"].isin(keys)].reset_index(drop=True)


# ---- building in parallel --------------------------------------------------------------------
BUILT_KINDS = ("model", "dadv", "logits")  #: node kinds that are built and cached (records are not nodes)
_WORKER: dict = {}  #: one Runner per worker process, made by ``_init_worker``


def _quiet(*args) -> None:
    pass


def _init_worker(exp: Experiment, prof: profiles_mod.Profile, runner_kwargs: dict, threads: int) -> None:
    torch.set_num_threads(threads)  # as many as the parent uses: CPU results stay bit-for-bit
    profiles_mod.PROFILES.setdefault(prof.name, prof)  # a profile the parent registered at run time
    _WORKER["runner"] = Runner(exp, **runner_kwargs)


def _build_in_worker(node: Node) -> str:
    runner = _WORKER["runner"]
    if node.kind == "model":
        runner.model(node)
    else:
        runner.array(node)
    return node.key


def build_parallel(runner: Runner, roots: list[Node], jobs: int) -> None:
    """Build the cached nodes under ``roots`` that the store lacks, up to ``jobs`` at a time, each in
    a worker process, each as soon as its dependencies are stored.

    Every node is a pure function of its config, so the order changes nothing but the wall time; on
    the CPU the results are bit-for-bit those of a serial build (each worker uses the parent's
    thread count). Meant for a GPU, where one training process is bound by launching kernels and
    leaves the GPU mostly idle; on the 2-core CPU it only divides the cores.
    """
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from multiprocessing import get_context

    nodes = [n for n in walk(roots) if n.kind in BUILT_KINDS]
    done = {n.key for n in nodes if runner.store.has(n.kind, n.key)}
    pending = [n for n in nodes if n.key not in done]
    if not pending:
        return
    kwargs = {"store": runner.store, "data_root": runner.data_root, "device": str(runner.device),
              "download": False, "progress": False, "log": print if runner.log is print else _quiet,
              "amp": runner.amp}
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_init_worker,
                             initargs=(runner.exp, runner.exp.prof, kwargs, torch.get_num_threads())) as pool:
        running: dict = {}
        while pending or running:
            ready = [n for n in pending if all(d.key in done for d in n.deps)]
            for n in ready[: jobs - len(running)]:
                pending.remove(n)
                running[pool.submit(_build_in_worker, n)] = n
            if not running:
                raise AktError(f"cannot schedule {[n.name for n in pending]}: a dependency is never built")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                done.add(f.result())  # a worker's exception is raised here
                del running[f]


def needed_models(exp: Experiment, needs: list[tuple[str, str, int | None]], curves: bool) -> list[Node]:
    """The model nodes that scoring ``needs`` (and, with ``curves``, Figs. 3-4) reads: targets and
    black-box sources (their dependencies follow through ``walk``)."""
    roots = [exp.model(t) for t, _, _ in needs] + [exp.blackbox_source(s) for _, _, s in needs if s]
    if curves:
        roots += [exp.model(v) for v in figure_variants()]
    return roots


def table_needs(table: TableSpec) -> list[tuple[str, str, int | None]]:
    return [(t, attack, src) for t in table.targets for _, attack, src in table.columns]


#: Res26(cln) and Res8(cln) are the static source models themselves (one node each).
STATIC_ALIASES = {"static:Res26": "Res26(cln)", "static:Res8": "Res8(cln)"}


def figure_variants() -> list[str]:
    return list(RES8_VARIANTS)


def keys_per_run(stored: pd.DataFrame, dataset: str, profile: str, blackbox: str,
                 keys_of: Callable[[Experiment], set[str]]) -> set[str]:
    """The union of ``keys_of(experiment)`` over every (seed, dataset variant) present in ``stored``."""
    keys: set[str] = set()
    for seed, variant in stored[["seed", "dataset_variant"]].drop_duplicates().itertuples(index=False):
        keys |= keys_of(Experiment(dataset, profile, int(seed), variant=str(variant), blackbox=blackbox))
    return keys


def current_keys(what: str, dataset: str, profile: str, stored: pd.DataFrame, blackbox: str = "held-out") -> set[str]:
    """Keys of the records (or, for ``curves``, the models) that ``what`` needs under the profile's
    current settings, for every (seed, dataset variant) present in ``stored``. Pure: no data is read."""
    return keys_per_run(stored, dataset, profile, blackbox, _keys_of(what, dataset))


def _keys_of(what: str, dataset: str) -> Callable[[Experiment], set[str]]:
    """For one run (an Experiment): the keys of the records ``what`` needs, or of the models whose
    curves Figs. 3-4 draw."""
    if what == "curves":
        return lambda e: {e.model(v).key for v in figure_variants()}
    groups = list(GROUPS) if what == "all" else [what] if what in GROUPS else []
    needs = [n for g in groups for n in table_needs(table_for(g, dataset))]
    return lambda e: {e.record_key(*n) for n in needs}


def select_stored(df: pd.DataFrame, what: str, dataset: str, profile: str, seeds: list[int], blackbox: str,
                  dataset_variant: str | None, keys_of: Callable[[Experiment], set[str]]) -> pd.DataFrame:
    """Stored rows of one dataset, seeds and black-box choice, of one dataset variant, whose keys are
    those of the profile's current settings (``keys_of`` per run): rows of models trained under an
    earlier definition of the profile have other keys and are left out."""
    if not len(df):
        return df
    df = df[(df["dataset"] == dataset) & (df["seed"].isin(seeds)) & (df["blackbox"] == blackbox)]
    if dataset_variant is not None:
        df = df[df["dataset_variant"] == dataset_variant]
    elif df["dataset_variant"].nunique() > 1:
        raise AktError(f"stored {what} for {dataset!r} ({profile}) come from several dataset variants; "
                       f"pass dataset_variant= one of: {', '.join(sorted(df['dataset_variant'].unique()))}")
    return df[df["key"].isin(keys_per_run(df, dataset, profile, blackbox, keys_of))]


def require(what: str, dataset: str, profile: str, seeds=(0,), compute: bool = False,
            store: Store | None = None, data_root: str | Path | None = None, device: str | None = None,
            blackbox: str = "held-out", download: bool = False, progress: bool = True, log=print,
            dataset_variant: str | None = None, amp: bool = False, jobs: int = 1) -> pd.DataFrame:
    """Records (tables) or per-epoch curves (figures) for ``what`` on ``dataset`` under ``profile``.

    ``what`` is a table group (``variants``, ``sources``, ``attacks``), ``curves`` (Figs. 3-4) or
    ``all``. With ``compute=False`` only stored results are read (the book's mode: it never trains);
    with ``compute=True`` whatever the store lacks is built, and nothing else. Results of different
    dataset variants (e.g. lossless vs jpeg75) are never mixed: pass ``dataset_variant`` to choose.
    ``amp``: bf16 autocast on a GPU (``Runner``). ``jobs`` > 1 trains independent models in that
    many processes at once (``build_parallel``).
    """
    if not (isinstance(jobs, int) and jobs >= 1):
        raise AktError(f"jobs={jobs!r}: give a whole number of processes, at least 1")
    check_choice("result", what, (*GROUPS, "curves", "all"))
    data_mod.spec(dataset)
    profiles_mod.get(profile)
    check_choice("black-box source choice", blackbox, BLACKBOX)
    store = store or Store()
    seeds = [int(s) for s in seeds]
    groups = list(GROUPS) if what == "all" else [what] if what in GROUPS else []
    if compute:
        for seed in seeds:
            runner = Runner(Experiment(dataset, profile, seed, blackbox=blackbox), store, data_root, device,
                            download, progress, log, amp)
            needs = [n for g in groups for n in table_needs(table_for(g, dataset))]
            if jobs > 1:
                build_parallel(runner, needed_models(runner.exp, needs, what in ("curves", "all")), jobs)
            if needs:
                runner.evaluate(needs)
            if what in ("curves", "all"):
                for v in figure_variants():
                    runner.model(runner.exp.model(v))
    kind = "curves" if what == "curves" else "records"
    df = select_stored(store.read(profile, kind), kind, dataset, profile, seeds, blackbox, dataset_variant,
                       _keys_of(what, dataset))
    if len(df):
        if kind == "curves":  # the clean Res8 is the static source model: show it under its variant name
            df = df.assign(model=df["model"].replace(STATIC_ALIASES))
            df = df[df["model"].isin(figure_variants())]
    if not len(df):
        raise AktError(f"no stored {kind} for {what!r} on {dataset!r} under profile {profile!r} (seeds {seeds}); "
                       f"compute them with `akt build {what} --dataset {dataset} --profile {profile}` "
                       "or `make reproduce`, or pass compute=True")
    return df.reset_index(drop=True)
