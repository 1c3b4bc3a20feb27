"""Fine-tuning testbeds: a pre-trained classifier as a flat-weight function, its ``w0``, task data.

:class:`TestbedConfig` holds every setting of a testbed; :func:`make_testbed` builds one,
:func:`pretrained_family` one per pre-training length (sharing the data and the head).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.flatten_util import ravel_pytree

from stabtheory.full_finetuning.networks import (
    Architecture,
    Classifier,
    as_function,
    check_activation,
    classifier_functions,
)
from stabtheory.full_finetuning.pretraining import (
    PretrainConfig,
    pretrained_autoencoders,
    validate_steps,
)
from stabtheory.full_finetuning.tasks import TASKS

__all__ = ["Testbed", "TestbedConfig", "make_testbed", "pretrained_family"]


@dataclasses.dataclass(frozen=True)
class TestbedConfig:
    r"""Every setting of a full fine-tuning testbed (frozen, hashable).

    The encoder ``d_in -> hidden -> features`` is initialised from ``init_seed``, pre-trained
    for ``pretrain_steps`` Adam steps of denoising reconstruction
    (:func:`~stabtheory.full_finetuning.pretrain`) on the task's unlabeled source pool, and
    topped with a linear head initialised from ``init_seed`` (kernel
    ``N(0, head_scale^2 / features)``, bias 0). ``seed`` draws the task's training and test
    sets only, so a sweep over ``n`` or ``seed`` keeps ``w0`` fixed; ``input_scale``
    multiplies the task inputs (not the pre-training data), a knob for the Lipschitz constant
    of the per-sample losses.

    Default sizes: synthetic ``d_in = 32``, hidden (32, 32), features 8: ``p = 2385``;
    digits ``d_in = 64``: ``p = 3409``. ``hidden=(300, 300), features=32`` gives
    ``p = 109865`` (synthetic).

    Attributes:
      task: a key of :data:`~stabtheory.full_finetuning.TASKS`: ``"synthetic"``
        (:func:`~stabtheory.full_finetuning.synthetic_task`) or ``"digits"``
        (:func:`~stabtheory.full_finetuning.digits_task`).
      n: training set size.
      pretrain_steps: number of pre-training steps (0: the random initialisation).
      input_scale: factor on the task inputs ``X`` and ``X_test``.
      shift: synthetic only: mean shift from the source (default 0.5).
      classes: digits only: ``(a, b)``, a digit (one-vs-rest) or ``"even_odd"`` (default
        ``(3, 8)``).
      hidden, features, activation: the encoder architecture
        (:class:`~stabtheory.full_finetuning.Architecture`).
      d_in: synthetic input dimension (default 32); digits is always 64.
      n_test: test set size (default 512 synthetic, all the rest of the pool for digits).
      head_scale: head initialisation scale.
      seed: task data draws.
      init_seed: network initialisation, pre-training minibatches and head.
      source_seed: the source distribution / source pool.
      pretrain_config: :class:`~stabtheory.full_finetuning.PretrainConfig`.
      task_kwargs: more keyword arguments for the task function (e.g. ``rule``,
        ``label_noise``, ``standardize``); a mapping, stored as sorted ``(name, value)``
        pairs.

    Raises:
      ValueError: an unknown task or activation, negative ``pretrain_steps``, or a task
        field that does not apply to the task (``shift`` or ``d_in != 64`` for digits,
        ``classes`` for synthetic).

    Example:
      >>> cfg = TestbedConfig(n=16, pretrain_steps=50, task_kwargs={"rule": "linear"})
      >>> cfg.task, cfg.hidden, cfg.task_kwargs
      ('synthetic', (32, 32), (('rule', 'linear'),))
    """

    __test__ = False  # not a pytest test class, despite the name

    task: str = "synthetic"
    n: int = 64
    pretrain_steps: int = 1000
    input_scale: float = 1.0
    shift: float | None = None
    classes: tuple[int, int] | int | str | None = None
    hidden: tuple[int, ...] = (32, 32)
    features: int = 8
    d_in: int | None = None
    n_test: int | None = None
    activation: str = "tanh"
    head_scale: float = 1.0
    seed: int = 0
    init_seed: int = 0
    source_seed: int = 0
    pretrain_config: PretrainConfig = PretrainConfig()  # noqa: RUF009 (frozen, immutable)
    task_kwargs: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {tuple(TASKS)}, got {self.task!r}.")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if isinstance(self.classes, list):
            object.__setattr__(self, "classes", tuple(self.classes))
        kwargs = self.task_kwargs
        items = kwargs.items() if isinstance(kwargs, Mapping) else kwargs
        object.__setattr__(self, "task_kwargs", tuple(sorted(items)))
        TASKS[self.task].testbed_kwargs(self)  # rejects fields that do not apply
        validate_steps((self.pretrain_steps,))
        check_activation(self.activation)


@dataclasses.dataclass(frozen=True, eq=False)
class Testbed:
    r"""A fine-tuning problem: a network as a pure function of flat weights, ``w0`` and data.

    Attributes:
      name: e.g. ``"synthetic-nonlinear-shift0.5/pre1000"``.
      apply: ``apply(w, x) -> scalar logit`` for ONE input ``x`` of shape (d_in,), pure (jit,
        vmap and grad work in ``w`` and ``x``). Testbeds with the same architecture share the
        same function object, so jitted code keyed on it compiles once.
      w0: pre-trained weight (p,) float64: the pre-trained encoder and a head initialised
        from ``init_seed`` (see :class:`~stabtheory.full_finetuning.Classifier`), read-only
        numpy.
      X, y: training inputs (n, d_in) (times ``input_scale``) and labels in {-1, +1}.
      X_test, y_test: test inputs and labels, scaled alike.
      unravel: flat (p,) vector -> ``nnx.State`` of the classifier's parameters.
      info: task, pretrain_steps, p, p_encoder, head_slice (start, stop) of the head in ``w``,
        d_in, n, hidden, features, activation, input_scale, recon_loss (pre-training loss at
        this checkpoint), seeds, ... .
      graphdef: the classifier's graph definition (for :meth:`model`).
      pretrained: ``pretrained() -> DenoisingAutoencoder``, a fresh copy of the pre-trained
        autoencoder (encoder and decoder) the encoder of ``w0`` comes from; what SURT needs
        to continue the pre-training objective. ``None`` for testbeds built by hand.
      config: the :class:`TestbedConfig` it was built from (its ``pretrain_steps`` this
        testbed's own); ``None`` for testbeds built by hand.
    """

    __test__ = False  # not a pytest test class, despite the name

    name: str
    apply: Callable[[jax.Array, jax.Array], jax.Array]
    w0: np.ndarray
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    unravel: Callable[[jax.Array], Any]
    info: dict
    graphdef: Any = dataclasses.field(repr=False, default=None)
    pretrained: Callable[[], Any] | None = dataclasses.field(repr=False, default=None)
    config: TestbedConfig | None = dataclasses.field(repr=False, default=None)

    @property
    def p(self) -> int:
        """Number of parameters."""
        return int(self.w0.size)

    @property
    def n(self) -> int:
        """Training set size."""
        return int(self.X.shape[0])

    def model(self, w: jax.Array | None = None) -> Classifier:
        """The nnx :class:`~stabtheory.full_finetuning.Classifier` with weights ``w`` (default
        ``w0``), a fresh module."""
        return nnx.merge(self.graphdef, self.unravel(jnp.asarray(self.w0 if w is None else w)))


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


def pretrained_family(
    config: TestbedConfig,
    pretrain_steps: Sequence[int] = (0, 100, 1000, 5000),
) -> list[Testbed]:
    """Testbeds that share the task data and head init but differ in pre-training length.

    One pre-training run (cached per source pool, architecture, steps, config and
    ``init_seed``; the task's ``n``, ``seed``, ``shift``, classes, ... do not enter it)
    gives the encoder at every length in ``pretrain_steps``; longer pre-training moves the
    encoder further from its random initialisation, which varies the distance between
    ``w0`` and the fine-tuned optimum (docs/theory.md section 5, claim ``ft.distance``). All
    members share ``X, y, X_test, y_test`` and the ``apply``/``unravel`` functions; ``w0``
    differs in its encoder block only.

    Args:
      config: the testbed settings (:class:`TestbedConfig`); its ``pretrain_steps`` is not
        used: ``pretrain_steps`` below gives the members' lengths.
      pretrain_steps: non-decreasing pre-training lengths, one per member.

    Returns:
      One :class:`Testbed` per entry of ``pretrain_steps``, in order.

    Example:
      >>> cfg = TestbedConfig(n=8, n_test=8, d_in=8, hidden=(8,), features=4)
      >>> fam = pretrained_family(cfg, (0, 20))
      >>> [tb.info["pretrain_steps"] for tb in fam], fam[0].apply is fam[1].apply
      ([0, 20], True)
    """
    kind = TASKS[config.task]
    d_in, kwargs = kind.testbed_kwargs(config)
    tkw = {**dict(config.task_kwargs), "source_seed": int(config.source_seed), **kwargs}
    steps = tuple(int(s) for s in validate_steps(pretrain_steps))
    arch = Architecture(int(d_in), config.hidden, int(config.features), config.activation)
    task_kwargs = tuple(sorted(tkw.items()))
    source_kwargs = tuple(kv for kv in task_kwargs if kv[0] in kind.source_kwargs)
    # Step 0 is always pre-trained "to", so that every member can report the initial loss.
    init_seed = int(config.init_seed)
    pre = pretrained_autoencoders(
        config.task, source_kwargs, arch, (0, *steps), config.pretrain_config, init_seed
    )
    data = kind.task(task_kwargs, n=int(config.n), seed=int(config.seed))
    apply, unravel, graphdef = classifier_functions(arch)
    input_scale = float(config.input_scale)
    X, X_test = (_readonly(input_scale * a) for a in (data.X, data.X_test))
    y, y_test = _readonly(data.y), _readonly(data.y_test)
    testbeds = []
    for c, s in enumerate(steps):
        enc = pre.autoencoder(c + 1).encoder
        clf = arch.classifier(init_seed, enc, head_scale=config.head_scale)
        _, w0, _ = as_function(clf)
        p_enc = ravel_pytree(nnx.state(enc, nnx.Param))[0].size
        info = {
            **data.info,
            "task": config.task,
            "task_name": data.name,
            "pretrain_steps": s,
            "recon_loss": float(pre.recon_loss[c + 1]),
            "recon_loss_init": float(pre.recon_loss[0]),
            "p": int(w0.size),
            "p_encoder": int(p_enc),
            "head_slice": (int(p_enc), int(w0.size)),
            "d_in": arch.d_in,
            "hidden": arch.hidden,
            "features": arch.features,
            "activation": config.activation,
            "head_scale": float(config.head_scale),
            "input_scale": input_scale,
            "init_seed": init_seed,
            "pretrain_config": dataclasses.asdict(config.pretrain_config),
        }
        testbeds.append(
            Testbed(
                f"{data.name}/pre{s}",
                apply,
                _readonly(w0),
                X,
                y,
                X_test,
                y_test,
                unravel,
                info,
                graphdef,
                functools.partial(pre.autoencoder, c + 1),
                dataclasses.replace(config, pretrain_steps=s),
            )
        )
    return testbeds


def make_testbed(config: TestbedConfig | None = None) -> Testbed:
    """A full fine-tuning testbed: pre-trained MLP classifier, task data, flat weights.

    The pre-training is cached (the same source pool, architecture, length, config and
    ``init_seed`` pre-train once per process); see :class:`TestbedConfig` for the settings.

    Args:
      config: the testbed settings (default: ``TestbedConfig()``).

    Returns:
      A :class:`Testbed`.

    Example:
      >>> tb = make_testbed(TestbedConfig(n=16, pretrain_steps=50))
      >>> tb.p, tb.X.shape, float(tb.apply(tb.w0, tb.X[0])) == float(tb.model()(tb.X[0]))
      (2385, (16, 32), True)
    """
    config = TestbedConfig() if config is None else config
    (tb,) = pretrained_family(config, (int(config.pretrain_steps),))
    return tb
