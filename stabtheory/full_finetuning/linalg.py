"""Matrix-free linear algebra on a ``matvec``: conjugate gradients, power iteration and Lanczos.

Every function takes the operator as a function ``v -> A v`` (no matrix is formed) and is
vmappable; :mod:`~stabtheory.full_finetuning.taylor` applies them to the Taylor model.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["cg_solve", "lanczos_extremes", "power_iteration"]


def cg_solve(matvec, b, *, tol: float = 1e-12, maxiter: int | None = None) -> jax.Array:
    """Conjugate gradients for ``A x = b`` with A symmetric positive definite (vmappable).

    Stops when ``||A x - b|| <= tol ||b||``.

    Example:
      >>> A = jnp.array([[2.0, 0.0], [0.0, 4.0]])
      >>> cg_solve(lambda v: A @ v, jnp.array([2.0, 2.0])).tolist()
      [1.0, 0.5]
    """
    x, _ = jax.scipy.sparse.linalg.cg(matvec, b, tol=tol, atol=0.0, maxiter=maxiter)
    return x


def power_iteration(matvec, v0: jax.Array, iters: int = 100) -> jax.Array:
    """Largest eigenvalue of a PSD operator by power iteration from ``v0`` (vmappable)."""

    def body(_, v):
        w = matvec(v)
        return w / jnp.linalg.norm(w)

    v = jax.lax.fori_loop(0, iters, body, v0 / jnp.linalg.norm(v0))
    return v @ matvec(v)


def lanczos_extremes(matvec, v0: jax.Array, k: int = 50) -> tuple[jax.Array, jax.Array]:
    """Smallest and largest Ritz values after ``k`` Lanczos steps (full reorthogonalisation).

    Ritz values lie inside the spectrum, so the smallest over-estimates ``lambda_min`` and the
    largest under-estimates ``lambda_max``; both converge fast at the extremes. ``k`` is capped
    at p; with ``k = p`` the result is exact up to rounding. When the Krylov space is invariant
    (breakdown), the iteration restarts from a fresh orthogonal direction.
    """
    p = v0.shape[0]
    k = min(k, p)
    key = jax.random.key(0)
    Q = jnp.zeros((k + 1, p), v0.dtype).at[0].set(v0 / jnp.linalg.norm(v0))
    alpha = jnp.zeros(k, v0.dtype)
    beta = jnp.zeros(k, v0.dtype)

    def orthogonalise(Q, w):
        w = w - Q.T @ (Q @ w)  # full reorthogonalisation (rows beyond j are zero), twice
        return w - Q.T @ (Q @ w)

    def body(j, carry):
        Q, alpha, beta = carry
        Aq = matvec(Q[j])
        a = Aq @ Q[j]
        w = orthogonalise(Q, Aq)
        b = jnp.linalg.norm(w)
        # An invariant Krylov subspace (e.g. a rank-n operator with p > n): restart from a
        # fresh direction orthogonal to the basis, decoupled from it (beta = 0).
        broke = b <= 1e-10 * (jnp.linalg.norm(Aq) + jnp.abs(a) + 1e-300)
        # drawn only on a breakdown (a random draw costs more than a reorthogonalisation on
        # the CPU; under vmap the cond becomes a select and both run)
        w = jax.lax.cond(
            broke,
            lambda: orthogonalise(
                Q, jax.random.normal(jax.random.fold_in(key, j), w.shape, w.dtype)
            ),
            lambda: w,
        )
        Q = Q.at[j + 1].set(w / jnp.linalg.norm(w))
        return Q, alpha.at[j].set(a), beta.at[j].set(jnp.where(broke, 0.0, b))

    Q, alpha, beta = jax.lax.fori_loop(0, k, body, (Q, alpha, beta))
    T = jnp.diag(alpha) + jnp.diag(beta[:-1], 1) + jnp.diag(beta[:-1], -1)
    ev = jnp.linalg.eigvalsh(T)
    return ev[0], ev[-1]
