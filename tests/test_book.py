"""The book as a reader gets it: execute the notebooks on the published results, build the HTML
with Jupyter Book, and check that every table and both figures are there beside the paper's
numbers, with their profile label. Never trains (the notebooks run with compute=False)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from akt_core import book, graph, profiles
from akt_core.report import scorecard
from akt_core.store import Store

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = [p for p in profiles.PROFILES.values() if p.published]


def _with_results(profile: str, what: str = "records") -> set[str]:
    df = Store().read(profile, what)
    return set(df["dataset"]) if len(df) else set()


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("book")
    subprocess.run([sys.executable, "tools/execute_notebooks.py", "--profile", "reduced", "--out", "book/_executed",
                    "--kernel", "python3"], cwd=ROOT, check=True)
    jb = Path(sys.executable).with_name("jupyter-book")
    subprocess.run([str(jb), "build", ".", "--path-output", str(out)], cwd=ROOT, check=True,
                   capture_output=True, text=True)
    return out / "_build" / "html"


def _page(html: Path, stem: str) -> str:
    path = html / "book" / "_executed" / f"{stem}.html"
    assert path.exists(), f"the book has no page {path.relative_to(html)}"
    return path.read_text()


@pytest.mark.slow
def test_every_table_and_figure_is_in_the_book(html):
    datasets = _with_results("reduced")
    assert datasets, "no published (reduced) results committed under data/results/reduced"
    index = (html / "index.html").read_text()
    assert "book/intro.html" in index  # the root redirects to the first chapter
    assert "Adversarial Knowledge Transfer" in (html / "book" / "intro.html").read_text()
    table1 = _page(html, "table1_cost")
    assert "Res26" in table1 and "onnxruntime latency" in table1 and "jetson_nano_ms" in table1
    for ds in ("mnist", "cifar10", "cifar100"):
        for group in graph.GROUPS:
            table = graph.table_for(group, ds)
            stem = next(p.stem for p in book.PAGES if p.group == group)
            page = _page(html, f"{stem}_{ds}")
            assert f"Table {table.number}" in page
            if ds in datasets:
                assert "REDUCED profile" in page, f"{stem}_{ds}: numbers without their profile label"
                for model in table.targets:
                    assert model in page
                # compact cells: ours in bold over (the paper's value, the coloured difference)
                assert re.search(r"<b>\d+\.\d</b>", page) and re.search(r"<small>\(\d+\.\d, <span style=", page)
                assert "Claims C1-C5" in page
            else:
                assert "No stored results yet" in page
        figs = _page(html, f"figs_3_4_convergence_{ds}")
        if ds in datasets:
            assert "Fig. 3" in figs or "Figures 3" in figs
            assert figs.count("<img") >= 1, "the convergence figure is missing"
        beyond = _page(html, f"beyond_robustness_{ds}")
        if ds in _with_results("reduced", "robustness"):
            assert "White-box robustness" in beyond and "REDUCED profile" in beyond
            assert "PGD-20" in beyond and "At which eps" in beyond  # the white-box table and the sweep section
            if scorecard._has_sweep(ds, "reduced"):
                assert beyond.count("<img") >= 1  # the sweep figure
            else:  # withdrawn or never built: the page says how to build it
                assert "The eps sweep is not stored yet" in beyond or "No stored results yet" in beyond
        else:
            assert "No stored results yet" in beyond
        for stem, prof in ((p.stem, prof) for p in book.PAGES for d, prof in book.sections(p) if d == ds and prof):
            shown = _page(html, book.BY_STEM[stem].executed(ds, prof))  # the pages beside the book's profile
            tag = profiles.get(prof).label.split(":")[0]  # "FULL-DATA profile"; the paper profile's is "paper profile"
            assert tag in shown and f"{prof} profile" in shown, f"{stem}_{ds}_{prof}: no label"
            if stem == "tables_2_4_variants" and ds in _with_results(prof):
                assert "Claims C1-C5" in shown and all(model in shown for model in graph.table_for("variants", ds).targets)
            if stem == "beyond_robustness" and ds in _with_results(prof, "robustness"):
                assert "White-box robustness" in shown and "PGD-20 @ 8/255" in shown  # its white-box table
                assert shown.count("<img") >= 1 and "No stored results yet" not in shown  # and its sweep figure
        # the comparison reads the paper's own transfer records too, so every dataset with results has it
        compare = _page(html, f"beyond_compare_{ds}")
        if ds in datasets:
            assert "Later methods beside the paper" in compare and "REDUCED profile" in compare
            assert "Res8(adv-trans)" in compare and "FGSM (transfer)" in compare
            assert compare.count("<img") >= 1, "the clean-against-robust figure is missing"
            assert "exit by exit" in compare


def test_paper_numbers_ship_with_the_project():
    shipped = (ROOT / "data" / "paper_tables.csv").read_text()
    assert shipped.startswith("table,dataset,kind,model,column,value")
    assert "2,mnist,accuracy_pct,Res26(cln),clean,99.56" in shipped


def test_the_book_is_executed_with_every_stored_seed():
    """tools/execute_notebooks.py passes each dataset's published seeds, so the book shows all of them."""
    sys.path.insert(0, str(ROOT / "tools"))
    import execute_notebooks as E

    for ds in ("mnist", "cifar10"):
        want = {what: sorted(int(s) for s in df.loc[df["dataset"] == ds, "seed"].unique())
                for what, df in (("records", Store().read("reduced")), ("robustness", Store().read("reduced", "robustness")))}
        for src, _, p, _ in E.jobs("reduced", [ds], Path("/tmp"), None):
            if p["dataset"] == ds and p["profile"] == "reduced":  # beyond the paper: the later methods' seeds
                assert p["seeds"] == want["robustness" if src.stem.startswith("beyond_") else "records"], src.stem
    beside = {dst.name: p for _, dst, p, _ in E.jobs("reduced", ["cifar10"], Path("/tmp"), None)
              if p["profile"] != "reduced"}  # the full-data CIFAR-10 pages, with that profile's own seeds
    assert beside["tables_2_4_variants_cifar10_full-data.ipynb"]["seeds"] == E.stored_seeds("full-data", "cifar10")
    assert {p["profile"] for p in beside.values()} == {"full-data"} and len(beside) == 5
    assert E.stored_seeds("reduced", "mnist") == [0, 1]  # the published second MNIST seed
    assert E.stored_seeds("reduced", "mnist", "robustness") == [0]  # white-box and later methods: seed 0 only
    assert E.stored_seeds("no-such-profile", "mnist") == [0]


