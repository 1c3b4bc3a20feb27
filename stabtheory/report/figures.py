"""Figures: saving (in this process or in worker processes), bound versus empirical stability,
and instability against a swept parameter.

``stabtheory verify`` draws its figures with these functions, so a user can draw the same
figures from checks and sweeps of their own:

>>> import matplotlib
>>> matplotlib.use("Agg")
>>> from stabtheory.bounds import check_bound
>>> from stabtheory.data import soudry_fig1
>>> ds = soudry_fig1()
>>> chk = check_bound("head.H1", ds.X, ds.y, lr=0.1, steps=[1, 10, 100, 1000])
>>> ax = plot_bound_vs_empirical(chk)
"""

from __future__ import annotations

import contextlib
import contextvars
import multiprocessing
import pickle
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter

from stabtheory.bounds import BoundCheck
from stabtheory.statistics import bootstrap_mean_ci, bootstrap_means, percentile_interval

__all__ = [
    "figure_workers",
    "plot_bound_vs_empirical",
    "plot_claim",
    "plot_per_sample",
    "save_figure",
]

#: Where :func:`save_figure` sends figures inside :func:`figure_workers`: ``(pool, futures)``;
#: ``None`` renders in this process.
_RENDERING: contextvars.ContextVar = contextvars.ContextVar("stabtheory_rendering", default=None)

_DPI = 110


def _write(fig, path) -> None:
    """Lay out, write and close a figure."""
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)


def _render(payload: bytes, path: str) -> str:
    """Lay out and write a pickled figure (in a worker process)."""
    _write(pickle.loads(payload), path)
    return path


def _init_worker() -> None:
    import matplotlib

    matplotlib.use("Agg")


@contextlib.contextmanager
def figure_workers(workers: int) -> Iterator[None]:
    """Render the figures saved inside the block in ``workers`` spawned processes (laying out
    and rasterising a figure is most of the report's time); wait for all of them on exit.
    ``workers <= 1`` renders each figure in this process as it is saved."""
    if workers <= 1:
        yield
        return
    ctx = multiprocessing.get_context("spawn")  # never fork a process that runs JAX threads
    futures: list[Future] = []
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker) as pool:
        token = _RENDERING.set((pool, futures))
        try:
            yield
        finally:
            _RENDERING.reset(token)
        for f in futures:
            f.result()  # re-raises a worker's error


def save_figure(fig, out: Path, name: str) -> str:
    """Lay out, write and close a figure; return its file name.

    Inside :func:`figure_workers` with several workers, the figure is pickled and handed to a
    worker process, which lays it out and writes it; the file exists once the block exits.
    """
    rendering = _RENDERING.get()
    if rendering is None:
        _write(fig, out / name)
        return name
    pool, futures = rendering
    payload = pickle.dumps(fig)
    plt.close(fig)
    futures.append(pool.submit(_render, payload, str(out / name)))
    return name


