"""Where a modality measured: the convex hull of its points, grown by half a pitch."""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError


class Window:
    """The convex hull of a point set, grown by ``pad``: where that modality was measured.

    Rasters and capture areas are convex, so the hull of the measured points lies inside
    the true window whatever the tissue outline: points of the other modality outside it
    were not measured there and are left out of the comparison (see :func:`agreement`).
    ``points`` and ``pad`` are kept for those who draw the window (``_masks.hull_mask``).
    """

    def __init__(self, points: np.ndarray, pad: float):
        self.points = points
        try:
            self.equations = ConvexHull(points).equations  # unit normals, n . x + c <= 0 inside
        except QhullError:
            self.equations = None
        self.pad = pad

    def contains(self, points: np.ndarray) -> np.ndarray:
        """Which ``points`` lie inside the grown hull."""
        if self.equations is None:
            return np.ones(len(points), dtype=bool)
        eq = self.equations
        out = np.ones(len(points), dtype=bool)
        for start in range(0, len(eq), 64):  # bounded memory for hulls with many facets
            block = eq[start : start + 64]
            out &= (points @ block[:, :2].T + block[:, 2] <= self.pad).all(axis=1)
        return out
