"""The paper's experiment as data: variants, their dependencies, and what each table needs.

Nodes and their dependencies (one seed of one dataset under one profile)::

    static sources Res26/20/14/8 (cln, seed s) --FGSM--> D_adv -+-> Res26(adv) -+-> teacher logits --> Res8(dist-adv)
                                                               +-> Res8(adv)    +-> teacher logits (+ D_adv) --> Res8(adv-trans)
    Res26(cln) = static Res26 --> teacher logits --> Res8(dist-cln);   Res8(cln) = static Res8;   Res8(self-adv)
    black-box sources Res26/20/14/8 (cln, seed s + 1000, held out) --> adversarial test sets --> records

The black-box sources are independently seeded models, never used in training (``blackbox=
"held-out"``, our reading of a black-box test); ``blackbox="static"`` uses the training-time static
models instead (the other reading of the paper). The per-epoch curves are always scored against the
held-out Res26, so how a model is later attacked never changes how it is trained (or its key). The
other unstated choices (``choices.CHOICES``) are ``Experiment.choices``: a non-default value enters
the key of the models it touches only. Every node's key hashes its full config and its dependencies'
keys (``store.config_key``); ``require`` builds only what the store lacks.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass, field, replace
from functools import cached_property

from . import AktError, check_choice
from . import choices as choices_mod
from . import data as data_mod
from . import methods as methods_mod
from . import profiles as profiles_mod
from .attacks import ATTACKS, EPS
from .inputs import INPUTS
from .schema import SEED_LIMIT
from .store import config_key

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
#: Methods in the registry that no published profile has trained yet, so not in the book's comparison
#: (it shows stored results only): IAD, the worked example of adding a method (issue 39). Listed last,
#: so that every earlier model keeps its place and its colour in the book.
UNPUBLISHED_VARIANTS: dict[str, Variant] = {v.name: v for v in [Variant("Res8(iad)", 8, "iad")]}
ALL_VARIANTS: dict[str, Variant] = {**VARIANTS, **BEYOND_VARIANTS, **EXIT_VARIANTS, **UNPUBLISHED_VARIANTS}
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
DATASET_OF_ROW = data_mod.PAPER_DATASETS
TABLES: dict[int, TableSpec] = {}
for _i, _ds in enumerate(DATASET_OF_ROW):
    TABLES[2 + _i] = TableSpec(2 + _i, "variants", _ds, _T2, _ATTACK_COLS)
    TABLES[5 + _i] = TableSpec(5 + _i, "sources", _ds, _T5, _SOURCE_COLS)
    TABLES[8 + _i] = TableSpec(8 + _i, "attacks", _ds, _T5, _ATTACK_COLS)
GROUPS = {"variants": (2, 3, 4), "sources": (5, 6, 7), "attacks": (8, 9, 10)}
#: the evaluations beyond the paper (``beyond``), each a result of its own (``akt build whitebox``, ...)
EVALUATIONS = ("whitebox", "sweep", "compare", "autoattack")
FIGURES = {3: "clean_acc", 4: "adv_acc"}  #: per-epoch curve each figure draws (CIFAR-10 in the paper)
FIGURE_TITLES = {3: "clean test accuracy", 4: "FGSM transfer accuracy (held-out Res26)"}  #: what each one shows
BLACKBOX = choices_mod.CHOICES["blackbox"].values  #: ("held-out", "static")


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
    dataset_variant: str = "unknown"  #: which copy of the data (filled in from the loaded data)
    blackbox: str = "held-out"
    heldout_offset: int = 1000  #: held-out black-box sources use seed + this
    eps: float = EPS
    #: non-default unstated choices (``choices.CHOICES``) as sorted (name, value) pairs; () = the defaults
    choices: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", choices_mod.normalise(self.choices))
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
        return {"dataset": self.dataset, "dataset_variant": self.dataset_variant, "eps": self.eps,
                **self.prof.as_config(self.dataset)}

    def _model(self, name: str, depth: int, method: str, seed: int, deps: tuple[Node, ...] = (),
               curve: Node | None = None, teacher: Node | None = None, instrument: bool = False) -> Node:
        """A model node. ``instrument``: a held-out black-box source, which keeps the default choices."""
        m = methods_mod.get(method)
        chosen = {} if instrument else choices_mod.for_method(self.choices, method)
        params = {**m.params, "source_choice": chosen["dadv_walk"]} if "dadv_walk" in chosen else m.params
        cfg = {**self._data_config(), "depth": depth, "method": method, "params": params, "seed": seed,
               "curve_source": curve.key if curve else None}
        if teacher is not None:  # only live-teacher methods carry the field (other keys stay as they were)
            cfg["teacher"] = teacher.key
        if chosen:  # likewise only models a non-default choice touches
            cfg["choices"] = chosen
        return _node("model", name, cfg, deps + ((curve,) if curve else ()))

    def heldout_source(self, depth: int) -> Node:
        """An independently seeded clean model, never used in training."""
        return self._model(f"heldout:Res{depth}", depth, "cln", self.seed + self.heldout_offset, instrument=True)

    def blackbox_source(self, depth: int) -> Node:
        if self.blackbox == "static":
            return self.static_source(depth)
        return self.heldout_source(depth)

    def curve_source(self) -> Node:
        """Figs. 3-4 score each epoch on test images attacked (FGSM) on the held-out Res26, under
        either black-box protocol: the curves are part of training, the protocol is not."""
        return self.heldout_source(26)

    def static_source(self, depth: int) -> Node:
        return self._model(f"static:Res{depth}", depth, "cln", self.seed, curve=self.curve_source())

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
        # each declared input (``inputs.INPUTS``) gives its dependencies, in the declared order
        deps: tuple[Node, ...] = ()
        teacher = None
        for name in m.inputs:
            more, live = INPUTS[name].deps(self, m)
            deps, teacher = deps + more, teacher or live
        return self._model(variant, v.depth, v.method, self.seed, deps, self.curve_source(), teacher)

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



def table_cells(table: TableSpec) -> list[tuple[str, str, int | None]]:
    return [(t, attack, src) for t in table.targets for _, attack, src in table.columns]


#: Res26(cln) and Res8(cln) are the static source models themselves (one node each).
STATIC_ALIASES = {"static:Res26": "Res26(cln)", "static:Res8": "Res8(cln)"}


def figure_variants() -> list[str]:
    return list(RES8_VARIANTS)


