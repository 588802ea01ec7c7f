"""Helpers for the registration tests: Visium-like spots and an MSI raster of one blob tissue."""

from __future__ import annotations

import functools
import shutil
import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from spatial_mg.align import Pose, fit_similarity, landmarks_um


def hex_spots(n_rows: int, n_cols: int, pitch: float = 100.0) -> np.ndarray:
    """Visium-like hexagonal grid centres (micrometres)."""
    row, col = np.mgrid[0:n_rows, 0:n_cols]
    keep = (row + col) % 2 == 0
    return np.column_stack([col[keep] * pitch / 2, row[keep] * pitch * np.sqrt(3) / 2]).astype(float)


def blob(points: np.ndarray, centre, radius: float) -> np.ndarray:
    """Inside an asymmetric blob (no mirror or turn maps it onto itself)."""
    d = points - np.asarray(centre)
    phi = np.arctan2(d[:, 1], d[:, 0])
    r = radius * (1 + 0.18 * np.cos(2 * phi + 0.3) + 0.12 * np.sin(3 * phi) + 0.06 * np.cos(5 * phi + 1.0))
    return np.hypot(d[:, 0], d[:, 1]) < r


def make_pair(affine: Pose, *, pitch: float = 75.0, radius: float = 1200.0, raster_keep: float = 1.0):
    """RNA spots and an MSI raster of the same blob tissue, related by ``affine`` (MSI -> STR).

    The raster covers the tissue plus background (intensity 1 % of tissue); ``raster_keep``
    < 1 keeps only that share of the tissue's MSI x extent (partial overlap).
    """
    spots = hex_spots(60, 110)
    centre = spots.mean(axis=0)
    rna_um = spots[blob(spots, centre, radius)]
    rna = ad.AnnData(np.ones((len(rna_um), 3), np.float32), obs=pd.DataFrame(index=[f"s{i}" for i in range(len(rna_um))]))
    rna.obsm["spatial"] = rna_um
    rna.uns["spatial_mg"] = {"units": "um", "spot_radius_um": 27.5}
    # raster around the tissue, in MSI micrometres
    tissue_msi = affine.inverse().apply(rna_um)
    lo, hi = tissue_msi.min(axis=0) - 4 * pitch, tissue_msi.max(axis=0) + 4 * pitch
    gx, gy = np.meshgrid(np.arange(lo[0] // pitch, hi[0] // pitch + 1), np.arange(lo[1] // pitch, hi[1] // pitch + 1))
    grid = np.column_stack([gx.ravel(), gy.ravel()]).astype(int)
    cut = tissue_msi[:, 0].min() + raster_keep * np.ptp(tissue_msi[:, 0])
    grid = grid[grid[:, 0] * pitch <= cut]
    msi_um = grid * pitch
    on = blob(affine.apply(msi_um), centre, radius)
    rng = np.random.default_rng(0)
    x_coord = affine.apply(msi_um)[:, 0]
    values = np.where(on[:, None], 100.0 * rng.lognormal(0, 0.1, (len(grid), 3)), 1.0 * rng.random((len(grid), 3)))
    values[:, 2] = np.where(on, x_coord, 0.0)  # a feature that tells where a pixel truly is
    msi = ad.AnnData(
        values.astype(np.float32),
        obs=pd.DataFrame({"x": grid[:, 0], "y": grid[:, 1], "in_tissue": on}, index=[f"p{i}" for i in range(len(grid))]),
        var=pd.DataFrame({"mz": [100.0, 200.0, 300.0]}, index=["mz_100", "mz_200", "mz_300"]),
    )
    msi.obsm["spatial"] = msi_um.astype(float)
    msi.uns["spatial_mg"] = {"units": "um", "pixel_size_um": [pitch, pitch]}
    return rna, msi


def median_error(reg, msi, affine) -> float:
    tissue = msi.obs["in_tissue"].to_numpy(bool)
    return float(np.median(reg.distance_to(affine, np.asarray(msi.obsm["spatial"], float)[tissue])))


SMA = Path(__file__).resolve().parents[1] / "data" / "sma_V11L12-038_D1_geometry"
SMA_LANDMARKS = SMA / "landmarks_noHE.csv"
SMA_MSI_PIXEL_UM = 100.0  # the SMA raster step (the fixture's MSI_metadata.csv records grid positions only)


def write_sma_outs(dest: Path, n_genes: int = 3, seed: int = 0) -> Path:
    """The real section's Visium ``spatial/`` folder as a spaceranger ``outs/`` in ``dest``.

    The fixture has no count matrix; a small one of random counts over its in-tissue
    barcodes is written beside the real positions and scale factors, so that
    :func:`spatial_mg.io.read_visium` reads the real geometry.
    """
    from spatial_mg.io._write_visium import _write_10x_h5

    cols = ["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]
    spots = pd.read_csv(SMA / "visium" / "spatial" / "tissue_positions_list.csv", header=None, names=cols)
    barcodes = spots.loc[spots["in_tissue"] == 1, "barcode"]
    counts = np.random.default_rng(seed).poisson(5.0, size=(len(barcodes), n_genes)) + 1
    genes = ad.AnnData(counts.astype(np.float32), obs=pd.DataFrame(index=barcodes.to_numpy(str)))
    genes.var_names = [f"gene{i}" for i in range(n_genes)]
    outs = dest / "outs"
    shutil.copytree(SMA / "visium" / "spatial", outs / "spatial")
    _write_10x_h5(genes, outs / "filtered_feature_bc_matrix.h5", "mm10", "V11L12-038_D1")
    return outs


@functools.lru_cache(maxsize=1)
def _sma_rna() -> ad.AnnData:
    with tempfile.TemporaryDirectory() as tmp:
        from spatial_mg.io import read_visium

        return read_visium(write_sma_outs(Path(tmp)))


def sma_msi_grid() -> pd.DataFrame:
    """The real section's MSI pixels: ``spot_id`` with their grid positions ``x, y``."""
    return pd.read_csv(SMA / "msi" / "MSI_metadata.csv")


def load_sma():
    """The real SMA section's geometry (see its PROVENANCE.md) in micrometres.

    Returns the in-tissue spots (AnnData as :func:`spatial_mg.io.read_visium` reads them,
    micrometres from the array grid's 100 um pitch, and the Visium scale factors), the MSI
    pixel positions (AnnData, grid x 100 um, no intensities), the least-squares similarity
    through the 10 landmarks, and the landmarks (MSI um, STR um) as the library reads the
    published file (:func:`spatial_mg.align.landmarks_um`).
    """
    rna = _sma_rna().copy()
    grid = sma_msi_grid().set_index("spot_id")
    msi = ad.AnnData(np.zeros((len(grid), 0), np.float32), obs=grid[["x", "y"]].astype(np.int64))
    msi.obsm["spatial"] = grid[["x", "y"]].to_numpy(float) * SMA_MSI_PIXEL_UM
    msi.uns["spatial_mg"] = {"units": "um", "pixel_size_um": [SMA_MSI_PIXEL_UM, SMA_MSI_PIXEL_UM]}
    msi_marks, rna_marks = landmarks_um(SMA_LANDMARKS, rna, msi)
    return rna, msi, fit_similarity(msi_marks, rna_marks), (msi_marks, rna_marks)
