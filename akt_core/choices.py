"""The choices the paper leaves unsaid, as data: each one a named setting of the one experiment graph.

The reproduction had to choose wherever the paper is silent (the book's "Reproduction setup" chapter,
book/setup.md). Each entry here names one such choice, its default (what every published table uses), the
other readings, and which models it touches. A non-default value enters the cache key of exactly the
models it touches (``graph.Experiment._model``), so everything else (and every published weight) is
reused, and it is recorded with every result row (the ``choices`` column, empty for the defaults).

=================  =====================  ==============================================================
name               default / other        what it decides
=================  =====================  ==============================================================
``teacher_view``   ``cached`` /           the teacher's soft labels of Eqs. (9) and (11): cached once on
                   ``augmented``          the un-augmented training images, or the teacher run on each
                                          augmented (cropped, flipped) batch the student sees (BSS's code)
``decay``          ``weights`` / ``all``  weight decay on conv and linear weights only, or on every
                                          parameter, BatchNorm and biases too (BSS's code)
``blackbox``       ``held-out`` /         the models the test attacks are crafted on: independently
                   ``static``             seeded held-out models, or the training-time static models
``dadv_walk``      ``random`` / ``cycle`` how an epoch walks D_adv (Algorithm 1): a random static source
                                          per adversarial example, or source (epoch mod 4) for a whole epoch
=================  =====================  ==============================================================

``blackbox`` is the ``Experiment.blackbox`` field (an evaluation choice: it trains nothing); the
others live in ``Experiment.choices``. The held-out black-box sources are the measuring instrument
and keep their defaults under every choice, so a moved cell is the target's move, not the attack's.
"""
from __future__ import annotations

from dataclasses import dataclass

from . import AktError, check_choice


@dataclass(frozen=True)
class Choice:
    name: str
    default: str
    others: tuple[str, ...]
    question: str  #: what the paper leaves open, in words
    touches: str  #: which models a non-default value retrains, in words
    methods: tuple[str, ...] = ()  #: methods (``methods.METHODS``) whose training it changes; () = none

    @property
    def values(self) -> tuple[str, ...]:
        return (self.default, *self.others)


_PAPER_TRAINED = ("cln", "self-adv", "adv", "dist-cln", "dist-adv", "adv-trans")
CHOICES: dict[str, Choice] = {c.name: c for c in [
    Choice("teacher_view", "cached", ("augmented",),
           "Are the teacher's soft labels computed on the images the student sees (augmented crops and flips) "
           "or once on the un-augmented images?",
           "Res8(dist-cln), Res8(dist-adv), Res8(adv-trans)", ("dist-cln", "dist-adv", "adv-trans")),
    Choice("decay", "weights", ("all",),
           "Does weight decay apply to BatchNorm and bias parameters too?",
           "every model the paper trains (static sources, Res26(adv), the Res8 students)", _PAPER_TRAINED),
    Choice("blackbox", "held-out", ("static",),
           "Are the black-box attacks crafted on held-out models or on the training-time static models?",
           "none: it changes the attacks' source models, not the targets"),
    Choice("dadv_walk", "random", ("cycle",),
           "Does an epoch draw a random static source per adversarial example, or cycle through the sources "
           "epoch by epoch?",
           "Res26(adv), Res8(adv), Res8(adv-trans), and through Res26(adv) Res8(dist-adv)", ("adv", "adv-trans")),
]}
TRAINING_CHOICES = tuple(n for n in CHOICES if n != "blackbox")  #: those held in ``Experiment.choices``


def check(name: str, value: str) -> None:
    """AktError naming ``name`` or ``value`` and the valid ones unless ``name=value`` is a choice."""
    check_choice("unstated choice", name, CHOICES)
    check_choice(f"value of choice {name!r}", value, CHOICES[name].values)


def normalise(choices) -> tuple[tuple[str, str], ...]:
    """The training choices as a sorted tuple of (name, value), defaults left out (so that the
    default experiment has ``()`` and every key it makes stays as it was)."""
    items = dict(choices).items() if not isinstance(choices, tuple) else choices
    out = {}
    for name, value in items:
        check(name, value)
        if name == "blackbox":
            raise AktError("the black-box choice is Experiment.blackbox (--blackbox), not one of its choices")
        if value != CHOICES[name].default:
            out[name] = value
    return tuple(sorted(out.items()))


def parse(texts: list[str] | None) -> tuple[tuple[str, str], ...]:
    """``["teacher_view=augmented", ...]`` from the command line, checked and normalised."""
    pairs = []
    for text in texts or []:
        name, sep, value = text.partition("=")
        if not sep:
            raise AktError(f"--choice {text!r}: give NAME=VALUE, NAME one of: {', '.join(TRAINING_CHOICES)}")
        pairs.append((name, value))
    return normalise(tuple(pairs))


def for_method(choices: tuple[tuple[str, str], ...], method: str) -> dict[str, str]:
    """The non-default choices that change the training of ``method``."""
    return {n: v for n, v in choices if method in CHOICES[n].methods}


def column(config: dict) -> dict:
    """The ``choices`` field of a result row about the node of ``config``: ``{"choices": "name=value;..."}``
    for a model a non-default choice touched, else nothing (default rows keep the files' columns)."""
    chosen = config.get("choices")
    return {"choices": ";".join(f"{n}={v}" for n, v in sorted(chosen.items()))} if chosen else {}


#: What the chapter "What the unstated choices change" measures (issue 20), in this order: each
#: choice's other value on the ``reduced`` profile, per dataset, against the default of the same seed
#: retrained on the same machine. Each run of the measurement is one store of its own on one machine,
#: ``data/reruns/<run>`` for each run of ``MEASURED_RUNS`` (results only; its cache is git-ignored):
#: its default rows are also a rerun of the published ones (``report.reruns``), and every comparison
#: pairs rows of one run, never float noise between CPUs. ``tools/measure_choices.py`` writes to the
#: last run; a seed measured in several runs is read from the first that has it.
MEASURED_RUNS = ("choices-2026-12-02", "choices-2026-12-03")
MEASURED_PROFILE = "reduced"
MEASURED_SEEDS = (0, 1)
MEASURED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("teacher_view", "augmented", ("cifar10",)),
    ("blackbox", "static", ("mnist", "cifar10")),
    ("dadv_walk", "cycle", ("cifar10",)),
    ("decay", "all", ("cifar10",)),
)

#: the datasets the measurements cover, in ``MEASURED``'s order
MEASURED_DATASETS: tuple[str, ...] = tuple(dict.fromkeys(d for _, _, ds in MEASURED for d in ds))


def measured_store(store=None, run: str = MEASURED_RUNS[-1]):
    """The store of measurement run ``run`` (default: the last, the one ``tools/measure_choices.py``
    writes to): ``reruns/<run>`` under ``store``'s root (default: the project's ``data/``)."""
    from .store import Store

    check_choice("measurement run", run, MEASURED_RUNS)
    return Store((store or Store()).root / "reruns" / run)


def measured_stores(store=None) -> list:
    """The store of every run of ``MEASURED_RUNS``, in order."""
    return [measured_store(store, run) for run in MEASURED_RUNS]


def experiment_kwargs(name: str, value: str) -> dict:
    """``Experiment`` / ``require`` keyword arguments that set choice ``name`` to ``value``."""
    check(name, value)
    return {"blackbox": value} if name == "blackbox" else {"choices": {name: value}}
