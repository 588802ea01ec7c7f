"""Checks on the way in: coordinates present, finite, in micrometres and not degenerate."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import SPATIAL_KEY, UNS_KEY, VISIUM_CAPTURE_AREAS, VISIUM_SPOT_RADIUS_UM
from ._subsample import median_spacing

# a pixel size and the measured raster spacing may differ this much (rounding, jitter)
_SPACING_TOLERANCE = 0.5


def finite_points(points: np.ndarray, what: str, names=None) -> np.ndarray:
    """``points`` as an (n, 2) float array; a clear error for another shape or non-finite coordinates."""
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{what} must be an (n, 2) array of x, y coordinates, got shape {points.shape}.")
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        first = names[int(np.argmax(bad))] if names is not None else int(np.argmax(bad))
        raise ValueError(
            f"{what} has {int(bad.sum())} NaN or infinite coordinates (first: {first!r}). "
            "Drop those observations or fix their coordinates before registering."
        )
    return points


def check_points(points: np.ndarray, what: str, names=None) -> np.ndarray:
    """As :func:`finite_points`, and a clear error for too few or collinear points (nothing to fit)."""
    points = finite_points(points, what, names)
    if len(points) < 3:
        raise ValueError(f"{what} has {len(points)} points; registration needs at least 3 (not all on one line).")
    centred = points - points.mean(axis=0)
    sv = np.linalg.svd(centred, compute_uv=False)
    if sv[0] == 0 or sv[1] / sv[0] < 1e-3:
        raise ValueError(
            f"{what} lie on a line (or on one point): a 2-D transform is undetermined. "
            "Check that the coordinates are not a single row of the array or the same value repeated."
        )
    return points


def stored_points(adata: ad.AnnData, what: str) -> np.ndarray:
    """``obsm["spatial"]`` x, y as floats, present and finite (else a clear error)."""
    if SPATIAL_KEY not in adata.obsm:
        raise KeyError(
            f"{what} has no obsm[{SPATIAL_KEY!r}]: read it with spatial_mg.io (which stores micrometres) "
            f"or set obsm[{SPATIAL_KEY!r}] to x, y in micrometres."
        )
    return finite_points(np.asarray(adata.obsm[SPATIAL_KEY])[:, :2], f"{what}.obsm[{SPATIAL_KEY!r}]", adata.obs_names)


def _spatial(adata: ad.AnnData, what: str) -> np.ndarray:
    return check_points(stored_points(adata, what), f"{what}.obsm[{SPATIAL_KEY!r}]", adata.obs_names)


def msi_pixel_size(msi: ad.AnnData, pixel_size_um: float | None = None) -> float:
    """The MSI raster step in micrometres: given, or recorded by the reader; else a clear error."""
    if pixel_size_um is None:
        recorded = msi.uns.get(UNS_KEY, {}).get("pixel_size_um")
        if recorded is None:
            raise ValueError(
                f"The MSI AnnData records no pixel size (uns[{UNS_KEY!r}]['pixel_size_um']), so its "
                f"obsm[{SPATIAL_KEY!r}] cannot be trusted to be in micrometres. Read it with "
                "spatial_mg.io.read_imzml / read_sma_csv(pixel_size_um=...), or pass msi_pixel_size_um=<micrometres>."
            )
        pixel_size_um = float(np.mean(np.atleast_1d(np.asarray(recorded, dtype=np.float64))))
    pixel_size_um = float(pixel_size_um)
    if not (np.isfinite(pixel_size_um) and pixel_size_um > 0):
        raise ValueError(f"MSI pixel size must be positive micrometres, got {pixel_size_um!r}.")
    return pixel_size_um


def msi_coordinates(msi: ad.AnnData, pixel_size_um: float) -> np.ndarray:
    """MSI pixel centres in micrometres, checked against the pixel size."""
    points = _spatial(msi, "msi")
    spacing = median_spacing(points)
    if spacing > 0 and abs(np.log(spacing / pixel_size_um)) > np.log1p(_SPACING_TOLERANCE) and len(points) >= 9:
        raise ValueError(
            f"msi.obsm[{SPATIAL_KEY!r}] has a median pixel spacing of {spacing:.3g}, but the pixel size is "
            f"{pixel_size_um:g} um: the coordinates are probably in grid units, not micrometres. "
            f"Set obsm[{SPATIAL_KEY!r}] = obs[['x', 'y']] * pixel size, or pass the right msi_pixel_size_um."
        )
    return points


def rna_coordinates(rna: ad.AnnData) -> tuple[np.ndarray, bool]:
    """Spot centres in micrometres and whether the AnnData records that unit (see :func:`warn_assumed_units`)."""
    points = _spatial(rna, "rna")
    meta = rna.uns.get(UNS_KEY, {})
    return points, meta.get("units") == "um" or "spot_radius_um" in meta


def warn_assumed_units(stacklevel: int) -> None:
    """Say that the spot coordinates are taken for micrometres although nothing records it.

    ``stacklevel`` as for ``warnings.warn`` called where this is called.
    """
    warnings.warn(
        f"rna.uns[{UNS_KEY!r}] does not record micrometres; assuming obsm[{SPATIAL_KEY!r}] is in "
        "micrometres (spatial_mg.io.read_visium guarantees it). A fitted scale far from 1 would mean it is not.",
        UserWarning,
        stacklevel=stacklevel + 1,
    )


def shared_feature_matrices(rna: ad.AnnData, msi: ad.AnnData, key, tissue: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The shared feature matrices (spots, MSI tissue pixels) named by ``key``, or ``None``.

    ``key`` is an ``obsm`` key or ``obs`` column present in both, or a ``(rna_key, msi_key)`` pair.
    """
    if key is None:
        return None
    rna_key, msi_key = (key, key) if isinstance(key, str) else key

    def get(adata, k, what):
        if k in adata.obsm:
            values = adata.obsm[k]
            values = values.to_numpy() if isinstance(values, pd.DataFrame) else np.asarray(values)
        elif k in adata.obs:
            values = adata.obs[k].to_numpy()
        else:
            raise KeyError(f"shared feature {k!r} is neither an obsm key nor an obs column of {what}.")
        values = np.asarray(values, dtype=np.float64).reshape(adata.n_obs, -1)
        if not np.isfinite(values).all():
            raise ValueError(f"shared feature {k!r} of {what} has NaN or infinite values; fill or drop them first.")
        return values

    a, b = get(rna, rna_key, "rna"), get(msi, msi_key, "msi")[tissue]
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"shared features differ in width: rna {a.shape[1]} columns, msi {b.shape[1]}.")
    return a, b


