"""Shared test helpers: tolerances by dtype, plain-numpy references, small test problems and a
counter of JAX compilations.

The references here are deliberately independent of stabtheory: plain numpy float64 loops,
slicing instead of masks, and the textbook formulas for the losses. Tests compare the
library against them with the tolerance of the dtype the library computed in.
"""

from __future__ import annotations

import contextlib

import numpy as np

#: Relative tolerance by dtype (lineax ``tests/helpers.py`` style): float64 checks are
#: exact up to accumulated rounding, float32 ones up to single-precision rounding.
_TOLERANCES = {
    np.dtype(np.float64): 1e-12,
    np.dtype(np.float32): 1e-5,
}


def tol(dtype) -> float:
    """Relative tolerance for results computed in ``dtype``."""
    dtype = np.dtype(dtype)
    try:
        return _TOLERANCES[dtype]
    except KeyError:
        raise ValueError(f"no tolerance for dtype {dtype}") from None


def assert_close(actual, expected, dtype=np.float64, *, scale=None) -> None:
    """``actual == expected`` to ``tol(dtype)`` relative to ``scale`` (default: per entry).

    ``scale`` is the size of the quantities the compared values were computed from. A
    difference of two weights ``||w_S - w_S\\i||`` carries the absolute rounding error of the
    weights themselves, ``tol * ||w||``, so it is compared with ``scale = ||w||``.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    t = tol(dtype)
    atol = 0.0 if scale is None else t * float(scale)
    np.testing.assert_allclose(actual, expected, rtol=t, atol=atol)


def assert_close_scaled(actual, expected, dtype=np.float64, *, scale, factor=1.0) -> None:
    """``|actual - expected| <= factor * tol(dtype) * scale`` entrywise, ``scale`` broadcast.

    For vectors computed by long float loops the error of a coordinate is relative to the
    size of the whole vector (``scale``), not to that coordinate.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    bound = factor * tol(dtype) * np.broadcast_to(np.asarray(scale, np.float64), actual.shape)
    err = np.abs(actual - expected)
    bad = ~(err <= bound)
    if bad.any():
        idx = np.argwhere(bad)[:5].tolist()
        raise AssertionError(
            f"{int(bad.sum())} of {bad.size} entries differ beyond {factor} * "
            f"tol({np.dtype(dtype)}) * scale; first at {idx}: error {err[bad][:5]}, "
            f"bound {bound[bad][:5]}, "
            f"actual {actual[bad][:5]}, expected {expected[bad][:5]}"
        )


# --------------------------------------------------------------------------------------------
# Losses (textbook forms, numpy float64)


def np_loss(m, loss: str) -> np.ndarray:
    """``l(m)``: ``exp(-m)`` or ``log(1 + exp(-m))``."""
    m = np.asarray(m, dtype=np.float64)
    if loss == "exponential":
        return np.exp(-m)
    if loss == "logistic":
        return np.logaddexp(0.0, -m)
    raise ValueError(loss)


def np_dloss_abs(m, loss: str) -> np.ndarray:
    """``|l'(m)|``: ``exp(-m)`` or ``1 / (1 + exp(m))``."""
    m = np.asarray(m, dtype=np.float64)
    if loss == "exponential":
        return np.exp(-m)
    if loss == "logistic":
        return np.exp(-np.logaddexp(0.0, m))
    raise ValueError(loss)


# --------------------------------------------------------------------------------------------
# Plain gradient descent on the weighted mean loss


def np_gd(
    Z, lr, w0, checkpoints, loss: str, sample_weights=None, optimizer: str = "gd", **hyper
) -> dict:
    """Reference full-batch training of ``K`` heads, plain numpy float64.

    Objective: ``(1/K) sum_k sum_i s_i l(w_k . z_i) / sum_i s_i``; the gradient of head k is
    ``-(1 / (K sum s)) sum_i s_i |l'(w_k . z_i)| z_i``. Optimizers follow their textbook
    definitions (heavy ball ``v <- g + beta v``; Adam with bias correction; normalized GD
    ``grad / F``, the objective's own value as the normalizer).

    Returns a dict with ``w`` (C, K, d), ``log_loss`` (C,) (log of the mean over heads of the
    weighted mean loss) and ``dloss_max`` (C,) (running max of ``|l'|`` over the points with
    positive weight, over the steps taken so far).
    """
    Z = np.asarray(Z, dtype=np.float64)
    n = Z.shape[0]
    s = np.ones(n) if sample_weights is None else np.asarray(sample_weights, dtype=np.float64)
    w = np.array(w0, dtype=np.float64, copy=True)
    K = w.shape[0]
    momentum = hyper.get("momentum", 0.9)
    b1, b2, eps = hyper.get("b1", 0.9), hyper.get("b2", 0.999), hyper.get("eps", 1e-8)
    v = np.zeros_like(w)
    m1 = np.zeros_like(w)
    m2 = np.zeros_like(w)
    dmax = 0.0
    out_w, out_l, out_d = [], [], []
    t = 0
    for target in checkpoints:
        while t < target:
            margins = w @ Z.T  # (K, n)
            g_abs = np_dloss_abs(margins, loss)
            dmax = max(dmax, float(np.max(g_abs[:, s > 0])))
            grad = -((g_abs * s) @ Z) / (K * s.sum())
            if optimizer == "gd":
                direction = grad
            elif optimizer == "momentum":
                v = grad + momentum * v
                direction = v
            elif optimizer == "adam":
                m1 = b1 * m1 + (1 - b1) * grad
                m2 = b2 * m2 + (1 - b2) * grad**2
                mhat = m1 / (1 - b1 ** (t + 1))
                vhat = m2 / (1 - b2 ** (t + 1))
                direction = mhat / (np.sqrt(vhat) + eps)
            elif optimizer == "ngd":
                keep = s > 0
                m = margins[:, keep]
                losses = np.exp(-m) if loss == "exponential" else np.logaddexp(0.0, -m)
                direction = grad / ((losses * s[keep]).sum() / (K * s.sum()))
            else:
                raise ValueError(optimizer)
            w = w - lr * direction
            t += 1
        per_head = (np_loss(w @ Z.T, loss) * s).sum(axis=1) / s.sum()
        out_w.append(w.copy())
        out_l.append(np.log(per_head.mean()))
        out_d.append(dmax)
    return {"w": np.array(out_w), "log_loss": np.array(out_l), "dloss_max": np.array(out_d)}


