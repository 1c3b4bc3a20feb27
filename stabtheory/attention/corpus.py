r"""The attention testbed's corpus: a seeded hidden Markov model with a per-sequence genre.

Every sequence has two kinds of latent variables: its *genre* ``g`` in ``{0, ..., G-1}``
(uniform, one per sequence) and its hidden state path ``s_1, ..., s_L`` in ``{0, ..., S-1}``.
Given the genre, the path is a Markov chain with the genre's transition matrix

.. math::
    T_g = (1 - \mu)\, T_\text{shared} + \mu\, T_g^\text{own},

(rows Dirichlet-drawn; ``mu`` = :attr:`HMMConfig.genre_mix` sets how far genres differ), and
each state emits a token from its emission row ``E_s`` (every state owns a block of
``V / S`` tokens, Dirichlet weights inside it, plus a small leak to every token). The genre
is thus only readable from the token *transitions*, never from single tokens.

The shift knob ``shift`` in ``[0, 1]`` moves the emissions of a task's inputs away from the
pre-training corpus: ``E^{(shift)} = (1 - shift) E + shift E'``, where ``E'`` is ``E`` with its
columns (the token ids) permuted by a seeded permutation. The latent structure (genres,
transitions, states) is unchanged, so the same labels stay readable; only the surface tokens
move. ``shift = 0`` is the pre-training distribution.

Everything is numpy with ``np.random.default_rng``: the corpus is a pure function of its
:class:`HMMConfig` (seed included), identical on every machine.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

__all__ = ["HMM", "HMMConfig", "Sample", "make_hmm", "sample"]


@dataclasses.dataclass(frozen=True)
class HMMConfig:
    """The generative model of the corpus (hashable; the seed fixes every matrix).

    Attributes:
      vocab: number of ordinary tokens ``V`` (the encoder adds ``[CLS]`` and ``[MASK]``).
      states: number of hidden states ``S`` (``vocab`` must be a multiple of it).
      genres: number of genres ``G``.
      length: tokens per sequence ``L`` (the encoder prepends ``[CLS]``).
      genre_mix: ``mu``, the weight of each genre's own transitions.
      concentration: Dirichlet concentration of the transition rows (small: peaked rows).
      leak: probability mass of an emission spread uniformly over the whole vocabulary.
      seed: the seed of the matrices.
    """

    vocab: int = 192
    states: int = 12
    genres: int = 4
    length: int = 16
    genre_mix: float = 0.8
    concentration: float = 0.3
    leak: float = 0.05
    seed: int = 0

    def __post_init__(self):
        if self.vocab % self.states:
            raise ValueError(f"vocab ({self.vocab}) must be a multiple of states ({self.states}).")
        if min(self.states, self.genres, self.length) < 2:
            raise ValueError("need states, genres and length >= 2.")
        if not (0.0 <= self.genre_mix <= 1.0 and 0.0 <= self.leak < 1.0):
            raise ValueError("genre_mix must be in [0, 1] and leak in [0, 1).")


@dataclasses.dataclass(frozen=True)
class HMM:
    """The matrices of an :class:`HMMConfig`.

    Attributes:
      config: the configuration.
      initial: (S,) initial state distribution (shared by the genres).
      transitions: (G, S, S) row-stochastic, one matrix per genre.
      emissions: (S, V) row-stochastic.
      permutation: (V,) the token permutation of the shifted emissions.
    """

    config: HMMConfig
    initial: np.ndarray
    transitions: np.ndarray
    emissions: np.ndarray
    permutation: np.ndarray

    def shifted_emissions(self, shift: float) -> np.ndarray:
        """``(1 - shift) E + shift E[:, perm]`` (see the module docstring)."""
        if not 0.0 <= shift <= 1.0:
            raise ValueError(f"shift must be in [0, 1], got {shift}.")
        return (1.0 - shift) * self.emissions + shift * self.emissions[:, self.permutation]


@functools.lru_cache(maxsize=8)
def make_hmm(config: HMMConfig) -> HMM:
    """The HMM's matrices, drawn from ``config.seed`` (cached)."""
    rng = np.random.default_rng([config.seed, 0x484D4D])
    S, G, V = config.states, config.genres, config.vocab
    initial = rng.dirichlet(np.ones(S))
    shared = rng.dirichlet(np.full(S, config.concentration), size=S)
    own = rng.dirichlet(np.full(S, config.concentration), size=(G, S))
    transitions = (1.0 - config.genre_mix) * shared[None] + config.genre_mix * own
    block = V // S
    emissions = np.full((S, V), config.leak / V)
    for s in range(S):
        emissions[s, s * block : (s + 1) * block] += (1.0 - config.leak) * rng.dirichlet(
            np.ones(block)
        )
    permutation = rng.permutation(V)
    return HMM(config, initial, transitions, emissions, permutation)


@dataclasses.dataclass(frozen=True)
class Sample:
    """Sequences with their latent variables.

    Attributes:
      tokens: (m, L) int32 token ids in ``[0, V)``.
      genres: (m,) int32 genres.
      states: (m, L) int32 hidden states.
    """

    tokens: np.ndarray
    genres: np.ndarray
    states: np.ndarray


def _categorical(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One draw per row of ``probs`` (m, K) by inverse CDF."""
    cdf = np.cumsum(probs, axis=-1)
    u = rng.random(probs.shape[0])[:, None] * cdf[:, -1:]
    return np.minimum((u > cdf).sum(axis=-1), probs.shape[-1] - 1)


def sample(
    config: HMMConfig,
    m: int,
    *,
    seed: int,
    shift: float = 0.0,
    genres: np.ndarray | None = None,
) -> Sample:
    """Draw ``m`` sequences (deterministic in ``(config, m, seed, shift, genres)``).

    Args:
      config: the generative model.
      m: number of sequences.
      seed: the seed of this draw (independent of ``config.seed``, which fixes the matrices).
      shift: the emission shift in ``[0, 1]`` (0: the pre-training distribution).
      genres: optional (m,) genres to condition on (default: uniform draws).

    Returns:
      A :class:`Sample`.

    Example:
      >>> s = sample(HMMConfig(), 5, seed=1)
      >>> s.tokens.shape, s.genres.shape, bool((s.tokens < 192).all())
      ((5, 16), (5,), True)
    """
    hmm = make_hmm(config)
    rng = np.random.default_rng([seed, 0x5345])
    if genres is None:
        genres = rng.integers(0, config.genres, size=m)
    genres = np.asarray(genres, np.int64)
    emissions = hmm.shifted_emissions(shift)
    states = np.empty((m, config.length), np.int64)
    states[:, 0] = _categorical(rng, np.broadcast_to(hmm.initial, (m, config.states)))
    for t in range(1, config.length):
        states[:, t] = _categorical(rng, hmm.transitions[genres, states[:, t - 1]])
    tokens = _categorical(rng, emissions[states.reshape(-1)]).reshape(m, config.length)
    return Sample(tokens.astype(np.int32), genres.astype(np.int32), states.astype(np.int32))
