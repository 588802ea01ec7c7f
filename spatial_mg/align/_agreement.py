"""How well two tissues agree where both modalities measured: the score that picks a pose."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

MISMATCH_PENALTY = 2.0  # cost of a bare pixel or spot in the common area, against +1 per matched one


class Window:
    """The convex hull of a point set, grown by ``pad``: where that modality was measured.

    Rasters and capture areas are convex, so the hull of the measured points lies inside
    the true window whatever the tissue outline: points of the other modality outside it
    were not measured there and are left out of the comparison (see :func:`agreement`).
    """

    def __init__(self, points: np.ndarray, pad: float):
        from scipy.spatial import ConvexHull, QhullError

        try:
            self.equations = ConvexHull(points).equations  # unit normals, n . x + c <= 0 inside
        except QhullError:
            self.equations = None
        self.pad = pad

    def contains(self, points: np.ndarray) -> np.ndarray:
        if self.equations is None:
            return np.ones(len(points), dtype=bool)
        eq = self.equations
        out = np.ones(len(points), dtype=bool)
        for start in range(0, len(eq), 64):  # bounded memory for hulls with many facets
            block = eq[start : start + 64]
            out &= (points @ block[:, :2].T + block[:, 2] <= self.pad).all(axis=1)
        return out


def agreement(
    src_reg: np.ndarray,
    dst: np.ndarray,
    radius: float,
    src_keep: np.ndarray,
    dst_keep: np.ndarray,
    dst_tree: cKDTree | None = None,
) -> tuple[float, int, int]:
    """Score a pose by how the two tissues agree where both modalities measured.

    Points inside the other modality's window count +1 when a counterpart lies within
    ``radius`` and -``MISMATCH_PENALTY`` when none does; the sum is divided by the number
    of all points. A right pose matches everything it overlaps; a wrong one that fits the
    outline in places leaves pixels or spots bare; a pose that overlaps little scores
    little. Returns the score, the matched and the compared point counts.
    """
    dst_tree = dst_tree or cKDTree(dst)
    d_src, _ = dst_tree.query(src_reg[src_keep], distance_upper_bound=radius)
    d_dst, _ = cKDTree(src_reg).query(dst[dst_keep], distance_upper_bound=radius)
    matched = int(np.isfinite(d_src).sum() + np.isfinite(d_dst).sum())
    compared = int(src_keep.sum() + dst_keep.sum())
    score = (matched - MISMATCH_PENALTY * (compared - matched)) / (len(src_reg) + len(dst))
    return float(score), matched, compared
