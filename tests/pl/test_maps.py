"""Metabolite maps draw every panel with the right data and a shared scale."""

from __future__ import annotations

import anndata as ad
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

from spatial_mg.pl._maps import metabolite_maps


def _pair(rng, n=80):
    xy = rng.uniform(0, 2000, size=(n, 2))
    var = pd.DataFrame(index=["mz_100", "mz_200"])
    truth = ad.AnnData(X=rng.gamma(2, 1, size=(n, 2)), var=var)
    truth.obsm["spatial"] = xy
    pred = ad.AnnData(X=truth.X * 0.5 + 1, var=var.copy(), layers={"std": np.full((n, 2), 0.3)})
    pred.obsm["spatial"] = xy
    return pred, truth


def test_panels_show_their_data_with_a_shared_scale(tmp_path):
    pred, truth = _pair(np.random.default_rng(0))
    fig = metabolite_maps(pred, truth, save=tmp_path / "maps.png")
    assert (tmp_path / "maps.png").stat().st_size > 0
    axes = np.array([ax for ax in fig.axes if ax.get_label() != "<colorbar>"]).reshape(2, 3)
    for row, feature in enumerate(["mz_100", "mz_200"]):
        measured, predicted, std = (ax.collections[0] for ax in axes[row])
        np.testing.assert_allclose(measured.get_array(), truth[:, feature].X.ravel())
        np.testing.assert_allclose(predicted.get_array(), pred[:, feature].X.ravel())
        np.testing.assert_allclose(std.get_array(), 0.3)
        assert measured.get_clim() == predicted.get_clim()


def test_unknown_feature_is_named():
    pred, truth = _pair(np.random.default_rng(1))
    with pytest.raises(KeyError, match="mz_999"):
        metabolite_maps(pred, truth, features=["mz_999"])
