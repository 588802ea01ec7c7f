"""Registration from user-given point pairs (landmarks), with residuals that expose a bad one.

Two kinds of landmark table are read:

- micrometres: ``msi_x, msi_y, rna_x, rna_y``, or two (k, 2) arrays;
- the SMA / MAGPIE files as they are published (``landmarks_noHE.csv``): ``X_left, Y_left``
  on the MSI raster grid (pixel indices, as the ``x, y`` columns of the MSI export) and
  ``X_right, Y_right`` in pixels of the Visium ``tissue_hires_image.png``. They are brought
  to micrometres with the MSI pixel size and the Visium hires scale factor that
  :func:`spatial_mg.io.read_visium` keeps in ``uns["spatial"][library_id]["scalefactors"]``.
"""

from __future__ import annotations

from os import PathLike

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import UNS_KEY
from .._validation import existing_file
from ._inputs import check_points
from ._pose import Pose
from ._procrustes import fit_affine, fit_similarity

LANDMARK_COLUMNS = ("msi_x", "msi_y", "rna_x", "rna_y")
# the SMA / MAGPIE landmark files: MSI grid units (left) and Visium hires-image pixels (right)
SMA_LANDMARK_COLUMNS = ("X_left", "Y_left", "X_right", "Y_right")
HIRES_SCALEF = "tissue_hires_scalef"
# an RMS residual beyond this many coarser pitches is more than hand placement scatters
# (a landmark lands within about a pixel or a spot): one of them is misplaced
_MAX_RMS_PITCHES = 2


def landmark_pose(
    landmarks,
    *,
    rna: ad.AnnData,
    msi: ad.AnnData,
    msi_pixel_size_um: float | None,
    transform: str,
    scale: bool,
    pitch: float,
) -> tuple[Pose, dict, list[str]]:
    """The pose through the landmarks, its residual figures, and what to doubt about it.

    ``landmarks`` as for :func:`landmarks_um`, which reads them against ``rna`` and ``msi``;
    ``pitch`` is the coarser of the two pitches (um): the unit of what a residual may be.
    """
    msi_um, rna_um = landmarks_um(landmarks, rna, msi, msi_pixel_size_um=msi_pixel_size_um)
    pose, info = fit_landmarks(msi_um, rna_um, transform, scale)
    notes = []
    if len(msi_um) == 3 and transform == "affine":
        notes.append("three landmarks determine an affine exactly: the residual cannot reveal a misplaced one")
    limit = _MAX_RMS_PITCHES * pitch
    if info["landmark_rms_um"] > limit:
        worst = int(np.argmax(info["landmark_residuals_um"]))
        notes.append(
            f"the landmarks miss the fitted transform by {info['landmark_rms_um']:.0f} um RMS (more than {limit:.0f} um); "
            f"landmark {worst} is furthest off: check it"
        )
    return pose, info, notes


