r"""SURT, Self Unsupervised Re-Training: the denoising objective continued on the task's inputs.

:func:`surt_run` is the pure program, :func:`surt` one run from a testbed and
:func:`surt_encoders` the seed-vmapped runs the fine-tuning loop starts from. The
:class:`SURT` method's mechanism: supervised fine-tuning moves the encoder less from the SURT
encoder than from the pre-trained one (docs/theory.md section 4).

References:
  H. Fu, A. M.-C. So, N. Collier (2023), "A Stability Analysis of Fine-Tuning a Pre-Trained
  Model", arXiv 2301.09820.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax

from stabtheory import full_finetuning as ff
from stabtheory.stabilizers.encoder import (
    decoder_functions,
    encoder_function,
    pretrained_autoencoder,
    split_weights,
)
from stabtheory.stabilizers.method import Comparison, Mechanism, Method
from stabtheory.stabilizers.panels import strip_plot
from stabtheory.stabilizers.seeds import KeyUse
from stabtheory.statistics import mean_ratio

__all__ = ["SURT", "surt", "surt_encoders", "surt_run"]


def surt_run(
    phi: Callable,
    decode: Callable,
    w_enc: jax.Array,
    w_dec: jax.Array,
    X: jax.Array,
    key: jax.Array,
    steps: jax.Array | int,
    *,
    lr: jax.Array | float = 2e-3,
    noise: jax.Array | float = 0.3,
    batch_size: int = 128,
) -> tuple[jax.Array, jax.Array]:
    r"""SURT as a pure function: ``steps`` Adam steps of the denoising objective on ``X``.

    .. math::
        \min_{\theta, \psi}\ \tfrac1d\,\mathbb{E}\,
        \|\text{dec}_\psi(\phi_\theta(x + \sigma\epsilon)) - x\|^2 ,
        \qquad x \sim \text{Unif}(X),\ \epsilon \sim N(0, I),

    the pre-training objective of :func:`stabtheory.full_finetuning.pretrain`, continued from the
    pre-trained ``(theta_0, psi_0)`` on the task's own unlabeled inputs. Step ``t`` draws its
    minibatch (with replacement) and noise from ``fold_in(key, t)``. ``steps`` is traced.

    Returns:
      ``(w_enc, w_dec)`` after the steps.
    """
    X = jnp.asarray(X, jnp.float64)
    tx = optax.adam(lr)

    def recon(params, xn, xb):
        we, wd = params
        return jnp.mean((decode(wd, phi(we, xn)) - xb) ** 2)

    def body(t, carry):
        params, opt = carry
        k_idx, k_noise = jax.random.split(jax.random.fold_in(key, t))
        xb = X[jax.random.randint(k_idx, (batch_size,), 0, X.shape[0])]
        xn = xb + noise * jax.random.normal(k_noise, xb.shape, jnp.float64)
        updates, opt = tx.update(jax.grad(recon)(params, xn, xb), opt, params)
        return optax.apply_updates(params, updates), opt

    params = (jnp.asarray(w_enc, jnp.float64), jnp.asarray(w_dec, jnp.float64))
    params, _ = jax.lax.fori_loop(0, steps, body, (params, tx.init(params)))
    return params


def _surt_program(phi, decode, w_enc, w_dec, X, key, steps, lr, noise, *, batch_size):
    return surt_run(
        phi, decode, w_enc, w_dec, X, key, steps, lr=lr, noise=noise, batch_size=batch_size
    )


_surt_jit = jax.jit(_surt_program, static_argnames=("phi", "decode", "batch_size"))


def _surt_seeds(phi, decode, w_enc, w_dec, X, keys, steps, lr, noise, *, batch_size):
    return jax.vmap(
        lambda key: surt_run(
            phi, decode, w_enc, w_dec, X, key, steps, lr=lr, noise=noise, batch_size=batch_size
        )[0]
    )(keys)


_surt_seeds_jit = jax.jit(_surt_seeds, static_argnames=("phi", "decode", "batch_size"))


def surt(
    testbed: ff.Testbed,
    X_unlabeled: np.ndarray | None = None,
    steps: int = 200,
    seed: int = 0,
    *,
    autoencoder: ff.DenoisingAutoencoder | None = None,
) -> np.ndarray:
    r"""Self Unsupervised Re-Training: the pre-trained encoder after ``steps`` SURT steps.

    Runs :func:`surt_run` from the testbed's pre-trained autoencoder
    (:func:`~stabtheory.stabilizers.pretrained_autoencoder`) with the pre-training's Adam step
    size, noise level and minibatch size (``info["pretrain_config"]``); the supervised
    fine-tuning then starts from the returned encoder. Run ``seed`` uses the key
    :func:`~stabtheory.stabilizers.finetune_seeds` gives seed ``seed``.

    Args:
      testbed: the fine-tuning problem.
      X_unlabeled: the task's unlabeled inputs (default: the training inputs ``testbed.X``).
      steps: number of SURT steps (``K`` in docs/theory.md section 4).
      seed: minibatches and corruption noise.
      autoencoder: the pre-trained autoencoder, if it cannot be re-derived from the testbed.

    Returns:
      The encoder weights (p_encoder,), numpy float64.
    """
    ae = pretrained_autoencoder(testbed) if autoencoder is None else autoencoder
    dec = decoder_functions(testbed, ae)
    enc = encoder_function(testbed)
    w_enc0, _ = split_weights(testbed)
    cfg = ff.PretrainConfig(**testbed.info["pretrain_config"])
    X = testbed.X if X_unlabeled is None else X_unlabeled
    key = jax.random.fold_in(jax.random.key(int(seed)), KeyUse.SURT)
    w_enc, _ = _surt_jit(
        enc.phi,
        dec.decode,
        jnp.asarray(w_enc0),
        jnp.asarray(dec.w_dec),
        jnp.asarray(X, jnp.float64),
        key,
        int(steps),
        cfg.lr,
        cfg.noise,
        batch_size=cfg.batch_size,
    )
    return np.asarray(w_enc)


def surt_encoders(
    testbed: ff.Testbed,
    keys: jax.Array,
    steps: int,
    X_unlabeled: np.ndarray | jax.Array | None = None,
) -> jax.Array:
    """The SURT encoders of a batch of seeds (one vmapped program): :func:`surt` for each of
    the seeds' ``keys``, from ``fold_in(key, KeyUse.SURT)``; shape (S, p_encoder)."""
    ae = pretrained_autoencoder(testbed)
    dec = decoder_functions(testbed, ae)
    enc = encoder_function(testbed)
    w_enc0, _ = split_weights(testbed)
    cfg = ff.PretrainConfig(**testbed.info["pretrain_config"])
    X = jnp.asarray(testbed.X if X_unlabeled is None else X_unlabeled, jnp.float64)
    surt_keys = jax.vmap(lambda k: jax.random.fold_in(k, KeyUse.SURT))(keys)
    return _surt_seeds_jit(
        enc.phi,
        dec.decode,
        jnp.asarray(w_enc0),
        jnp.asarray(dec.w_dec),
        X,
        surt_keys,
        int(steps),
        cfg.lr,
        cfg.noise,
        batch_size=cfg.batch_size,
    )


