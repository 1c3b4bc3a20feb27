"""The user's own data through every head theorem: :func:`audit` and :func:`load_features`.

:func:`audit` trains S and every S\\i once per training algorithm (plain GD serves H-1, H-2
and C-1; normalized GD serves H-3), checks every registered head theorem on those shared runs
(:func:`~stabtheory.bounds.check_all`), and says in words which theorems apply, which
assumption fails where one does (with its measured value, its threshold and the fix), how the
bound compares with the measured leave-one-out change, and how much of it is vacuous (at or
above the notion's trivial bound; docs/theory.md section 6). The defaults are chosen from the
data so that the theorems can apply: the step ``lr = 1 / R^2`` (H-2 and H-3 need
``eta R^2 <= 1``; C-1's logistic smoothness needs ``eta <= 8 / R^2``), the exponential loss on
separable data (the setting of H-2 and H-3) and the logistic loss otherwise (C-1 needs no
separability). ``stabtheory check FILE`` is its command line.

>>> from stabtheory.data import soudry_fig1
>>> ds = soudry_fig1()
>>> a = audit(ds.X, ds.y, steps=100)
>>> applicable = [r["theorem"] for r in a.rows() if r["applicable"]]
>>> a.separable, a.loss, applicable[:2]
(True, 'exponential', ['head.svm_loo', 'head.H1'])
"""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import numpy as np

from stabtheory.bounds import REGISTRY, check_all
from stabtheory.bounds.head import HeadEvidence, head_evidence
from stabtheory.bounds.theorem import Assumption, BoundCheck
from stabtheory.data import add_bias as _with_bias
from stabtheory.data import validate
from stabtheory.errors import InvalidArgumentError, InvalidDataError
from stabtheory.linear_heads import LOSSES
from stabtheory.validation import check_real

__all__ = ["Audit", "audit", "check_row", "describe", "fix_for", "load_features"]


