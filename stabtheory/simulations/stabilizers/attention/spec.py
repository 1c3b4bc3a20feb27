"""What the stabilizer study runs on the attention testbed: :class:`AttentionSpec` (draws, seeds,
arms and doses, the two regimes, the leave-one-out subset) and its :class:`Arm` s.

Example:
  >>> spec = AttentionSpec()
  >>> [a.name for a in spec.arms()]
  ['plain', 'mmr@0.1', 'mmr@0.3', 'mmr@1', 'mhloss', 'surt@100', 'surt@300']
  >>> [a.name for a in spec.arms() if a.primary]
  ['mmr@0.3', 'mhloss', 'surt@300']
"""

from __future__ import annotations

import dataclasses

__all__ = ["Arm", "AttentionSpec"]


@dataclasses.dataclass(frozen=True)
class Arm:
    """One arm of the attention design.

    Attributes:
      name: ``"plain"``, ``"mmr@<alpha>"``, ``"mhloss"`` or ``"surt@<steps>"``.
      method: the method (and claim) it belongs to: ``"plain"``, ``"mmr"``, ``"mhloss"``,
        ``"surt"``.
      dose: MMR's ``alpha``, MHLoss's ``K``, SURT's re-training steps (0 for plain).
      primary: the arm that decides the method's claim (fixed in the spec, in advance); the
        other doses are the dose-response, shown beside.
      start: 0 for the pre-trained encoder, ``j + 1`` for the ``j``-th SURT dose's encoder.
      alpha: the MMR weight of the run.
      heads: the number of heads whose mean is the prediction (1, or ``K``).
    """

    name: str
    method: str
    dose: float
    primary: bool
    start: int
    alpha: float
    heads: int


