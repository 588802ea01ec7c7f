"""Which MSI pixels lie on tissue: the background rule used before registration and pairing.

Default rule, on the summed intensity ``I`` of each pixel's features (the m/z bins that
were read; raw intensities from ``layers["raw"]`` when the reader normalised ``X``; log or
standardised values first put back on a linear scale, and each feature weighed by its
on-tissue level so that units do not matter: ``_intensity_scale.pixel_signal``):

1. Otsu's threshold on ``log(I)`` splits the pixels into provisional tissue and
   background (only when ``log(I)`` is clearly bimodal: Otsu's between-class share of
   the variance at least ``MIN_SEPARATION``; a raster wholly on tissue keeps every pixel
   with signal).
2. Along the edge (pixels with both classes among themselves and their 8 neighbours),
   a pixel is on tissue when ``I`` is above half-way between the background level (median
   of the provisional background) and the tissue level around it (geometric mean of the
   provisional tissue pixels within ``LOCAL_RADIUS_PX`` pixels that are off that band:
   clearly inside; partly covered edge pixels would pull the level down). A pixel that straddles
   the tissue edge gets signal in proportion to the tissue it covers, so this
   half-maximum rule puts the edge where the pixel centre crosses the outline - the same
   rule that marks a Visium spot in tissue - whatever the local tissue brightness. A bare
   Otsu cut sits lower and admits a rim of edge pixels, which makes the MSI tissue look a
   percent or two larger than it is (and the fitted scale as much too small).
3. A single background pixel whose 8 neighbours are all tissue is a dropout: tissue.

The features are used rather than the whole-spectrum ``obs["tic"]`` because off-tissue
pixels carry strong matrix peaks that can make their whole-spectrum TIC as high as on
tissue. Pixels without any signal are always background. Users override with a boolean
mask (or an ``obs`` column) or a threshold on ``I``.
"""

from __future__ import annotations

from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd

from ._intensity_scale import linear_intensities, pixel_signal
from ._partial_volume import edge_shares

MIN_SEPARATION = 0.75  # Otsu effectiveness; a single normal distribution scores 2/pi = 0.64
LOCAL_RADIUS_PX = 3.0  # neighbourhood for the local tissue level (pixels)
_CHUNK = 200_000  # pixels per KD-tree query, to bound memory on large rasters
_NEIGHBOUR_PX = 1.5  # the 8 neighbours of a raster pixel


@dataclass
class TissueMask:
    """The on-tissue pixels and how they were chosen.

    ``share``: how much of each pixel the tissue covers (``_partial_volume``), 0 / 1 off the
    edge; ``None`` where it cannot be read from the intensities, with the reason in
    ``share_rule``.
    """

    mask: np.ndarray
    rule: str
    threshold: float | None = None
    share: np.ndarray | None = None
    share_rule: str = "no partial-volume shares"


def otsu(values: np.ndarray, bins: int = 256) -> tuple[float, float]:
    """Otsu threshold of ``values`` and its effectiveness (between-class / total variance)."""
    values = values[np.isfinite(values)]
    total_var = float(values.var())
    if values.size < 2 or total_var == 0:
        return float(values.max(initial=0.0)), 0.0
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centres)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2 / w0[-1] ** 2
    k = int(np.argmax(between[:-1]))
    return float(edges[k + 1]), float(between[k] / total_var)


def tissue_mask(
    msi: ad.AnnData,
    mask: np.ndarray | pd.Series | str | None = None,
    threshold: float | None = None,
) -> TissueMask:
    """Choose the on-tissue MSI pixels.

    Parameters
    ----------
    msi
        Pixels x features AnnData.
    mask
        Boolean array (one per pixel) or the name of a boolean ``obs`` column: used as is.
    threshold
        Keep pixels whose summed feature intensity is above this value.

    Returns
    -------
    :class:`TissueMask` with the boolean mask, the rule in words and the threshold used.
    """
    n = msi.n_obs
    if mask is not None and threshold is not None:
        raise ValueError("Give either msi_mask or tic_threshold, not both.")
    no_share = "0 / 1 edge: {} (no raw-intensity split to read partial-volume shares from)"
    if mask is not None:
        if isinstance(mask, str):
            if mask not in msi.obs:
                raise KeyError(f"msi_mask={mask!r} is not a column of msi.obs (columns: {list(msi.obs.columns)}).")
            values = msi.obs[mask].to_numpy()
            rule = f"obs[{mask!r}]"
        else:
            values = np.asarray(mask)
            rule = "user mask"
        if values.shape != (n,) or values.dtype != bool:
            raise ValueError(f"msi_mask must be {n} booleans (one per MSI pixel), got dtype {values.dtype}, shape {values.shape}.")
        return TissueMask(values.copy(), rule, share_rule=no_share.format("a given mask"))

    nothing = "all pixels (no feature intensities to tell tissue from background)"
    if msi.n_vars == 0 or msi.X is None:
        return TissueMask(np.ones(n, dtype=bool), nothing, share_rule=no_share.format("no MSI intensities"))
    linear, scale = linear_intensities(msi)
    if threshold is not None:
        total = np.asarray(linear.sum(axis=1)).ravel()
        return TissueMask(
            total > threshold,
            f"summed feature intensity > {threshold:g} (user threshold; {scale})",
            float(threshold),
            share_rule=no_share.format("a given threshold"),
        )
    total = pixel_signal(linear)
    if not np.any(total > 0):
        return TissueMask(np.ones(n, dtype=bool), nothing, share_rule=no_share.format("no MSI intensities"))
    signal = total > 0
    # Otsu on the log of the totals: the same cut whatever unit or per-feature scale they carry
    log_total = np.log(np.where(signal, total, 1.0))
    cut, separation = otsu(log_total[signal])
    if separation < MIN_SEPARATION:
        return TissueMask(
            signal,
            f"all pixels with signal (intensities not bimodal, Otsu separation {separation:.2f}; {scale})",
            0.0,
            share_rule=no_share.format("intensities not bimodal"),
        )
    value = float(np.exp(cut))
    provisional = total > value
    points = _raster_points(msi)
    mask = _half_maximum(points, total, provisional)
    share = edge_shares(points, total, mask)
    n_edge = int(((share > 0) & (share < 1)).sum())
    return TissueMask(
        mask,
        f"summed feature intensity above half-way between background and local tissue level "
        f"(Otsu on log: {value:.4g}, separation {separation:.2f}; {scale})",
        value,
        share=share,
        share_rule=f"partial-volume shares of {n_edge} edge pixels from their signal between the local "
        f"background and tissue levels ({scale})",
    )