def test_each_chapter_links_the_results_files_it_has_and_includes_that_line(tmp_path):
    """A chapter's download line names the files the store holds, per profile, and nothing it lacks;
    each chapter of DOWNLOADS includes its line; an unknown chapter is refused by name."""
    from akt_core import AktError

    for prof, names in (("reduced", ("records", "runs", "robustness")), ("full-data", ("records",))):
        (tmp_path / "results" / prof).mkdir(parents=True)
        for name in names:
            (tmp_path / "results" / prof / f"{name}.csv").write_text("key\n")
    line = book.downloads_markdown("beyond", "reduced", tmp_path)
    assert line == (
        "**Download the numbers behind these pages:** "
        "{download}`robustness.csv <../data/results/reduced/robustness.csv>`, "
        "{download}`records.csv <../data/results/reduced/records.csv>`, "
        "{download}`runs.csv <../data/results/reduced/runs.csv>` (the published `reduced` profile); "
        "{download}`records.csv <../data/results/full-data/records.csv>` (the `full-data` CIFAR-10, CIFAR-100 pages); "
        "{download}`the paper's numbers <../data/paper_tables.csv>`. Their columns: `data/README.md`.\n")
    assert "full-data" not in book.downloads_markdown("results_convergence", "reduced", tmp_path)  # no curves.csv
    for page in book.DOWNLOADS:
        assert f"```{{include}} _executed/{book.downloads_file(page)}\n```" in (ROOT / "book" / f"{page}.md").read_text()
        for name in book.DOWNLOADS[page]:  # every file a chapter offers is one the project publishes
            assert (ROOT / "data" / "results" / "reduced" / f"{name}.csv").is_file(), (page, name)
    with pytest.raises(AktError, match="'results_tables'.*results_variants"):
        book.downloads_file("results_tables")


@pytest.mark.slow
def test_no_page_links_a_placeholder_repository(html):
    """While _config.yml marks the repository URL a placeholder, no page has a repository, Binder or
    Colab button that would lead nowhere."""
    import yaml

    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    if not cfg["sphinx"]["config"]["akt_repository_placeholder"]:
        pytest.skip("the repository URL is set: the buttons are wanted")
    url = cfg["repository"]["url"]
    dead = [p.relative_to(html).as_posix() for p in html.rglob("*.html")
            if url in p.read_text() or "mybinder.org/v2" in p.read_text() or "colab.research.google.com/github" in p.read_text()]
    assert dead == [], f"pages with dead repository / launch links: {dead}"


