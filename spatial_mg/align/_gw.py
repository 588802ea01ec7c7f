"""Solve the (fused) Gromov-Wasserstein coupling with moscot's ``AlignmentProblem``.

Both point sets are in micrometres, so they are centred and divided by one common
length (not each by its own spread, as ``normalize_spatial=True`` would): the
geometries keep their true relative size, which matters when the MSI tissue covers only
part of the spots. The costs are used unscaled (``scale_cost=1``) for the same reason.
Pure GW (no shared features) needs moscot's linear term switched off: ``joint_attr=None``
would otherwise run PCA on ``X`` of the stacked modalities, which share no features.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import SPATIAL_KEY

_MODALITY = "_spatial_mg_modality"
_SHARED = "_spatial_mg_shared"


class TransportDiverged(RuntimeError):
    """moscot returned an empty or non-finite plan."""


@dataclass
class GWSolution:
    """The coupling (MSI subsample x STR subsample) and how it was obtained."""

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
        raise RuntimeError(
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
    str_xy: np.ndarray,
    *,
    msi_features: np.ndarray | None = None,
    str_features: np.ndarray | None = None,
    alpha: float | None = None,
    epsilon: float = 1e-2,
    tau_a: float = 1.0,
    tau_b: float = 1.0,
    rank: int = -1,
    device: str | None = None,
    max_iterations: int | None = None,
    solve_kwargs: dict | None = None,
) -> GWSolution:
    """Couple MSI points (sources) with STR points (targets) by (fused) GW.

    Parameters
    ----------
    msi_xy, str_xy
        Coordinates in micrometres (a few thousand points at most: the plan is dense).
    msi_features, str_features
        Shared features (same columns on both sides) for the fused linear term.
    alpha
        Weight of the quadratic (geometry) term; 1 is pure GW, forced without features.
    epsilon, tau_a, tau_b, rank, max_iterations
        moscot ``AlignmentProblem.solve`` arguments (entropic regularisation, unbalancedness
        on the MSI / STR side, low-rank rank or -1, outer GW iterations).
    device
        ``None`` (GPU when JAX sees one), ``"cpu"`` or ``"gpu"``.
    solve_kwargs
        Further keyword arguments for ``AlignmentProblem.solve``.
    """
    import jax
    from moscot.problems.space import AlignmentProblem

    fused = msi_features is not None
    alpha = 1.0 if not fused else (0.5 if alpha is None else float(alpha))
    if fused and not 0 < alpha < 1:
        raise ValueError(f"With shared features alpha must be in (0, 1), got {alpha}.")

    centre_x, centre_y = msi_xy.mean(axis=0), str_xy.mean(axis=0)
    length = float(np.sqrt(((str_xy - centre_y) ** 2).sum(axis=1).mean()))
    coords = np.vstack([(msi_xy - centre_x) / length, (str_xy - centre_y) / length])
    labels = pd.Categorical(["msi"] * len(msi_xy) + ["str"] * len(str_xy), categories=["msi", "str"])
    adata = ad.AnnData(
        X=np.zeros((len(coords), 1), dtype=np.float32),
        obs=pd.DataFrame({_MODALITY: labels}, index=[str(i) for i in range(len(coords))]),
    )
    adata.obsm[SPATIAL_KEY] = coords
    prepare = {"batch_key": _MODALITY, "spatial_key": SPATIAL_KEY, "normalize_spatial": False, "cost": None}
    if fused:
        feats = np.vstack([msi_features, str_features]).astype(np.float64)
        sd = feats.std(axis=0)
        feats = (feats - feats.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
        # one common scale for the linear term: unit variance per feature, averaged over features
        adata.obsm[_SHARED] = feats / np.sqrt(max(feats.shape[1], 1))
        prepare["joint_attr"] = {"attr": "obsm", "key": _SHARED}
    else:
        prepare["joint_attr"] = None
        prepare["xy_callback"] = _no_linear_term

    kwargs = {"alpha": alpha, "epsilon": epsilon, "tau_a": tau_a, "tau_b": tau_b, "rank": rank, "scale_cost": 1.0}
    if rank > 0:
        kwargs["epsilon"] = 0.0 if epsilon is None else epsilon
    if max_iterations is not None:
        kwargs["max_iterations"] = int(max_iterations)
    kwargs.update(solve_kwargs or {})

    dev = jax_device(device)  # before any work: a missing GPU is the user's to fix
    start = time.perf_counter()
    with jax.default_device(dev), quiet_moscot():
        problem = AlignmentProblem(adata).prepare(**prepare)
        problem = problem.solve(**kwargs)
        sol = problem.solutions[("msi", "str")]
        plan = np.asarray(sol.transport_matrix, dtype=np.float64)
    seconds = time.perf_counter() - start
    if not np.all(np.isfinite(plan)) or plan.sum() <= 0:
        raise TransportDiverged(
            "moscot returned an empty or non-finite transport plan (the solver diverged). "
            "Try a larger epsilon, or method='landmarks'."
        )
    return GWSolution(plan=plan, converged=bool(sol.converged), cost=float(sol.cost), seconds=seconds, device=str(dev.platform))
