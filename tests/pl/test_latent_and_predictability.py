"""The latent UMAP and the correlation-vs-Moran's-I scatter draw what they are given."""

from __future__ import annotations

import anndata as ad
import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from spatial_mg import pl


def _latent(n=120, seed=0):
    rng = np.random.default_rng(seed)
    groups = np.repeat(["a", "b", "c"], n // 3)
    centres = {"a": 0.0, "b": 6.0, "c": 12.0}
    z = rng.normal(size=(n, 8)) + np.array([centres[g] for g in groups])[:, None]
    obs = pd.DataFrame({"domain": groups, "section": np.tile(["S1", "S2"], n // 2)}, index=[f"s{i}" for i in range(n)])
    return ad.AnnData(obs=obs, obsm={"X_poe": z})


def test_latent_umap_draws_one_panel_per_key_and_leaves_the_input_alone(tmp_path):
    adata = _latent()
    before = (set(adata.obsm), set(adata.obsp), set(adata.uns), list(adata.obs.columns))
    fig = pl.latent_umap(adata, ["section", "domain"], save=tmp_path / "umap.png")
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.collections]
    assert len(panels) == 2 and [ax.get_title() for ax in panels] == ["latent by section", "latent by domain"]
    assert all(ax.collections[0].get_offsets().shape[0] == adata.n_obs for ax in panels)
    assert (set(adata.obsm), set(adata.obsp), set(adata.uns), list(adata.obs.columns)) == before
    assert (tmp_path / "umap.png").stat().st_size > 0


def test_latent_umap_names_what_is_missing():
    adata = _latent()
    with pytest.raises(KeyError, match="get_latent_representation"):
        pl.latent_umap(adata, "domain", use_rep="X_other")
    with pytest.raises(KeyError, match="cell_type"):
        pl.latent_umap(adata, "cell_type")


def test_correlation_vs_morans_i_plots_the_shared_features():
    rng = np.random.default_rng(0)
    names = [f"m{i}" for i in range(12)]
    moran = pd.Series(rng.uniform(0, 1, 12), index=names)
    table = pd.DataFrame({"pearson": moran.to_numpy() * 0.8 + rng.normal(0, 0.05, 12)}, index=names)
    ax = pl.correlation_vs_morans_i(table.iloc[::-1].iloc[:10], moran)  # order and a subset do not matter
    points = ax.collections[0].get_offsets()
    assert points.shape == (10, 2)
    expected = pd.concat({"i": moran, "r": table["pearson"]}, axis=1).loc[table.index[::-1][:10]]
    assert np.allclose(points, expected[["i", "r"]].to_numpy())
    assert f"rho {spearmanr(expected['i'], expected['r'])[0]:.2f}" in ax.get_title()
    with pytest.raises(ValueError, match="share no feature"):
        pl.correlation_vs_morans_i(table, pd.Series([0.5], index=["other"]))
