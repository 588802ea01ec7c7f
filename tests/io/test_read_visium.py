"""read_visium on the real squidpy Visium subset and on broken copies of it."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp
from scipy.spatial import cKDTree

from spatial_mg.io import read_visium


def test_real_visium_counts_and_micrometres(visium_dir):
    adata = read_visium(visium_dir)
    raw = sc.read_10x_h5(visium_dir / "filtered_feature_bc_matrix.h5")
    assert adata.n_obs == 100
    assert sp.issparse(adata.X) and np.issubdtype(adata.X.dtype, np.integer)
    np.testing.assert_array_equal(adata.X.toarray(), raw[adata.obs_names].X.toarray())
    # Neighbouring spots of the array are 100 um apart: the closest pairs in this subset are neighbours.
    d, _ = cKDTree(adata.obsm["spatial"]).query(adata.obsm["spatial"], k=2)
    closest = np.sort(d[:, 1])[:10]
    np.testing.assert_allclose(closest, 100.0, rtol=0.02)
    meta = adata.uns["spatial_mg"]
    assert meta["spot_radius_um"] == 27.5 and meta["units"] == "um" and meta["um_from"] == "array_grid"
    # 10x's spot_diameter_fullres is a 65 um circle: the grid and the scale factors agree on that.
    assert np.isclose(89.42751063343188 * meta["um_per_fullres_px"], 65.0, rtol=0.03)


def test_scalefactors_refer_to_micrometres(visium_dir):
    adata = read_visium(visium_dir)
    lib = adata.uns["spatial"]["visium_squidpy_test"]
    um_per_px = adata.uns["spatial_mg"]["um_per_fullres_px"]
    positions = pd.read_csv(visium_dir / "spatial" / "tissue_positions_list.csv", header=None, index_col=0)
    hires_px = positions.loc[adata.obs_names, [5, 4]].to_numpy() * 0.150015
    np.testing.assert_allclose(adata.obsm["spatial"] * lib["scalefactors"]["tissue_hires_scalef"], hires_px)
    assert lib["images"]["hires"].ndim == 3
    assert um_per_px > 0


def test_new_positions_format_with_header(visium_copy):
    old = visium_copy / "spatial" / "tissue_positions_list.csv"
    table = pd.read_csv(old, header=None)
    table.columns = ["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]
    expected = read_visium(visium_copy)
    table.to_csv(visium_copy / "spatial" / "tissue_positions.csv", index=False)
    old.unlink()
    got = read_visium(visium_copy)
    np.testing.assert_array_equal(got.obsm["spatial"], expected.obsm["spatial"])


def test_in_tissue_only_filters_spots(visium_copy):
    positions = visium_copy / "spatial" / "tissue_positions_list.csv"
    table = pd.read_csv(positions, header=None)
    table.loc[:9, 1] = 0  # mark ten spots as off tissue
    table.to_csv(positions, header=False, index=False)
    assert read_visium(visium_copy).n_obs == 90
    assert read_visium(visium_copy, in_tissue_only=False).n_obs == 100


def test_missing_matrix_is_named(visium_copy):
    (visium_copy / "filtered_feature_bc_matrix.h5").unlink()
    with pytest.raises(FileNotFoundError, match="filtered_feature_bc_matrix.h5"):
        read_visium(visium_copy)


def test_missing_positions_is_named(visium_copy):
    (visium_copy / "spatial" / "tissue_positions_list.csv").unlink()
    with pytest.raises(FileNotFoundError, match="tissue_positions"):
        read_visium(visium_copy)


def _edit_matrix(outs, name, values):
    with h5py.File(outs / "filtered_feature_bc_matrix.h5", "r+") as f:
        del f["matrix"][name]
        f["matrix"].create_dataset(name, data=values)


@pytest.mark.parametrize(
    ("change", "message"),
    [(lambda d: d.astype(np.float32) + 0.5, "not integers"), (lambda d: -d.astype(np.int32), "negative")],
)
def test_bad_counts_are_errors(visium_copy, change, message):
    with h5py.File(visium_copy / "filtered_feature_bc_matrix.h5", "r") as f:
        data = f["matrix"]["data"][:]
    _edit_matrix(visium_copy, "data", change(data))
    with pytest.raises(ValueError, match=f"filtered_feature_bc_matrix.h5.*{message}"):
        read_visium(visium_copy)


def test_duplicate_barcodes_are_an_error(visium_copy):
    with h5py.File(visium_copy / "filtered_feature_bc_matrix.h5", "r") as f:
        barcodes = f["matrix"]["barcodes"][:]
    barcodes[1] = barcodes[0]
    _edit_matrix(visium_copy, "barcodes", barcodes)
    with pytest.raises(ValueError, match="Duplicate barcodes"):
        read_visium(visium_copy)


def test_a_matrix_without_gene_expression_features_is_an_error(visium_copy):
    with h5py.File(visium_copy / "filtered_feature_bc_matrix.h5", "r") as f:
        types = f["matrix"]["features"]["feature_type"][:]
    with h5py.File(visium_copy / "filtered_feature_bc_matrix.h5", "r+") as f:
        del f["matrix"]["features"]["feature_type"]
        f["matrix"]["features"].create_dataset("feature_type", data=np.full_like(types, b"Antibody Capture"))
    with pytest.raises(ValueError, match=r"filtered_feature_bc_matrix\.h5' has no 'Gene Expression' features"):
        read_visium(visium_copy)
