"""How the book looks, declared once: one colour per model on every figure, figure resolution, and
tables without a pandas index that fit the page's column."""
from __future__ import annotations

import hashlib

import pandas as pd

from ..graph import ALL_VARIANTS

#: one colour per model across the whole book (the paper's eight, then the later methods and exits); the
#: paper's method, Res8(adv-trans), eighth, is near-black: never the grey of the paper's own numbers
_PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#222222",
            "#ccb974", "#64b5cd", "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d")
COLOURS: dict[str, str] = dict(zip(ALL_VARIANTS, _PALETTE))
PAPER_COLOUR = "#9e9e9e"  #: the paper's own numbers, wherever they are drawn beside ours
#: one colour per verdict state (``verdicts.STATES`` and the cells that carry no verdict); white text on each
STATE_COLOURS = {"supported": "#1a7f37", "contradicted": "#cf222e", "within noise": "#9a6700",
                 "untestable at this budget": "#6e7781", "not enough results": "#6e7781", "no numbers": "#6e7781"}
DPI = 150  #: figures are stored at this resolution (readable at the book's column width)


def colour(model: str) -> str:
    return COLOURS.get(model, "#333333")


def state_colour(state: str) -> str:
    """The colour of a verdict state; grey for any other cell ("implausible (erratum 5)", say)."""
    return STATE_COLOURS.get(state, "#6e7781")


def notebook() -> None:
    """A notebook's display settings: figure resolution, legend and font sizes, pandas' width."""
    import matplotlib

    matplotlib.rcParams.update({"figure.dpi": DPI, "savefig.dpi": DPI, "font.size": 9, "axes.titlesize": 10,
                                "legend.fontsize": 8, "legend.frameon": False, "axes.spines.top": False,
                                "axes.spines.right": False})
    pd.set_option("display.width", 160, "display.max_columns", 20, "display.max_colwidth", None)


def legend_outside(ax, title: str | None = None) -> None:
    """The legend to the right of the axes, outside the data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, title=title)


_CSS = [{"selector": "", "props": "font-size: 0.85em; border-collapse: collapse; width: auto;"},
        {"selector": "th, td", "props": "padding: 2px 6px; vertical-align: top;"},
        {"selector": "th.col_heading", "props": "text-align: center;"}]


def show(df: pd.DataFrame, precision: int = 2, nowrap: bool = False, **formats):
    """``df`` as a compact HTML table without the pandas index (a Styler; cells already text stay as
    they are): numbers right-aligned, text left-aligned and wrapped to the page's width (``nowrap``:
    never wrapped, for a grid of short cells)."""
    if not isinstance(df.index, pd.RangeIndex):  # a labelled index (models, say) becomes a column
        df = df.reset_index()
    if isinstance(df.columns, pd.MultiIndex):
        df = df.set_axis([" ".join(str(p) for p in c if str(p)) for c in df.columns], axis=1)
    df = df.rename_axis(columns=None)
    sty = df.style.hide(axis="index").format(precision=precision, na_rep="–", **formats)
    text = [c for c in df.columns if df[c].dtype == object]
    if text:
        sty = sty.set_properties(subset=text, **{"text-align": "left"})
    if nowrap:
        sty = sty.set_properties(**{"white-space": "nowrap"})
    # a uuid from the table's shape and row labels, not a random one (nor its values, some of which are
    # timings): the stored outputs, nbval's references, stay stable
    first = df.iloc[:, 0].astype(str).tolist() if len(df.columns) else []
    sty.set_uuid(hashlib.sha1(repr((list(map(str, df.columns)), first)).encode()).hexdigest()[:8])
    return sty.set_table_styles(_CSS)


def diff_html(diff: float, tolerance: float) -> str:
    """A signed difference in points, coloured: red beyond ``tolerance``, grey within it."""
    if pd.isna(diff):
        return ""
    tone = "#c0392b" if abs(diff) > tolerance else "#7f8c8d"
    return f'<span style="color:{tone}">{diff:+.1f}</span>'
