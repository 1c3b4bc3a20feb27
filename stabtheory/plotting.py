"""Temporary shim (phase 1 of the redesign): the plotting helpers live in
:mod:`stabtheory.report.figures`."""

from stabtheory.report.figures import plot_bound_vs_empirical, plot_claim

__all__ = ["plot_bound_vs_empirical", "plot_claim"]
