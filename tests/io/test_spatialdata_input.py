"""Sections from SpatialData: spatialdata-io's Visium reader gives what read_visium gives."""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import spatialdata as sd
import spatialdata_io
from PIL import Image
from spatialdata.models import ShapesModel, TableModel
from spatialdata.transformations import Affine, get_transformation, set_transformation

from spatial_mg.io import msi_from_spatialdata, read_visium, section_from_spatialdata
from spatial_mg.io._he_image import HEImage, as_uint8, he_image_of

VISIUM = Path(__file__).parents[1] / "data" / "visium_squidpy_test"


@pytest.fixture(scope="module")
def visium_sdata():
    return spatialdata_io.visium(VISIUM, dataset_id="V1")


def test_spatialdata_io_section_is_read_visiums(visium_sdata):
    got = section_from_spatialdata(visium_sdata)
    expected = read_visium(VISIUM)
    assert got.obs_names.equals(expected.obs_names)
    assert got.X.dtype == np.int32 and (got.X != expected.X).nnz == 0
    # the same array-grid fit: the same micrometres (here every listed spot is in the table)
    np.testing.assert_allclose(got.obsm["spatial"], expected.obsm["spatial"], atol=1e-6)
    meta = got.uns["spatial_mg"]
    assert meta["units"] == "um" and meta["um_from"] == "array_grid" and meta["library_id"] == "V1"
    assert meta["spot_radius_um"] == expected.uns["spatial_mg"]["spot_radius_um"]
    for name in ("in_tissue", "array_row", "array_col"):
        np.testing.assert_array_equal(got.obs[name], expected.obs[name])
    assert "spot_id" not in got.obs and "region" not in got.obs  # spatialdata's bookkeeping stays behind
    # the H&E, 8-bit, placed in micrometres as read_visium places it
    mine = got.uns["spatial"]["V1"]
    theirs = expected.uns["spatial"]["visium_squidpy_test"]
    for res in ("hires", "lowres"):
        np.testing.assert_array_equal(mine["images"][res], theirs["images"][res])
        assert mine["scalefactors"][f"tissue_{res}_scalef"] == pytest.approx(theirs["scalefactors"][f"tissue_{res}_scalef"], rel=1e-9)


def test_the_spatialdata_is_not_modified(visium_sdata):
    table = visium_sdata.tables["table"]
    before = table.obs.copy(), table.X.copy(), dict(table.uns)
    section_from_spatialdata(visium_sdata)
    assert table.obs.equals(before[0]) and (table.X != before[1]).nnz == 0
    assert set(table.uns) == set(before[2])


def test_micrometres_do_not_depend_on_the_coordinate_system(visium_sdata):
    # the hires coordinate system is the full-resolution one scaled by 0.15: the grid fit absorbs it
    full = section_from_spatialdata(visium_sdata)
    hires = section_from_spatialdata(visium_sdata, coordinate_system="V1_downscaled_hires")
    np.testing.assert_allclose(hires.obsm["spatial"], full.obsm["spatial"], atol=1e-6)
    ratio = hires.uns["spatial_mg"]["um_per_fullres_px"] / full.uns["spatial_mg"]["um_per_fullres_px"]
    assert ratio == pytest.approx(1 / 0.150015, rel=1e-5)
    # the hires image (the only one in that system) lands where it did
    key = "tissue_hires_scalef"
    assert hires.uns["spatial"]["V1"]["scalefactors"][key] == pytest.approx(full.uns["spatial"]["V1"]["scalefactors"][key])
    assert set(hires.uns["spatial"]["V1"]["images"]) == {"hires"}
    with pytest.raises(ValueError, match="not in the coordinate system 'elsewhere'"):
        section_from_spatialdata(visium_sdata, coordinate_system="elsewhere")


def test_a_turned_image_is_left_out_with_a_warning(visium_sdata):
    turned = sd.SpatialData(
        images={"V1_hires_image": visium_sdata.images["V1_hires_image"]},
        shapes={"V1": visium_sdata.shapes["V1"]},
        tables={"table": visium_sdata.tables["table"]},
    )
    theta = np.deg2rad(10)
    rotation = Affine(
        np.array([[np.cos(theta), -np.sin(theta), 0], [np.sin(theta), np.cos(theta), 0], [0, 0, 1]]) * [[5, 5, 1], [5, 5, 1], [0, 0, 1]],
        input_axes=("x", "y"),
        output_axes=("x", "y"),
    )
    set_transformation(turned.images["V1_hires_image"], rotation, to_coordinate_system="V1")
    with pytest.warns(UserWarning, match="turned, sheared or shifted"):
        section = section_from_spatialdata(turned)
    assert "hires" not in section.uns["spatial"]["V1"].get("images", {})