def spot_radius(rna: ad.AnnData, spot_radius_um: float | None = None) -> float:
    """Spot footprint radius in micrometres: given, recorded by the reader, or Visium's 27.5 um."""
    if spot_radius_um is None:
        spot_radius_um = rna.uns.get(UNS_KEY, {}).get("spot_radius_um", VISIUM_SPOT_RADIUS_UM)
    spot_radius_um = float(spot_radius_um)
    if not (np.isfinite(spot_radius_um) and spot_radius_um > 0):
        raise ValueError(f"spot_radius_um must be positive micrometres, got {spot_radius_um!r}.")
    return spot_radius_um


# without a known capture area, assume the STR array reached this many pitches past the tissue
_ASSUMED_MARGIN_PITCHES = 2.0


def _capture_area(rna: ad.AnnData, rna_um: np.ndarray, spacing: float):
    """The Visium capture area the spots come from: (grid -> um pose, (rows, cols)), or None."""
    from ._procrustes import fit_affine

    if not ({"array_row", "array_col"} <= set(rna.obs.columns) and rna.n_obs >= 3):
        return None
    row = rna.obs["array_row"].to_numpy(np.float64)
    col = rna.obs["array_col"].to_numpy(np.float64)
    area = next((a for a in VISIUM_CAPTURE_AREAS if row.max() < a[0] and col.max() < a[1] and row.min() >= 0), None)
    grid = np.column_stack([col, row])
    if area is None or np.linalg.matrix_rank(grid - grid.mean(axis=0)) < 2:
        return None
    to_um = fit_affine(grid, rna_um)
    if np.median(np.linalg.norm(to_um.apply(grid) - rna_um, axis=1)) > 0.25 * spacing:
        return None  # the coordinates do not follow the array grid
    return to_um, area


def rna_window(rna: ad.AnnData, rna_um: np.ndarray, spacing: float) -> tuple[np.ndarray, float, str]:
    """Points whose convex hull, grown by the returned pad, is the area the STR array measured.

    Visium measures its whole capture area, tissue or not; only the in-tissue spots are in
    ``rna``, but ``obs["array_row"], obs["array_col"]`` place them on the grid, so the
    capture area's corners follow from a fit of micrometres on grid positions. Without
    them, the spots' hull grown by two pitches is assumed (state the capture area by
    keeping the array coordinates when a tissue runs off the array's edge).
    """
    found = _capture_area(rna, rna_um, spacing)
    if found is not None:
        to_um, area = found
        corners = np.array([[0, 0], [area[1] - 1, 0], [0, area[0] - 1], [area[1] - 1, area[0] - 1]], float)
        return to_um.apply(corners), 0.5 * spacing, f"Visium capture area {area[0]} x {area[1]}"
    return rna_um, (0.5 + _ASSUMED_MARGIN_PITCHES) * spacing, "spots' hull + 2 pitches (assumed)"


def msi_window(msi_um: np.ndarray, tissue: np.ndarray, pixel_um: float) -> tuple[np.ndarray, float, str]:
    """Points whose convex hull, grown by the returned pad, is the area the MSI measured.

    With background pixels the raster itself says where the MSI measured: its hull, grown
    by half a pixel. When every pixel is tissue (or there are no intensities to tell), the
    raster's extent beyond the given pixels is unknown, and two pixels more are assumed.
    """
    if not tissue.all():
        return msi_um, 0.5 * pixel_um, "raster hull (background pixels present)"
    return msi_um, (0.5 + _ASSUMED_MARGIN_PITCHES) * pixel_um, "pixels' hull + 2 pixels (assumed: no background pixels)"
