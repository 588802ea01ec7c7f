"""Moran's I: smooth maps score high, shuffled maps near zero."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from spatial_mg.metrics._spatial import morans_i


def _grid_adata(rng):
    xs, ys = np.meshgrid(np.arange(30), np.arange(30))
    xy = np.column_stack([xs.ravel(), ys.ravel()]) * 100.0
    smooth = np.sin(xy[:, 0] / 600.0) + np.cos(xy[:, 1] / 800.0)
    noise = rng.normal(size=len(xy))
    adata = ad.AnnData(
        X=np.column_stack([smooth, noise, np.ones(len(xy))]),
        var=pd.DataFrame(index=["smooth", "noise", "flat"]),
    )
    adata.obsm["spatial"] = xy
    return adata


def test_smooth_map_beats_noise_and_input_untouched():
    adata = _grid_adata(np.random.default_rng(0))
    before = adata.copy()
    score = morans_i(adata)
    assert score["smooth"] > 0.8
    assert abs(score["noise"]) < 0.1
    assert np.isnan(score["flat"])
    assert set(adata.obsp.keys()) == set(before.obsp.keys()) and adata.uns.keys() == before.uns.keys()


def test_moran_matches_definition_on_random_points():
    # Moran's I with row-standardised 6-NN weights, computed by hand (random points: no kNN ties).
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 3000, size=(300, 2))
    values = np.sin(xy[:, 0] / 500) + rng.normal(0, 0.3, size=300)
    adata = ad.AnnData(X=values[:, None], var=pd.DataFrame(index=["f"]))
    adata.obsm["spatial"] = xy
    x = values - values.mean()
    _, idx = cKDTree(xy).query(xy, k=7)
    w = np.zeros((300, 300))
    for i, row in enumerate(idx[:, 1:]):
        w[i, row] = 1 / 6
    expected = (len(x) / w.sum()) * (x @ w @ x) / (x @ x)
    assert np.isclose(morans_i(adata)["f"], expected, rtol=1e-6)
