"""How much of each MSI edge pixel the tissue covers: the partial-volume share, from the pixel's own signal.

A MALDI pixel's laser shot ablates whatever lies under it, so a pixel that straddles the
tissue edge carries tissue signal in proportion to the tissue it covers. The background
rule (``_background``) turns that into tissue / background at the half-way level, which
throws away where within the 75-100 um pixel the edge runs. Here the same signal (the
features on a linear scale, each weighed by its on-tissue level:
``_intensity_scale.pixel_signal``) is read as a share instead:

    share = (I - background level) / (tissue level - background level), clipped to [0, 1],

for the pixels of the edge band (pixels with both classes of the tissue mask among
themselves and their 8 neighbours). Both levels are local medians (within
``LOCAL_RADIUS_PX``) of the pixels clearly on one side - off the band, so that no edge
pixel enters its own reference - because the tissue's brightness changes with its content
and the matrix background can drift across a raster. Pixels off the band are 1 (tissue)
or 0 (background). The shares weigh the MSI pixels in the soft outline mask (``_masks``,
``_refine``), which then puts the edge between pixel centres where the signal says it is.

The whole-spectrum ``obs["tic"]`` is not used: off tissue the matrix peaks can make it as
high as on tissue (``_background``), so it does not measure the tissue covered.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

LOCAL_RADIUS_PX = 3.0  # neighbourhood of the local levels (pixels)
_NEIGHBOUR_PX = 1.5  # the 8 neighbours of a raster pixel
_MIN_REFERENCE = 3  # clearly-in / clearly-out pixels needed for a local level, else the global one


def edge_shares(points_px: np.ndarray, signal: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The share of each pixel on tissue (module notes).

    Parameters
    ----------
    points_px
        Pixel positions in raster units (one pixel = 1), n x 2.
    signal
        Per-pixel tissue signal, linear in intensity (``pixel_signal``).
    mask
        The tissue mask of the background rule (booleans).

    Returns
    -------
    Shares in [0, 1], one per pixel: 1 / 0 off the edge band, the signal's share on it.
    """
    mask = np.asarray(mask, dtype=bool)
    share = mask.astype(np.float64)
    n = len(mask)
    if n == 0 or mask.all() or not mask.any():
        return share
    tree = cKDTree(points_px)
    k_near = int(min(n, 9))
    dist, idx = tree.query(points_px, k=k_near, distance_upper_bound=_NEIGHBOUR_PX)
    near = np.isfinite(dist)
    cls = np.where(near, mask[np.minimum(idx, n - 1)], mask[:, None])
    band = cls.any(axis=1) & ~cls.all(axis=1)
    clearly_in, clearly_out = mask & ~band, ~mask & ~band
    if not band.any() or clearly_in.sum() < _MIN_REFERENCE or clearly_out.sum() < _MIN_REFERENCE:
        return share
    rows = np.flatnonzero(band)
    tissue_level = _local_median(points_px, signal, clearly_in, rows)
    background_level = _local_median(points_px, signal, clearly_out, rows)
    span = tissue_level - background_level
    ok = span > 0  # a band pixel whose tissue is no brighter than its background keeps its class
    share[rows[ok]] = np.clip((signal[rows[ok]] - background_level[ok]) / span[ok], 0.0, 1.0)
    return share


def _local_median(points_px: np.ndarray, signal: np.ndarray, reference: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Median signal of the ``reference`` pixels within ``LOCAL_RADIUS_PX`` of each pixel in ``rows``.

    Where fewer than ``_MIN_REFERENCE`` lie that close, the median of all reference pixels.
    """
    ref = np.flatnonzero(reference)
    values = signal[ref]
    overall = float(np.median(values))
    found = cKDTree(points_px[ref]).query_ball_point(points_px[rows], LOCAL_RADIUS_PX + 1e-6)
    return np.array([float(np.median(values[f])) if len(f) >= _MIN_REFERENCE else overall for f in found])

