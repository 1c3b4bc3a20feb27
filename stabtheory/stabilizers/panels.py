"""Drawing helpers for the methods' figure panels (matplotlib axes in, nothing imported).

Example:
  >>> import matplotlib.pyplot as plt
  >>> fig, ax = plt.subplots()
  >>> strip_plot(ax, [np.ones(5), np.zeros(5)], ["a", "b"], "value", np.random.default_rng(0))
  >>> plt.close(fig)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["strip_plot"]


def strip_plot(
    ax: Any,
    data: Sequence[np.ndarray],
    labels: Sequence[str],
    ylabel: str,
    rng: np.random.Generator,
) -> None:
    """Box plots of per-seed values with the seeds drawn over them (jittered by ``rng``)."""
    ax.boxplot(data, showfliers=False, widths=0.6)
    for i, d in enumerate(data, start=1):
        d = np.asarray(d, float)
        ax.plot(i + rng.uniform(-0.18, 0.18, d.size), d, "o", ms=2.5, alpha=0.6, color="tab:blue")
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
