r"""Stability estimators of linear heads (docs/theory.md section 1), per sample and summarised.

Notions for sample i, with ``S' = S\i`` (leave-one-out, ids ``loo.*``) or ``S' = S^(i)``
(replace-one, ids ``replace.*``): ``weights`` ``||A(S) - A(S')||``, ``direction`` the distance of
the unit directions, ``loss`` ``|l(A(S); z_i) - l(A(S'); z_i)|``. ``seed.std`` is the spread
over random starts. With ``K`` heads the predictor is the mean head. :func:`loo_stability`
trains S and every S\i as one vmapped batch (:class:`HeadRuns`) and returns a
:class:`StabilityEstimate` (per-sample values, mean, max and a bootstrap interval of the mean).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from stabtheory.errors import DivergenceError, InvalidArgumentError, InvalidDataError
from stabtheory.linear_heads.losses import LOSSES, log_loss
from stabtheory.linear_heads.optimizers import OPTIMIZERS
from stabtheory.linear_heads.trainer import (
    Trajectory,
    jit_train_runs,
    loo_weights,
    replace_one_weights,
    train_runs,
)
from stabtheory.statistics import bootstrap_mean_ci, bootstrap_std_ci
from stabtheory.validation import (
    check_choice,
    check_finite_array,
    check_float_dtype,
    check_integer,
    check_real,
    check_steps,
    validate,
)

__all__ = [
    "NOTIONS",
    "HeadRuns",
    "SeedStability",
    "StabilityEstimate",
    "held_out_margins",
    "loo_stability",
    "per_sample_stability",
    "replace_one_stability",
    "seed_stability",
    "train_head_runs",
    "trivial_stability",
]

NOTIONS = ("weights", "direction", "loss", "clipped_loss")


@dataclasses.dataclass(frozen=True)
class StabilityEstimate:
    """An estimated stability: per-sample values and their summaries.

    Attributes:
      notion: e.g. ``"loo.direction"``.
      per_sample: shape (n,) (or (C, n) when several checkpoints are estimated at once).
      mean, max: mean and max over samples (arrays of shape (C,) in the batched case).
      ci: bootstrap 95% interval of the mean, ``(low, high)``.
    """

    notion: str
    per_sample: np.ndarray
    mean: np.ndarray | float
    max: np.ndarray | float
    ci: tuple

    @classmethod
    def from_values(cls, notion: str, values, *, seed: int = 0) -> StabilityEstimate:
        values = np.asarray(values, dtype=np.float64)
        low, high = bootstrap_mean_ci(values, seed=seed)
        mean, mx = values.mean(axis=-1), values.max(axis=-1)
        if values.ndim == 1:
            return cls(notion, values, float(mean), float(mx), (float(low), float(high)))
        return cls(notion, values, mean, mx, (low, high))


def _predictor(w: jax.Array) -> jax.Array:
    """The mean head (mean of the heads' logits), from weights (..., K, d)."""
    return jnp.mean(w, axis=-2)


def _direction(w: jax.Array) -> jax.Array:
    """The unit direction ``w / ||w||`` of every row of ``w`` (..., d)."""
    return w / jnp.linalg.norm(w, axis=-1, keepdims=True)


def _log_losses_at(a: jax.Array, b: jax.Array, Z: jax.Array, loss: str):
    """``log l(a; z_i)`` and ``log l(b_i; z_i)``: the run on S and each perturbed run at the
    sample ``z_i`` of its index (``b`` has the sample axis first)."""
    extra = b.ndim - 2  # axes between the sample axis and d
    Zb = Z.reshape(Z.shape[:1] + (1,) * extra + Z.shape[1:])
    return log_loss(jnp.sum(a * Zb, axis=-1), loss), log_loss(jnp.sum(b * Zb, axis=-1), loss)


def held_out_margins(w_perturbed: jax.Array, Z: jax.Array) -> jax.Array:
    """The margin ``<u_i, y_i x_i>`` of each sample under the run that left it out (or
    replaced it), ``u_i`` the mean head of ``w_perturbed[i]``: (n, ...). A margin <= 0 means
    the held-out point is misclassified by u_S\\i.

    Example:
      >>> import jax.numpy as jnp
      >>> held_out_margins(jnp.array([[[1.0, 0.0]], [[0.0, -1.0]]]), jnp.eye(2)).tolist()
      [1.0, -1.0]
    """
    b = _predictor(w_perturbed)
    extra = b.ndim - 2
    return jnp.sum(b * Z.reshape(Z.shape[:1] + (1,) * extra + Z.shape[1:]), axis=-1)


def per_sample_stability(
    w_full: jax.Array,
    w_perturbed: jax.Array,
    Z: jax.Array,
    notion: str,
    *,
    loss: str = "exponential",
) -> jax.Array:
    """Per-sample stability values between the run on S and the n perturbed runs.

    Args:
      w_full: weights trained on S, shape (..., K, d).
      w_perturbed: weights trained on S\\i or S^(i) for every i, shape (n, ..., K, d).
      Z: signed points ``y_i x_i`` of S, shape (n, d) (for the loss notion).
      notion: ``"weights"``, ``"direction"``, ``"loss"`` or ``"clipped_loss"`` (the loss
        capped at its value at margin 0, ``min(l(m), l(0))``: a bounded loss, whose change
        on a held-out point the point's misclassification cannot blow up).
      loss: the loss of the loss notions.

    Returns:
      Shape (n, ...).
    """
    a, b = _predictor(w_full), _predictor(w_perturbed)
    if notion == "weights":
        return jnp.linalg.norm(a - b, axis=-1)
    if notion == "direction":
        return jnp.linalg.norm(_direction(a) - _direction(b), axis=-1)
    if notion == "loss":
        la, lb = _log_losses_at(a, b, Z, loss)
        # |e^la - e^lb| = e^max (1 - e^-|la - lb|), exact in the log domain.
        return jnp.exp(jnp.maximum(la, lb)) * -jnp.expm1(-jnp.abs(la - lb))
    if notion == "clipped_loss":
        la, lb = _log_losses_at(a, b, Z, loss)
        cap = log_loss(jnp.zeros((), la.dtype), loss)
        la, lb = jnp.minimum(la, cap), jnp.minimum(lb, cap)
        return jnp.exp(jnp.maximum(la, lb)) * -jnp.expm1(-jnp.abs(la - lb))
    raise ValueError(f"notion must be one of {NOTIONS}, got {notion!r}.")


def trivial_stability(
    w_full: jax.Array,
    w_perturbed: jax.Array,
    w_start: jax.Array,
    Z: jax.Array,
    notion: str,
    *,
    loss: str = "exponential",
) -> jax.Array:
    """The trivial bound of every value of :func:`per_sample_stability`: what holds whatever
    the training did (docs/theory.md section 6), so a bound at or above it says nothing.

    ``"direction"``: 2 (unit vectors). ``"weights"``: ``||a - a0|| + ||b - a0||``, both runs
    starting at ``w_start`` (the triangle inequality). ``"loss"``: ``l(a; z_i) + l(b; z_i)``
    (both losses are non-negative), summed in the log domain. ``"clipped_loss"``: ``l(0)``,
    the range of the capped loss. Same arguments and shape as
    :func:`per_sample_stability`; ``w_start`` (K, d) is the runs' common start.

    Example:
      >>> import jax.numpy as jnp
      >>> a, b, w0 = jnp.ones((1, 2)), jnp.zeros((3, 1, 2)), jnp.zeros((1, 2))
      >>> trivial_stability(a, b, w0, jnp.ones((3, 2)), "weights").tolist()
      [1.4142135623730951, 1.4142135623730951, 1.4142135623730951]
    """
    a, b, a0 = _predictor(w_full), _predictor(w_perturbed), _predictor(w_start)
    if notion == "weights":
        return jnp.linalg.norm(a - a0, axis=-1) + jnp.linalg.norm(b - a0, axis=-1)
    if notion == "direction":
        return jnp.full(b.shape[:-1], 2.0, b.dtype)
    if notion == "loss":
        la, lb = _log_losses_at(a, b, Z, loss)
        return jnp.exp(jnp.logaddexp(la, lb))
    if notion == "clipped_loss":
        cap = jnp.exp(log_loss(jnp.zeros((), b.dtype), loss))
        return jnp.full(b.shape[:-1], cap, b.dtype)
    raise ValueError(f"notion must be one of {NOTIONS}, got {notion!r}.")


_traced_train_runs = jax.jit(train_runs, static_argnames=("loss", "optimizer", "batch_size"))


def _train_runs(*args, **kwargs) -> Trajectory:
    """The jitted trainer: static checkpoints (fixed-length loops, one compilation per
    checkpoint tuple) on an accelerator, where a traced loop bound blocks XLA's loop
    optimisations; traced checkpoints (one compilation for every checkpoint tuple) on the CPU,
    where both run at the same speed (benchmarks/README.md). Same trajectories either way."""
    if jax.default_backend() == "cpu":
        return _traced_train_runs(*args, **kwargs)
    return jit_train_runs(*args, **kwargs)


@dataclasses.dataclass(frozen=True)
class HeadRuns:
    """The trained runs of S (index 0) and of its n perturbed sets S\\i or S^(i) (1..n).

    :func:`train_head_runs` trains them as one batch; :meth:`estimate` compares every
    perturbed run with the run on S.

    Attributes:
      kind: ``"loo"`` (leave-one-out sets S\\i) or ``"replace"`` (replace-one sets S^(i)).
      Z: signed points of S, (n, d); ``Z_all`` the rows the masks select from.
      weights: masks (n + 1, n_all); ``lr`` (n + 1,).
      trajectory: :class:`~stabtheory.linear_heads.Trajectory` with a leading runs axis.
      loss, optimizer: as trained.
    """

    kind: str
    Z: jax.Array
    Z_all: jax.Array
    weights: jax.Array
    lr: jax.Array
    trajectory: Trajectory
    loss: str
    optimizer: str

    @property
    def steps(self) -> np.ndarray:
        """The checkpoint steps, shape (C,)."""
        return np.asarray(self.trajectory.steps[0])

    def estimate(self, notion: str) -> StabilityEstimate:
        """Stability at every checkpoint: ``per_sample`` has shape (C, n)."""
        w = self.trajectory.w  # (runs, C, K, d)
        values = per_sample_stability(w[0], w[1:], self.Z, notion, loss=self.loss)
        return StabilityEstimate.from_values(f"{self.kind}.{notion}", np.asarray(values).T)


def _check_lr(lr) -> None:
    check_real("lr", lr, low=0.0)


def _check_training(loss, optimizer, heads_per_run, dtype, batch_size=None) -> None:
    """The training arguments every estimator shares, checked before any work."""
    check_choice("loss", loss, LOSSES)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_integer("heads_per_run", heads_per_run, low=1)
    check_integer("batch_size", batch_size, low=1, allow_none=True)
    check_float_dtype("dtype", dtype)


def _checkpoints(steps) -> jax.Array:
    return jnp.asarray(check_steps("steps", steps))


def _start(init, runs: int, K: int, d: int, dtype) -> jax.Array:
    if init is None:
        return jnp.zeros((runs, K, d), dtype)
    w0 = jnp.asarray(check_finite_array("init", init, ((d,), (K, d))), dtype)
    return jnp.broadcast_to(jnp.broadcast_to(w0, (K, d)), (runs, K, d))


def train_head_runs(
    X,
    y,
    *,
    loss: str = "exponential",
    lr: float = 1.0,
    steps=1000,
    kind: str = "loo",
    replacements=None,
    init=None,
    heads_per_run: int = 1,
    optimizer: str = "gd",
    dtype=jnp.float64,
    batch_size: int | None = None,
) -> HeadRuns:
    """Train S and every S\\i (``kind="loo"``) or S^(i) (``kind="replace"``) in one batch.

    Args:
      X, y: features (n, d) and labels in {-1, +1} or {0, 1}.
      loss: ``"exponential"`` or ``"logistic"``.
      lr: step size (shared by all runs).
      steps: an int, or non-decreasing checkpoint steps.
      kind: ``"loo"`` or ``"replace"``.
      replacements: ``(X', y')`` with n rows, the independent draws for ``kind="replace"``.
      init: start ``(d,)`` or ``(K, d)``; zero by default.
      heads_per_run: K.
      optimizer: ``"gd"`` (the algorithm of Theorems H-1, H-2, C-1), ``"momentum"``,
        ``"adam"``, or ``"ngd"`` (normalized GD, ``w <- w - lr grad F / F``, Theorem H-3;
        see :func:`stabtheory.linear_heads.normalized_weights`).
      dtype: float64 for theory checks; float32 allowed.
      batch_size: chunk the runs to bound memory.
    """
    X, y = validate(X, y)
    _check_lr(lr)
    _check_training(loss, optimizer, heads_per_run, dtype, batch_size)
    check_choice("kind", kind, ("loo", "replace"))
    n, d = X.shape
    Z = jnp.asarray(y[:, None] * X, dtype)
    if kind == "loo":
        Z_all, weights = Z, loo_weights(n, dtype)
    elif kind == "replace":
        if not isinstance(replacements, tuple | list) or len(replacements) != 2:
            raise InvalidArgumentError(
                f"replacements must be a pair (X_new, y_new) with n rows, got {replacements!r}."
            )
        Xr, yr = validate(*replacements)
        if Xr.shape != X.shape:
            raise InvalidArgumentError(f"replacements must have shape {X.shape}, got {Xr.shape}.")
        Z_all = jnp.concatenate([Z, jnp.asarray(yr[:, None] * Xr, dtype)])
        weights = replace_one_weights(n, dtype)
    runs = n + 1
    lr_runs = jnp.full((runs,), lr, dtype)
    w0 = _start(init, runs, heads_per_run, d, dtype)
    traj = _train_runs(
        Z_all,
        weights,
        lr_runs,
        w0,
        _checkpoints(steps),
        loss=loss,
        optimizer=optimizer,
        batch_size=batch_size,
    )
    return HeadRuns(kind, Z, Z_all, weights, lr_runs, traj, loss, optimizer)


def _estimate(runs: HeadRuns, notion: str, steps, init) -> StabilityEstimate:
    """The estimate at the checkpoints; without a checkpoint axis when ``steps`` is an int."""
    check_choice("notion", notion, NOTIONS)
    if not np.all(np.isfinite(np.asarray(runs.trajectory.w))):
        radius = float(jnp.linalg.norm(runs.Z, axis=1).max())
        lr = float(runs.lr[0])
        raise DivergenceError(
            f"training diverged (non-finite weights) with lr={lr:g}: try a smaller step, "
            f"e.g. lr <= 1/R^2 = {1 / radius**2:.4g} (R = max ||x_i|| = {radius:.4g})."
        )
    if notion == "direction" and init is None and 0 in np.atleast_1d(steps):
        raise InvalidDataError(
            "the direction notion is undefined at step 0 from the zero start (w = 0); "
            "drop checkpoint 0 or pass a non-zero init."
        )
    est = runs.estimate(notion)
    if np.ndim(steps) == 0:
        return StabilityEstimate.from_values(est.notion, est.per_sample[0])
    return est


def loo_stability(
    X,
    y,
    *,
    loss: str = "exponential",
    lr: float = 1.0,
    steps=1000,
    notion: str = "direction",
    init=None,
    heads_per_run: int = 1,
    optimizer: str = "gd",
    dtype=jnp.float64,
    batch_size: int | None = None,
) -> StabilityEstimate:
    r"""Leave-one-out stability of a GD-trained linear head (docs/theory.md section 1).

    Trains on S and on every S\i (the weighted mean loss over the remaining ``n - 1``
    samples) from the same start for ``steps`` full-batch steps of size ``lr``, all runs in
    one vmapped computation, and compares each S\i run with the S run.

    Args:
      X, y: features (n, d), labels in {-1, +1} or {0, 1}.
      loss: ``"exponential"`` or ``"logistic"``.
      lr: GD step size.
      steps: number of steps (int), or non-decreasing checkpoints (then the estimate has a
        leading checkpoint axis, also for a list of one). The direction is undefined at step
        0 from the zero start, so that checkpoint is refused for ``notion="direction"``.
      notion: ``"direction"``, ``"weights"`` or ``"loss"``.
      init: start, zero unless given.
      optimizer: ``"gd"`` (default), ``"momentum"``, ``"adam"`` or ``"ngd"`` (normalized
        GD), see :func:`train_head_runs`.

    Returns:
      :class:`StabilityEstimate` with ``.per_sample`` (n,), ``.mean``, ``.max``, ``.ci``.

    Example:
      >>> from stabtheory.data import soudry_fig1
      >>> ds = soudry_fig1()
      >>> est = loo_stability(ds.X, ds.y, lr=0.1, steps=100, notion="direction")
      >>> est.per_sample.shape
      (4,)
    """
    runs = train_head_runs(
        X,
        y,
        loss=loss,
        lr=lr,
        steps=steps,
        init=init,
        heads_per_run=heads_per_run,
        optimizer=optimizer,
        dtype=dtype,
        batch_size=batch_size,
    )
    return _estimate(runs, notion, steps, init)


def replace_one_stability(
    X,
    y,
    replacements,
    *,
    loss: str = "exponential",
    lr: float = 1.0,
    steps=1000,
    notion: str = "direction",
    init=None,
    optimizer: str = "gd",
    dtype=jnp.float64,
) -> StabilityEstimate:
    """Replace-one stability (``replace.*``): S against S^(i), z_i replaced by ``replacements[i]``.

    See :func:`loo_stability` for the arguments; ``replacements = (X_new, y_new)``.
    """
    runs = train_head_runs(
        X,
        y,
        loss=loss,
        lr=lr,
        steps=steps,
        kind="replace",
        replacements=replacements,
        init=init,
        optimizer=optimizer,
        dtype=dtype,
    )
    return _estimate(runs, notion, steps, init)


@dataclasses.dataclass(frozen=True)
class SeedStability:
    """``seed.std``: spread over seeds of test accuracy and of test predictions.

    Attributes:
      accuracy: test accuracy of each seed, (seeds,).
      accuracy_std: std over seeds of the test accuracy (ddof=1).
      accuracy_std_ci: bootstrap 95% interval of ``accuracy_std`` (resampling seeds).
      prediction_std: mean over test points of the std over seeds of the predicted
        probability ``sigmoid(w . x)``.
      disagreement: mean over test points of the fraction of seed pairs whose predicted
        labels differ.
    """

    accuracy: np.ndarray
    accuracy_std: float
    accuracy_std_ci: tuple
    prediction_std: float
    disagreement: float


def seed_stability(
    X,
    y,
    X_test,
    y_test,
    *,
    seeds: int = 20,
    init_scale: float = 1.0,
    loss: str = "logistic",
    lr: float = 1.0,
    steps: int = 100,
    optimizer: str = "gd",
    heads_per_run: int = 1,
    key: jax.Array | None = None,
    dtype=jnp.float64,
) -> SeedStability:
    """Practical instability over random head initialisations (``seed.std``).

    Every seed starts from ``init_scale * N(0, I / d)`` and trains on the full S; all seeds
    run as one vmapped batch.
    """
    X, y = validate(X, y)
    X_test, y_test = validate(X_test, y_test)
    _check_lr(lr)
    _check_training(loss, optimizer, heads_per_run, dtype)
    check_integer("seeds", seeds, low=2)
    check_real("init_scale", init_scale, low=0.0, low_open=False)
    check_integer("steps", steps, low=0)
    n, d = X.shape
    if X_test.shape[1] != d:
        raise InvalidDataError(f"X_test has {X_test.shape[1]} features, X has {d}.")
    key = jax.random.key(0) if key is None else key
    w0 = init_scale * jax.random.normal(key, (seeds, heads_per_run, d), dtype) / np.sqrt(d)
    Z = jnp.asarray(y[:, None] * X, dtype)
    traj = _train_runs(
        Z,
        jnp.ones((seeds, n), dtype),
        jnp.full((seeds,), lr, dtype),
        w0,
        _checkpoints([steps]),
        loss=loss,
        optimizer=optimizer,
    )
    w = np.asarray(_predictor(traj.w[:, -1]))  # (seeds, d)
    if not np.all(np.isfinite(w)):
        raise DivergenceError(
            f"training diverged (non-finite weights) with lr={lr:g}: try a smaller step, "
            f"e.g. lr <= 1/R^2 = {1 / float(np.linalg.norm(X, axis=1).max()) ** 2:.4g}."
        )
    logits = np.asarray(X_test) @ w.T  # (m, seeds)
    acc = np.mean(np.sign(logits) == y_test[:, None], axis=0)
    prob = 0.5 * (1.0 + np.tanh(0.5 * logits))  # sigmoid without overflow
    labels = logits > 0
    frac = labels.mean(axis=1)
    disagree = 2 * frac * (1 - frac) * seeds / max(seeds - 1, 1)
    return SeedStability(
        acc,
        float(acc.std(ddof=1)),
        bootstrap_std_ci(acc),
        float(prob.std(axis=1, ddof=1).mean()),
        float(disagree.mean()),
    )
