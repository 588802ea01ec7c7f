"""pair(): each spot gets the MSI intensities at its place, one row per pair."""

from __future__ import annotations

import numpy as np
import pytest
from align_data import make_pair

from spatial_mg.align import Pose, pair, register

AFFINE = Pose.similarity(1.0, 40.0, True, (1500.0, 3000.0))


@pytest.fixture(scope="module")
def data():
    """A raster that misses part of the tissue; feature mz_300 is each pixel's true x (um)."""
    rna, msi = make_pair(AFFINE, pitch=50.0, raster_keep=0.7)
    pts = np.array([[0, 0], [2000, 0], [0, 2000], [1500, 1800]], float)
    reg = register(rna, msi, method="landmarks", landmarks=(pts, AFFINE.apply(pts)))
    return rna, msi, reg


def _x_of(mdata):
    return mdata["msi"][:, "mz_300"].X.ravel()


def test_spot_mean_reads_the_pixels_under_each_spot(data):
    rna, msi, reg = data
    before_rna, before_msi = rna.X.copy(), msi.X.copy()
    mdata = pair(rna, msi, reg)
    assert list(mdata.mod) == ["rna", "msi"]
    assert (mdata["rna"].obs_names == mdata["msi"].obs_names).all()
    spots = rna[mdata.obs_names].obsm["spatial"]
    # the overlap-weighted mean of the pixels' true x is the spot's x, to a fraction of a pixel
    assert np.median(np.abs(_x_of(mdata) - spots[:, 0])) < 5.0
    assert np.abs(_x_of(mdata) - spots[:, 0]).max() < 50.0
    obs = mdata["msi"].obs
    assert (obs["n_pixels"] >= 1).all() and obs["n_pixels"].median() >= 2  # 50 um pixels, 55 um spots
    assert (obs["pair_distance_um"] < 27.5 + 50 / np.sqrt(2)).all()
    # spots beyond the raster are reported, not paired with nothing
    info = mdata.uns["pairing"]
    assert info["n_unpaired"] > 0 and info["n_paired"] + info["n_unpaired"] == rna.n_obs
    assert set(info["unpaired_spots"]).isdisjoint(mdata.obs_names)
    # counts untouched, inputs unmodified
    np.testing.assert_array_equal(mdata["rna"].X, rna[mdata.obs_names].X)
    np.testing.assert_array_equal(rna.X, before_rna)
    np.testing.assert_array_equal(msi.X, before_msi)


def test_pairs_write_to_h5mu_and_keep_the_registration(data, tmp_path):
    import mudata as md

    from spatial_mg.align import RegistrationResult

    rna, msi, reg = data
    mdata = pair(rna, msi, reg)
    mdata.write(tmp_path / "pairs.h5mu")
    back = md.read_h5mu(tmp_path / "pairs.h5mu")
    np.testing.assert_allclose(back["msi"].X, mdata["msi"].X)
    assert (back.obs_names == mdata.obs_names).all()
    restored = RegistrationResult.from_json(back.uns["pairing"]["registration"])
    np.testing.assert_allclose(restored.affine, reg.affine)
    with pytest.raises(KeyError, match="not in msi.layers"):
        pair(rna, msi, reg, layer="raw")


def test_nearest_spot_is_the_sma_rule(data):
    rna, msi, reg = data
    mdata = pair(rna, msi, reg, strategy="nearest_spot")
    spots = rna[mdata.obs_names].obsm["spatial"]
    assert np.median(np.abs(_x_of(mdata) - spots[:, 0])) < 15.0
    assert (mdata.obs["pair_distance_um"] <= 100 / np.sqrt(3) + 1e-6).all()
    # every tissue pixel goes to one spot at most: the counts add up to the pixels used
    assert mdata.obs["n_pixels"].sum() <= mdata.uns["pairing"]["n_msi_pixels_used"]
    tight = pair(rna, msi, reg, strategy="nearest_spot", max_distance_um=10.0)
    assert tight.n_obs < mdata.n_obs


def test_transport_projects_through_a_plan(data):
    rna, msi, reg = data
    mdata = pair(rna, msi, reg, strategy="transport")
    spots = rna[mdata.obs_names].obsm["spatial"]
    assert np.median(np.abs(_x_of(mdata) - spots[:, 0])) < 15.0
    assert mdata.uns["pairing"]["strategy"] == "transport"
    assert mdata.uns["pairing"]["n_unpaired"] > 0  # spots beyond the raster receive no mass


def test_wrong_objects_and_strategy_are_refused(data):
    rna, msi, reg = data
    with pytest.raises(ValueError, match="pair the same objects"):
        pair(rna[:10].copy(), msi, reg)
    with pytest.raises(ValueError, match="strategy must be one of"):
        pair(rna, msi, reg, strategy="closest")