@dataclasses.dataclass(frozen=True)
class AttentionSpec:
    """The attention part of the stabilizer study (hashable).

    The recipe is the phenomenon study's failing setting (docs/attention.md: ``genre`` task,
    shift 0, ``n = 1024``, Adam without bias correction, lr 3e-3, 100 steps, warmup 10%,
    batch 16: 24% of 50 seeds failed there). Draw ``d`` is the task sample ``task_seed + d``
    on the pre-trained encoder of draw ``d``: the shipped checkpoint for every draw unless
    ``pretrain_draws``, which pre-trains draw ``d > 0`` from seed ``d``
    (:class:`~stabtheory.attention.PretrainConfig`, ``pretrain_steps``); draw 0 is always the
    shipped checkpoint. Seed ``s`` is the same key in every arm (paired).

    Attributes:
      task, n, n_test, shift: the downstream task (:class:`~stabtheory.attention.TaskConfig`).
      lr, steps, warmup, bias_correction, batch_size: the fine-tuning recipe.
      draws: independent draws (the replicates of every claim); seeds: seeds per arm and draw.
      task_seed: the first task sample's seed.
      pretrain_draws: pre-train every draw ``d > 0`` from its own seed (else the shipped one).
      pretrain_steps: the steps of those pre-trainings (the shipped one's: 6000).
      mmr_alphas, mmr_primary: MMR's dose sweep and the dose that decides ``mmr``.
      mhloss_heads: MHLoss's ``K``.
      surt_doses, surt_primary: SURT's re-training steps (one run per draw, snapshotted) and
        the dose that decides ``surt``; surt_lr, surt_batch: its AdamW step and minibatch.
      target: the training-loss target of the second regime (the mean minibatch loss over a
        window of ``window`` steps, of the prediction; ``ln 2 = 0.693`` is chance); a run is
        frozen at the first window at or below it.
      loo_seeds, loo_points: the leave-one-out subset: per arm and draw, the first
        ``loo_seeds`` seeds re-run without each of ``loo_points`` training examples.
      margin_seeds: per arm and draw, the seeds whose pooled features get the exact max
        margin; margin_subset: the first this many training examples for the subset margin.
      level, alpha: interval level and the family-wise test level (Holm over a claim's four
        counted p-values); n_boot: bootstrap resamples of the failure-rate ratio.
      seed: the base seed of the fine-tuning keys.
    """

    task: str = "genre"
    n: int = 1024
    n_test: int = 1000
    shift: float = 0.0
    lr: float = 3e-3
    steps: int = 100
    warmup: float = 0.1
    bias_correction: bool = False
    batch_size: int = 16
    draws: int = 10
    seeds: int = 12
    task_seed: int = 1
    pretrain_draws: bool = False
    pretrain_steps: int = 6000
    mmr_alphas: tuple[float, ...] = (0.1, 0.3, 1.0)
    mmr_primary: float = 0.3
    mhloss_heads: int = 5
    surt_doses: tuple[int, ...] = (100, 300)
    surt_primary: int = 300
    surt_lr: float = 1e-3
    surt_batch: int = 128
    target: float = 0.65
    window: int = 10
    loo_seeds: int = 2
    loo_points: int = 2
    margin_seeds: int = 4
    margin_subset: int = 64
    level: float = 0.95
    alpha: float = 0.05
    n_boot: int = 2000
    seed: int = 0

    def __post_init__(self):
        if self.draws < 1 or self.seeds < 2:
            raise ValueError(f"need draws >= 1 and seeds >= 2, got {self.draws}, {self.seeds}.")
        if self.mmr_primary not in self.mmr_alphas or self.surt_primary not in self.surt_doses:
            raise ValueError("the primary MMR alpha and SURT dose must be among the doses.")
        if tuple(sorted(set(self.surt_doses))) != tuple(self.surt_doses):
            raise ValueError(f"surt_doses must increase, got {self.surt_doses}.")
        if self.mhloss_heads < 2 or min(self.mmr_alphas) <= 0 or min(self.surt_doses) < 1:
            raise ValueError("need K >= 2 heads, alphas > 0 and SURT doses >= 1.")
        if self.steps % self.window or self.n % self.batch_size:
            raise ValueError("steps must be a multiple of window, n of batch_size.")
        if not (self.loo_seeds <= self.seeds and self.margin_seeds <= self.seeds):
            raise ValueError("loo_seeds and margin_seeds cannot exceed seeds.")

    @classmethod
    def quick(cls) -> AttentionSpec:
        """Seconds (for ``verify --quick`` and tests): 2 draws x 6 seeds, n = 64, 20 steps,
        one dose per method. Too small to show failures: its regimes are shown, not counted."""
        return cls(
            n=64,
            n_test=200,
            steps=20,
            draws=2,
            seeds=6,
            mmr_alphas=(0.3,),
            mhloss_heads=3,
            surt_doses=(10,),
            surt_primary=10,
            surt_batch=32,
            loo_seeds=1,
            loo_points=1,
            margin_seeds=2,
            margin_subset=32,
            n_boot=200,
        )

    @classmethod
    def full(cls) -> AttentionSpec:
        """The full design (``verify --study stabilizers --full``): 10 draws, each its own task
        sample and its own pre-training (draw 0 the shipped checkpoint), 64 paired seeds per
        arm, every arm; the leave-one-out subset 4 seeds x 4 points. Sized for an accelerator;
        on the 2-core CPU about 25 minutes. Its cost: :meth:`flops`."""
        return cls(draws=10, seeds=64, pretrain_draws=True, loo_seeds=4, loo_points=4)

    def arms(self) -> tuple[Arm, ...]:
        """The arms in order: plain, MMR's doses, MHLoss, SURT's doses."""
        out = [Arm("plain", "plain", 0.0, False, 0, 0.0, 1)]
        out += [
            Arm(f"mmr@{a:g}", "mmr", a, a == self.mmr_primary, 0, a, 1) for a in self.mmr_alphas
        ]
        K = self.mhloss_heads
        out.append(Arm("mhloss", "mhloss", float(K), True, 0, 0.0, K))
        out += [
            Arm(f"surt@{s}", "surt", float(s), s == self.surt_primary, j + 1, 0.0, 1)
            for j, s in enumerate(self.surt_doses)
        ]
        return tuple(out)

    def primary(self, method: str) -> Arm:
        """The arm that decides ``method``'s claim."""
        (arm,) = [a for a in self.arms() if a.method == method and a.primary]
        return arm

    @property
    def runs_per_draw(self) -> int:
        """Fine-tuning runs of one draw: every arm's seeds and its leave-one-out runs."""
        return len(self.arms()) * (self.seeds + self.loo_seeds * self.loo_points)

    def size(self) -> dict:
        """The design's size, for the report."""
        arms = self.arms()
        return {
            "draws": self.draws,
            "seeds_per_arm_and_draw": self.seeds,
            "arms": len(arms),
            "paired_seeds_per_arm": self.draws * self.seeds,
            "fine_tuning_runs": self.draws * self.runs_per_draw,
            "fine_tuning_steps": self.draws * self.runs_per_draw * self.steps,
            "surt_runs": self.draws,
            "pretrainings": (self.draws - 1) if self.pretrain_draws else 0,
            "loo_runs": self.draws * len(arms) * self.loo_seeds * self.loo_points,
        }

    def flops(self) -> dict:
        """The floating-point operations the design implies (matrix products only; a training
        step counts 3 forward passes), by part and in total.

        Per sequence of ``L + 1`` positions through the encoder of width ``d``, ``l`` layers
        and MLP width ``h``: ``l (L + 1) (8 d^2 + 4 d h + 4 (L + 1) d)`` (projections,
        MLP, scores and their weighted sum), plus the pooler ``2 d^2``; pre-training and
        SURT add the masked-token head ``2 d V`` per position.
        """
        from stabtheory.attention.checkpoint import DEFAULT

        c = DEFAULT.corpus
        d, h, layers, P = DEFAULT.width, DEFAULT.mlp, DEFAULT.layers, c.length + 1
        enc = layers * P * (8 * d * d + 4 * d * h + 4 * P * d) + 2 * d * d
        mlm = enc + P * 2 * d * c.vocab
        s = self.size()
        train = 3 * enc * self.batch_size * s["fine_tuning_steps"]
        evals = enc * (self.n + 2 * self.n_test) * s["fine_tuning_runs"]
        surt = 3 * mlm * self.surt_batch * max(self.surt_doses) * self.draws
        pre = 3 * mlm * DEFAULT.batch_size * self.pretrain_steps * s["pretrainings"]
        parts = {"fine_tuning": train, "evaluation": evals, "surt": surt, "pretraining": pre}
        return {**{k: float(v) for k, v in parts.items()}, "total": float(sum(parts.values()))}
