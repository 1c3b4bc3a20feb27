"""What the stabilizer study runs: :class:`StabilizerStudySpec` (testbeds, methods, seeds).

Example:
  >>> spec = StabilizerStudySpec(methods=("plain", "mmr"))
  >>> [m.name for m in spec.methods], spec.method_configs()["mmr"].mmr_alpha
  (['plain', 'mmr'], 0.3)
"""

from __future__ import annotations

import dataclasses

from stabtheory import full_finetuning as ff
from stabtheory.simulations.stabilizers.attention.spec import AttentionSpec
from stabtheory.stabilizers import METHODS, Method, Settings, get_method

__all__ = ["REFERENCE", "StabilizerStudySpec"]

#: The method every other one is compared with.
REFERENCE = "plain"


def _registered() -> tuple[Method, ...]:
    return tuple(METHODS.values())


@dataclasses.dataclass(frozen=True)
class StabilizerStudySpec:
    """What the stabilizer study runs.

    Attributes:
      testbeds: ``"synthetic"`` and/or ``"digits"``
        (:func:`stabtheory.full_finetuning.make_testbed`).
      n: training set size; ``n_test``: test set size (None: the testbed's default).
      shift: the synthetic task's mean shift from the source.
      hidden, features, pretrain_steps: the encoder and its pre-training.
      methods: the :class:`~stabtheory.stabilizers.Method` objects to run, in order (names of
        registered methods are looked up; default: every registered method). Must include
        ``plain`` (:data:`REFERENCE`); the method at position ``j`` gets the seeds
        ``seed + j * seeds ..``, so the methods' samples are independent.
      seeds: seeds per method and testbed; ``seed``: the first seed.
      lr, steps, batch_size, dropout: plain fine-tuning (Adam), the base of every method's
        :class:`~stabtheory.stabilizers.Settings`.
      n_boot, level, alpha: bootstrap resamples, interval level, test level.
      attention: the attention testbed's design
        (:class:`~stabtheory.simulations.stabilizers.attention.AttentionSpec`: draws, paired
        seeds, arms with doses, two regimes), or ``None`` to run the MLP testbeds only.
    """

    testbeds: tuple[str, ...] = ("synthetic", "digits")
    n: int = 64
    n_test: int | None = None
    shift: float = 0.5
    hidden: tuple[int, ...] = (32, 32)
    features: int = 8
    pretrain_steps: int = 1000
    methods: tuple[Method, ...] = dataclasses.field(default_factory=_registered)
    seeds: int = 100
    seed: int = 0
    lr: float = 1e-3
    steps: int = 150
    batch_size: int = 16
    dropout: float = 0.1
    n_boot: int = 2000
    level: float = 0.95
    alpha: float = 0.05
    attention: AttentionSpec | None = dataclasses.field(default_factory=AttentionSpec)

    def __post_init__(self):
        methods = tuple(get_method(m) if isinstance(m, str) else m for m in self.methods)
        names = [m.name for m in methods]
        if REFERENCE not in names:
            raise ValueError(
                f"methods must include {REFERENCE!r} (every comparison is against it)."
            )
        if len(set(names)) != len(names):
            raise ValueError(f"methods must have distinct names, got {names}.")
        object.__setattr__(self, "methods", methods)

    @classmethod
    def quick(cls) -> StabilizerStudySpec:
        """A small version (one small synthetic testbed, 20 seeds, every registered method's
        :meth:`~stabtheory.stabilizers.Method.quick` version): seconds, for tests."""
        return cls(
            testbeds=("synthetic",),
            n=32,
            n_test=128,
            hidden=(16,),
            features=4,
            pretrain_steps=300,
            methods=tuple(m.quick() for m in METHODS.values()),
            seeds=20,
            steps=100,
            n_boot=500,
            attention=AttentionSpec.quick(),
        )

    @classmethod
    def full(cls) -> StabilizerStudySpec:
        """The default MLP part with the attention testbed's full design
        (:meth:`AttentionSpec.full`: 10 draws, each with its own pre-training, x 64 paired
        seeds x every arm), for ``verify --study stabilizers --full``."""
        return cls(attention=AttentionSpec.full())

    def method_configs(self) -> dict[str, Settings]:
        """The loop :class:`~stabtheory.stabilizers.Settings` of every method, by name."""
        base = Settings(
            lr=self.lr, steps=self.steps, batch_size=self.batch_size, dropout=self.dropout
        )
        return {m.name: m.settings(base) for m in self.methods}

    def testbed(self, task: str) -> ff.Testbed:
        """The testbed of ``task`` (pre-trained encoder, task data) for this spec."""
        kwargs = dict(
            n=self.n,
            n_test=self.n_test,
            hidden=self.hidden,
            features=self.features,
            pretrain_steps=self.pretrain_steps,
            seed=self.seed,
        )
        if task == "synthetic":
            kwargs["shift"] = self.shift
        return ff.make_testbed(ff.TestbedConfig(task=task, **kwargs))