def load_features(path, labels=None, *, label: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels from a file.

    Args:
      path: a ``.npz`` with arrays ``X`` and ``y``; a ``.npy`` of features with ``labels`` the
        ``.npy`` of labels; or a ``.csv`` with a header row, whose label column is ``label``
        (default: the last column) and whose other columns are numeric features.
      labels: the labels' ``.npy`` when ``path`` is a features ``.npy``.
      label: the label column of a ``.csv``.

    Returns:
      ``(X, y)``: features (n, d) as float64 and the labels as read. Two distinct label values
      are mapped to -1 and +1 by :func:`audit` (the smaller to -1).

    Raises:
      InvalidDataError: a missing file, an unknown format or a malformed content, said in one
        line that names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidDataError(f"{path}: no such file.")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                missing = {"X", "y"} - set(f.files)
                if missing:
                    raise InvalidDataError(
                        f"{path}: a .npz needs arrays named X and y; missing "
                        f"{', '.join(sorted(missing))} (it has {', '.join(f.files) or 'none'})."
                    )
                return np.asarray(f["X"], float), np.asarray(f["y"])
        if suffix == ".npy":
            if labels is None:
                raise InvalidDataError(f"{path}: a features .npy needs its labels .npy too.")
            return np.asarray(np.load(path, allow_pickle=False), float), np.load(
                Path(labels), allow_pickle=False
            )
        if suffix == ".csv":
            return _read_csv(path, label)
    except (OSError, ValueError) as err:
        if isinstance(err, InvalidDataError):
            raise
        raise InvalidDataError(f"{path}: could not be read ({err}).") from err
    raise InvalidDataError(f"{path}: unknown format {suffix!r}; use .npz, .npy or .csv.")


def _read_csv(path: Path, label: str | None) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise InvalidDataError(f"{path}: a .csv needs a header row and at least one data row.")
    header, body = rows[0], rows[1:]
    column = len(header) - 1 if label is None else _column(path, header, label)
    try:
        X = np.array(
            [[float(v) for k, v in enumerate(r) if k != column] for r in body], dtype=float
        )
    except ValueError as err:
        raise InvalidDataError(f"{path}: a feature is not a number ({err}).") from err
    y = np.array([r[column] for r in body])
    try:
        y = y.astype(float)
    except ValueError:
        pass  # text labels: two distinct values are mapped by audit
    return X, y


def _column(path: Path, header: list[str], label: str) -> int:
    if label not in header:
        raise InvalidDataError(f"{path}: no column {label!r} (columns: {', '.join(header)}).")
    return header.index(label)


def _binary_labels(y) -> tuple[np.ndarray, dict | None]:
    """Labels in {-1, +1}, and the mapping used when they were not (two distinct values)."""
    y = np.asarray(y)
    if y.dtype.kind in "fc" and not np.all(np.isfinite(y)):
        raise InvalidDataError("y has NaN or infinite labels; remove those samples first.")
    values = np.unique(y)
    if len(values) != 2:
        raise InvalidDataError(
            f"y must have exactly two distinct labels; got {len(values)} "
            f"({', '.join(map(str, values[:6]))}{', ...' if len(values) > 6 else ''})."
        )
    if set(values.tolist()) <= {-1, 1}:
        return y.astype(float), None
    mapping = {str(values[0]): -1, str(values[1]): 1}
    return np.where(y == values[1], 1.0, -1.0), mapping


def fix_for(
    a: Assumption, *, radius: float, lr: float, n: int | None = None, gamma: float = math.nan
) -> str:
    """What to change so that a failing assumption of a head theorem holds, in words
    (``n`` and ``gamma``, the max margin, make the step count of ``Psi(t) > 0`` explicit)."""
    if a.name == "eta R^2 <= 1":
        return f"a step lr <= 1/R^2 = {1 / radius**2:.4g} (the default of stabtheory check)"
    if a.name == "eta <= 2/b":
        return f"a smaller step: lr times the smoothness must be <= 2 (now {a.value:.3g})"
    if a.name == "gamma(S) > 0":
        return (
            "not separable through the origin: append a constant feature (--bias) if the "
            "classes are separable with an intercept, or use other features"
        )
    if a.name == "finite weights":
        return f"the runs diverged: a smaller step than lr = {lr:.4g}"
    if a.name == "Psi(t) > 0" and n and gamma > 0:
        # Psi(t) = log(1 + eta gamma^2 t / 2) - log n > 0 (docs/theory.md, Theorem H-2)
        need = 2 * (n - 1) / (lr * gamma**2)
        return f"more steps: Psi(t) > 0 needs t > 2 (n - 1) / (eta gamma^2) = {need:.4g}"
    if a.name in ("t >= 1", "Psi(t) > 0") or a.name.startswith("at least one"):
        return "more steps (--steps)"
    if "exponential loss" in a.name or a.name == "GD, 1 head":
        return "the theorem's own setting: the exponential loss from w(0) = 0 on one head"
    return "see the assumption's description"


def check_row(c: BoundCheck, fix) -> dict:
    """One check in words for ``--json``: ``theorem``, ``title``, ``notion``, ``applicable``,
    ``holds``, ``violations``, ``vacuous_share``, ``failed_assumptions`` (each assumption's
    ``name``, ``value``, ``relation``, ``threshold``, ``description`` and ``fix(a)``), the
    bound and the measured change (means and maxima), ``trivial_bound``,
    ``steps_applicable`` and ``reason`` (``None``: it was checked)."""
    s = c.summary()
    return {
        "theorem": c.theorem,
        "title": REGISTRY[c.theorem].title,
        "notion": c.notion,
        "applicable": bool(c.applicable),
        "holds": c.holds,
        "violations": int(c.violations) if c.applicable else 0,
        "vacuous_share": c.vacuous_share,
        "failed_assumptions": [
            {**a.to_dict(), "fix": fix(a)} for a in c.assumptions if not a.holds
        ],
        **{
            key: s[key]
            for key in (
                "bound_mean",
                "empirical_mean",
                "bound_max",
                "empirical_max",
                "ratio_mean",
                "trivial_bound",
                "steps_applicable",
            )
        },
        "reason": None,
    }


def describe(rows: list[dict]) -> list[str]:
    """The rows of :func:`check_row` as sentences: applies or not (the failed assumption, its
    value, threshold and fix), holds or is violated, bound against measured, vacuous share."""
    lines = []
    for r in rows:
        head = f"{r['theorem']} ({r['title']})"
        if r["reason"]:
            lines.append(f"- {head}: not checked: {r['reason']}.")
            continue
        if not r["applicable"]:
            why = "; ".join(
                f"{a['name']} fails (measured {a['value']:.4g}, needs {a['relation']} "
                f"{a['threshold']:.4g}): {a['fix']}"
                for a in r["failed_assumptions"]
            )
            lines.append(f"- {head} on {r['notion']}: does not apply: {why}.")
            continue
        verdict = "HOLDS" if r["holds"] else f"VIOLATED at {r['violations']} entries"
        if r["holds"] and r["vacuous_share"] == 1.0:
            verdict = "holds but VACUOUS (every bound at or above the trivial bound)"
        ratio = "" if r["ratio_mean"] is None else f", bound/measured {r['ratio_mean']:.3g}"
        vac = r["vacuous_share"]
        vac = "no trivial bound" if vac is None else f"vacuous share {vac:.0%}"
        lines.append(
            f"- {head} on {r['notion']}: {verdict}: bound mean {r['bound_mean']:.4g} vs "
            f"measured mean {r['empirical_mean']:.4g}{ratio} ({vac}; at t in "
            f"{r['steps_applicable']})."
        )
    return lines


@dataclasses.dataclass(frozen=True)
class Audit:
    """The result of :func:`audit`.

    Attributes:
      n, d, radius: the data's size, dimension and ``R = max_i ||x_i||``.
      separable: whether S is certified separable through the origin; ``gamma`` its max
        margin (NaN when not separable).
      labels: the mapping of the given labels to -1 and +1 (``None`` when they were -1/+1).
      loss, lr, steps: the training settings, and ``settings_reason`` why each was chosen.
      checks: every theorem's :class:`~stabtheory.bounds.BoundCheck`, in registry order.
      skipped: ``(theorem id, reason)`` of the head theorems not checked on these data.
    """

    n: int
    d: int
    radius: float
    separable: bool
    gamma: float
    labels: dict | None
    loss: str
    lr: float
    steps: tuple[int, ...]
    settings_reason: dict
    checks: tuple[BoundCheck, ...]
    skipped: tuple[tuple[str, str], ...]

    @property
    def violations(self) -> int:
        """The number of violated (sample, checkpoint) entries over every applicable check."""
        return sum(c.violations for c in self.checks if c.applicable)

    def rows(self) -> list[dict]:
        """One row per (theorem, notion): ``theorem``, ``notion``, ``applicable``, ``holds``,
        ``vacuous_share``, ``failed_assumptions`` (each with ``name``, ``value``,
        ``relation``, ``threshold``, ``description`` and ``fix``), the bound and the
        measured change (means and maxima over the compared entries), ``trivial_bound`` and
        ``reason`` (why it was not checked, for a skipped theorem)."""
        rows = [
            check_row(
                c,
                lambda a: fix_for(a, radius=self.radius, lr=self.lr, n=self.n, gamma=self.gamma),
            )
            for c in self.checks
        ]
        for theorem, reason in self.skipped:
            rows.append(
                {
                    "theorem": theorem,
                    "title": REGISTRY[theorem].title,
                    "notion": None,
                    "applicable": False,
                    "holds": None,
                    "violations": 0,
                    "vacuous_share": None,
                    "failed_assumptions": [],
                    "reason": reason,
                }
            )
        return rows

    def to_json(self) -> dict:
        """The machine-readable document of ``stabtheory check --json``."""
        return {
            "data": {
                "n": self.n,
                "d": self.d,
                "R": self.radius,
                "separable": self.separable,
                "gamma": None if math.isnan(self.gamma) else self.gamma,
                "labels": self.labels,
            },
            "settings": {
                "loss": self.loss,
                "lr": self.lr,
                "steps": list(self.steps),
                "why": self.settings_reason,
            },
            "violations": self.violations,
            "checks": self.rows(),
        }

    def summary(self) -> str:
        """The audit in words: the data, the settings and why, then one paragraph per check."""
        sep = (
            f"separable through the origin, max margin gamma = {self.gamma:.4g}"
            if self.separable
            else "NOT separable through the origin (certified: the origin lies in the convex "
            "hull of the y_i x_i)"
        )
        lines = [
            f"data: n = {self.n}, d = {self.d}, R = max ||x_i|| = {self.radius:.4g}; {sep}.",
        ]
        if self.labels:
            lines.append(
                "labels: " + ", ".join(f"{k} -> {v:+d}" for k, v in self.labels.items()) + "."
            )
        shown = {"loss": self.loss, "lr": f"{self.lr:.4g}", "steps": list(self.steps)}
        for key, value in shown.items():
            lines.append(f"{key} = {value}: {self.settings_reason[key]}.")
        lines.append("")
        lines += describe(self.rows())
        return "\n".join(lines)

    def figure(self, path) -> Path:
        """Every applicable check's bound against the measured change over t, with the
        notion's trivial bound (:func:`~stabtheory.report.figures.plot_bound_vs_empirical`),
        saved to ``path``."""
        import matplotlib.pyplot as plt

        from stabtheory.report.figures import plot_bound_vs_empirical

        shown = [c for c in self.checks if c.applicable and len(np.atleast_1d(c.steps)) > 1]
        cols = max(1, min(3, len(shown)))
        rows = max(1, -(-len(shown) // cols))
        fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
        for ax, c in zip(axes.ravel(), shown, strict=False):
            plot_bound_vs_empirical(c, ax=ax)
            ax.set_title(f"{c.theorem} on {c.notion}", fontsize=9)
        for ax in axes.ravel()[len(shown) :]:
            ax.axis("off")
        if not shown:
            axes[0, 0].text(0.5, 0.5, "no theorem applies", ha="center", va="center")
        fig.suptitle(
            f"stabtheory check: n = {self.n}, d = {self.d}, {self.loss} loss, lr = {self.lr:.3g}"
        )
        fig.tight_layout()
        path = Path(path)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path


def _checkpoints(steps: int) -> tuple[int, ...]:
    """Log-spaced checkpoints from 1 to ``steps``."""
    points = np.unique(np.round(np.geomspace(1, steps, num=min(12, steps))).astype(int))
    return tuple(int(t) for t in points)


def audit(
    X,
    y,
    *,
    loss: str | None = None,
    lr: float | None = None,
    steps: int = 1000,
    bias: bool = False,
) -> Audit:
    """Check every head theorem on the user's features and labels.

    Args:
      X: features (n, d), finite.
      y: labels with exactly two distinct values (mapped to -1 and +1, the smaller to -1).
      loss: ``"exponential"`` or ``"logistic"``; default: exponential on separable data,
        logistic otherwise.
      lr: the GD step; default ``1 / R^2``.
      steps: the last step t (checkpoints log-spaced from 1), >= 1.
      bias: append a constant feature 1 first (an intercept; the theorems are stated for
        separability through the origin).

    Returns:
      :class:`Audit`.

    Raises:
      InvalidDataError: features or labels that cannot be used (said in one line).
      InvalidArgumentError: a bad ``loss``, ``lr`` or ``steps`` (named, with its range).
    """
    if not isinstance(bias, bool):
        raise InvalidArgumentError(f"bias must be True or False, got {bias!r}.")
    y, mapping = _binary_labels(y)
    X, y = validate(X, y)
    if bias:
        X = _with_bias(X)
    if loss is not None and loss not in LOSSES:
        raise InvalidArgumentError(f"loss must be one of {LOSSES}, got {loss!r}.")
    if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 1:
        raise InvalidArgumentError(f"steps must be an integer >= 1, got {steps!r}.")
    lr = check_real("lr", lr, low=0.0, allow_none=True)
    radius = float(np.linalg.norm(X, axis=1).max())
    if radius == 0:
        raise InvalidDataError("every feature vector is zero: nothing to learn.")
    checkpoints = _checkpoints(int(steps))
    probe = head_evidence(X, y, loss="logistic", lr=1.0, steps=(1,), require_separable=False)
    separable = probe.separable
    why = {}
    if loss is None:
        loss = "exponential" if separable else "logistic"
        why["loss"] = (
            "chosen: the setting of H-2 and H-3 on separable data"
            if separable
            else "chosen: C-1 with the logistic loss needs no separability"
        )
    else:
        why["loss"] = "given"
    if lr is None:
        lr = 1.0 / radius**2
        why["lr"] = "chosen: 1/R^2, so eta R^2 <= 1 (H-2, H-3) and eta <= 8/R^2 (C-1, logistic)"
    else:
        why["lr"] = "given"
    why["steps"] = f"checkpoints log-spaced from 1 to {steps}"
    checks: list[BoundCheck] = []
    for optimizer in ("gd", "ngd"):
        if optimizer == "ngd" and not separable:
            continue
        ev = head_evidence(
            X,
            y,
            loss=loss,
            lr=lr,
            steps=checkpoints,
            optimizer=optimizer,
            loo=probe.loo,
            require_separable=False,
        )
        checks += [c for c in check_all(ev) if optimizer == "gd" or _ngd_only(c.theorem)]
    done = {c.theorem for c in checks}
    skipped = tuple(
        (th.id, _skip_reason(th, separable))
        for th in REGISTRY.values()
        if issubclass(th.evidence, HeadEvidence) and th.id not in done
    )
    return Audit(
        n=X.shape[0],
        d=X.shape[1],
        radius=radius,
        separable=separable,
        gamma=float(probe.loo.full.margin) if separable else math.nan,
        labels=mapping,
        loss=loss,
        lr=float(lr),
        steps=checkpoints,
        settings_reason=why,
        checks=tuple(checks),
        skipped=skipped,
    )


def _ngd_only(theorem: str) -> bool:
    """Whether a theorem is stated for normalized GD only (checked on the NGD runs)."""
    return REGISTRY[theorem].optimizers == ("ngd",)


def _skip_reason(theorem, separable: bool) -> str:
    if theorem.needs_separable and not separable:
        return "it needs data separable through the origin (use --bias if an intercept helps)"
    return "its evidence is not built from the data's runs"
