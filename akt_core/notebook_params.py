"""The notebooks' papermill parameters, declared once: name, type, default and help.

Each notebook's ``parameters`` cell (in its MyST source, ``notebooks/*.md``) is ``cell()`` of
``PARAMETERS``, checked by ``tests/test_environment.py``: typed, commented assignments
(``profile: str = "reduced"  # smoke | reduced | ...``), which is what ``papermill --help-notebook``
reads. ``check`` validates the values a run received, by type: papermill's ``-r compute no`` passes
the string ``"no"``, which is not True, and a list such as ``seeds`` must come as YAML
(``-y "seeds: [0, 1]"``); both are errors that say so, before any work.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import AktError, check_choice
from . import data as data_mod
from . import profiles as profiles_mod
from .schema import SEED_LIMIT


@dataclass(frozen=True)
class Parameter:
    name: str
    annotation: str  #: as written in the cell (a quoted annotation where it names typing constructs)
    default: Any
    help: str


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("profile", "str", profiles_mod.DEFAULT, " | ".join(profiles_mod.PROFILES)),
    Parameter("dataset", "str", "cifar10", " | ".join(data_mod.PAPER_DATASETS)),
    Parameter("seeds", "list", [0], 'several seeds -> mean and spread; papermill: -y "seeds: [0, 1]"'),
    Parameter("device", "str", "auto", "auto | cpu | cuda | cuda:N; used only when compute is True"),
    Parameter("data_root", '"Optional[str]"', None, "local dataset root (None: $AKT_DATA_ROOT or data/datasets)"),
    Parameter("download", "bool", False, "True: torchvision downloads a missing dataset (needs internet)"),
    Parameter("compute", "bool", False, "True: build missing results (trains!); False: read stored results only"),
    Parameter("tolerance", "float", 5.0, "cells further than this from the paper (points) are marked"),
    Parameter("blackbox", "str", "held-out", "held-out | static: which models craft the black-box attacks"),
)
#: Table 1's notebook has one more
REPEATS = Parameter("repeats", "int", 50, "latency: runs per model (median reported)")


def cell(dataset: str, extra: tuple[Parameter, ...] = ()) -> str:
    """The source of a notebook's ``parameters`` cell, with ``dataset`` as its default dataset."""
    rows = [(p.name, p.annotation, dataset if p.name == "dataset" else p.default, p.help)
            for p in (*PARAMETERS, *extra)]
    left = [f"{n}: {a} = {v!r}" for n, a, v, _ in rows]
    width = max(map(len, left)) + 2
    return "\n".join(f"{lhs:<{width}}# {h}" for lhs, (_, _, _, h) in zip(left, rows))


def _is_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise AktError(f"{name} must be True or False, got {value!r} (papermill: -p {name} True; "
                       f"-r passes text, and {value!r} is not a boolean)")


def check(profile: Any, dataset: Any, seeds: Any, device: Any, data_root: Any, download: Any, compute: Any,
          tolerance: Any, blackbox: Any, repeats: Any = 1, passed: set[str] | None = None) -> profiles_mod.Profile:
    """Validate a notebook run's parameters by type and value; return its profile. ``passed``: the
    names the parameters cell and papermill's injected cell defined (the notebook's globals after them
    less those before); a name that is no parameter is a misspelt one (papermill itself only warns)."""
    from .graph import BLACKBOX

    declared = {p.name for p in (*PARAMETERS, REPEATS)}
    unknown = sorted(n for n in (passed or ()) if not n.startswith("_") and n not in declared)
    if unknown:
        raise AktError(f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                       f"this notebook's parameters are: {', '.join(p.name for p in PARAMETERS)}"
                       f"{', repeats' if repeats != 1 else ''}")

    check_choice("profile", profile, profiles_mod.PROFILES)
    check_choice("dataset", dataset, data_mod.DATASETS)
    check_choice("black-box source choice", blackbox, BLACKBOX)
    if not isinstance(device, str) or not (device in ("auto", "cpu", "cuda") or
                                           (device.startswith("cuda:") and device[5:].isdigit())):
        raise AktError(f"unknown device {device!r}; valid choices: auto, cpu, cuda, cuda:N")
    if isinstance(seeds, str):
        raise AktError(f"seeds must be a list of whole numbers, got the text {seeds!r}; papermill passes a "
                       'list as YAML: -y "seeds: [0, 1]"')
    if (not isinstance(seeds, (list, tuple)) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < SEED_LIMIT for s in seeds)):
        raise AktError(f"seeds must be a non-empty list of whole numbers 0 <= seed < 2**63, got {seeds!r}")
    if data_root is not None and not isinstance(data_root, str):
        raise AktError(f"data_root must be a folder path or None, got {data_root!r}")
    _is_bool("download", download)
    _is_bool("compute", compute)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise AktError(f"tolerance must be a non-negative number of points, got {tolerance!r}")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise AktError(f"repeats must be a whole number >= 1, got {repeats!r}")
    return profiles_mod.get(profile)