def test_the_table_of_contents_lists_exactly_the_books_plan():
    """_toc.yml and akt_core.book.PAGES name the same executed pages, in the plan's order per chapter."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())

    def files(node):
        if isinstance(node, dict):
            return ([node["file"]] if "file" in node else []) + [f for v in node.values() for f in files(v)]
        return [f for v in node for f in files(v)] if isinstance(node, list) else []

    listed = [f for f in files(toc) if f.startswith(book.EXECUTED)]
    assert set(listed) == book.toc_files() and len(listed) == len(set(listed))
    for page in book.PAGES:  # each page's copies in the plan's order: per dataset, then the profiles beside
        want = [f"{book.EXECUTED}/{page.executed(d, prof)}" for d, prof in book.sections(page)]
        assert [f for f in listed if f in want] == want
    variants = book.BY_STEM["tables_2_4_variants"]
    titles = [variants.title(d, prof) for d, prof in book.sections(variants)]
    assert titles == ["Table 2: MNIST", "Table 2: MNIST, paper profile", "Table 3: CIFAR-10",
                      "Table 3: CIFAR-10, full-data profile", "Table 4: CIFAR-100",
                      "Table 4: CIFAR-100, full-data profile"]
    assert book.BY_STEM["beyond_compare"].executed("cifar10", "full-data") == "beyond_compare_cifar10"  # no copy of its own


@pytest.mark.slow
def test_no_page_shows_a_traceback_a_warning_or_stderr(html):
    bad = {}
    for page in html.rglob("*.html"):
        text = page.read_text()
        hits = [w for w in ("output stderr", "Traceback (most recent call last)", "Warning:", "UserWarning")
                if w in text]
        if hits:
            bad[page.relative_to(html).as_posix()] = hits
    assert not bad, f"pages with stray output: {bad}"


@pytest.mark.slow
def test_the_first_page_states_the_findings_then_the_scorecard(html):
    intro = (html / "book" / "intro.html").read_text()
    assert "Do the paper" in intro and "<table class='scorecard'>" in intro
    for state in ("supported", "untestable at this budget"):
        assert state in intro
    found, card = intro.index("What we found"), intro.index("<table class='scorecard'>")
    assert found < intro.index("White-box PGD-20") < intro.index("Not tested yet") < card
    assert "<details class='scorecard-evidence'>" in intro  # the evidence without hovering
    assert "implausible (erratum 5)" in intro and "errata.html" in intro


@pytest.mark.slow
def test_the_beyond_page_opens_with_the_white_box_finding_and_table1_has_no_profile_banner(html):
    beyond = (html / "book" / "beyond.html").read_text()
    assert beyond.index("White-box PGD-20") < beyond.index("The paper measures robustness only")
    table1 = _page(html, "table1_cost")
    assert "does not depend on the run profile" in table1 and "REDUCED profile" not in table1


@pytest.mark.slow
def test_the_zoo_page_lists_every_published_model_with_a_download(html):
    page = (html / "book" / "zoo.html").read_text()
    m = Store().manifest()
    for r in m.itertuples():
        assert r.sha256[:12] in page, r.name
    assert page.count("_downloads/") >= len(m)


@pytest.mark.slow
def test_equations_are_served_with_the_book_not_from_a_cdn(html):
    intro = (html / "book" / "intro.html").read_text()
    assert "_static/mathjax/tex-chtml.js" in intro and "cdn.jsdelivr" not in intro
    assert (html / "_static" / "mathjax" / "tex-chtml.js").is_file()
    assert (html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2" / "MathJax_Main-Regular.woff").is_file()


@pytest.mark.slow
def test_no_page_shows_plumbing_and_the_choices_chapter_renders(html):
    """The Colab setup, the parameters (the sources' and papermill's injected ones) and their check are
    tagged away (notebooks/*.md): no executed page shows their code."""
    pages = sorted((html / "book" / "_executed").glob("*.html"))
    assert len(pages) == len(book.toc_files())
    for page in pages:
        text = page.read_text()
        shown = [w for w in ("google.colab", "notebook_params.check", "# Parameters", "REPOSITORY =") if w in text]
        assert not shown, f"{page.name} shows plumbing: {shown}"
    chapter = _page(html, "unstated_choices")
    assert "What each choice moves" in chapter and "teacher_view" in chapter and "dadv_walk" in chapter


def test_no_page_or_source_holds_a_control_character():
    """A backslash escape lost on the way (``\\tau`` written as a tab and 'au', ``\\beta`` as a backspace)
    breaks a formula without failing the build (MathJax shows 'Math input error')."""
    root = Path(__file__).resolve().parent.parent
    files = [*root.glob("book/*.md"), *root.glob("notebooks/*.md"), *root.glob("akt_core/**/*.py"), root / "README.md"]
    bad = [f"{p.relative_to(root)}:{n}" for p in files
           for n, line in enumerate(p.read_text().splitlines(), 1) if any(ord(c) < 32 for c in line)]
    assert not bad, bad