@dataclasses.dataclass(frozen=True)
class SURT(Method):
    """The SURT method: SURT steps before the loop; mechanism: a shorter fine-tuning distance.

    Attributes:
      steps: the SURT steps before supervised fine-tuning.
    """

    name: str = "surt"
    steps: int = 300
    claim: ClassVar[str] = "SURT lowers the weight distance and raises stability"

    def settings(self, base: Any) -> Any:
        return dataclasses.replace(base, name=self.name, surt_steps=self.steps)

    def quick(self) -> SURT:
        return dataclasses.replace(self, steps=100)

    def mechanism(self, c: Comparison) -> Mechanism:
        """The ratio of mean weight distances ``||theta_start - theta*||``, method /
        reference, predicted below 1."""
        a, b, est, ci = c.against_reference(self.name, "weight_distance", mean_ratio, seed=6)
        text = (
            f"fine-tuning weight distance ||theta_start - theta*||: {c.reference} "
            f"{b.mean():.3f}, {self.name} {a.mean():.3f}, ratio {est:.3f} "
            f"[{ci[0]:.3f}, {ci[1]:.3f}]"
        )
        return Mechanism(est, ci, 1.0, -1, text, [float(b.mean()), float(a.mean())])

    def draw(self, ax: Any, c: Comparison, rng: np.random.Generator) -> None:
        """The weight distance of every method's seeds."""
        distances = [c.values(m, "weight_distance") for m in c.methods]
        strip_plot(ax, distances, c.methods, "||theta_start - theta*||", rng)
        ax.set_title(f"{c.testbed}: encoder weight distance of fine-tuning", fontsize=9)
