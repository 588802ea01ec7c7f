"""Read a spaceranger ``outs/`` folder into AnnData with coordinates in micrometres."""

from __future__ import annotations

import json
import warnings
from os import PathLike
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import (
    SPATIAL_KEY,
    UNS_KEY,
    VISIUM_PITCH_UM,
    VISIUM_SCALEFACTOR_SPOT_DIAMETER_UM,
    VISIUM_SPOT_DIAMETER_UM,
    VISIUM_SPOT_RADIUS_UM,
)
from .._validation import existing_dir, existing_file
from ._counts import check_counts

_POSITION_COLUMNS = ["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]
# Scale factors are allowed to disagree with the array grid by this much before we warn.
_SCALE_TOLERANCE = 0.10
# Sizes and image scales: zero or below is a damaged file (and a division by zero later)
_POSITIVE_SCALEFACTORS = ("spot_diameter_fullres", "tissue_hires_scalef", "tissue_lowres_scalef", "fiducial_diameter_fullres")


def read_visium(
    path: str | PathLike,
    *,
    count_file: str = "filtered_feature_bc_matrix.h5",
    in_tissue_only: bool = True,
    library_id: str | None = None,
    load_images: bool = True,
) -> ad.AnnData:
    """Read a 10x Visium spaceranger output folder.

    Parameters
    ----------
    path
        The spaceranger ``outs/`` folder, or a folder that contains ``outs/``.
    count_file
        The 10x HDF5 count matrix inside ``path``.
    in_tissue_only
        Keep only spots that spaceranger marked as covered by tissue.
    library_id
        Key under ``uns["spatial"]``; defaults to the folder name.
    load_images
        Load ``tissue_hires_image.png`` / ``tissue_lowres_image.png`` when present.

    Returns
    -------
    AnnData with raw integer counts in ``X`` (CSR, int32), spots as rows (barcodes), array
    coordinates in ``obs``, ``obsm["spatial"]`` in micrometres (image orientation kept), a
    squidpy-compatible ``uns["spatial"][library_id]`` whose scale factors refer to those
    micrometres, and provenance in ``uns["spatial_mg"]``.

    Notes
    -----
    Micrometres come from the array grid: neighbouring spots are 100 um apart, so a
    similarity fit of the full-resolution pixel positions against the ideal hexagonal grid
    gives micrometres per pixel. 10x's ``spot_diameter_fullres`` spans a 65 um circle (not
    the 55 um capture spot) and is only used as a cross-check, or as a fallback when too few
    spots are listed to fit the grid.
    """
    outs = existing_dir(path, "Visium spaceranger output folder")
    if (outs / "outs").is_dir():
        outs = outs / "outs"
    h5 = existing_file(outs / count_file, f"10x count matrix '{count_file}'")
    spatial_dir = existing_dir(outs / "spatial", f"'spatial/' folder of the spaceranger output '{outs}'")
    library_id = library_id or (outs.parent.name if outs.name == "outs" else outs.name)

    counts = _read_counts(h5)
    positions = _read_positions(spatial_dir)
    scalefactors = _read_scalefactors(spatial_dir / "scalefactors_json.json")

    missing = counts.obs_names.difference(positions.index)
    if len(missing):
        raise ValueError(
            f"{len(missing)} barcodes of '{h5}' are not in the tissue positions of '{spatial_dir}' "
            f"(first: {list(missing[:3])}). The count matrix and the spatial folder come from different runs."
        )
    um_per_px, fit = _micrometres_per_pixel(positions, scalefactors, spatial_dir)

    obs_pos = positions.loc[counts.obs_names]
    if in_tissue_only:
        keep = obs_pos["in_tissue"].to_numpy() == 1
        counts = counts[keep].copy()
        obs_pos = obs_pos.loc[keep]
    if counts.n_obs == 0:
        raise ValueError(f"No spots left in '{h5}' after in_tissue_only=True; pass in_tissue_only=False to keep all.")

    adata = counts
    for col in ("in_tissue", "array_row", "array_col"):
        adata.obs[col] = obs_pos[col].to_numpy()
    px = obs_pos[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(dtype=np.float64)
    adata.obsm[SPATIAL_KEY] = px * um_per_px
    adata.uns["spatial"] = {library_id: _squidpy_spatial(spatial_dir, scalefactors, um_per_px, load_images)}
    adata.uns[UNS_KEY] = {
        "reader": "read_visium",
        "source": str(outs.resolve()),
        "units": "um",
        "um_per_fullres_px": um_per_px,
        "um_from": fit,
        "spot_radius_um": VISIUM_SPOT_RADIUS_UM,
        "spot_diameter_um": VISIUM_SPOT_DIAMETER_UM,
        "library_id": library_id,
    }
    return adata


def _read_counts(h5: Path) -> ad.AnnData:
    import scanpy as sc  # heavy; only needed here

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # scanpy's "var names not unique"
            adata = sc.read_10x_h5(h5, gex_only=True)
    except Exception as err:  # h5py and scanpy raise many kinds (OSError, KeyError, RuntimeError) for a damaged file
        raise ValueError(
            f"Could not read '{h5}' as a 10x HDF5 count matrix ({type(err).__name__}: {err}). Pass spaceranger's "
            "filtered_feature_bc_matrix.h5 (or raw_feature_bc_matrix.h5); re-copy it if it was truncated."
        ) from err
    if adata.n_vars == 0:
        raise ValueError(
            f"'{h5}' has no 'Gene Expression' features ({adata.n_vars} after dropping the other feature types); "
            "read_visium reads gene expression: pass the count matrix of the gene-expression library."
        )
    if adata.n_obs == 0:
        raise ValueError(f"'{h5}' holds no spots (0 barcodes); copy the count matrix of the run again.")
    if not adata.obs_names.is_unique:
        dup = adata.obs_names[adata.obs_names.duplicated()].unique()
        raise ValueError(f"Duplicate barcodes in '{h5}' (for example {list(dup[:3])}); each spot must appear once.")
    adata.X = check_counts(adata.X, f"'{h5}'")
    adata.var_names_make_unique()
    return adata


def _read_positions(spatial_dir: Path) -> pd.DataFrame:
    new, old = spatial_dir / "tissue_positions.csv", spatial_dir / "tissue_positions_list.csv"
    if new.is_file():
        source, header = new, 0
    elif old.is_file():
        source, header = old, None
    else:
        raise FileNotFoundError(
            f"No tissue positions in '{spatial_dir}': expected 'tissue_positions.csv' (spaceranger >= 2.0) "
            "or 'tissue_positions_list.csv' (older). Copy the whole spatial/ folder of the run."
        )
    try:
        table = pd.read_csv(source, header=header)
    except ValueError as err:  # pandas' parser errors and UnicodeDecodeError are ValueErrors
        raise ValueError(
            f"Could not read '{source}' as a tissue positions table ({type(err).__name__}: {err}). "
            "Copy the whole spatial/ folder of the run again."
        ) from err
    if table.shape[1] != len(_POSITION_COLUMNS):
        raise ValueError(f"'{source}' has {table.shape[1]} columns; a tissue positions file has {len(_POSITION_COLUMNS)}.")
    table.columns = _POSITION_COLUMNS
    if not table["barcode"].is_unique:
        dup = table.loc[table["barcode"].duplicated(), "barcode"].unique()
        raise ValueError(f"Duplicate barcodes in '{source}' (for example {list(dup[:3])}).")
    _check_position_values(table, source)
    return table.set_index("barcode")


def _check_position_values(table: pd.DataFrame, source: Path) -> None:
    """in_tissue 0 or 1, array coordinates whole numbers >= 0, pixel positions finite:
    anything else is a damaged file, and would bend the grid fit that gives micrometres."""
    numeric = table[_POSITION_COLUMNS[1:]].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    in_tissue, array, pixels = numeric[:, 0], numeric[:, 1:3], numeric[:, 3:]
    bad_rows = (
        ~np.isin(in_tissue, (0, 1))
        | ~(np.isfinite(array) & (array >= 0) & (array == np.round(array))).all(axis=1)
        | ~np.isfinite(pixels).all(axis=1)
    )
    if bad_rows.any():
        first = int(np.argmax(bad_rows))
        raise ValueError(
            f"'{source}' has {int(bad_rows.sum())} rows with missing or impossible values (first: barcode "
            f"'{table['barcode'].iloc[first]}': {table.iloc[first, 1:].tolist()}); in_tissue must be 0 or 1, "
            "array_row and array_col whole numbers >= 0, the pixel positions finite. Copy the spatial/ folder again."
        )


def _read_scalefactors(path: Path) -> dict:
    path = existing_file(path, "Visium scale factors")
    try:
        factors = json.loads(path.read_text())
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
        raise ValueError(f"'{path}' is not valid JSON ({type(err).__name__}: {err}).") from err
    if not isinstance(factors, dict):
        raise ValueError(f"'{path}' must hold a JSON object of scale factors, not a {type(factors).__name__}.")
    for key, value in factors.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)
        if not number or (key in _POSITIVE_SCALEFACTORS and value <= 0):
            raise ValueError(
                f"Scale factor '{key}' in '{path}' must be a {'positive ' if key in _POSITIVE_SCALEFACTORS else ''}"
                f"number, not {value!r}. Copy the spatial/ folder of the run again."
            )
    return factors


def _micrometres_per_pixel(positions: pd.DataFrame, scalefactors: dict, spatial_dir: Path) -> tuple[float, str]:
    """Micrometres per full-resolution pixel, from the array grid or, failing that, the scale factors."""
    spot_diameter_px = None
    if "spot_diameter_fullres" in scalefactors:
        spot_diameter_px = float(scalefactors["spot_diameter_fullres"])
        if not np.isfinite(VISIUM_SCALEFACTOR_SPOT_DIAMETER_UM / spot_diameter_px):  # a diameter of a few 1e-324 pixels
            raise ValueError(
                f"spot_diameter_fullres in '{spatial_dir / 'scalefactors_json.json'}' is "
                f"{scalefactors['spot_diameter_fullres']!r} pixels, too small to be a spot. Copy the spatial/ folder again."
            )
    return micrometres_per_pixel(
        positions,
        spot_diameter_px,
        where=f"'{spatial_dir}'",
        redo="copy the spatial/ folder of the run again",
        diameter_source="'spot_diameter_fullres' in scalefactors_json.json",
        stacklevel=4,
    )


def micrometres_per_pixel(
    positions: pd.DataFrame,
    spot_diameter_px: float | None,
    *,
    where: str,
    redo: str,
    diameter_source: str,
    stacklevel: int,
) -> tuple[float, str]:
    """Micrometres per pixel of the spots' positions: from the Visium array grid, else from 10x's spot diameter.

    Parameters
    ----------
    positions
        One row per spot: ``array_row``, ``array_col`` and its pixel position
        ``pxl_col_in_fullres``, ``pxl_row_in_fullres``, indexed by barcode.
    spot_diameter_px
        10x's ``spot_diameter_fullres`` (a 65 um circle) in those pixels, or ``None``: a
        cross-check of the grid, and the fallback when too few spots are listed to fit it.
    where, redo, diameter_source
        For messages: the positions' source, what to do when they are damaged, and where
        the spot diameter comes from.
    stacklevel
        As for ``warnings.warn`` called here.

    Returns
    -------
    Micrometres per pixel and where they come from (``"array_grid"`` or ``"scalefactors"``).
    """
    from_diameter = None if spot_diameter_px is None else VISIUM_SCALEFACTOR_SPOT_DIAMETER_UM / spot_diameter_px
    fit = _fit_grid_scale(positions)
    if fit is None:
        if from_diameter is None:
            raise ValueError(
                f"Cannot convert {where} to micrometres: fewer than three non-collinear spots and no {diameter_source}."
            )
        warnings.warn(
            f"Too few spots in {where} to fit the array grid; micrometres come from {diameter_source} (taken as 65 um).",
            stacklevel=stacklevel,
        )
        return from_diameter, "scalefactors"
    from_grid, off_grid_um = fit
    _check_on_grid(positions, from_grid, off_grid_um, where, redo)
    if from_diameter is not None and abs(from_grid / from_diameter - 1) > _SCALE_TOLERANCE:
        warnings.warn(
            f"{where}: the array grid gives {from_grid:.4f} um per pixel, {diameter_source} "
            f"gives {from_diameter:.4f}; using the grid. Check that the positions and scale factors belong together.",
            stacklevel=stacklevel,
        )
    return from_grid, "array_grid"


def _fit_grid_scale(positions: pd.DataFrame) -> tuple[float, np.ndarray] | None:
    """Least-squares linear map from ideal grid micrometres to pixels; returns um per pixel
    and each spot's distance (um) from where the fitted grid puts it."""
    col = positions["array_col"].to_numpy(dtype=float)
    row = positions["array_row"].to_numpy(dtype=float)
    # Neighbours in a row are two columns and one pitch apart; rows form a hexagonal lattice.
    grid_um = np.column_stack([col * VISIUM_PITCH_UM / 2, row * VISIUM_PITCH_UM * np.sqrt(3) / 2])
    px = positions[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(dtype=float)
    design = np.column_stack([grid_um, np.ones(len(grid_um))])
    if len(grid_um) < 3 or np.linalg.matrix_rank(design) < 3:
        return None
    coef, *_ = np.linalg.lstsq(design, px, rcond=None)
    px_per_um = np.sqrt(abs(np.linalg.det(coef[:2])))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # judged by _check_on_grid
        off_grid_um = np.linalg.norm(design @ coef - px, axis=1) / px_per_um
        return float(1 / px_per_um), off_grid_um


def _check_on_grid(positions: pd.DataFrame, um_per_px: float, off_grid_um: np.ndarray, where: str, redo: str) -> None:
    """Every spot within half a pitch of the fitted grid (real runs: within a micrometre);
    farther, its pixel position belongs to another spot, and the micrometres would be wrong."""
    distance = np.nan_to_num(off_grid_um, nan=np.inf)
    if np.isfinite(um_per_px) and um_per_px > 0 and (distance <= VISIUM_PITCH_UM / 2).all():
        return
    worst = int(np.argmax(distance))
    raise ValueError(
        f"The tissue positions in {where} do not lie on the Visium array grid: spot "
        f"'{positions.index[worst]}' is {distance[worst]:.3g} um from where its array_row and array_col put it "
        f"(neighbouring spots are {VISIUM_PITCH_UM:g} um apart). Its array and pixel coordinates do not belong "
        f"together: {redo}."
    )


def _squidpy_spatial(spatial_dir: Path, scalefactors: dict, um_per_px: float, load_images: bool) -> dict:
    """``uns["spatial"][library_id]`` with scale factors that refer to micrometre coordinates."""
    sf = {k: float(v) for k, v in scalefactors.items()}
    # Our obsm["spatial"] is in um, so "fullres" is the micrometre frame: image px per um.
    for key in ("tissue_hires_scalef", "tissue_lowres_scalef"):
        if key in sf:
            sf[key] = sf[key] / um_per_px
    sf["spot_diameter_fullres"] = VISIUM_SPOT_DIAMETER_UM
    if "fiducial_diameter_fullres" in scalefactors:
        sf["fiducial_diameter_fullres"] = float(scalefactors["fiducial_diameter_fullres"]) * um_per_px
    images = {}
    if load_images:
        for res in ("hires", "lowres"):
            png = spatial_dir / f"tissue_{res}_image.png"
            if png.is_file():
                images[res] = _read_png(png)
    return {"images": images, "scalefactors": sf, "metadata": {"source_image_path": str(spatial_dir)}}


def _read_png(png: Path) -> np.ndarray:
    """The image as 8-bit pixels (height, width[, channels]), as spaceranger wrote it: a quarter of
    the memory of the float copy matplotlib's reader makes, and what a SpatialData image stores."""
    from PIL import Image

    from ._he_image import as_uint8

    try:
        with Image.open(png) as image:
            image.load()
            if image.mode not in ("L", "RGB", "RGBA", "I;16"):  # palette, CMYK, ...: as RGB(A)
                image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
            return as_uint8(np.asarray(image), f"'{png}'")
    except Exception as err:  # Pillow raises SyntaxError, OSError, ValueError for a bad image
        raise ValueError(
            f"'{png}' is not a readable PNG image ({type(err).__name__}: {err}); copy the spaceranger "
            "spatial/ folder again, or remove the damaged image (read_visium works without it)"
        ) from err
