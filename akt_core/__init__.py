"""akt_core: a reproducible companion to "Two-stage Adversarial Knowledge Transfer for Edge
Intelligence" (Qian Yaguan et al., Journal of Software 2022, 33(12):4504-4516).

Data flows one way: ``data`` -> ``train`` (methods, losses, attacks) -> ``store`` -> ``evaluate``
-> tidy records that the notebooks turn into tables and figures. ``graph`` says what each table needs.
"""
from __future__ import annotations

__version__ = "0.1.0"

#: Raised by hand whenever a change alters any cached artefact or result (models, crafted sets,
#: accuracies). It is part of every cache key; the git commit is not (it goes into provenance).
RESULTS_VERSION = 1


class AktError(ValueError):
    """Bad input from a user: an unknown name, an impossible value, missing data.

    The message always names the offending value and the valid choices. The CLI turns it into
    exit code 2.
    """


def check_choice(kind: str, value: object, choices) -> None:
    """Raise :class:`AktError` naming ``value`` and the valid ``choices`` unless it is one of them."""
    choices = list(choices)
    if value not in choices:
        raise AktError(f"unknown {kind} {value!r}; valid choices: {', '.join(map(str, choices))}")
