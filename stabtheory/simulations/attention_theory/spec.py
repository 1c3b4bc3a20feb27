"""What the attention-theory study runs: the task draw, the full fine-tuning sizes and settings,
the pre-training lengths and the head-tuning settings."""

from __future__ import annotations

import dataclasses

__all__ = ["SHIPPED_STEPS", "AttentionTheorySpec"]

#: The shipped checkpoint's pre-training length (:data:`stabtheory.attention.DEFAULT`'s
#: ``steps``; kept here as a number so that the spec imports no flax).
SHIPPED_STEPS = 6000


@dataclasses.dataclass(frozen=True)
class AttentionTheorySpec:
    """The attention-theory study's specification (hashable).

    Attributes:
      task, shift, task_seed: the task draw (:class:`~stabtheory.attention.TaskConfig`); one
        draw of ``max(ns + head_ns)`` sequences, every size a prefix of it (nested samples).
      ns: the sample sizes of the full fine-tuning checks (shipped checkpoint).
      lam: the L2-SP pull (> 0: FT-1 and FT-2 need ``Lam > 0``; plain fine-tuning, lam = 0,
        is outside them).
      steps: the GD checkpoints of FT-2 (Taylor GD; the real network's GD on S for the
        faithfulness check), with the default step ``0.9 / lambda_max``.
      real_ns: the sizes at which the real network is also fine-tuned on every S\\i (its
        leave-one-out change beside FT-2, outside the theorem).
      head_seed: the seed of the fresh classification head (its two logits' difference is
        the one logit of the Taylor model).
      lengths: pre-training lengths in steps (0: the initialisation; ``SHIPPED_STEPS``: the
        shipped checkpoint, loaded, not re-trained).
      head_ns: the sample sizes of the head-tuning checks on frozen pooled features.
      head_steps: the last GD step of the head runs (checkpoints log-spaced from 1).
      head_loss: the head's loss (the exponential loss is H-2/H-3's setting; C-1 uses the
        Lipschitz constant measured along the runs).
      bias: append a constant feature (the classifier head's bias).
    """

    task: str = "genre"
    shift: float = 0.0
    task_seed: int = 1
    ns: tuple[int, ...] = (32, 64, 128)
    lam: float = 0.05
    steps: tuple[int, ...] = (1, 10, 100)
    real_ns: tuple[int, ...] = (32,)
    head_seed: int = 0
    lengths: tuple[int, ...] = (0, 300, 1500, SHIPPED_STEPS)
    head_ns: tuple[int, ...] = (32, 64)
    head_steps: int = 1000
    head_loss: str = "exponential"
    bias: bool = True

    def __post_init__(self):
        if not self.ns or min(self.ns) < 4 or not self.lengths or not self.head_ns:
            raise ValueError("need at least one n >= 4, one head n and one length.")
        if any(n % 2 for n in (*self.ns, *self.head_ns)):
            raise ValueError(
                "every n must be even (the task draw of the largest n is balanced; the smaller "
                "samples are its prefixes, balanced only on average)."
            )
        if not set(self.real_ns) <= set(self.ns):
            raise ValueError(f"real_ns {self.real_ns} must be among ns {self.ns}.")
        if self.lam <= 0:
            raise ValueError(
                f"lam must be > 0 (got {self.lam}): plain fine-tuning (lam = 0) is outside "
                "FT-1/FT-2 (Lam > 0 fails for p > n)."
            )
        if min(self.lengths) < 0:
            raise ValueError("pre-training lengths must be >= 0.")

    @property
    def n_draw(self) -> int:
        """The size of the one task draw every sample is a prefix of."""
        return max((*self.ns, *self.head_ns))

    @classmethod
    def quick(cls) -> AttentionTheorySpec:
        """A reduced run for ``verify --quick``: one n (8, no real leave-one-out runs: one
        compilation), two GD checkpoints, the initialisation and the shipped checkpoint, heads
        on 16 sequences for 100 steps."""
        return cls(
            ns=(8,),
            steps=(1, 10),
            real_ns=(),
            lengths=(0, SHIPPED_STEPS),
            head_ns=(16,),
            head_steps=100,
        )
