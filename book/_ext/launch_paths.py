"""Sphinx extension: launch buttons of executed-notebook pages open the source notebook.

The pages under ``book/_executed/`` are notebooks that ``make book`` executes with papermill from
``notebooks/<stem>.ipynb`` (one copy per dataset, named ``<stem>_<dataset>.ipynb``). Those copies
are build products and are not in the repository, so a Binder or Colab link to them would not
resolve. This rewrites the links to the source notebook in ``notebooks/``; its ``parameters`` cell
selects the dataset and profile. Nothing is fetched: it only edits URLs in the page context.
"""
from __future__ import annotations

import re

EXECUTED = "book/_executed/"
_DATASET_SUFFIX = re.compile(r"_(mnist|cifar10|cifar100|synthetic)$")


def source_notebook(pagename: str) -> str | None:
    """``notebooks/<stem>.ipynb`` for an executed page, None for any other page."""
    if not pagename.startswith(EXECUTED):
        return None
    return f"notebooks/{_DATASET_SUFFIX.sub('', pagename[len(EXECUTED):])}.ipynb"


def _rewrite(app, pagename, templatename, context, doctree) -> None:
    src = source_notebook(pagename)
    if src is None:
        return
    old = f"{pagename}.ipynb"
    for group in context.get("header_buttons", []):
        if group.get("label") != "launch-buttons":
            continue
        for button in group.get("buttons", []):
            if "url" in button:
                button["url"] = button["url"].replace(old, src)


def setup(app):
    # sphinx-book-theme adds the launch buttons at priority 501; rewrite them afterwards.
    app.connect("html-page-context", _rewrite, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