def np_train_head(Z, lr, steps: int, loss: str, w0=None) -> np.ndarray:
    """One head trained by plain GD on the unweighted mean loss over the rows of ``Z``."""
    Z = np.asarray(Z, dtype=np.float64)
    w = np.zeros(Z.shape[1]) if w0 is None else np.array(w0, dtype=np.float64, copy=True)
    for _ in range(steps):
        g_abs = np_dloss_abs(Z @ w, loss)
        w = w + lr * (g_abs @ Z) / Z.shape[0]
    return w


def np_stability(w_full, w_pert, Z, notion: str, loss: str) -> np.ndarray:
    """Per-sample stability values for one head ``w_full`` (d,) against ``w_pert`` (n, d)."""
    if notion == "weights":
        return np.linalg.norm(w_full - w_pert, axis=1)
    if notion == "direction":
        u = w_full / np.linalg.norm(w_full)
        U = w_pert / np.linalg.norm(w_pert, axis=1, keepdims=True)
        return np.linalg.norm(u - U, axis=1)
    if notion == "loss":
        Z = np.asarray(Z, dtype=np.float64)
        la = np_loss(Z @ w_full, loss)
        lb = np_loss(np.sum(Z * w_pert, axis=1), loss)
        return np.abs(la - lb)
    if notion == "clipped_loss":  # the loss capped at its value at margin 0
        Z = np.asarray(Z, dtype=np.float64)
        cap = np_loss(0.0, loss)
        la = np.minimum(np_loss(Z @ w_full, loss), cap)
        lb = np.minimum(np_loss(np.sum(Z * w_pert, axis=1), loss), cap)
        return np.abs(la - lb)
    raise ValueError(notion)


def random_separable(n: int, d: int, seed: int, *, shift: float = 1.5):
    """Small random data separable through the origin (labels from a random direction)."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(d)
    u /= np.linalg.norm(u)
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    Z = rng.standard_normal((n, d))
    proj = Z @ u
    Z += (shift + np.abs(proj) - proj)[:, None] * u  # now u . z_i = shift + |proj_i| > 0
    Z /= np.max(np.linalg.norm(Z, axis=1))  # R = 1
    X = y[:, None] * Z
    return X, y


# --------------------------------------------------------------------------------------------
# Small training problems and trajectory comparison (shared by the linear-head tests)


def signed_points(n=12, d=4, seed=0):
    """Signed points ``z_i = y_i x_i`` (n, d) of :func:`random_separable` data."""
    X, y = random_separable(n, d, seed)
    return y[:, None] * X


def random_start(K, d, seed, scale=0.3):
    """A random start of ``K`` heads, shape (K, d)."""
    return scale * np.random.default_rng(seed).standard_normal((K, d))


def runs_inputs(runs=5, n=8, d=3, K=2, seed=0):
    """``(Z, masks, lrs, starts)`` of a small batch of runs (one sample dropped in run 1)."""
    rng = np.random.default_rng(seed)
    Z = signed_points(n, d, seed=seed)
    s = rng.uniform(0.0, 1.0, (runs, n))
    s[:, 0] = 1.0
    s[1, 2] = 0.0
    lr = rng.uniform(0.1, 1.5, runs)
    w0 = 0.2 * rng.standard_normal((runs, K, d))
    return Z, s, lr, w0


def compare_trajectory(traj, ref, dtype=np.float64):
    """Weights relative to their size at each checkpoint; log F absolutely (= F relatively)."""
    ref_w = ref["w"]
    scale = np.max(np.abs(ref_w), axis=(-2, -1), keepdims=True)
    assert_close_scaled(traj.w, ref_w, dtype, scale=scale)
    np.testing.assert_allclose(
        np.asarray(traj.log_loss), ref["log_loss"], rtol=tol(dtype), atol=tol(dtype)
    )
    np.testing.assert_allclose(np.asarray(traj.dloss_max), ref["dloss_max"], rtol=tol(dtype))


@contextlib.contextmanager
def jax_compilations():
    """The JAX traces and backend compilations run inside the block, from JAX's own
    monitoring events (``"/jax/core/compile/..."``): a list that fills as they happen."""
    events: list[str] = []

    def listener(event: str, duration: float, **kwargs) -> None:
        if event.startswith("/jax/core/compile/") and event.endswith(
            ("jaxpr_trace_duration", "backend_compile_duration")
        ):
            events.append(event)

    import jax

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
