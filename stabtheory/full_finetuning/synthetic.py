"""The synthetic task: a curved latent source distribution, a mean shift, a latent labelling rule.

:func:`synthetic_source` draws unlabeled source inputs, :func:`synthetic_task` a shifted
binary task on them; the kind registers itself as ``TASKS["synthetic"]``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from stabtheory.full_finetuning.tasks import Task, TaskKind, register_task

__all__ = ["synthetic_source", "synthetic_task"]

_WORLD_NOISE = 0.1  # isotropic observation noise of the synthetic source


@functools.lru_cache(maxsize=16)
def _synthetic_world(d_in: int, latent_dim: int, source_seed: int) -> dict:
    """The fixed generative model of the synthetic source (depends on ``source_seed`` only)."""
    rng = np.random.default_rng([source_seed, d_in, latent_dim, 0x5EED])
    r = latent_dim
    A = rng.standard_normal((d_in, r)) / math.sqrt(r)
    B = 2.0 * rng.standard_normal((d_in, r)) / math.sqrt(r)
    c = 0.5 * rng.standard_normal(d_in)
    Q, _ = np.linalg.qr(rng.standard_normal((r, min(r, 2))))
    u, v = Q[:, 0], Q[:, -1]
    delta = rng.standard_normal(d_in)
    delta *= math.sqrt(d_in) / np.linalg.norm(delta)  # RMS coordinate 1
    z = rng.standard_normal((20000, r))
    raw = z @ A.T + np.tanh(z @ B.T + c)
    world = {"A": A, "B": B, "c": c, "u": u, "v": v, "delta": delta}
    world["mean"], world["std"] = raw.mean(0), raw.std(0)
    world["median"] = float(np.median(_rule(world, z, "nonlinear")))
    return world


def _rule(world: dict, z: np.ndarray, rule: str) -> np.ndarray:
    if rule == "linear":
        return z @ world["u"]
    if rule == "nonlinear":
        return z @ world["u"] + (z @ world["v"]) ** 2 - 1.0
    raise ValueError(f"rule must be 'linear' or 'nonlinear', got {rule!r}.")


def _synthetic_draw(world: dict, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    raw = z @ world["A"].T + np.tanh(z @ world["B"].T + world["c"])
    x = (raw - world["mean"]) / world["std"]
    return x + _WORLD_NOISE * rng.standard_normal(x.shape)


def synthetic_source(
    m: int, d_in: int = 32, *, latent_dim: int = 4, source_seed: int = 0
) -> np.ndarray:
    r"""``m`` unlabeled draws from the synthetic source distribution.

    .. math::
        z \sim N(0, I_r), \qquad x = \frac{A z + \tanh(B z + c) - \mu}{\sigma} + 0.1\,\epsilon,

    a curved ``r``-dimensional manifold in ``R^{d_in}`` with coordinates of about unit
    variance (``mu``, ``sigma`` standardise the noiseless part) plus isotropic noise. ``A``,
    ``B``, ``c`` are fixed by ``source_seed``; the draws use their own stream of it.

    Example:
      >>> synthetic_source(5, 8).shape
      (5, 8)
    """
    world = _synthetic_world(int(d_in), int(latent_dim), int(source_seed))
    rng = np.random.default_rng([source_seed, 0x50C])
    z = rng.standard_normal((int(m), latent_dim))
    return _synthetic_draw(world, z, rng)


def synthetic_task(
    n: int = 64,
    d_in: int = 32,
    shift: float = 0.5,
    seed: int = 0,
    *,
    n_test: int = 512,
    rule: str = "nonlinear",
    latent_dim: int = 4,
    label_noise: float = 0.0,
    n_source: int = 4096,
    source_seed: int = 0,
) -> Task:
    r"""Binary task on source inputs moved by a mean shift; labels from a latent rule.

    Inputs are source draws (:func:`synthetic_source`) plus ``shift * delta``, with
    ``delta`` a fixed random direction of norm ``sqrt(d_in)``: ``shift`` is the RMS move of a
    coordinate in source standard deviations (0 is no shift). Labels come from the latent
    ``z`` of each input:

    .. math::
        y = \operatorname{sign}(g(z) - \text{median}(g)), \qquad
        g(z) = u\cdot z \ \text{(linear)} \ \text{or}\ u\cdot z + (v\cdot z)^2 - 1
        \ \text{(nonlinear)},

    ``u``, ``v`` orthonormal, so ``P(y = 1) = 1/2`` (iid labels: balanced on average, not
    exactly). With ``label_noise`` each label is flipped with that probability.

    Args:
      n: training set size.
      d_in: input dimension.
      shift: mean shift from the source (in RMS source standard deviations per coordinate).
      seed: draws of the training and test sets (the source itself depends on
        ``source_seed`` only, so sweeping ``n`` or ``seed`` keeps the pre-training fixed).
      n_test: test set size.
      rule: ``"nonlinear"`` or ``"linear"``.
      latent_dim: dimension ``r`` of the source manifold.
      label_noise: flip probability in [0, 1/2).
      n_source: size of the unlabeled source pool ``X_source``.
      source_seed: the generative model and the source pool.

    Returns:
      A :class:`~stabtheory.full_finetuning.Task`.

    Example:
      >>> t = synthetic_task(10, 8, shift=0.0, n_test=4)
      >>> t.X.shape, t.X_test.shape, t.X_source.shape, sorted(set(t.y.tolist())) == [-1, 1]
      ((10, 8), (4, 8), (4096, 8), True)
    """
    if not 0.0 <= label_noise < 0.5:
        raise ValueError(f"label_noise must be in [0, 0.5), got {label_noise}.")
    n, n_test, d_in, latent_dim = int(n), int(n_test), int(d_in), int(latent_dim)
    if n < 2 or n_test < 1:
        raise ValueError(f"need n >= 2 and n_test >= 1, got n={n}, n_test={n_test}.")
    world = _synthetic_world(d_in, latent_dim, int(source_seed))
    threshold = world["median"] if rule == "nonlinear" else 0.0
    rng = np.random.default_rng([source_seed, seed, 0x7A5C])
    z = rng.standard_normal((n + n_test, latent_dim))
    X = _synthetic_draw(world, z, rng) + float(shift) * world["delta"]
    y = np.where(_rule(world, z, rule) > threshold, 1.0, -1.0)
    y = np.where(rng.random(y.shape) < label_noise, -y, y)
    info = {
        "task": "synthetic",
        "n": n,
        "n_test": n_test,
        "d_in": d_in,
        "shift": float(shift),
        "rule": rule,
        "latent_dim": latent_dim,
        "label_noise": float(label_noise),
        "seed": int(seed),
        "source_seed": int(source_seed),
        "positive_fraction": float(np.mean(y[:n] > 0)),
    }
    X_source = synthetic_source(n_source, d_in, latent_dim=latent_dim, source_seed=source_seed)
    return Task(
        X[:n], y[:n], X[n:], y[n:], X_source, f"synthetic-{rule}-shift{float(shift):g}", info
    )


def _testbed_kwargs(config) -> tuple[int, dict]:
    if config.classes is not None:
        raise ValueError("classes applies to task='digits' only.")
    d_in = 32 if config.d_in is None else int(config.d_in)
    kwargs = {"d_in": d_in, "shift": 0.5 if config.shift is None else float(config.shift)}
    if config.n_test is not None:
        kwargs["n_test"] = int(config.n_test)
    return d_in, kwargs


register_task(
    TaskKind(
        "synthetic",
        synthetic_task,
        ("d_in", "latent_dim", "n_source", "source_seed"),
        _testbed_kwargs,
    )
)