def landmarks_um(
    landmarks,
    rna: ad.AnnData | None = None,
    msi: ad.AnnData | None = None,
    *,
    msi_pixel_size_um: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks as ``(msi_um, rna_um)``: two (k, 2) arrays in the frames of the two
    AnnData objects' ``obsm["spatial"]``.

    Parameters
    ----------
    landmarks
        Two (k, 2) arrays ``(msi_points_um, rna_points_um)``; or a table (DataFrame, or the
        path of a csv) with either the columns ``msi_x, msi_y, rna_x, rna_y`` in
        micrometres, or the columns of the SMA / MAGPIE landmark files: ``X_left, Y_left``
        on the MSI raster grid and ``X_right, Y_right`` in Visium hires-image pixels.
    rna, msi
        The section's spots and pixels; needed only for the SMA / MAGPIE columns: the
        Visium hires scale factor comes from ``rna.uns["spatial"][library_id]["scalefactors"]``
        (kept by :func:`spatial_mg.io.read_visium`), the MSI pixel size from
        ``msi.uns["spatial_mg"]["pixel_size_um"]`` (kept by the MSI readers).
    msi_pixel_size_um
        The MSI raster step, when ``msi`` does not record it (or to override it).

    Returns
    -------
    ``(msi_um, rna_um)``, each (k, 2), k >= 3, finite and not all on one line.

    Notes
    -----
    A grid position times the pixel size is where the MSI readers put a pixel
    (``obsm["spatial"] = (x, y) * pixel size``). A hires-image pixel divided by
    ``tissue_hires_scalef`` lands in the spots' ``obsm["spatial"]`` frame, squidpy's
    convention (image pixel = ``obsm["spatial"]`` x scale factor), which read_visium keeps
    by storing the scale factors per micrometre.
    """
    if landmarks is None:
        raise ValueError(
            "method='landmarks' needs landmarks=(msi_points_um, rna_points_um): two (k, 2) arrays of matching "
            "points, k >= 3, in micrometres, or a table (DataFrame or csv path) with columns msi_x, msi_y, rna_x, "
            "rna_y (micrometres) or X_left, Y_left, X_right, Y_right (an SMA / MAGPIE landmark file)."
        )
    if isinstance(landmarks, (str, PathLike)):
        landmarks = _read_landmark_csv(landmarks)
    if isinstance(landmarks, pd.DataFrame):
        msi_um, rna_um = _table_um(landmarks, rna, msi, msi_pixel_size_um)
    else:
        try:
            msi_um, rna_um = (np.asarray(p, dtype=np.float64) for p in landmarks)
        except (TypeError, ValueError):
            raise ValueError("landmarks must be (msi_points_um, rna_points_um), two (k, 2) arrays.") from None
    if msi_um.shape != rna_um.shape:
        raise ValueError(
            f"The MSI and RNA landmarks differ in shape: {msi_um.shape} vs {rna_um.shape}; each MSI point needs its partner."
        )
    return check_points(msi_um, "MSI landmarks"), check_points(rna_um, "RNA landmarks")


def _read_landmark_csv(path) -> pd.DataFrame:
    path = existing_file(path, "landmarks csv")
    try:
        return pd.read_csv(path)
    except (ValueError, pd.errors.EmptyDataError) as err:  # parser errors and UnicodeDecodeError are ValueErrors
        raise ValueError(
            f"landmarks csv '{path}' cannot be read as a table ({type(err).__name__}: {err}); give a csv with "
            "columns msi_x, msi_y, rna_x, rna_y (micrometres) or X_left, Y_left, X_right, Y_right (SMA / MAGPIE)."
        ) from err


def _table_um(table: pd.DataFrame, rna, msi, msi_pixel_size_um) -> tuple[np.ndarray, np.ndarray]:
    has_um = all(c in table.columns for c in LANDMARK_COLUMNS)
    has_sma = all(c in table.columns for c in SMA_LANDMARK_COLUMNS)
    if has_um and has_sma:
        raise ValueError(
            f"The landmark table has both micrometre columns {list(LANDMARK_COLUMNS)} and SMA / MAGPIE columns "
            f"{list(SMA_LANDMARK_COLUMNS)}; keep one set, so that it is clear which points to use."
        )
    if has_um:
        return _numbers(table, LANDMARK_COLUMNS[:2]), _numbers(table, LANDMARK_COLUMNS[2:])
    if has_sma:
        grid = _numbers(table, SMA_LANDMARK_COLUMNS[:2])
        hires_px = _numbers(table, SMA_LANDMARK_COLUMNS[2:])
        return grid * msi_grid_step_um(msi, msi_pixel_size_um), hires_px / hires_px_per_unit(rna)
    raise KeyError(
        f"The landmark table has columns {list(map(str, table.columns))}; it needs either {list(LANDMARK_COLUMNS)} "
        f"in micrometres or {list(SMA_LANDMARK_COLUMNS)} (MSI grid units and Visium hires-image pixels, as the "
        "SMA / MAGPIE landmarks_noHE.csv files have them)."
    )


def _numbers(table: pd.DataFrame, columns) -> np.ndarray:
    values = table[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"Landmark {row} (row {row + 2} of a csv) has a missing or non-numeric value in {list(columns)}: "
            f"{table[list(columns)].iloc[row].tolist()}. Fix or drop that landmark."
        )
    return values


def msi_grid_step_um(msi: ad.AnnData | None, pixel_size_um: float | None = None) -> np.ndarray:
    """Micrometres per MSI grid step along x and y: ``pixel_size_um``, else what the reader recorded."""
    if pixel_size_um is None:
        recorded = None if msi is None else msi.uns.get(UNS_KEY, {}).get("pixel_size_um")
        if recorded is None:
            raise ValueError(
                "The landmarks give MSI positions in grid units (X_left, Y_left), and converting them needs the MSI "
                f"pixel size, which the MSI AnnData does not record (uns[{UNS_KEY!r}]['pixel_size_um']): read it with "
                "spatial_mg.io.read_imzml / read_sma_csv(pixel_size_um=...), or pass msi_pixel_size_um=<micrometres>."
            )
        pixel_size_um = recorded
    step = np.resize(np.atleast_1d(np.asarray(pixel_size_um, dtype=np.float64)).ravel(), 2)
    if not (np.isfinite(step).all() and (step > 0).all()):
        raise ValueError(f"The MSI pixel size must be positive micrometres, got {pixel_size_um!r}.")
    return step


def hires_px_per_unit(rna: ad.AnnData | None) -> float:
    """Visium hires-image pixels per unit of the spots' ``obsm["spatial"]`` (per um after read_visium)."""
    spatial = {} if rna is None else rna.uns.get("spatial", {})
    libraries = dict(spatial) if hasattr(spatial, "keys") else {}
    library = None if rna is None else rna.uns.get(UNS_KEY, {}).get("library_id")
    if library not in libraries and len(libraries) == 1:
        library = next(iter(libraries))
    if len(libraries) > 1 and library not in libraries:
        raise ValueError(
            f"rna.uns['spatial'] holds several libraries ({sorted(libraries)}) and none is named by "
            f"uns[{UNS_KEY!r}]['library_id']: keep only the section's own before registering with these landmarks."
        )
    scalef = libraries.get(library, {}).get("scalefactors", {}).get(HIRES_SCALEF) if library else None
    if scalef is None or not (np.isfinite(scalef) and scalef > 0):
        raise ValueError(
            "The landmarks give Visium positions in hires-image pixels (X_right, Y_right), but the spots carry no "
            f"Visium scale factor to convert them (uns['spatial'][<library>]['scalefactors'][{HIRES_SCALEF!r}], got "
            f"{scalef!r}). Read the section with spatial_mg.io.read_visium, which keeps it, or convert the landmarks "
            f"to micrometres yourself and give the columns {list(LANDMARK_COLUMNS)}."
        )
    return float(scalef)


def fit_landmarks(msi: np.ndarray, rna: np.ndarray, transform: str = "similarity", scale: bool = True) -> tuple[Pose, dict]:
    """Fit the transform through the landmarks; return it with residual figures.

    The figures are the RMS and per-landmark residuals, and for more landmarks than the
    transform needs, the leave-one-out residuals (each landmark predicted by a fit to the
    others), which are what a misplaced landmark inflates.
    """
    need = 3 if transform == "affine" else 2

    def fit(a, b):
        return fit_affine(a, b) if transform == "affine" else fit_similarity(a, b, scale=scale)

    pose = fit(msi, rna)
    residuals = np.linalg.norm(pose.apply(msi) - rna, axis=1)
    info = {
        "n_landmarks": len(msi),
        "landmark_rms_um": float(np.sqrt(np.mean(residuals**2))),
        "landmark_median_um": float(np.median(residuals)),
        "landmark_residuals_um": residuals.tolist(),
    }
    if len(msi) > need + 1:
        loo = []
        for k in range(len(msi)):
            keep = np.arange(len(msi)) != k
            try:
                t = fit(msi[keep], rna[keep])
            except ValueError:
                continue
            loo.append(float(np.linalg.norm(t.apply(msi[k : k + 1]) - rna[k])))
        info["landmark_loo_um"] = loo
        info["landmark_loo_median_um"] = float(np.median(loo)) if loo else float("nan")
    return pose, info
