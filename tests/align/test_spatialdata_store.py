"""The SpatialData store: image pixels where their shapes are, the H&E kept once, and the store as input again."""

from __future__ import annotations

import numpy as np
import pytest
import spatialdata as sd
from align_data import make_pair
from spatialdata.transformations import get_transformation

from spatial_mg.align import Pose, pair, register, to_spatialdata

AFFINE = Pose.similarity(0.97, -65.0, True, (4000.0, 1000.0))
PX_PER_UM = 0.05  # the H&E's scale factor for micrometres


def _matrix(element, frame: str) -> np.ndarray:
    return get_transformation(element, to_coordinate_system=frame).to_affine_matrix(("x", "y"), ("x", "y"))


@pytest.fixture(scope="module")
def section():
    rna, msi = make_pair(AFFINE, pitch=100.0, radius=700.0)
    # an H&E over the spots, in the float form matplotlib and scanpy read PNGs into
    he = np.random.default_rng(1).integers(0, 256, (260, 280, 3)).astype(np.float32) / 255
    rna.uns["spatial"] = {"lib": {"images": {"hires": he}, "scalefactors": {"tissue_hires_scalef": PX_PER_UM}, "metadata": {}}}
    rna.uns["spatial_mg"]["library_id"] = "lib"
    pts = np.array([[0, 0], [1000, 0], [0, 1000]], float)
    reg = register(rna, msi, method="landmarks", landmarks=(pts, AFFINE.apply(pts)))
    return rna, msi, reg


@pytest.fixture(scope="module")
def store(section, tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "section.zarr"
    to_spatialdata(*section).write(path)
    return sd.read_zarr(path)


def test_msi_image_pixel_centres_are_the_pixel_squares_centres(section):
    rna, msi, reg = section
    sdata = to_spatialdata(rna, msi, reg)
    image, squares = sdata.images["msi_image"], sdata.shapes["msi_pixels"]
    x0, y0 = msi.obs["x"].min(), msi.obs["y"].min()
    first = int(np.flatnonzero((msi.obs["x"] == x0) & (msi.obs["y"] == y0))[0])
    centre = np.array(squares.geometry.iloc[first].centroid.coords[0])
    for frame in ("msi", "global"):
        # spatialdata's pixel (0, 0) spans [0, 1] x [0, 1]: its centre is (0.5, 0.5)
        from_image = Pose(_matrix(image, frame)).apply(np.array([[0.5, 0.5]]))[0]
        np.testing.assert_allclose(from_image, Pose(_matrix(squares, frame)).apply(centre[None])[0], atol=1e-9)
    # so the image covers exactly the squares' extent (it was half a pixel short before)
    image_extent = sd.get_extent(image, coordinate_system="msi")
    squares_extent = sd.get_extent(squares, coordinate_system="msi")
    for axis in ("x", "y"):
        np.testing.assert_allclose(image_extent[axis], squares_extent[axis], atol=1e-9)


def test_he_image_is_stored_once_in_micrometres(section, store):
    rna, _, _ = section
    he = store.images["he_image"]
    expected = np.rint(rna.uns["spatial"]["lib"]["images"]["hires"] * 255).astype(np.uint8)
    assert he.dtype == np.uint8
    np.testing.assert_array_equal(np.moveaxis(he.values, 0, -1), expected)
    # pixel (row 10, col 20) spans [20, 21] x [10, 11] pixels: its centre is 20.5 / 0.05 um across, 10.5 / 0.05 down
    np.testing.assert_allclose(_matrix(he, "global") @ [20.5, 10.5, 1], [410.0, 210.0, 1.0])
    # the table keeps how to find it (scale factors), not a second copy
    table_spatial = store.tables["rna_table"].uns["spatial"]["lib"]
    assert "images" not in table_spatial
    assert table_spatial["scalefactors"]["tissue_hires_scalef"] == PX_PER_UM
    assert "hires" in rna.uns["spatial"]["lib"]["images"]  # the input keeps its own


def test_pairs_keep_the_scale_factors_but_not_the_image(section):
    rna, msi, reg = section
    mdata = pair(rna, msi, reg)
    kept = mdata["rna"].uns["spatial"]["lib"]
    assert "images" not in kept and kept["scalefactors"]["tissue_hires_scalef"] == PX_PER_UM
    assert rna.uns["spatial"]["lib"]["images"]["hires"].shape == (260, 280, 3)  # not modified


def test_the_store_is_a_section_again(section, store):
    rna, msi, reg = section
    # a registration of the AnnData objects applies to the store's tables (same spots, same pixels)
    from_store = pair(store, store, reg)
    from_anndata = pair(rna, msi, reg)
    assert from_store.obs_names.equals(from_anndata.obs_names)
    np.testing.assert_array_equal(from_store["msi"].X, from_anndata["msi"].X)
    # and registering the store gives the registration of the AnnData objects
    pts = np.array([[0, 0], [1000, 0], [0, 1000]], float)
    again = register(store, store, method="landmarks", landmarks=(pts, AFFINE.apply(pts)))
    np.testing.assert_allclose(again.affine, reg.affine, atol=1e-9)
    np.testing.assert_array_equal(again.msi_tissue, reg.msi_tissue)
    # a store of the store keeps the H&E where it was
    twice = to_spatialdata(store, store, again)
    np.testing.assert_array_equal(twice.images["he_image"].values, store.images["he_image"].values)
    np.testing.assert_allclose(_matrix(twice.images["he_image"], "global"), _matrix(store.images["he_image"], "global"))


def test_what_is_no_section_is_a_type_error(section):
    rna, msi, _ = section
    with pytest.raises(TypeError, match="rna must be an AnnData or a SpatialData, got ndarray"):
        register(np.asarray(rna.obsm["spatial"]), msi)
