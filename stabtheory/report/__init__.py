"""The report: formatting and JSON conversion (:mod:`~stabtheory.report.format`), figures
(:mod:`~stabtheory.report.figures`) and the document (:mod:`~stabtheory.report.document`).

The studies' report hooks use the first two; :mod:`stabtheory.report.document`
(``build_report``, ``write_report``) sits above the studies, since it loops over the study
registry, and is imported from there (this package does not import it, so a study can use
the formatting and figure helpers without an import cycle).
"""

from stabtheory.report.figures import (
    figure_workers,
    plot_bound_vs_empirical,
    plot_claim,
    plot_per_sample,
    save_figure,
)
from stabtheory.report.format import check_rows, failures, fmt, jsonable

__all__ = [
    "check_rows",
    "failures",
    "figure_workers",
    "fmt",
    "jsonable",
    "plot_bound_vs_empirical",
    "plot_claim",
    "plot_per_sample",
    "save_figure",
]
