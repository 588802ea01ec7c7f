"""Everything moscot: the solver settings, the AnnData it reads, the JAX device, the solve.

Both point sets are in micrometres, so for the registration's Gromov-Wasserstein solve they
are centred and divided by one common length (not each by its own spread, as
``normalize_spatial=True`` would): the geometries keep their true relative size, which
matters when the MSI tissue covers only part of the spots. The costs are used unscaled
(``scale_cost=1``) for the same reason. Pure GW (no shared features) needs moscot's linear
term switched off: ``joint_attr=None`` would otherwise run PCA on ``X`` of the stacked
modalities, which share no features.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from dataclasses import dataclass, field, replace

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import SPATIAL_KEY
from .._errors import DeviceUnavailableError, RegistrationFailedError

MODALITY = "_spatial_mg_modality"  # obs column that tells moscot's two sides apart
MSI, RNA = "msi", "rna"  # its two values: moscot couples the first (sources) with the second
_SHARED = "_spatial_mg_shared"
RETRY_EPSILON_FACTOR = 5  # a diverged solve is retried once this much smoother


@dataclass(frozen=True)
class TransportSettings:
    """How the registration's transport plan is prepared and solved (moscot's ``prepare`` / ``solve``).

    Attributes
    ----------
    n_subsample
        Points per side for the solve (an even spatial subsample): the plan is dense.
    alpha
        Weight of the geometry against shared features in fused GW (``None``: 0.5); pure
        GW (no shared features) always uses 1.
    epsilon, tau_a, tau_b, rank, max_iterations
        ``AlignmentProblem.solve``: entropic regularisation, unbalancedness on the MSI /
        RNA side (< 1 tolerates partial overlap), low-rank rank (-1: full rank) and outer
        iterations (``None``: moscot's default).
    device
        JAX device: ``None`` uses a GPU when JAX sees one, else the CPU; ``"cpu"`` or ``"gpu"``.
    solve_kwargs
        Anything else ``AlignmentProblem.solve`` accepts (they win over the above).
    """

    n_subsample: int = 500
    alpha: float | None = None
    epsilon: float = 1e-2
    tau_a: float = 0.9
    tau_b: float = 0.9
    rank: int = -1
    max_iterations: int | None = None
    device: str | None = None
    solve_kwargs: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "solve_kwargs", dict(self.solve_kwargs or {}))  # a copy: the caller's dict may change

    def smoother(self) -> TransportSettings:
        """The same settings with a larger epsilon: the one retry after a diverged solve."""
        return replace(self, epsilon=RETRY_EPSILON_FACTOR * self.epsilon)

    def solve_arguments(self, fused: bool) -> dict:
        """Keyword arguments for ``AlignmentProblem.solve`` (with or without shared features)."""
        alpha = 1.0 if not fused else (0.5 if self.alpha is None else float(self.alpha))
        if fused and not 0 < alpha < 1:
            raise ValueError(f"With shared features alpha must be in (0, 1), got {alpha}.")
        kwargs = {
            "alpha": alpha,
            "epsilon": self.epsilon,
            "tau_a": self.tau_a,
            "tau_b": self.tau_b,
            "rank": self.rank,
            "scale_cost": 1.0,
        }
        if self.rank > 0:
            kwargs["epsilon"] = 0.0 if self.epsilon is None else self.epsilon
        if self.max_iterations is not None:
            kwargs["max_iterations"] = int(self.max_iterations)
        kwargs.update(self.solve_kwargs)
        return kwargs


def stacked(msi_points: np.ndarray, rna_points: np.ndarray, key: str) -> ad.AnnData:
    """The one AnnData moscot reads: MSI rows, then RNA rows, told apart by ``obs[MODALITY]``.

    The points (one row each) go to ``obsm[key]``; ``X`` is an empty placeholder column.
    """
    n = len(msi_points) + len(rna_points)
    labels = pd.Categorical([MSI] * len(msi_points) + [RNA] * len(rna_points), categories=[MSI, RNA])
    adata = ad.AnnData(
        X=np.zeros((n, 1), dtype=np.float32),
        obs=pd.DataFrame({MODALITY: labels}, index=[str(i) for i in range(n)]),
    )
    adata.obsm[key] = np.vstack([msi_points, rna_points])
    return adata


class TransportDiverged(RegistrationFailedError):
    """moscot returned an empty or non-finite plan."""


@dataclass
class GWSolution:
    """The coupling (MSI subsample x RNA subsample) and how it was obtained."""

    plan: np.ndarray
    converged: bool
    cost: float
    seconds: float
    device: str


def jax_device(device: str | None):
    """The JAX device to solve on: ``None`` picks a GPU when JAX sees one, else the CPU."""
    import jax

    if device is None:
        for kind in ("gpu", "cuda", "rocm"):
            with contextlib.suppress(RuntimeError):
                found = jax.devices(kind)
                if found:
                    return found[0]
        return jax.devices("cpu")[0]
    if device not in ("cpu", "gpu", "cuda", "rocm", "tpu"):
        raise ValueError(f"device must be None, 'cpu' or 'gpu', got {device!r}.")
    try:
        return jax.devices(device)[0]
    except RuntimeError as err:
        raise DeviceUnavailableError(
            f"JAX sees no {device!r} device ({err}). Install a GPU build of jax (e.g. jax[cuda12]) "
            "or pass device='cpu'."
        ) from None


@contextlib.contextmanager
def quiet_moscot():
    """Silence moscot's per-solve lines (printed to stdout) and its warnings; convergence is in the QC."""
    log = logging.getLogger("moscot._logging")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        log.setLevel(level)


def _no_linear_term(*args, **kwargs) -> None:
    """moscot callback that leaves the linear term empty: pure Gromov-Wasserstein."""
    return None


def solve_gw(
    msi_xy: np.ndarray,
    rna_xy: np.ndarray,
    settings: TransportSettings,
    *,
    msi_features: np.ndarray | None = None,
    rna_features: np.ndarray | None = None,
) -> GWSolution:
    """Couple MSI points (sources) with RNA spots (targets) by (fused) GW.

    Parameters
    ----------
    msi_xy, rna_xy
        Coordinates in micrometres (a few thousand points at most: the plan is dense).
    settings
        The solver settings (``n_subsample`` is the caller's: these points are used as given).
    msi_features, rna_features
        Shared features (same columns on both sides) for the fused linear term.
    """
    import jax
    from moscot.problems.space import AlignmentProblem

    fused = msi_features is not None
    kwargs = settings.solve_arguments(fused)
    centre_x, centre_y = msi_xy.mean(axis=0), rna_xy.mean(axis=0)
    length = float(np.sqrt(((rna_xy - centre_y) ** 2).sum(axis=1).mean()))
    adata = stacked((msi_xy - centre_x) / length, (rna_xy - centre_y) / length, SPATIAL_KEY)
    prepare = {"batch_key": MODALITY, "spatial_key": SPATIAL_KEY, "normalize_spatial": False, "cost": None}
    if fused:
        feats = np.vstack([msi_features, rna_features]).astype(np.float64)
        sd = feats.std(axis=0)
        feats = (feats - feats.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        # one common scale for the linear term: unit variance per feature, averaged over features
        adata.obsm[_SHARED] = feats / np.sqrt(max(feats.shape[1], 1))
        prepare["joint_attr"] = {"attr": "obsm", "key": _SHARED}
    else:
        prepare["joint_attr"] = None
        prepare["xy_callback"] = _no_linear_term

    dev = jax_device(settings.device)  # before any work: a missing GPU is the user's to fix
    start = time.perf_counter()
    with jax.default_device(dev), quiet_moscot():
        problem = AlignmentProblem(adata).prepare(**prepare)
        problem = problem.solve(**kwargs)
        sol = problem.solutions[(MSI, RNA)]
        plan = np.asarray(sol.transport_matrix, dtype=np.float64)
    seconds = time.perf_counter() - start
    if not np.all(np.isfinite(plan)) or plan.sum() <= 0:
        raise TransportDiverged(
            "moscot returned an empty or non-finite transport plan (the solver diverged). "
            "Try a larger epsilon, or method='landmarks'."
        )
    return GWSolution(plan=plan, converged=bool(sol.converged), cost=float(sol.cost), seconds=seconds, device=str(dev.platform))
