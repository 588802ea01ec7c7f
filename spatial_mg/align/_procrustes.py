"""Weighted Procrustes: a similarity (or full affine) transform from weighted correspondences.

Correspondences come either as paired points with weights or as a transport plan (dense
or sparse, sources x targets): every plan entry ``P[i, j]`` asks that source ``i`` land on
target ``j`` with weight ``P[i, j]``. Transforms are 3 x 3 homogeneous matrices acting on
column vectors, ``y = A[:2, :2] @ x + A[:2, 2]``, returned as :class:`Pose`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ._pose import Pose


def _moments(src: np.ndarray, dst: np.ndarray, plan) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Plan-weighted centroids, centred sources, their weights and the cross-covariance."""
    if sp.issparse(plan):
        plan = plan.tocsr()
        a = np.asarray(plan.sum(axis=1)).ravel()
        b = np.asarray(plan.sum(axis=0)).ravel()
    else:
        plan = np.asarray(plan, dtype=np.float64)
        a, b = plan.sum(axis=1), plan.sum(axis=0)
    mass = float(a.sum())
    if not np.isfinite(mass) or mass <= 0:
        raise ValueError("The correspondence weights are all zero (or not finite): nothing to fit a transform to.")
    mu_x = a @ src / mass
    mu_y = b @ dst / mass
    xc = src - mu_x
    # X^T P Y without forming P densely when it is sparse
    cross = xc.T @ np.asarray(plan @ (dst - mu_y))
    return mu_x, mu_y, xc, a, cross


def _as_plan(n: int, m: int, weights, plan):
    if plan is not None:
        if plan.shape != (n, m):
            raise ValueError(f"plan has shape {plan.shape}, expected ({n}, {m}) (sources x targets).")
        return plan
    if n != m:
        raise ValueError(f"Paired points need as many sources as targets, got {n} and {m}.")
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    return sp.diags(w)


def fit_similarity(
    src: np.ndarray,
    dst: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    plan=None,
    reflection: bool | None = None,
    scale: bool = True,
    symmetric_scale: bool = False,
) -> Pose:
    """Least-squares similarity (rotation, optional reflection, uniform scale, translation).

    Parameters
    ----------
    src, dst
        Source (n x 2) and target (m x 2) points.
    weights
        Per-pair weights when ``src[i]`` pairs with ``dst[i]`` (``plan`` not given).
    plan
        Sources x targets correspondence weights (dense or scipy sparse).
    reflection
        ``None``: whichever handedness fits best; ``True`` / ``False``: force a mirrored /
        proper linear part (used to test both handednesses of one plan).
    scale
        Fit the uniform scale; ``False`` keeps it at 1 (a rigid motion).
    symmetric_scale
        Use the ratio of the weighted spreads, ``sqrt(sum w |y|^2 / sum w |x|^2)`` (Horn
        1987), instead of the regression of targets on sources: it treats both sides alike,
        so it is unbiased when both carry the same kind of error (paired barycentres).

    Returns
    -------
    The :class:`Pose` mapping ``src`` onto ``dst``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    plan = _as_plan(len(src), len(dst), weights, plan)
    mu_x, mu_y, xc, a, cross = _moments(src, dst, plan)
    u, s, vt = np.linalg.svd(cross)
    handed = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    d = 1.0 if reflection is None else (-1.0 if reflection else 1.0) * handed
    flip = np.diag([1.0, d])
    rot = vt.T @ flip @ u.T
    var_x = float(a @ (xc**2).sum(axis=1))
    if var_x <= 0:
        raise ValueError("The weighted source points all coincide: a transform is undetermined.")
    if not scale:
        k = 1.0
    elif symmetric_scale:
        var_y = float(np.asarray(plan.sum(axis=0)).ravel() @ ((dst - mu_y) ** 2).sum(axis=1))
        k = float(np.sqrt(var_y / var_x))
    else:
        k = float((s * np.diag(flip)).sum() / var_x)
    out = np.eye(3)
    out[:2, :2] = k * rot
    out[:2, 2] = mu_y - k * rot @ mu_x
    return Pose(out)


def fit_affine(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None, *, plan=None) -> Pose:
    """Least-squares full affine transform (6 parameters); arguments as :func:`fit_similarity`."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    plan = _as_plan(len(src), len(dst), weights, plan)
    mu_x, mu_y, xc, a, cross = _moments(src, dst, plan)
    gram = xc.T @ (xc * a[:, None])
    if np.linalg.cond(gram) > 1e12:
        raise ValueError("The weighted source points are collinear: a full affine transform is undetermined.")
    linear = np.linalg.solve(gram, cross).T
    out = np.eye(3)
    out[:2, :2] = linear
    out[:2, 2] = mu_y - linear @ mu_x
    return Pose(out)


def fit_plan(
    src: np.ndarray,
    dst: np.ndarray,
    plan: np.ndarray,
    *,
    reflection: bool | None = None,
    scale: bool = True,
) -> Pose:
    """Similarity from a transport plan through barycentric pairs, both ways.

    Each source is paired with the plan-weighted mean of its targets and each target with
    that of its sources (weights: their plan mass); the scale is the ratio of spreads. An
    entropic plan spreads every point over a neighbourhood: fitting it entry by entry would
    read that spread as a shrinkage, pairing means does not.
    """
    plan = np.asarray(plan, dtype=np.float64)
    a, b = plan.sum(axis=1), plan.sum(axis=0)
    rows, cols = a > 0, b > 0
    dst_mean = (plan[rows] @ dst) / a[rows, None]
    src_mean = (plan[:, cols].T @ src) / b[cols, None]
    x = np.vstack([src[rows], src_mean])
    y = np.vstack([dst_mean, dst[cols]])
    w = np.concatenate([a[rows], b[cols]])
    return fit_similarity(x, y, w, reflection=reflection, scale=scale, symmetric_scale=True)
