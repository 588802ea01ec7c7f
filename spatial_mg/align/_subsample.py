"""Spatially even subsampling: one point per grid cell, the cell size chosen to keep about n.

Transport solvers scale quadratically, so registration is solved on a few hundred to a
few thousand points per side. An even subsample (rather than a random one) keeps the
density flat, so the tissue outline - what a geometry-only registration aligns - is
kept sharp, and the result does not depend on a random seed.
"""

from __future__ import annotations

import numpy as np


def _cells(points: np.ndarray, size: float) -> np.ndarray:
    cell = np.floor((points - points.min(axis=0)) / size).astype(np.int64)
    return cell[:, 0] * (int(cell[:, 1].max()) + 1) + cell[:, 1]


def even_subsample(points: np.ndarray, n: int) -> np.ndarray:
    """Indices of about ``n`` points spread evenly over ``points`` (all of them when fewer).

    Each occupied square cell contributes the point nearest its centre; the cell size is
    bisected until the number of occupied cells is within 10 % of ``n``.
    """
    points = np.asarray(points, dtype=np.float64)
    if len(points) <= n:
        return np.arange(len(points))
    extent = np.ptp(points, axis=0)
    lo, hi = float(max(extent.max(), 1e-12)) / (4 * len(points)), float(max(extent.max(), 1e-12))
    keys = _cells(points, hi)
    size = hi
    for _ in range(40):
        size = np.sqrt(lo * hi)
        keys = _cells(points, size)
        count = np.unique(keys).size
        if abs(count - n) <= 0.1 * n:
            break
        if count > n:
            lo = size
        else:
            hi = size
    centre = (np.floor((points - points.min(axis=0)) / size) + 0.5) * size + points.min(axis=0)
    dist = ((points - centre) ** 2).sum(axis=1)
    order = np.lexsort((dist, keys))
    first = np.r_[True, keys[order][1:] != keys[order][:-1]]
    return np.sort(order[first])


def median_spacing(points: np.ndarray) -> float:
    """Median distance from each point to its nearest neighbour (the lattice pitch for a grid)."""
    from scipy.spatial import cKDTree

    points = np.asarray(points, dtype=np.float64)
    if len(points) < 2:
        return 0.0
    d, _ = cKDTree(points).query(points, k=2)
    return float(np.median(d[:, 1]))
