"""The notebooks' sources are MyST Markdown (``notebooks/*.md``, read by jupytext): reviewable text,
one cell per fenced block. The ``.ipynb`` beside each is generated from it; ``make notebooks`` writes
them (this script), then stores their outputs (``execute_notebooks.py --in-place``), which are the
references ``make test`` (nbval) compares against. ``tests/test_book.py`` checks that every source
and its notebook agree.

The one thing a source does not hold is the repository's URL, which lives in ``_config.yml`` only:
the Colab setup cell's ``REPOSITORY = None`` line is filled in from there when the URL is real.

    python tools/sync_notebooks.py           # write each notebooks/*.ipynb whose notebooks/*.md changed
    python tools/sync_notebooks.py --check   # exit 1 and name each notebook that differs
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import jupytext
import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
REPOSITORY_LINE = re.compile(r"^REPOSITORY = None(\s+#.*)?$", re.M)
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def repository() -> str | None:
    """The repository URL, from ``_config.yml`` (its one home), or None while it is a placeholder."""
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    if cfg.get("sphinx", {}).get("config", {}).get("akt_repository_placeholder", False):
        return None
    return cfg["repository"]["url"]


def render(source: Path, url: str | None = None) -> nbformat.NotebookNode:
    """The notebook that the MyST ``source`` describes (no outputs), with the repository filled in."""
    nb = jupytext.read(source, fmt="md:myst")
    for cell in nb.cells:
        if cell.cell_type == "code" and url:
            cell.source = REPOSITORY_LINE.sub(lambda m: f"REPOSITORY = {url!r}{m.group(1) or ''}", cell.source)
        cell.metadata.pop("vscode", None)
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    return nb


def _cells(nb: nbformat.NotebookNode) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", []))) for c in nb.cells]


def differences(source: Path, notebook: Path, url: str | None = None) -> list[str]:
    """How ``notebook`` differs from what ``source`` describes (cell kinds, sources and tags); [] if
    it agrees. Outputs and execution counts are not compared."""
    if not notebook.exists():
        return [f"{notebook.name} is missing"]
    want, have = _cells(render(source, url)), _cells(nbformat.read(notebook, as_version=4))
    out = [f"{notebook.name} has {len(have)} cells, {source.name} describes {len(want)}"] if len(want) != len(have) else []
    for i, (w, h) in enumerate(zip(want, have)):
        if w != h:
            what = "kind" if w[0] != h[0] else "source" if w[1] != h[1] else "tags"
            out.append(f"{notebook.name} cell {i + 1} differs from {source.name} ({what})")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only report notebooks that differ from their source")
    args = ap.parse_args()
    url, bad = repository(), []
    for src in sorted(NOTEBOOKS.glob("*.md")):
        dst = src.with_suffix(".ipynb")
        if args.check:
            bad += differences(src, dst, url)
            continue
        if not differences(src, dst, url):  # unchanged: keep its stored outputs (nbval's references)
            continue
        nbformat.write(render(src, url), dst)
        print(f"{src.relative_to(ROOT)} -> {dst.relative_to(ROOT)} (outputs cleared: make notebooks stores new ones)")
    for line in bad:
        print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
