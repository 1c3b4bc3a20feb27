"""The head study's configuration (:class:`HeadConfig`) and sweeps (:class:`HeadStudySpec`)."""

from __future__ import annotations

import dataclasses

import numpy as np

from stabtheory.data import Dataset
from stabtheory.data.families import FAMILIES, Family
from stabtheory.simulations import engine

__all__ = ["NOTIONS", "HeadConfig", "HeadStudySpec"]

#: The leave-one-out stability notions the head claims are judged under.
NOTIONS = ("direction", "weights", "loss")


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """One configuration of the head study.

    Attributes:
      loss: ``"exponential"`` or ``"logistic"``.
      lr: the GD step eta.
      gamma: the value a ``"gamma"`` family's margin sweep sets (``planted``: the exact max
        margin; ``generic``: the rejected band's half-width, a lower bound on the max
        margin); ``None`` in a ``"pair"`` family (``digits``: the pair sets the margin).
      n: the number of samples.
      family: a registered data family (:data:`stabtheory.data.families.FAMILIES`).
      pair: ``"pair"`` families only: the two digits (``pair[0]`` is +1).
      optimizer: ``"gd"`` (the claims' sweeps, Theorems H-1, H-2, C-1) or ``"ngd"``
        (normalized GD, the runs that check Theorem H-3).
      copy: 0, or a re-seeded copy of the configuration (the placebo sweeps): its draws are
        independent of every other copy's, its distribution the same.
    """

    loss: str
    lr: float
    gamma: float | None
    n: int
    family: str = "planted"
    pair: tuple[int, int] | None = None
    optimizer: str = "gd"
    copy: int = 0