def plot_bound_vs_empirical(
    check: BoundCheck, *, ax: plt.Axes | None = None, label: str | None = None, color=None
) -> plt.Axes:
    """Mean (with 95% bootstrap band) and max of the empirical instability and of the bound
    over samples, against the checkpoint step t, on log axes, with the notion's trivial bound
    (mean over samples; a bound at or above it says nothing).

    Checkpoints where the theorem does not apply are left out of the bound's curves.
    Violations, if any, are marked with red crosses.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.6))
    steps = np.asarray(check.steps, float)
    bound, emp = np.atleast_2d(check.bound), np.atleast_2d(check.empirical)
    mean = emp.mean(axis=1)
    lo, hi = bootstrap_mean_ci(emp)
    name = label or check.theorem
    line = ax.plot(steps, mean, "-", color=color, label=f"empirical {check.notion} (mean)")[0]
    c = line.get_color()
    ax.fill_between(steps, lo, hi, color=c, alpha=0.25, lw=0)
    ax.plot(steps, emp.max(axis=1), ":", color=c, label="empirical (max over i)")
    ok = check.applicable_at
    if ok.any():
        b = np.where(check.entry_mask, bound, np.nan)[ok]
        marker = "o" if ok.sum() <= 3 else None  # a few checkpoints: a line alone is invisible
        for reduce, style, shade, text in (
            (np.nanmean, "--", "k", f"bound {name} (mean)"),
            (np.nanmax, "-.", "0.5", "bound (max over i)"),
        ):
            ax.plot(
                steps[ok], reduce(b, axis=1), style, marker=marker, ms=4, color=shade, label=text
            )
        if check.trivial is not None:
            trivial = np.broadcast_to(np.atleast_2d(check.trivial), bound.shape)
            ax.plot(
                steps[ok],
                np.nanmean(np.where(check.entry_mask, trivial, np.nan)[ok], axis=1),
                ":",
                lw=1.5,
                color="tab:red",
                label="trivial bound (mean)",
            )
    else:
        failed = ", ".join(a.name for a in check.assumptions if not a.holds)
        ax.text(
            0.5,
            0.5,
            f"not applicable:\n{failed}",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=8,
            color="0.3",
        )
    bad = np.atleast_2d(check.violation_mask)
    if bad.any():
        ci, _ = np.nonzero(bad)
        ax.plot(steps[ci], emp[bad], "x", color="red", label="violation")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("GD step t")
    ax.set_ylabel(
        "margin gap delta(t)"
        if check.notion == "margin.gap"
        else "instability (leave-one-out change)"
    )
    cfg = check.config
    ax.set_title(
        f"{check.theorem}: {cfg.get('loss', '')}, lr={cfg.get('lr', '')}, "
        f"gamma={cfg.get('gamma', 0):.3g}, n={cfg.get('n', '')}",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    return ax


def plot_claim(
    parameter: str,
    curves: dict[str, tuple[Sequence[float], Sequence[np.ndarray]]],
    *,
    ax: plt.Axes | None = None,
    title: str = "",
    ylabel: str = "instability (mean over i)",
    logx: bool = True,
) -> plt.Axes:
    """Mean instability (95% bootstrap interval as error bars) against a swept parameter.

    Args:
      parameter: the swept parameter's name (x label).
      curves: ``{label: (parameter_values, per_sample_values_per_config)}``; the values of a
        configuration are ``(n,)`` for one data draw or ``(draws, n)``, and the interval is
        the hierarchical bootstrap of :func:`stabtheory.statistics.bootstrap_means` (data
        draws resampled, then samples within each draw).
      logx: log x axis when the values span more than a decade.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.6))
    for label, (xs, per_sample) in curves.items():
        xs = np.asarray(xs, float)
        means = np.array([np.mean(v) for v in per_sample])
        boot = bootstrap_means(per_sample, 2000, np.random.default_rng(0))
        ci = np.array([percentile_interval(b, 0.95) for b in boot.T])
        yerr = np.abs(np.stack([means - ci[:, 0], ci[:, 1] - means]))
        ax.errorbar(xs, means, yerr=yerr, marker="o", ms=3, capsize=2, label=label)
    all_x = np.concatenate([np.asarray(xs, float) for xs, _ in curves.values()])
    if logx and all_x.min() > 0 and all_x.max() / all_x.min() > 10:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yscale("log")
    ax.set_xlabel(parameter)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return ax


def plot_per_sample(
    check: BoundCheck,
    *,
    ax: plt.Axes | None = None,
    title: str | None = None,
    linthresh: float | None = None,
) -> plt.Axes:
    """The bound (bars) and the empirical value (dots) of every sample, sorted by the bound:
    the figure of a theorem about converged or exact solutions (one value per sample).

    Args:
      check: a check with one point (its first checkpoint is drawn).
      title: the panel title (default: the theorem and its notion).
      linthresh: a symmetric-log y axis linear below this value (values that can be 0);
        ``None``: a log axis.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.6))
    emp, bound = np.atleast_2d(check.empirical)[0], np.atleast_2d(check.bound)[0]
    order = np.argsort(-bound)
    ax.bar(np.arange(len(order)), bound[order], color="0.8", label=f"{check.theorem} bound")
    ax.plot(np.arange(len(order)), emp[order], "o", ms=3, label=f"empirical {check.notion}")
    if linthresh is None:
        ax.set_yscale("log")
    else:
        ax.set_yscale("symlog", linthresh=linthresh)
    ax.set_xlabel("sample (sorted by bound)")
    ax.set_title(title or f"{check.theorem} ({check.notion})", fontsize=9)
    ax.legend(fontsize=7)
    return ax
