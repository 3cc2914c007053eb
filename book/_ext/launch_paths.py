"""Sphinx extension: launch buttons of executed-notebook pages open the source notebook.

The pages under ``book/_executed/`` are notebooks that ``make book`` executes with papermill from
``notebooks/<stem>.ipynb`` (one copy per dataset, named ``<stem>_<dataset>.ipynb``, and one per
profile shown beside the book's, ``<stem>_<dataset>_<profile>.ipynb``). Those copies
are build products and are not in the repository, so a Binder or Colab link to them would not
resolve. This rewrites the links to the source notebook in ``notebooks/``; its ``parameters`` cell
selects the dataset and profile. Nothing is fetched: it only edits URLs in the page context.

While ``akt_repository_placeholder`` is true (``_config.yml``: the repository URL is not the real
one yet), every repository, Binder and Colab button is removed instead, so the book shows no dead
link, and the build warns once.
"""
from __future__ import annotations

import re

from akt_core import book, data

EXECUTED = book.EXECUTED + "/"
_DATASET_SUFFIX = re.compile(r"_(" + "|".join(map(re.escape, data.DATASETS)) + r")"
                             r"(_(" + "|".join(map(re.escape, book.BESIDE)) + r"))?$")


def source_notebook(pagename: str) -> str | None:
    """``notebooks/<stem>.ipynb`` for an executed page, None for any other page."""
    if not pagename.startswith(EXECUTED):
        return None
    return f"notebooks/{_DATASET_SUFFIX.sub('', pagename[len(EXECUTED):])}.ipynb"


BUTTON_GROUPS = ("launch-buttons",)  #: header button groups that point at the repository


def _drop_dead_buttons(context, repository: str) -> None:
    """Remove the launch buttons, and every button or group of buttons that links into ``repository``."""
    def dead(button) -> bool:
        return bool(repository) and repository in str(button.get("url", ""))

    groups = []
    for group in context.get("header_buttons", []):
        if group.get("label") in BUTTON_GROUPS or dead(group):
            continue
        if "buttons" in group:
            group["buttons"] = [b for b in group["buttons"] if not dead(b)]
            if not group["buttons"]:
                continue
        groups.append(group)
    context["header_buttons"] = groups


def _rewrite(app, pagename, templatename, context, doctree) -> None:
    if app.config.akt_repository_placeholder:
        _drop_dead_buttons(context, (app.config.html_theme_options or {}).get("repository_url", ""))
        return
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


def _warn_once(app) -> None:
    if app.config.akt_repository_placeholder:
        from sphinx.util import logging

        logging.getLogger(__name__).warning(
            "the repository URL in _config.yml is a placeholder (akt_repository_placeholder: true): the book "
            "shows no repository, Binder or Colab buttons until it is set")


def setup(app):
    app.add_config_value("akt_repository_placeholder", False, "html")
    app.connect("builder-inited", _warn_once)
    # sphinx-book-theme adds the launch buttons at priority 501; rewrite them afterwards.
    app.connect("html-page-context", _rewrite, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