@dataclasses.dataclass(frozen=True)
class HeadStudySpec:
    """What the head study sweeps.

    Every data family (:data:`~stabtheory.data.families.FAMILIES`) is swept one parameter
    at a time around its base: the learning rate, its margin and n. The primary family
    (``planted``) takes ``n``, ``ns`` and ``losses``; the others ``family_n``,
    ``family_ns`` and ``family_losses``.

    Attributes:
      n, d, gamma, lr, radius: the base configuration of the planted family (exact margin
        gamma); ``lr`` is the base of every family, ``gamma`` the base margin of every
        ``"gamma"`` family, ``d`` and ``radius`` the dimension and radius of generated data.
      t_max, checkpoints: log-spaced checkpoints from 1 to t_max.
      lrs, gammas, ns: the planted family's one-at-a-time sweeps around its base (``lrs``
        for every family).
      losses: losses trained on the planted family.
      early_t: claims are judged separately at t = early_t ("early") and t = t_max ("late"),
        and the iterations claim on t <= early_t and t >= early_t.
      matched_t: ``head.lr`` is judged at fixed t = matched_t and at matched eta * t =
        lr * matched_t: the run of step eta is read at t = round(lr * matched_t / eta), a
        checkpoint added to :attr:`steps`. ``None``: the largest t with every such
        checkpoint <= t_max.
      families: the data families (registered names).
      family_losses: losses trained on the other families.
      family_n, family_ns: base n and n sweep of the other families.
      band_gammas: the generic family's margin sweep (band half-widths; the base is gamma).
      digits_pairs: the digits family's pairs; the first is its base, all of them its
        margin sweep.
      ngd_lr, ngd_gammas: the normalized-GD runs that check Theorem H-3: planted data of the
        base n, exponential loss, step ``ngd_lr`` (eta R^2 <= 1), one run per margin in
        ``ngd_gammas``; they inform no claim.
      placebo_copies: every family's base configuration is also run as this many re-seeded
        copies (the base is copy 0; fewer than 2: no placebo), whose sweep over the copy
        index is a claim with no effect by construction (docs/theory.md section 6).
      replicates: independent data draws per configuration.
      seed: seed of the data (draw r uses :func:`engine.draw_seed` (seed, r)).
      max_runs: at most this many runs (n + 1 per item, padded) in one chunk.
    """

    n: int = 64
    d: int = 8
    gamma: float = 0.1
    lr: float = 0.3
    radius: float = 1.0
    t_max: int = 10_000
    checkpoints: int = 13
    lrs: tuple[float, ...] = (0.1, 0.3, 0.9)
    gammas: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4)
    ns: tuple[int, ...] = (16, 32, 64, 128)
    losses: tuple[str, ...] = ("exponential", "logistic")
    early_t: int = 100
    matched_t: int | None = None
    families: tuple[str, ...] = ("planted", "generic", "digits")
    family_losses: tuple[str, ...] = ("exponential",)
    family_n: int = 32
    family_ns: tuple[int, ...] = (16, 32, 64)
    band_gammas: tuple[float, ...] = (0.05, 0.1, 0.2)
    digits_pairs: tuple[tuple[int, int], ...] = ((5, 6), (1, 2), (0, 7))
    ngd_lr: float = 0.9
    ngd_gammas: tuple[float, ...] = (0.1, 0.4)
    placebo_copies: int = 4
    replicates: int = 10
    seed: int = 0
    max_runs: int = 4096

    def __post_init__(self):
        unknown = set(self.families) - set(FAMILIES)
        if unknown or not self.families:
            raise ValueError(
                f"families must be a non-empty subset of {tuple(FAMILIES)}, got {self.families}."
            )
        for name in self.families:  # a pair family's base is its first pair
            if FAMILIES[name].sweeps == "pair" and not self.margins_of(name):
                field = FAMILIES[name].margins_from or "margins"
                raise ValueError(f"the {name} family needs at least one pair in {field}.")
        if self.matched_t is not None:
            late = {lr: t for lr, t in self.matched_steps.items() if not 1 <= t <= self.t_max}
            if late:
                raise ValueError(
                    f"matched_t={self.matched_t} puts the matched eta*t checkpoints of lrs "
                    f"{sorted(late)} at t={sorted(late.values())}, outside "
                    f"[1, t_max={self.t_max}]; "
                    "lower matched_t or leave it None."
                )

    @classmethod
    def quick(cls) -> HeadStudySpec:
        """A reduced study for ``verify --quick`` (planted and generic data: the digits
        family needs the encoder's pre-training, which the quick budget cannot pay)."""
        return cls(
            n=32,
            t_max=5_000,
            checkpoints=9,
            lrs=(0.1, 0.9),
            gammas=(0.1, 0.3),
            ns=(16, 32),
            losses=("exponential", "logistic"),
            families=("planted", "generic"),
            family_n=16,
            family_ns=(16, 32),
            band_gammas=(0.1, 0.3),
            digits_pairs=((5, 6), (0, 7)),
            ngd_gammas=(0.3,),
            replicates=3,
        )

    @property
    def lr_values(self) -> tuple[float, ...]:
        """Every learning rate of the lr sweep (the base included), increasing."""
        return tuple(sorted({self.lr, *self.lrs}))

    @property
    def t_ref(self) -> int:
        """The fixed t of ``head.lr`` (the base lr's matched checkpoint)."""
        if self.matched_t is not None:
            return int(self.matched_t)
        return max(1, int(np.floor(self.t_max * min(self.lr_values) / self.lr + 1e-9)))

    @property
    def matched_steps(self) -> dict[float, int]:
        """``{eta: t}`` with eta * t = lr * t_ref (t rounded to an integer, at least 1)."""
        return {v: max(1, round(self.lr * self.t_ref / v)) for v in self.lr_values}

    @property
    def steps(self) -> np.ndarray:
        ck = np.unique(np.round(np.logspace(0, np.log10(self.t_max), self.checkpoints)))
        extra = [self.early_t, *self.matched_steps.values()]
        return np.unique(np.append(ck, extra)).astype(np.int64)

    @property
    def n_max(self) -> int:
        return max((*self.ns, self.n))

    @property
    def family_n_max(self) -> int:
        return max((*self.family_ns, self.family_n))

    def margins_of(self, family: str) -> tuple:
        """The margin sweep of ``family`` (gammas, or pairs for a ``"pair"`` family)."""
        fam = FAMILIES[family]
        return tuple(getattr(self, fam.margins_from)) if fam.margins_from else fam.margins

    def losses_of(self, family: str) -> tuple[str, ...]:
        """The losses trained on ``family``."""
        return self.losses if FAMILIES[family].primary else self.family_losses

    def ns_of(self, family: str) -> tuple[int, ...]:
        """The n sweep of ``family``."""
        return self.ns if FAMILIES[family].primary else self.family_ns

    def base(self, loss: str, family: str = "planted") -> HeadConfig:
        """The base configuration of ``loss`` in ``family`` (the centre of its sweeps)."""
        fam = FAMILIES[family]
        n = self.n if fam.primary else self.family_n
        if fam.sweeps == "pair":
            return HeadConfig(loss, self.lr, None, n, family, tuple(self.margins_of(family)[0]))
        return HeadConfig(loss, self.lr, self.gamma, n, family)

    def plan(self) -> list[HeadConfig]:
        """The configurations: one-at-a-time sweeps around each family's base, no duplicates."""
        plan: list[HeadConfig] = []
        for family in self.families:
            fam = FAMILIES[family]
            margins = [
                {"pair": tuple(v)} if fam.sweeps == "pair" else {"gamma": v}
                for v in self.margins_of(family)
            ]
            for loss in self.losses_of(family):
                base = self.base(loss, family)
                variants = [base]
                variants += [dataclasses.replace(base, lr=v) for v in self.lrs]
                variants += [dataclasses.replace(base, **m) for m in margins]
                variants += [dataclasses.replace(base, n=v) for v in self.ns_of(family)]
                plan += [v for v in dict.fromkeys(variants) if v not in plan]
        plan += [
            HeadConfig("exponential", self.ngd_lr, g, self.n, optimizer="ngd")
            for g in dict.fromkeys(self.ngd_gammas)
        ]
        plan += [
            dataclasses.replace(self.base(loss, family), copy=c)
            for family in self.families
            for loss in self.losses_of(family)
            for c in range(1, self.placebo_copies)
        ]
        return plan

    @property
    def width(self) -> int:
        """The feature width of the batched programs (every family padded to it with zeros)."""
        return max(self.d, *(FAMILIES[f].width or self.d for f in self.families))

    def family_of(self, cfg: HeadConfig) -> Family:
        """The data family of ``cfg``."""
        try:
            return FAMILIES[cfg.family]
        except KeyError:
            raise ValueError(
                f"unknown data family {cfg.family!r}; expected one of {tuple(FAMILIES)}."
            ) from None

    def dataset(self, cfg: HeadConfig, draw: int) -> Dataset:
        """Draw ``draw`` of ``cfg``'s data: the first ``cfg.n`` samples of the family's draw
        (nested subsets: a draw of size n is a subset of the draw of any larger size)."""
        fam = self.family_of(cfg)
        n_max = self.n_max if fam.primary else self.family_n_max
        margin = cfg.pair if fam.sweeps == "pair" else cfg.gamma
        seed = engine.draw_seed(self.seed, draw + cfg.copy * self.replicates)
        full = fam.draw(n_max, margin, d=self.d, radius=self.radius, seed=seed)
        return full.subset(cfg.n)
