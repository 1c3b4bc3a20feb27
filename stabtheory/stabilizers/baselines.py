"""The baselines the stabilizers are compared with: settings of the shared loop, no claim.

``plain`` is the base :class:`~stabtheory.stabilizers.Method` itself (full fine-tuning);
:class:`SmallLR` (the head-tuning theory's ``head.lr``), :class:`Long` (``head.iterations``),
:class:`L2SP` (``ft.distance``) and :class:`HeadOnly` (linear-head tuning) change one setting.

Example:
  >>> from stabtheory.stabilizers import Settings
  >>> SmallLR().settings(Settings(lr=0.01)).lr, Long().settings(Settings(steps=150)).steps
  (0.0025, 600)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from stabtheory.stabilizers.method import Method

__all__ = ["L2SP", "HeadOnly", "Long", "SmallLR"]


@dataclasses.dataclass(frozen=True)
class SmallLR(Method):
    """A smaller step size: ``lr * factor``."""

    name: str = "small_lr"
    factor: float = 0.25

    def settings(self, base: Any) -> Any:
        return dataclasses.replace(base, name=self.name, lr=base.lr * self.factor)


@dataclasses.dataclass(frozen=True)
class Long(Method):
    """More steps: ``int(steps * factor)``."""

    name: str = "long"
    factor: int = 4

    def settings(self, base: Any) -> Any:
        return dataclasses.replace(base, name=self.name, steps=int(base.steps * self.factor))


@dataclasses.dataclass(frozen=True)
class L2SP(Method):
    """The L2-SP pull ``strength/2 ||theta - theta_start||^2`` toward the start encoder."""

    name: str = "l2sp"
    strength: float = 1.0

    def settings(self, base: Any) -> Any:
        return dataclasses.replace(base, name=self.name, l2sp=self.strength)


@dataclasses.dataclass(frozen=True)
class HeadOnly(Method):
    """Linear-head tuning: the encoder frozen, the step ``lr * lr_factor`` (as a linear probe
    usually gets)."""

    name: str = "head_only"
    lr_factor: float = 10.0

    def settings(self, base: Any) -> Any:
        return dataclasses.replace(
            base, name=self.name, head_only=True, lr=base.lr * self.lr_factor
        )
