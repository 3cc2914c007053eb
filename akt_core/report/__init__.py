"""From stored records to what the book shows: tables beside the paper's, claim verdicts, figures.

Nothing here trains or attacks; every number comes from ``results.require`` (the results store) or,
for the paper's side, from ``data/paper_tables.csv``. Every table and figure carries the label of
the profile it came from.
"""
from __future__ import annotations

from . import forensics, style, unstated, whitebox
from .claims import all_claims
from .claims import noise_words as claims_noise_words
from .claims import view as claims_view
from .compare import compare_parts, compare_summary, compare_table, exit_table, plot_compare, trained_after
from .plots import plot_comparison, plot_curves
from .reruns import RERUNS, rerun_noise, rerun_noise_words, rerun_summary, rerun_table, reruns
from .seeds import plot_seeds, seed_cells, seed_summary
from .style import COLOURS, show
from .tables import (
                     ATTACK_COLUMNS,
                     PAPER_CSV,
                     banner,
                     caption,
                     cell_stats,
                     compact,
                     comparison,
                     label,
                     paper_numbers,
                     paper_table,
                     reproduced,
                     side_by_side,
                     stored,
)
from .verdicts import STATES, rule_markdown, verdict_table
from .whitebox import SWEEP_PANELS, matching_eps, plot_sweep, whitebox_table

__all__ = [n for n in dir() if not n.startswith("_")]
