"""Bad input gets a clear error, or a low-confidence flag that says what to check."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from spatial_mg.align import Pose, pair, register

from align_data import make_pair


@pytest.fixture(scope="module")
def good():
    return make_pair(Pose.similarity(1.0, 30.0, False, (500.0, 400.0)), pitch=100.0, radius=900.0)


def test_nan_coordinates_are_named(good):
    rna, msi = good
    bad = rna.copy()
    bad.obsm["spatial"][3] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN or infinite coordinates \(first: 's3'\)"):
        register(bad, msi)
    assert np.isfinite(rna.obsm["spatial"]).all()  # the input was not touched


def test_too_few_and_collinear_points(good):
    rna, msi = good
    with pytest.raises(ValueError, match="at least 3"):
        register(rna[:2].copy(), msi)
    line = rna.copy()
    line.obsm["spatial"] = np.column_stack([np.arange(rna.n_obs) * 100.0, np.zeros(rna.n_obs)])
    with pytest.raises(ValueError, match="lie on a line"):
        register(line, msi)


def test_missing_pixel_size_and_grid_units(good):
    rna, msi = good
    no_size = msi.copy()
    no_size.uns["spatial_mg"] = {}
    with pytest.raises(ValueError, match="msi_pixel_size_um"):
        register(rna, no_size)
    grid_units = msi.copy()
    grid_units.obsm["spatial"] = grid_units.obs[["x", "y"]].to_numpy(float)
    with pytest.raises(ValueError, match="grid units"):
        register(rna, grid_units)
    with pytest.raises(KeyError, match="obsm"):
        register(ad.AnnData(obs=pd.DataFrame(index=["a", "b", "c"])), msi)


def test_empty_msi_after_background_removal(good):
    rna, msi = good
    with pytest.raises(ValueError, match=r"Only 0 of \d+ MSI pixels are left as tissue"):
        register(rna, msi, tic_threshold=1e12)


def test_a_different_tissue_is_flagged_not_silently_paired(good):
    """An MSI of another tissue (a long strip) cannot match the blob: low confidence, with why."""
    rna, _ = good
    gx, gy = np.meshgrid(np.arange(60), np.arange(14))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    on = (grid[:, 1] >= 4) & (grid[:, 1] < 10)
    strip = ad.AnnData(
        np.where(on[:, None], 100.0, 1.0).astype(np.float32) * np.ones((1, 2), np.float32),
        obs=pd.DataFrame({"x": grid[:, 0], "y": grid[:, 1]}, index=[f"p{i}" for i in range(len(grid))]),
    )
    strip.obsm["spatial"] = grid * 100.0
    strip.uns["spatial_mg"] = {"units": "um", "pixel_size_um": [100.0, 100.0]}
    reg = register(rna, strip, device="cpu", n_subsample=120)
    assert reg.qc.confidence == "low"
    assert "counterpart" in reg.qc.reason or "scale" in reg.qc.reason
    with pytest.warns(UserWarning, match="low-confidence registration"):
        pair(rna, strip, reg)


def test_misplaced_landmark_is_reported(good):
    rna, msi = good
    truth = Pose.similarity(1.0, 30.0, False, (500.0, 400.0))
    src = np.array([[0, 0], [2000, 0], [0, 1500], [1800, 1700], [900, 800]], float)
    dst = truth.apply(src)
    dst[3] += [900.0, -700.0]
    reg = register(rna, msi, method="landmarks", landmarks=(src, dst))
    assert reg.qc.confidence == "low"
    assert "landmark 3 is furthest off" in reg.qc.reason
    with pytest.raises(ValueError, match="at least 3"):
        register(rna, msi, method="landmarks", landmarks=(src[:2], dst[:2]))
    with pytest.raises(ValueError, match="landmarks="):
        register(rna, msi, method="landmarks")
