"""Soft tissue masks: a point set drawn as an image that is 1 on its tissue and 0 off it.

Each point is spread over its lattice cell by a Gaussian blur of width ``sigma`` (at
least half the lattice pitch, so the lattice itself is smoothed away) and the result is
divided by the blurred density of a fully covered area. The half-way level then lies on
the outer edge of the outermost cells - where the tissue outline is, whatever the pitch -
so two masks of the same tissue drawn from different lattices (a square MSI raster, the
hexagonal Visium grid) coincide, and comparing masks is free of the bias that matching
point clouds point by point has (the outermost points of a coarser lattice lie further
inside the outline).

Images are sampled at ``origin + (col, row) * cell``; rows run along y.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._window import Window

_LEVEL_PERCENTILE = 90  # interior density: lattices are flat inside once blurred, lower at edges


class Grid:
    """A regular grid of sample positions covering a box."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray, cell: float):
        self.cell = float(cell)
        self.origin = np.asarray(lo, dtype=np.float64)
        n = np.ceil((np.asarray(hi) - self.origin) / self.cell).astype(int) + 1
        self.shape = (int(n[1]), int(n[0]))  # rows (y), cols (x)

    def positions(self) -> np.ndarray:
        """All sample positions, (rows * cols) x 2, row-major."""
        ys, xs = np.mgrid[0 : self.shape[0], 0 : self.shape[1]]
        return np.column_stack([xs.ravel(), ys.ravel()]) * self.cell + self.origin

    def index(self, points: np.ndarray) -> np.ndarray:
        """Fractional (row, col) image coordinates of ``points``, 2 x n for map_coordinates."""
        frac = (np.asarray(points) - self.origin) / self.cell
        return np.vstack([frac[:, 1], frac[:, 0]])


def density_mask(points: np.ndarray, grid: Grid, sigma: float, weights: np.ndarray | None = None) -> np.ndarray:
    """Soft mask of the area covered by ``points`` (see module notes).

    Each point is spread over its four nearest grid nodes (bilinear weights) before the
    blur: snapping it to the nearest node instead would move a lattice whose pitch is not
    a multiple of the grid cell by up to half a cell, in a pattern that beats at a
    wavelength far longer than the blur, and the ripple would move the outline.
    """
    frac = grid.index(points)
    base = np.floor(frac).astype(np.int64)
    t = frac - base
    w = np.ones(frac.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    size = grid.shape[0] * grid.shape[1]
    counts = np.zeros(size)
    for dr, dc in ((0, 0), (0, 1), (1, 0), (1, 1)):
        r, c = base[0] + dr, base[1] + dc
        share = w * (t[0] if dr else 1 - t[0]) * (t[1] if dc else 1 - t[1])
        ok = (r >= 0) & (r < grid.shape[0]) & (c >= 0) & (c < grid.shape[1])
        counts += np.bincount(r[ok] * grid.shape[1] + c[ok], weights=share[ok], minlength=size)
    blurred = ndimage.gaussian_filter(counts.reshape(grid.shape), sigma / grid.cell, mode="constant")
    at_points = ndimage.map_coordinates(blurred, frac, order=1, mode="constant", cval=0.0)
    level = np.percentile(at_points, _LEVEL_PERCENTILE) if at_points.size else 1.0
    return np.clip(blurred / max(level, 1e-12), 0.0, 1.0)


def hull_mask(points: np.ndarray, pad: float, grid: Grid, sigma: float) -> np.ndarray:
    """Soft mask of the convex hull of ``points`` grown by ``pad`` (where a modality measured)."""
    window = Window(points, pad)
    if window.equations is None:  # a degenerate hull: count everything as measured
        return np.ones(grid.shape)
    img = window.contains(grid.positions()).reshape(grid.shape).astype(np.float64)
    return np.clip(ndimage.gaussian_filter(img, sigma / grid.cell, mode="constant"), 0.0, 1.0)


class TissueImage:
    """A modality drawn on its own grid: tissue mask and measured window, with gradients.

    Parameters
    ----------
    tissue
        Tissue points (micrometres, the modality's own frame).
    window
        Points whose convex hull is where the modality measured (all MSI pixels, tissue or
        not; the spots for STR).
    pad
        Half the pitch: a lattice cell reaches that far beyond its centre.
    sigma, cell
        Blur width and grid spacing (micrometres).
    weights
        Optional per-point tissue share (partly covered edge pixels).
    image
        The tissue of an H&E image (``_tissue_image.ImageTissue``): drawn instead of the
        points' density, and its whole extent is where the modality measured (``window``
        and ``pad`` are then the image's).
    """

    def __init__(
        self,
        tissue: np.ndarray,
        window: np.ndarray,
        pad: float,
        sigma: float,
        cell: float,
        weights: np.ndarray | None = None,
        image=None,
    ):
        if image is not None:
            window, pad = image.window.points, image.window.pad
        margin = pad + 3 * sigma + cell
        lo = np.minimum(tissue.min(axis=0), window.min(axis=0)) - margin
        hi = np.maximum(tissue.max(axis=0), window.max(axis=0)) + margin
        self.grid = Grid(lo, hi, cell)
        self.sigma = sigma
        self.mask = density_mask(tissue, self.grid, sigma, weights) if image is None else image.soft_mask(self.grid, sigma)
        self.window = hull_mask(window, pad, self.grid, sigma)
        self._grads = None

    def gradients(self) -> tuple[np.ndarray, np.ndarray]:
        """d mask / dx and d mask / dy (per micrometre)."""
        if self._grads is None:
            gy, gx = np.gradient(self.mask, self.grid.cell)
            self._grads = (gx, gy)
        return self._grads

    def sample(self, points: np.ndarray, with_gradients: bool = False, window: bool = True):
        """Mask (and window) at ``points`` (bilinear; 0 outside the grid), optionally with the mask's gradient."""
        idx = self.grid.index(points)
        out = [ndimage.map_coordinates(self.mask, idx, order=1, mode="constant", cval=0.0)]
        if window:
            out.append(ndimage.map_coordinates(self.window, idx, order=1, mode="constant", cval=0.0))
        if with_gradients:
            gx, gy = self.gradients()
            out.extend(ndimage.map_coordinates(g, idx, order=1, mode="constant", cval=0.0) for g in (gx, gy))
        return out
