"""to_spatialdata(): spots, pixels and image in one micrometre frame; zarr round trip."""

from __future__ import annotations

import numpy as np
import pytest
import spatialdata as sd
from align_data import make_pair
from spatialdata.transformations import get_transformation

from spatial_mg.align import Pose, RegistrationResult, register, to_spatialdata

AFFINE = Pose.similarity(0.97, -65.0, True, (4000.0, 1000.0))


@pytest.fixture(scope="module")
def sdata_and_inputs():
    rna, msi = make_pair(AFFINE, pitch=100.0, radius=700.0)
    pts = np.array([[0, 0], [1000, 0], [0, 1000]], float)
    reg = register(rna, msi, method="landmarks", landmarks=(pts, AFFINE.apply(pts)))
    return to_spatialdata(rna, msi, reg), rna, msi, reg


def test_registration_is_an_affine_into_global(sdata_and_inputs):
    sdata, rna, msi, reg = sdata_and_inputs
    assert set(sdata.shapes) == {"rna_spots", "msi_pixels"} and "msi_image" in sdata.images
    to_global = get_transformation(sdata.shapes["msi_pixels"], to_coordinate_system="global")
    np.testing.assert_allclose(to_global.to_affine_matrix(("x", "y"), ("x", "y")), reg.affine, atol=1e-9)
    # spots stay in STR micrometres, circles with the spot radius
    spots = sdata.shapes["rna_spots"]
    np.testing.assert_allclose(np.column_stack([spots.geometry.x, spots.geometry.y]), rna.obsm["spatial"])
    assert (spots["radius"] == 27.5).all()
    # a pixel square's centre, carried to "global", lands where the registration puts it
    centre = np.array(sdata.shapes["msi_pixels"].geometry.iloc[5].centroid.coords[0])
    np.testing.assert_allclose(reg.pose.apply(centre[None])[0], reg.transform(msi.obsm["spatial"][5:6])[0])
    # the image: the centre of pixel (col, row) of grid cell (x, y) (spatialdata: col + 0.5, row + 0.5)
    # maps to that pixel's registered centre
    img = sdata.images["msi_image"]
    m = get_transformation(img, to_coordinate_system="global").to_affine_matrix(("x", "y"), ("x", "y"))
    x, y = msi.obs["x"].iloc[5], msi.obs["y"].iloc[5]
    col, row = x - msi.obs["x"].min(), y - msi.obs["y"].min()
    np.testing.assert_allclose(Pose(m).apply(np.array([[col + 0.5, row + 0.5]]))[0], reg.transform(msi.obsm["spatial"][5:6])[0])
    np.testing.assert_allclose(img.sel(c="mz_100").values[row, col], msi.X[5, 0])


def test_tables_annotate_the_shapes(sdata_and_inputs):
    sdata, rna, msi, reg = sdata_and_inputs
    table = sdata.tables["rna_table"]
    assert table.uns["spatialdata_attrs"]["region"] == "rna_spots"
    assert (table.obs_names == rna.obs_names).all()
    np.testing.assert_array_equal(table.obs["instance_id"], np.arange(rna.n_obs))
    pixels = sdata.tables["msi_table"]
    np.testing.assert_array_equal(pixels.obs["on_tissue"].to_numpy(), reg.msi_tissue)
    back = RegistrationResult.from_json(pixels.uns["registration"])
    np.testing.assert_allclose(back.affine, reg.affine)


def test_zarr_round_trip_is_identical(sdata_and_inputs, tmp_path):
    sdata, *_ = sdata_and_inputs
    sdata.write(tmp_path / "section.zarr")
    back = sd.read_zarr(tmp_path / "section.zarr")
    for name in ("rna_spots", "msi_pixels"):
        assert back.shapes[name].geometry.equals(sdata.shapes[name].geometry)
        a = get_transformation(back.shapes[name], to_coordinate_system="global").to_affine_matrix(("x", "y"), ("x", "y"))
        b = get_transformation(sdata.shapes[name], to_coordinate_system="global").to_affine_matrix(("x", "y"), ("x", "y"))
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.images["msi_image"].values, sdata.images["msi_image"].values)
    for name in ("rna_table", "msi_table"):
        np.testing.assert_array_equal(np.asarray(back.tables[name].X), np.asarray(sdata.tables[name].X))
        assert back.tables[name].obs.equals(sdata.tables[name].obs)
