"""Registration overlay: registered pixels coloured by an m/z under the spot outlines."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import EllipseCollection, PolyCollection

from spatial_mg.align import Pose, RegistrationQC, RegistrationResult
from spatial_mg.pl import registration


def _data(confidence: str = "high"):
    gx, gy = np.meshgrid(np.arange(8), np.arange(6))
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    values = np.column_stack([grid[:, 0] * 10.0, grid[:, 1] * 1.0]).astype(np.float32)
    msi = ad.AnnData(
        values,
        obs=pd.DataFrame({"x": grid[:, 0], "y": grid[:, 1]}, index=[f"p{i}" for i in range(len(grid))]),
        var=pd.DataFrame({"mz": [150.0, 300.0]}, index=["mz_150", "mz_300"]),
    )
    msi.obsm["spatial"] = grid * 100.0
    msi.uns["spatial_mg"] = {"pixel_size_um": [100.0, 100.0]}
    rna = ad.AnnData(obs=pd.DataFrame(index=["a", "b", "c"]))
    rna.obsm["spatial"] = np.array([[100.0, 100.0], [300.0, 200.0], [500.0, 300.0]])
    tissue = grid[:, 0] < 6
    reason = "" if confidence == "high" else "the fitted scale 2.000 is far from 1"
    qc = RegistrationQC(0.9, 0.95, 30.0, 1.0, 10.0, False, 1.0, confidence, reason, {"msi_pixel_size_um": 100.0})
    reg = RegistrationResult(Pose.similarity(1.0, 10.0), "moscot", qc, tissue, msi.n_obs, rna.n_obs)
    return rna, msi, reg, tissue


def test_overlay_draws_registered_pixels_and_spots(tmp_path):
    rna, msi, reg, tissue = _data()
    ax = registration(rna, msi, reg, mz=299.9, save=tmp_path / "overlay.png")
    polys = [c for c in ax.collections if isinstance(c, PolyCollection)]
    pixels = next(c for c in polys if c.get_array() is not None)
    # tissue pixels coloured by the nearest m/z (300: the grid's y), background in grey
    np.testing.assert_allclose(pixels.get_array(), msi.X[tissue, 1])
    assert len(pixels.get_paths()) == tissue.sum()
    assert sum(len(c.get_paths()) for c in polys) == msi.n_obs
    # the squares are turned by the registration (10 degrees), not axis-aligned
    corners = pixels.get_paths()[0].vertices[:4]
    edge = corners[1] - corners[0]
    assert np.degrees(np.arctan2(edge[1], edge[0])) == pytest.approx(10.0, abs=1e-6)
    spots = next(c for c in ax.collections if isinstance(c, EllipseCollection))
    assert len(spots.get_offsets()) == rna.n_obs
    assert "m/z 300.0000" in ax.figure.axes[-1].get_ylabel()  # the colour bar
    assert (tmp_path / "overlay.png").stat().st_size > 0
    plt.close(ax.figure)


def test_low_confidence_is_written_on_the_figure():
    rna, msi, reg, _ = _data("low")
    ax = registration(rna, msi, reg, mz="mz_150")
    assert "confidence low" in ax.get_title()
    assert any("scale 2.000 is far from 1" in t.get_text() for t in ax.texts)
    with pytest.raises(KeyError, match="not a feature"):
        registration(rna, msi, reg, mz="mz_999")
    plt.close("all")