def _raster_points(msi: ad.AnnData) -> np.ndarray:
    """Pixel positions in raster units (one pixel = 1)."""
    from .._constants import SPATIAL_KEY
    from ._subsample import median_spacing

    if "x" in msi.obs and "y" in msi.obs:  # integer raster positions
        return msi.obs[["x", "y"]].to_numpy(np.float64)
    points = np.asarray(msi.obsm[SPATIAL_KEY], dtype=np.float64)[:, :2]
    return points / max(median_spacing(points), 1e-12)


def _half_maximum(points: np.ndarray, total: np.ndarray, provisional: np.ndarray) -> np.ndarray:
    """Steps 2 and 3 of the rule (see module notes); ``points`` in raster units."""
    from scipy.spatial import cKDTree

    background = float(np.median(total[~provisional]))
    all_tree = cKDTree(points)
    k_near = int(min(len(total), 9))
    # the edge band: pixels with both provisional classes among them and their 8 neighbours
    band = np.zeros(len(total), dtype=bool)
    for start in range(0, len(total), _CHUNK):
        block = slice(start, start + _CHUNK)
        dist, idx = all_tree.query(points[block], k=k_near, distance_upper_bound=_NEIGHBOUR_PX)
        near = np.isfinite(dist)
        cls = np.where(near, provisional[np.minimum(idx, len(total) - 1)], provisional[block][:, None])
        band[block] = cls.any(axis=1) & ~cls.all(axis=1)
    mask = provisional.copy()
    rows = np.flatnonzero(band)
    if rows.size:
        # the local tissue level from the pixels clearly inside (off the band): edge pixels
        # that the tissue covers partly are above Otsu's cut but dimmer than tissue, and in
        # the level they would pull the half-way cut down and admit a rim of them
        level = _local_level(points, total, provisional & ~band, rows)
        weak = ~np.isfinite(level)  # no clearly-inside pixel near (a thin strip): any tissue pixel
        if weak.any():
            level[weak] = _local_level(points, total, provisional, rows[weak])
        mask[rows] = np.isfinite(level) & (total[rows] > (background + level) / 2)
    # step 3: a single background pixel enclosed by tissue is a dropout, not a hole
    dist, idx = all_tree.query(points, k=k_near, distance_upper_bound=_NEIGHBOUR_PX)
    near = np.isfinite(dist[:, 1:])
    neighbours = np.where(near, mask[np.minimum(idx[:, 1:], len(total) - 1)], False)
    enclosed = ~mask & (near.sum(axis=1) == 8) & neighbours.all(axis=1, where=near)
    mask[enclosed] = True
    return mask


def _local_level(points: np.ndarray, total: np.ndarray, reference: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Geometric mean of ``total`` over the ``reference`` pixels within ``LOCAL_RADIUS_PX`` of each of ``rows`` (inf: none)."""
    from scipy.spatial import cKDTree

    ref = np.flatnonzero(reference)
    out = np.full(len(rows), np.inf)
    if ref.size == 0:
        return out
    log_ref = np.log(np.maximum(total[ref], 1e-300))
    tree = cKDTree(points[ref])
    k = int(min(len(ref), np.ceil(np.pi * (LOCAL_RADIUS_PX + 0.5) ** 2)))
    for start in range(0, len(rows), _CHUNK):
        block = rows[start : start + _CHUNK]
        dist, idx = tree.query(points[block], k=k, distance_upper_bound=LOCAL_RADIUS_PX + 1e-6)
        dist, idx = dist.reshape(len(block), -1), idx.reshape(len(block), -1)
        found = np.isfinite(dist)
        n_found = found.sum(axis=1)
        sums = np.where(found, log_ref[np.minimum(idx, len(ref) - 1)], 0.0).sum(axis=1)
        out[start : start + len(block)] = np.where(n_found > 0, np.exp(sums / np.maximum(n_found, 1)), np.inf)
    return out
