r"""Full fine-tuning evidence: the Taylor model, its minimisers and GD runs on S and every S\\i.

:func:`ft_evidence` expands, solves and trains everything the FT checks need for one problem
(:class:`FTEvidence`); :func:`ft_evidence_batch` runs many problems of one network as one
compiled program (:class:`FTProblem`, :mod:`~stabtheory.bounds.finetune.program`) with the GD
step of :mod:`~stabtheory.bounds.finetune.step`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from stabtheory import full_finetuning as ff
from stabtheory.bounds.finetune.program import FTProblem, evidence_program, problem_arrays
from stabtheory.bounds.finetune.step import MAX_STEPS, PILOT_PASSES, STATIONARY_TOL
from stabtheory.errors import InvalidArgumentError
from stabtheory.linear_heads import static_checkpoints
from stabtheory.validation import check_integer, check_real, check_steps

__all__ = ["FTEvidence", "FTProblem", "ft_evidence", "ft_evidence_batch"]


@dataclasses.dataclass(frozen=True)
class FTEvidence:
    """Shared quantities of the full fine-tuning checks for one configuration.

    Attributes:
      tm: the :class:`~stabtheory.full_finetuning.TaylorModel`.
      w_min: (n + 1, p) minimisers of S (row 0) and every S\\i.
      cg_residual: (n + 1,) relative residuals ``||A_s (w_s - w0) + gbar_s|| / ||gbar_s||``.
      lam_min, lam_max: (n + 1,) exact extreme eigenvalues of every ``A_s``.
      beta_i: (n,) ``||H_i||``.
      rho, rho_loo: (n,) ``||grad lhat_i(w_S)||`` and ``||grad lhat_i(w_S\\i)||``.
      steps: (C,) GD checkpoints; ``w_gd``: (n + 1, C, p) GD on the quadratic.
      w_real: (n + 1, C, p) GD on the true loss, or ``None``.
      real_losses, quad_losses: (n + 1, C, n) per-sample true and quadratic losses along the
        real runs (the designed losses), or ``None``.
      config: the configuration.
      deviation: (n,) ``||r_i - mean_j r_j||``, ``r_i = grad lhat_i(w_S)`` (FT-1c).
      min_losses: (2, n) ``lhat_i(w_S)`` and ``lhat_i(w_S\\i)``.
      design: the :class:`~stabtheory.full_finetuning.FTDesign` it was run with.
      hessian_min, hessian_max, grad_norm: the true Hessian's extreme eigenvalues (Lanczos
        Ritz values, :func:`~stabtheory.full_finetuning.path_curvature`) and the gradient
        norm of the real objective on S (the designed one, with the pull): (2 + C,) at w0,
        at every checkpoint of the real run on S and where it stopped (``w_stat[0]``), or
        (1,) at w0 without the real network.
      w_stat, stat_steps, stat_ratio: the real runs (S and every S\\i) continued after the last
        checkpoint to the stationarity tolerance ``config["tol"]``
        (:func:`~stabtheory.full_finetuning.gd_to_tolerance`): (n + 1, p) weights, the steps
        every run took after the last checkpoint (they stop together), (n + 1,) relative
        gradient norms; or ``None``.
    """

    tm: ff.TaylorModel
    w_min: np.ndarray
    cg_residual: np.ndarray
    lam_min: np.ndarray
    lam_max: np.ndarray
    beta_i: np.ndarray
    rho: np.ndarray
    rho_loo: np.ndarray
    steps: np.ndarray
    w_gd: np.ndarray
    w_real: np.ndarray | None
    real_losses: np.ndarray | None
    quad_losses: np.ndarray | None
    config: dict
    deviation: np.ndarray | None = None
    min_losses: np.ndarray | None = None
    design: ff.FTDesign | None = None
    hessian_min: np.ndarray | None = None
    hessian_max: np.ndarray | None = None
    grad_norm: np.ndarray | None = None
    w_stat: np.ndarray | None = None
    stat_steps: int | None = None
    stat_ratio: np.ndarray | None = None
    _empirical: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def n(self) -> int:
        return int(self.tm.grads.shape[0])

    @property
    def optimizer(self) -> str:
        """The training algorithm of the runs: GD, on the Taylor model and the network."""
        return "gd"

    def measures(self, notion: str) -> bool:
        """Whether it holds the empirical values of ``notion``: those of the real network
        (``"... (real)"``) only when it was fine-tuned (``real=True``)."""
        return self.w_real is not None or not notion.endswith("(real)")

    @classmethod
    def for_check(cls, X, y, *, model, params, lam: float, lr: float | None, steps, **_):
        """:func:`ft_evidence` (without the real network) with
        :func:`~stabtheory.bounds.check_bound`'s arguments: ``model`` a flax ``nnx.Module``
        with one logit or a function ``apply(w, x)`` of flat weights, ``params`` the
        pre-trained flat weights (taken from the module when omitted); the head-tuning
        arguments are ignored."""
        if model is None:
            raise InvalidArgumentError(
                "model: a fine-tuning theorem needs model= (an nnx.Module or apply(w, x))."
            )
        from flax import nnx

        apply = model
        if isinstance(model, nnx.Module):
            apply, w_module, _ = ff.as_function(model)
            params = w_module if params is None else params
        if params is None:
            raise InvalidArgumentError(
                "params: a fine-tuning theorem needs params= (the pre-trained flat weights w0)."
            )
        steps = check_steps("steps", steps)
        ff.check_model(apply, params, X)
        check_real("lam", lam, low=0.0, low_open=False)
        check_real("lr", lr, low=0.0, allow_none=True)
        return ft_evidence(
            apply, params, X, y, lam=lam, lr=lr, steps=np.atleast_1d(steps), real=False
        )

    @property
    def edge_of_stability(self) -> float:
        """``max eta lambda_max(hess F_S) / 2`` over w0, the real run's checkpoints on S and
        its stationary end (below 1: GD on the true loss inside its classical stability
        region there)."""
        return float(self.config["lr"] * np.max(self.hessian_max) / 2)

    @property
    def stationary(self) -> bool | None:
        """Whether every real run (S and every S\\i) reached the stationarity tolerance
        (``None`` without the real network)."""
        if self.stat_ratio is None or "tol" not in self.config:
            return None
        return bool(np.all(self.stat_ratio <= self.config["tol"]))

    @property
    def Lam(self) -> np.ndarray:
        """(n,) ``min(lambda_min(A_S), lambda_min(A_S\\i))`` (FT-1, FT-2)."""
        return np.minimum(self.lam_min[0], self.lam_min[1:])

    @property
    def Lam_loo(self) -> np.ndarray:
        """(n,) ``lambda_min(A_S\\i)`` (FT-1c)."""
        return self.lam_min[1:]

    @property
    def distance(self) -> float:
        """``||w_S - w0||``, the weight distance of the fine-tuned optimum."""
        return float(np.linalg.norm(self.w_min[0] - np.asarray(self.tm.w0)))

    @property
    def distance_loo(self) -> np.ndarray:
        return np.linalg.norm(self.w_min[1:] - np.asarray(self.tm.w0), axis=1)

    def empirical(self, kind: str) -> np.ndarray:
        """Per-sample LOO values: ``"min.weights"`` (1, n), ``"min.loss"`` (1, n),
        ``"gd.weights"`` (C, n), ``"real.weights"`` (C, n), ``"real.loss"`` (C, n); computed
        once per kind."""
        if kind not in self._empirical:
            self._empirical[kind] = self._compute_empirical(kind)
        return self._empirical[kind]

    def trivial(self, kind: str) -> np.ndarray:
        """The trivial bound of every value of :meth:`empirical` (docs/theory.md section 6):
        ``||w_S - w0|| + ||w_S\\i - w0||`` for weights (every run starts at ``w0``) and
        ``|l_S| + |l_S\\i|`` for losses (the triangle inequality; a Taylor loss can be
        negative)."""
        w0 = np.asarray(self.tm.w0)
        if kind.endswith(".weights"):
            W = {"min": self.w_min, "gd": self.w_gd, "real": self.w_real}[kind.split(".")[0]]
            dist = np.linalg.norm(np.asarray(W) - w0, axis=-1)  # (n+1,) or (n+1, C)
            if dist.ndim == 1:  # the minimisers: (1, n)
                return (dist[0] + dist[1:])[None]
            return dist[0][:, None] + dist[1:].T  # GD paths: (C, n)
        if kind == "min.loss":
            return (np.abs(self.min_losses[0]) + np.abs(self.min_losses[1]))[None]
        if kind == "real.loss":
            idx = np.arange(self.n)
            L = self.real_losses  # (n+1, C, n)
            return np.abs(L[0][:, idx]) + np.abs(L[idx + 1, :, idx].T)
        raise ValueError(f"unknown kind {kind!r}")

    def _compute_empirical(self, kind: str) -> np.ndarray:
        if kind == "min.weights":
            return np.linalg.norm(self.w_min[1:] - self.w_min[0], axis=1)[None]
        if kind == "min.loss":
            return np.abs(self.min_losses[0] - self.min_losses[1])[None]
        if kind == "gd.weights":
            return np.linalg.norm(self.w_gd[1:] - self.w_gd[0][None], axis=2).T
        if kind == "real.weights":
            return np.linalg.norm(self.w_real[1:] - self.w_real[0][None], axis=2).T
        if kind == "real.loss":
            idx = np.arange(self.n)
            L = self.real_losses  # (n+1, C, n)
            return np.abs(L[0][:, idx] - L[idx + 1, :, idx].T)
        raise ValueError(f"unknown kind {kind!r}")


def _evidence_from(
    arrays: dict, problem: FTProblem, steps: np.ndarray, tol: float | None = None
) -> FTEvidence:
    """The :class:`FTEvidence` of one problem from its slice of the program's output (host
    arrays), with the padding samples dropped."""
    design = problem.design or ff.FTDesign()
    n = int(np.asarray(problem.X).shape[0])
    get = {k: np.asarray(a) for k, a in arrays.items() if k != "tm"}
    # masks S, S\\1..S\\n and samples 1..n (a no-op without padding)
    for key in (
        "w_min",
        "cg_residual",
        "lam_min",
        "lam_max",
        "w_gd",
        "w_real",
        "w_stat",
        "stat_ratio",
    ):
        if key in get:
            get[key] = get[key][: n + 1]
    for key in ("beta_i", "rho", "rho_loo", "deviation"):
        get[key] = get[key][:n]
    get["min_losses"] = get["min_losses"][:, :n]
    for key in ("real_losses", "quad_losses"):
        if key in get:
            get[key] = get[key][: n + 1, :, :n]
    tm = arrays["tm"]
    tm = tm._replace(**{f: getattr(tm, f)[:n] for f in ("loss0", "grads", "jac", "curv", "X", "y")})
    config = {
        **({"max_steps": int(get["max_steps"])} if "max_steps" in get else {}),
        "n": n,
        "p": int(get["w_min"].shape[-1]),
        "lam": float(get["lam"]),
        "lr": float(get["lr"]),
        "curvature": "ggn",
        "tilt": float(design.tilt),
        "shift": float(design.shift),
        "scale": float(design.scale),
        **(problem.info or {}),
    }
    if tol is not None:
        config["tol"] = float(tol)
    return FTEvidence(
        jax.tree.map(jnp.asarray, tm),
        get["w_min"],
        get["cg_residual"],
        get["lam_min"],
        get["lam_max"],
        get["beta_i"],
        get["rho"],
        get["rho_loo"],
        np.asarray(steps),
        get["w_gd"],
        get.get("w_real"),
        get.get("real_losses"),
        get.get("quad_losses"),
        config,
        deviation=get["deviation"],
        min_losses=get["min_losses"],
        design=design,
        hessian_min=get["hessian_min"],
        hessian_max=get["hessian_max"],
        grad_norm=get["grad_norm"],
        w_stat=get.get("w_stat"),
        stat_steps=int(get["stat_steps"]) if "stat_steps" in get else None,
        stat_ratio=get.get("stat_ratio"),
    )


def ft_evidence_batch(
    apply,
    problems,
    *,
    steps=(1, 10, 100, 1000),
    real: bool = True,
    cg_tol: float = 1e-12,
    batch_size: int | None = None,
    pad_to: int | None = None,
    capacity: int | None = None,
    vectorize: int | str | None = "auto",
    mesh: jax.sharding.Mesh | None = None,
    static_steps: bool = False,
    tol: float = STATIONARY_TOL,
    max_steps: int = MAX_STEPS,
    passes: int = PILOT_PASSES,
) -> list[FTEvidence]:
    """:func:`ft_evidence` for many problems of one network at once: one compiled program.

    Args:
      apply: ``apply(w, x) -> logit`` shared by the problems (same parameter count p).
      problems: a sequence of :class:`FTProblem`.
      steps, real, cg_tol, batch_size: as in :func:`ft_evidence`, shared.
      pad_to: the common sample size (>= every problem's n; default the largest n): smaller
        problems are padded with samples of weight zero.
      capacity: the batch size of the compiled program (>= ``len(problems)``; default
        ``len(problems)``): the batch is filled up with placeholders (skipped when problems
        run one after another, computed and dropped in a vmap), so that batches of
        different lengths share one compilation.
      vectorize: how many problems run at once inside the program: 1 runs them one after
        another (each as the single-problem program: the fastest on a CPU, where a vmapped
        batch is about 30% slower per problem), ``None`` all at once (``jax.vmap``, for a
        GPU or TPU), ``k`` in groups of k. ``"auto"``: 1 on the CPU backend, else ``None``.
      mesh: a one-axis :class:`jax.sharding.Mesh`: the batch (filled up to a multiple of its
        size) is split over its devices, each mapping over its own problems; the results
        equal the single-device ones up to rounding (about 1e-13 measured on host
        devices). On one device with ``vectorize=1`` a problem's results do not depend on
        the batch it runs in (its other problems, their order, the capacity).
      static_steps: compile the checkpoint values into the program (fixed-length loops
        between them, which XLA optimises better on a GPU; a new compilation per ``steps``)
        instead of tracing them.
      tol, max_steps: after the last checkpoint the real network's runs go on by GD until
        their relative gradient norm is at most ``tol`` or ``max_steps`` more steps
        (:func:`~stabtheory.full_finetuning.gd_to_tolerance`; ``FTEvidence.w_stat``);
        ``max_steps`` is traced (default 0: stop at the last checkpoint), and a problem's own
        ``FTProblem.max_steps`` overrides it.
      passes: pilot passes of the default step (:func:`path_lr`; 0: the step set at w0).

    Returns:
      One :class:`FTEvidence` per problem, in order, each as :func:`ft_evidence` returns it
      (up to rounding).
    """
    problems = list(problems)
    if not problems:
        return []
    check_real("tol", tol, low=0.0)
    max_steps = check_integer("max_steps", max_steps, low=0)
    passes = check_integer("passes", passes, low=0)
    size = max(int(np.asarray(p.X).shape[0]) for p in problems)
    size = size if pad_to is None else int(pad_to)
    capacity = len(problems) if capacity is None else int(capacity)
    if capacity < len(problems):
        raise ValueError(f"capacity {capacity} < {len(problems)} problems.")
    if vectorize == "auto":
        vectorize = 1 if jax.default_backend() == "cpu" else None
    if mesh is not None:
        capacity += (-capacity) % mesh.size
    rows = [{**problem_arrays(p, size, max_steps), "live": np.int32(1)} for p in problems]
    rows += [{**rows[-1], "live": np.int32(0)}] * (capacity - len(rows))
    batch = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    if mesh is not None:
        sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh.axis_names[0]))
        batch = jax.device_put(batch, sharding)
    p = int(rows[0]["w0"].shape[0])
    arrays = evidence_program(
        apply,
        batch,
        jnp.asarray(np.asarray(steps, dtype=np.int64)),
        vectorize=vectorize,
        mesh=mesh,
        static_steps=static_checkpoints(steps) if static_steps else None,
        real=bool(real),
        cg_tol=float(cg_tol),
        maxiter=10 * p,
        batch_size=batch_size,
        tol=float(tol),
        passes=int(passes),
    )
    arrays = jax.device_get(arrays)
    return [
        _evidence_from(jax.tree.map(lambda a, j=j: a[j], arrays), problem, steps, tol)
        for j, problem in enumerate(problems)
    ]


def ft_evidence(
    apply,
    params,
    X,
    y,
    *,
    lam: float = 0.05,
    lr: float | None = None,
    lr_fraction: float = 0.9,
    steps=(1, 10, 100, 1000),
    real: bool = True,
    cg_tol: float = 1e-12,
    batch_size: int | None = None,
    design: ff.FTDesign | None = None,
    pad_to: int | None = None,
    info: dict | None = None,
    tol: float = STATIONARY_TOL,
    max_steps: int = MAX_STEPS,
    passes: int = PILOT_PASSES,
) -> FTEvidence:
    """Expand, solve and train everything the FT checks need, for S and every S\\i.

    One compiled program per (``apply``, n, p, number of checkpoints, ``real``): sweeping
    ``lam``, ``lr``, the design or the checkpoint values never recompiles. Many problems
    run as one compiled program with :func:`ft_evidence_batch`.

    Args:
      apply: ``apply(w, x) -> logit``, ``w`` a flat (p,) vector.
      params: pre-trained flat weights ``w0``.
      X, y: task data, labels in {-1, +1}.
      lam: the pull toward w0 (L2-SP); the theorems need ``Lam > 0``, which ``lam > 0``
        guarantees for the Gauss-Newton curvature.
      lr: GD step, shared by the Taylor GD and the real network; default :func:`path_lr`
        (``lr_fraction`` over the largest of the Gauss-Newton ``lambda_max`` over S and every
        S\\i and the true Hessian's ``lambda_max`` on S at w0 and along ``passes`` pilot runs).
      lr_fraction: the step as a fraction of ``1 / lambda_max`` when ``lr`` is not given.
      steps: GD checkpoints.
      real: also fine-tune the real network (GD on the true loss) on every mask.
      cg_tol: relative residual at which conjugate gradients stop.
      batch_size: fine-tune the real network's masks in chunks of this size (memory).
      design: a controlled design (:class:`~stabtheory.full_finetuning.FTDesign`: zero-sum tilt,
        curvature-matched shift, loss scaling), applied to the Taylor model and the real
        network alike. ``lam`` and ``lr`` are the plain problem's: the loss-scaling control
        runs ``scale * lam`` and ``lr / scale`` (the default ``lr`` scales by itself).
        Every reported quantity (``rho``, ``Lam``, ``beta``, losses, ``config["lam"]``,
        ``config["lr"]``) is the designed problem's.
      pad_to: run the compiled program of this sample size (>= n), padding with samples of
        weight zero in every mask, so that several sizes share one compilation; the
        results are those of the unpadded problem (up to rounding).
      info: extra entries of ``config``.
      tol, max_steps, passes: the real runs' stationarity tolerance and step cap after the
        last checkpoint, and the default step's pilot passes (:func:`ft_evidence_batch`).
    """
    problem = FTProblem(params, X, y, lam, lr, lr_fraction, design, info)
    return ft_evidence_batch(
        apply,
        [problem],
        steps=steps,
        real=real,
        cg_tol=cg_tol,
        batch_size=batch_size,
        pad_to=pad_to,
        tol=tol,
        max_steps=max_steps,
        passes=passes,
    )[0]
