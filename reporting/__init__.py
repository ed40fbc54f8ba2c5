"""Figures, the Markdown report and the comparison with the paper's published tables.

Everything here only reads results (metric dataclasses, tables, score arrays); nothing computes
a metric beyond what a plot needs.
"""
from reporting.distributions import plot_max_score_distributions
from reporting.false_positives import FalsePositiveCandidates, plot_false_positive_grid
from reporting.paper_comparison import (PAPER_RESULTS_DIR, compare_with_paper, difference_table,
                                        paper_performance_table, paper_stems, paper_table)
from reporting.report import write_report
from reporting.roc import plot_roc_curves
from reporting.tradeoff import plot_tradeoff

__all__ = [
    "FalsePositiveCandidates", "PAPER_RESULTS_DIR", "compare_with_paper", "difference_table",
    "paper_performance_table", "paper_stems", "paper_table", "plot_false_positive_grid",
    "plot_max_score_distributions", "plot_roc_curves", "plot_tradeoff", "write_report",
]
