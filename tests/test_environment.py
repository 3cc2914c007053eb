"""environment.yml (Binder) installs what pyproject.toml declares, and nothing else."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_binder_environment_installs_the_package_with_its_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    editable = [p for p in pip if p.startswith("-e")]
    assert len(editable) == 1, "environment.yml must install the package itself"
    extras = set(re.search(r"\[(.*)\]", editable[0]).group(1).split(","))
    assert extras == set(project["optional-dependencies"]), "Binder must get every extra (book, test)"
    others = [p for p in pip if not p.startswith("-e")]
    assert not others, f"dependencies listed outside pyproject.toml drift: {others}"
    py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    minimum = project["requires-python"].lstrip(">=")
    assert tuple(map(int, py.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))