def _table(obs: dict, region: str = "blobs", n: int = 4, uns: dict | None = None) -> ad.AnnData:
    table = ad.AnnData(np.ones((n, 2), np.float32), obs=pd.DataFrame({**obs, "region": region, "iid": np.arange(n)}))
    table.uns.update(uns or {})
    return TableModel.parse(table, region=region, region_key="region", instance_key="iid")


def _circles(n: int = 4):
    import geopandas as gpd

    frame = gpd.GeoDataFrame({"radius": np.ones(n)}, geometry=gpd.points_from_xy(np.arange(n), np.arange(n) % 2))
    return ShapesModel.parse(frame)


def test_no_section_in_the_spatialdata_is_a_clear_error():
    sdata = sd.SpatialData(shapes={"blobs": _circles()}, tables={"cells": _table({"kind": list("abab")})})
    with pytest.raises(ValueError, match=r"no table of a section's spots \(its tables: \['cells'\]\).*array_row"):
        section_from_spatialdata(sdata)
    with pytest.raises(ValueError, match="no table of MSI pixels.*pixel_size_um"):
        msi_from_spatialdata(sdata)
    with pytest.raises(KeyError, match="no table 'nope'.*'cells'"):
        section_from_spatialdata(sdata, table_key="nope")


def test_two_candidate_tables_ask_for_a_table_key():
    grid = {"array_row": [0, 0, 1, 1], "array_col": [0, 2, 1, 3]}
    sdata = sd.SpatialData(shapes={"blobs": _circles()}, tables={"a": _table(grid), "b": _table(grid)})
    with pytest.raises(ValueError, match=r"Several tables.*\['a', 'b'\].*table_key"):
        section_from_spatialdata(sdata)


def test_spots_off_the_array_grid_are_refused(visium_sdata):
    import geopandas as gpd

    spots = visium_sdata.shapes["V1"]
    x = spots.geometry.x.to_numpy().copy()
    x[7] += 3000  # one spot's pixels belong to another place of the array
    moved = ShapesModel.parse(
        gpd.GeoDataFrame({"radius": spots["radius"]}, geometry=gpd.points_from_xy(x, spots.geometry.y), index=spots.index),
        transformations=get_transformation(spots, get_all=True),
    )
    broken = sd.SpatialData(shapes={"V1": moved}, tables={"table": visium_sdata.tables["table"]})
    with pytest.raises(ValueError, match=r"spots of table 'table'.*do not lie on the Visium array grid"):
        section_from_spatialdata(broken)


def test_read_visium_keeps_8_bit_images(visium_dir):
    adata = read_visium(visium_dir)
    hires = adata.uns["spatial"]["visium_squidpy_test"]["images"]["hires"]
    assert hires.dtype == np.uint8
    np.testing.assert_array_equal(hires, np.asarray(Image.open(visium_dir / "spatial" / "tissue_hires_image.png")))


def test_he_image_element_places_pixels_in_micrometres():
    pixels = np.random.default_rng(0).random((30, 40, 3)).astype(np.float32)
    adata = ad.AnnData(np.zeros((1, 1)))
    adata.uns["spatial"] = {"lib": {"images": {"hires": pixels}, "scalefactors": {"tissue_hires_scalef": 0.25}}}
    image = he_image_of(adata)
    np.testing.assert_array_equal(image.pixels, np.rint(pixels * 255).astype(np.uint8))
    assert image.extent_um == (0.0, 160.0, 120.0, 0.0)
    element = image.to_element()
    m = get_transformation(element, to_coordinate_system="global").to_affine_matrix(("x", "y"), ("x", "y"))
    # pixel (row 2, col 3) spans [3, 4] x [2, 3]: its centre lies at (3.5, 2.5) / 0.25 um
    np.testing.assert_allclose(m @ [3.5, 2.5, 1], [14.0, 10.0, 1.0])
    assert element.dtype == np.uint8 and list(element.coords["c"].values) == ["r", "g", "b"]


def test_8_bit_conversion_refuses_what_is_not_an_image():
    assert as_uint8(np.array([[0.0, 1.0]]), "x").tolist() == [[0, 255]]
    assert as_uint8(np.array([[0, 65535]], dtype=np.uint16), "x").tolist() == [[0, 255]]
    with pytest.raises(ValueError, match="outside"):
        as_uint8(np.array([[0.0, 2.0]]), "x")
    with pytest.raises(ValueError, match="grey, RGB or RGBA"):
        as_uint8(np.zeros((4, 4, 2)), "x")
    with pytest.raises(ValueError, match="uint8"):
        HEImage(np.zeros((4, 4, 3)), 1.0)
