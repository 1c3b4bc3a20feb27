"""The phenomenon of failed fine-tuning runs on the attention testbed: the settings grid and the
classification of a setting from its distribution over seeds.

A seed *fails* when its test accuracy is within ``tolerance`` (1 point) of the majority class
(Dodge et al. 2020; Mosbach et al. 2021). A failure rate means something only beside seeds that
succeed with the same settings: :func:`classify` names a setting

- ``"failures"``: some seeds fail while the others reach a success mode (their median test
  accuracy at least ``margin`` above the majority class): the failure rate counts;
- ``"stable"``: no seed fails and the seeds reach a success mode (a failure rate of 0 counts);
- ``"all-collapsed"``: at least ``collapse_share`` of the seeds fail (the recipe collapses,
  not an instability);
- ``"all-under-trained"``: the seeds that do not fail stay within ``margin`` of the majority
  class (every seed near chance: too few or too small steps, not an instability).

Only ``"failures"`` and ``"stable"`` settings decide acceptance (:func:`accepted`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from stabtheory.statistics import binomial_interval

__all__ = ["CLASSES", "Classification", "Setting", "accepted", "classify", "default_grid"]

CLASSES = ("failures", "stable", "all-collapsed", "all-under-trained")
LN2 = math.log(2.0)


@dataclasses.dataclass(frozen=True)
class Setting:
    """One fine-tuning setting of the grid (hashable).

    Attributes:
      n: training-set size.
      optimizer: ``"adam"`` or ``"adam-no-bias-correction"``.
      lr: peak learning rate; steps: optimizer steps; warmup: warmup fraction.
      batch_size: minibatch size.
      sweep: what the setting belongs to (``"n at fixed steps"``, ``"n at fixed epochs"``,
        ``"lr"``...), for the report.
    """

    n: int
    optimizer: str
    lr: float
    steps: int
    warmup: float = 0.1
    batch_size: int = 16
    sweep: str = ""

    def __post_init__(self):
        if self.optimizer not in ("adam", "adam-no-bias-correction"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}.")

    @property
    def bias_correction(self) -> bool:
        """Whether Adam corrects its moment estimates."""
        return self.optimizer == "adam"

    @property
    def epochs(self) -> float:
        """Passes over the training set: ``steps * batch_size / n``."""
        return self.steps * self.batch_size / self.n

    @property
    def label(self) -> str:
        """A short label."""
        bc = "Adam" if self.bias_correction else "Adam-noBC"
        return f"n={self.n} {bc} lr={self.lr:g} T={self.steps}"


def default_grid(
    ns=(64, 256, 1024), lr: float = 3e-3, low_lr: float = 1e-3, steps: int = 100, epochs: int = 5
) -> tuple[Setting, ...]:
    """The default settings: ``n`` at fixed steps with and without bias correction, ``n`` at
    fixed epochs without it, and a smaller learning rate at the largest ``n``."""
    out = []
    for bc in ("adam-no-bias-correction", "adam"):
        out += [Setting(n, bc, lr, steps, sweep="n at fixed steps") for n in ns]
    out += [
        Setting(n, "adam-no-bias-correction", lr, epochs * n // 16, sweep="n at fixed epochs")
        for n in ns
    ]
    out.append(Setting(ns[-1], "adam-no-bias-correction", low_lr, steps, sweep="lr"))
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class Classification:
    """A setting's distribution over seeds, classified.

    Attributes:
      failed: (seeds,) bool, test accuracy within ``tolerance`` of the majority class.
      failure_rate: the share of failed seeds; failure_ci: its Clopper-Pearson interval.
      classification: one of :data:`CLASSES`.
      success_accuracy: the median test accuracy of the seeds that did not fail (NaN if none).
      collapsed_loss: the share of failed seeds whose final training loss is within 0.05 of
        ``ln 2`` (the loss of a constant prediction on balanced labels).
    """

    failed: np.ndarray
    failure_rate: float
    failure_ci: tuple[float, float]
    classification: str
    success_accuracy: float
    collapsed_loss: float

    @property
    def counts(self) -> bool:
        """Whether the failure rate counts (``"failures"`` or ``"stable"``)."""
        return self.classification in ("failures", "stable")


def classify(
    test_accuracy,
    train_loss,
    majority: float,
    *,
    tolerance: float = 0.01,
    margin: float = 0.05,
    collapse_share: float = 0.9,
    level: float = 0.95,
) -> Classification:
    """Classify a setting from its seeds (see the module docstring).

    Example:
      >>> acc = np.r_[np.full(10, 0.5), np.full(40, 0.75)]
      >>> c = classify(acc, np.r_[np.full(10, 0.693), np.full(40, 0.1)], 0.5)
      >>> c.classification, c.failure_rate
      ('failures', 0.2)
    """
    acc = np.asarray(test_accuracy, float)
    loss = np.asarray(train_loss, float)
    failed = acc <= majority + tolerance
    k, m = int(failed.sum()), acc.size
    rest = acc[~failed]
    success = float(np.median(rest)) if rest.size else float("nan")
    if k >= collapse_share * m:
        kind = "all-collapsed"
    elif not success >= majority + margin:
        kind = "all-under-trained"
    else:
        kind = "failures" if k else "stable"
    collapsed = float(np.mean(np.abs(loss[failed] - LN2) < 0.05)) if k else float("nan")
    return Classification(
        failed, k / m, tuple(binomial_interval(k, m, level)), kind, success, collapsed
    )


def accepted(classes, *, high: float = 0.10, low: float = 0.02) -> bool:
    """The testbed's acceptance: some counted setting fails at a rate ``>= high`` and another at
    ``<= low``."""
    rates = [c.failure_rate for c in classes if c.counts]
    return any(r >= high for r in rates) and any(r <= low for r in rates)
