"""Area shared by a circular spot and a square pixel, for overlap-weighted averages."""

from __future__ import annotations

import numpy as np

# Gauss-Legendre nodes on [-1, 1]: the chord length is smooth except where the circle
# meets the square's edges, so eight nodes give areas to about a percent
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)


def disk_square_overlap(dx: np.ndarray, dy: np.ndarray, radius: float | np.ndarray, half: float) -> np.ndarray:
    """Area of a disk intersected with an axis-aligned square, vectorised over pairs.

    Parameters
    ----------
    dx, dy
        Disk centre relative to the square's centre (same units as ``radius``).
    radius
        Disk radius (scalar or one per pair).
    half
        Half the square's side.

    Returns
    -------
    Overlap areas, one per pair (0 where they do not touch).
    """
    dx = np.asarray(dx, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    r = np.broadcast_to(np.asarray(radius, dtype=np.float64), dx.shape)
    lo = np.maximum(-half, dx - r)
    hi = np.minimum(half, dx + r)
    width = np.clip(hi - lo, 0.0, None)
    mid = (lo + hi) / 2
    x = mid[:, None] + width[:, None] / 2 * _NODES[None, :]
    reach = np.sqrt(np.clip(r[:, None] ** 2 - (x - dx[:, None]) ** 2, 0.0, None))
    chord = np.clip(np.minimum(half, dy[:, None] + reach) - np.maximum(-half, dy[:, None] - reach), 0.0, None)
    return (chord * _WEIGHTS[None, :]).sum(axis=1) * width / 2
