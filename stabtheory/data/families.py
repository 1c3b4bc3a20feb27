"""The head study's data families as registered objects: how each draws its data, what its
margin sweep sets, and its words in the report.

Adding a family is one :class:`Family` and one :func:`register_family` call; the head study
(:mod:`stabtheory.simulations.head`) plans, draws, labels and reports it from these fields.

Example:
  >>> from stabtheory.data.families import FAMILIES
  >>> list(FAMILIES)
  ['planted', 'generic', 'digits']
  >>> FAMILIES["planted"].draw(8, 0.2, d=3, radius=1.0, seed=0).margin
  0.2
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping

import numpy as np

from stabtheory.data import (
    Dataset,
    DigitsEncoder,
    digits_pair_features,
    planted_margin,
    separable_band,
)

__all__ = ["DIGITS", "FAMILIES", "GENERIC", "PLANTED", "Family", "register_family"]


@dataclasses.dataclass(frozen=True, kw_only=True, eq=False)
class Family:
    """A data family of the head study (every head claim gets one regime per family).

    Attributes:
      name: the registry name (a configuration's ``family``).
      sample: ``sample(n, margin, *, d, radius, seed) -> Dataset``: ``n`` samples of one data
        draw, where ``margin`` is the value the family's margin sweep sets (a configuration's
        ``gamma``, or its ``pair`` when :attr:`sweeps` is ``"pair"``). The head study draws
        the family's largest size once per draw and takes nested subsets of it.
      description: the data column of the report's families table; ``{d}`` and ``{radius}``
        are filled in from the study's spec.
      margin_label: the x label of its margin sweep in the figures.
      sweeps: ``"gamma"`` or ``"pair"``: the configuration field its margin sweep sets.
      margins_from: the field of the head study's spec that holds its margin sweep; ``None``:
        :attr:`margins`.
      margins: its margin sweep when :attr:`margins_from` is ``None``.
      primary: sized and trained as the study's base family (the spec's ``n``, ``ns`` and
        ``losses``); otherwise its ``family_n``, ``family_ns`` and ``family_losses``.
      config_key: the key of the configurations' dicts (``report.json``) that holds its
        nominal margin (NaN in other families' configurations), which its margin regimes are
        ordered by; ``None``: they are ordered by the measured max margin (mean over draws).
      n_design: the design of its ``head.n`` regimes (:data:`stabtheory.claims.DESIGNS`):
        ``"positive-control"`` where the claim holds by construction (a fixed support set),
        else ``"natural"``.
      regimes: claim id -> the family part of a regime's name (default: :attr:`name`);
        ``{margins}`` is replaced by its margin sweep in words.
      width: the feature width of its data when it does not follow the spec's ``d`` (e.g.
        an encoder's features); ``None``: ``d``.
    """

    name: str
    sample: Callable[..., Dataset]
    description: str
    margin_label: str
    sweeps: str = "gamma"
    margins_from: str | None = None
    margins: tuple = ()
    primary: bool = False
    config_key: str | None = None
    n_design: str = "natural"
    regimes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    width: int | None = None

    def __post_init__(self):
        if self.sweeps not in ("gamma", "pair"):
            raise ValueError(f"sweeps must be 'gamma' or 'pair', got {self.sweeps!r}.")

    def draw(self, n: int, margin, *, d: int, radius: float, seed: int) -> Dataset:
        """One data draw of ``n`` samples (cached: the same arguments give the same object)."""
        return _draw(self, n, margin, d, radius, seed)

    def margins_text(self, values) -> str:
        """A margin sweep in words (``5v6, 0v7`` for pairs)."""
        if self.sweeps == "pair":
            return ", ".join(f"{a}v{b}" for a, b in values)
        return ", ".join(f"{v:g}" for v in values)

    def regime(self, claim_id: str, margins) -> str:
        """The family part of the name of a regime of ``claim_id`` (``margins``: its sweep)."""
        return self.regimes.get(claim_id, self.name).format(margins=self.margins_text(margins))


@functools.lru_cache(maxsize=1024)
def _draw(family: Family, n, margin, d, radius, seed) -> Dataset:
    return family.sample(n, margin, d=d, radius=radius, seed=seed)


#: name -> :class:`Family`, in registration order (the order of the report's families table).
FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add ``family`` to :data:`FAMILIES` under ``family.name``; return it.

    Raises:
      ValueError: a family of that name is already registered.
    """
    if family.name in FAMILIES:
        raise ValueError(f"a data family named {family.name!r} is already registered.")
    FAMILIES[family.name] = family
    return family


def _planted(n, margin, *, d, radius, seed) -> Dataset:
    return planted_margin(n, d, margin, radius=radius, seed=seed)


def _band(n, margin, *, d, radius, seed) -> Dataset:
    return separable_band(n, d, margin, radius=radius, seed=seed)


def _digits(n, pair, *, d, radius, seed, encoder: DigitsEncoder = DigitsEncoder()) -> Dataset:  # noqa: B008
    """A uniformly random subset of n images of the pair's pool (one encoder for all draws;
    ``d`` and ``radius`` do not apply: the features have the encoder's width and R = 1)."""
    pool = digits_pair_features(pair, encoder)
    if n > pool.n:
        raise ValueError(f"digits {pair}: the pool has {pool.n} images, fewer than n={n}.")
    pick = np.random.default_rng([seed, 0xD161, *pair]).permutation(pool.n)[:n]
    a, b = pair
    return Dataset(pool.X[pick], pool.y[pick], name=f"digits{a}v{b}-features")


#: Planted margin (:func:`~stabtheory.data.planted_margin`): exact max margin, fixed support
#: set, so ``head.n`` is a control.
PLANTED = register_family(
    Family(
        name="planted",
        sample=_planted,
        description="planted_margin (d={d}, R={radius}, exact margin, fixed support set)",
        margin_label="planted margin gamma",
        margins_from="gammas",
        primary=True,
        config_key="gamma_planted",
        n_design="positive-control",
        regimes={"head.n": "planted (positive control: fixed support set)"},
    )
)

#: Generic separable data (:func:`~stabtheory.data.separable_band`): the margin sweep sets the
#: rejected band's half-width, and new samples can become support vectors.
GENERIC = register_family(
    Family(
        name="generic",
        sample=_band,
        description="separable_band (uniform ball d={d}, R={radius}, band abs(u.x) < gamma "
        "rejected; new samples can become support vectors)",
        margin_label="band half-width gamma",
        margins_from="band_gammas",
        config_key="gamma_band",
        regimes={"head.margin": "generic (band half-width; observational: the support set moves)"},
    )
)

#: Frozen features of the pre-trained digits encoder
#: (:func:`~stabtheory.data.digits_pair_features`): the margin sweep runs across digit pairs.
DIGITS = register_family(
    Family(
        name="digits",
        sample=_digits,
        description="digits_pair_features (frozen pre-trained digits encoder, one encoder for "
        "every draw; a draw is a random subset of the pair's pool)",
        margin_label="measured margin (one pair each)",
        sweeps="pair",
        margins_from="digits_pairs",
        regimes={
            "head.margin": "digits across pairs {margins} (observational: pairs differ in more "
            "than margin)"
        },
        width=DigitsEncoder().features,
    )
)
