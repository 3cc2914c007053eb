"""Packaging for a newcomer (issue 19): Binder gets CPU-only torch at the project's pins and no test
extras; a plain install pins nothing that downgrades Jupyter's or Colab's packages; the repository URL
lives in one file; every notebook parameter is typed and checked by type."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import nbformat
import pytest
import tomllib
import torch
import yaml

from akt_core import AktError, book
from akt_core import notebook_params as NP

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(req: str) -> str:
    return re.split(r"[<>=~!\[; ]", req.strip(), maxsplit=1)[0].lower()


def _makefile_pins() -> dict[str, str]:
    return dict(re.findall(r'"(torch|torchvision)==([\d.]+)"', (ROOT / "Makefile").read_text()))


def _binder() -> list[str]:
    lines = (ROOT / "binder" / "requirements.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]


def test_binder_installs_cpu_only_torch_at_the_makefiles_pins():
    reqs = _binder()
    pins = _makefile_pins()
    assert set(pins) == {"torch", "torchvision"}
    for pkg, version in pins.items():
        assert f"{pkg}=={version}+cpu" in reqs, f"binder/requirements.txt must pin {pkg}=={version}+cpu"
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in reqs


def test_binder_lists_the_base_dependencies_and_no_local_or_test_requirement():
    reqs = [r for r in _binder() if not r.startswith("--")]
    names = {_name(r) for r in reqs}
    assert {_name(d) for d in PROJECT["dependencies"]} <= names
    assert set(map(_name, PROJECT["optional-dependencies"]["colab"])) <= names  # what the notebooks import
    assert not names & {_name(t) for t in PROJECT["optional-dependencies"]["test"]}, "no test extras on Binder"
    assert not [r for r in reqs if r.startswith(("-e", ".", "/")) or "file:" in r], \
        "a local requirement makes repo2docker copy the repository before it installs anything"
    post = (ROOT / "binder" / "postBuild").read_text()
    assert "pip install --no-deps -e ." in post
    assert (ROOT / "binder" / "postBuild").stat().st_mode & 0o111, "postBuild must be executable"


def test_a_plain_install_downgrades_nothing():
    """torchattacks pins requests~=2.25.1 (Jupyter and Colab have 2.3x): it is an optional extra only."""
    base = {_name(d) for d in PROJECT["dependencies"]}
    assert "torchattacks" not in base and "requests" not in base
    assert PROJECT["optional-dependencies"]["autoattack"] == ["torchattacks==3.5.1"]
    assert "torchattacks" not in {_name(d) for d in PROJECT["optional-dependencies"]["colab"]}


def test_the_repository_url_lives_in_one_file():
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    files = subprocess.run(["git", "grep", "-l", "--fixed-strings", url], cwd=ROOT, capture_output=True,
                           text=True).stdout.split()
    assert files == ["_config.yml"], f"the repository URL is written in {files}"


def test_license_and_citation():
    assert "MIT License" in (ROOT / "LICENSE").read_text() and PROJECT["license"] == "MIT"
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    paper = cff["references"][0]
    assert (paper["year"], paper["volume"], paper["issue"], paper["start"], paper["end"]) == (2022, 33, 12, 4504, 4516)


# ---- the notebooks' parameters ------------------------------------------------------------------
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_is_typed_and_commented_for_papermill(path):
    import papermill as pm

    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    params = pm.inspect_notebook(str(path))
    assert {p.name for p in NP.PARAMETERS} <= set(params)
    for name, info in params.items():
        assert info["inferred_type_name"] != "None" and info["help"], f"{path.name}: {name} is untyped or unexplained"
    assert params["device"]["default"] == "'auto'"


GOOD = dict(profile="reduced", dataset="mnist", seeds=[0, 1], device="auto", data_root=None, download=False,
            compute=False, tolerance=5.0, blackbox="held-out")


def test_good_parameters_pass():
    assert NP.check(**GOOD).name == "reduced"
    assert NP.check(**{**GOOD, "device": "cuda:1", "data_root": "/data", "tolerance": 0}).name == "reduced"


@pytest.mark.parametrize("name,value,message", [
    ("compute", "no", "compute must be True or False, got 'no'"),
    ("download", 1, "download must be True or False"),
    ("seeds", "[0, 1]", "-y \"seeds: \\[0, 1\\]\""),
    ("seeds", [], "non-empty list"),
    ("seeds", [0, -1], "0 <= seed < 2\\*\\*63"),
    ("seeds", [True], "whole numbers"),
    ("device", "gpu", "unknown device 'gpu'"),
    ("profile", "bogus", "unknown profile 'bogus'.*reduced"),
    ("dataset", "svhn", "unknown dataset 'svhn'"),
    ("tolerance", -1, "tolerance must be a non-negative"),
    ("blackbox", "white", "unknown black-box source choice"),
    ("data_root", 3, "data_root must be a folder path"),
])
def test_bad_parameters_are_errors_that_say_why(name, value, message):
    with pytest.raises(AktError, match=message):
        NP.check(**{**GOOD, name: value})


def test_the_colab_setup_cell_clones_the_configured_repository_or_asks_for_one():
    import ast
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    import sync_notebooks as SN

    source = ROOT / "notebooks" / "tables_2_4_variants.md"
    with_url = SN.render(source, "https://github.com/someone/fork").cells[1].source
    assert "REPOSITORY = 'https://github.com/someone/fork'" in with_url and "akt-companion[colab]" in with_url
    without = SN.render(source, None).cells[1].source
    assert "REPOSITORY = None" in without and "names no repository yet" in without
    for src in (with_url, without):
        ast.parse(src)
    placeholder = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]["akt_repository_placeholder"]
    assert (SN.repository() is None) == placeholder


def test_every_notebook_is_its_myst_source_and_declares_the_shared_parameters():
    """notebooks/*.ipynb are generated from notebooks/*.md (make notebooks): same cells, same tags;
    each parameters cell is notebook_params.cell() (the parameters are declared once)."""
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    import sync_notebooks as SN

    sources = sorted((ROOT / "notebooks").glob("*.md"))
    assert {s.stem for s in sources} == {p.stem for p in NOTEBOOKS} == {p.stem for p in book.PAGES}
    for src in sources:
        assert SN.differences(src, src.with_suffix(".ipynb"), SN.repository()) == [], src.name
        nb = SN.render(src)
        params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(params) == 1, src.name
        dataset = re.search(r"dataset: str = '(\w+)'", params[0].source).group(1)
        extra = (NP.REPEATS,) if "repeats" in params[0].source else ()
        assert params[0].source == NP.cell(dataset, extra), src.name
        plumbing = nb.cells[1:4]  # setup, parameters, validation: never on the page
        assert all({"remove-cell", "remove-input"} & set(c.metadata.get("tags", [])) for c in plumbing), src.name


def test_torch_is_pinned_the_same_way_everywhere_and_the_metadata_is_complete():
    pins = _makefile_pins()
    env = (ROOT / "environment.yml").read_text()
    for pkg, version in pins.items():
        assert f"- {pkg}=={version}" in env, f"environment.yml must pin {pkg}=={version} as the Makefile does"
    assert PROJECT["urls"]["Paper"] and PROJECT["license-files"] == ["LICENSE"] and PROJECT["authors"]


@pytest.mark.slow
def test_the_wheel_holds_every_module_and_fetches_a_published_model_outside_the_checkout(tmp_path):
    """Build the wheel, install it (without dependencies: this venv's are reused) into a fresh virtual
    environment outside the checkout, import every module there, and load Res8(adv-trans) of full-data
    CIFAR-10 by name from a server on 127.0.0.1 serving data/weights: it reproduces its fingerprint."""
    import functools
    import http.server
    import json
    import shutil
    import sys
    import sysconfig
    import threading
    import zipfile

    src = tmp_path / "src"  # a copy: building in place would leave build/ in the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "akt_core", src / "akt_core", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path),
                    str(src)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("akt_core-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "akt_core").rglob("*.py"))
    assert set(modules) <= set(names), sorted(set(modules) - set(names))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, capture_output=True)
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # the dependencies (torch, pandas, pooch, ...) from this venv, after the wheel's own site-packages;
    # this venv's editable akt_core hook is not processed from there, so the wheel's copy is imported
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(ROOT / "data" / "weights"))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    row = next(r for r in (ROOT / "data" / "weights" / "manifest.csv").read_text().splitlines()
               if ",Res8(adv-trans),cifar10,full-data,0," in r)
    sidecar = json.loads((ROOT / "data" / "weights" / row.split(",")[13]).with_suffix(".json").read_text())
    probe = ("import importlib, json, pkgutil, torch, akt_core, akt_core.report;"
             "assert 'site-packages' in akt_core.__file__, akt_core.__file__;"
             "[importlib.import_module(m.name) for m in pkgutil.walk_packages(akt_core.__path__, 'akt_core.')];"
             "from akt_core import zoo, evaluate, store;"
             "m = zoo.load('Res8(adv-trans)', dataset='cifar10', profile='full-data');"
             "x = torch.load(store.Path(%r), weights_only=True)['x'];"
             "print(json.dumps(evaluate.logits(m, x).tolist()))"
             % str(ROOT / "data" / "weights" / "fingerprints" / "cifar10.pt"))
    try:
        out = subprocess.run([str(py), "-c", probe], cwd=tmp_path, check=True, capture_output=True, text=True,
                             env={"AKT_WEIGHTS_URL": f"http://127.0.0.1:{server.server_port}/",
                                  "AKT_WEIGHTS_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin"})
    finally:
        server.shutdown()
    got = torch.tensor(json.loads(out.stdout))
    assert (got - torch.tensor(sidecar["fingerprint"])).abs().max() <= 1e-4  # exact on the machine that made it
    assert (tmp_path / "cache" / "weights" / "manifest.csv").is_file()


def test_the_publishing_workflow_runs_the_readmes_commands_and_deploys_the_built_book():
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    steps = wf["jobs"]["build"]["steps"]
    runs = [s.get("run", "") for s in steps]
    readme = (ROOT / "README.md").read_text()
    for command in ("make book", "make test"):
        assert command in readme and command in runs
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "book/_build/html" and "deploy" in wf["jobs"]
    assert "akt_repository_placeholder: true" in "".join(runs)  # reads the URL's one place: no deploy until set


def test_a_misspelt_parameter_is_refused_naming_the_valid_ones():
    args = ("reduced", "mnist", [0], "auto", None, False, False, 5.0, "held-out")
    assert NP.check(*args, passed={"dataset", "profile", "_i3"}).name == "reduced"
    with pytest.raises(AktError, match="unknown parameter 'datset'; this notebook's parameters are: profile, dataset"):
        NP.check(*args, passed={"datset", "dataset"})
    for nb in sorted((ROOT / "notebooks").glob("*.md")):  # every notebook passes what papermill injected
        assert "passed=_PASSED" in nb.read_text() and "_SETUP_NAMES = set(globals())" in nb.read_text(), nb.name
