"""The mean and moscot baselines predict in the right shape and carry signal."""

from __future__ import annotations

import anndata as ad
import numpy as np

from spatial_mg.baselines import predict_mean, predict_moscot
from spatial_mg.sim import synthetic_vicari
from spatial_mg.metrics import feature_correlation


def test_mean_baseline_is_the_training_mean():
    data = synthetic_vicari(n_sections=2, n_spots=150, n_genes=40, n_metabolites=5, seed=1)
    train, test = data.sections
    pred = predict_mean(train.metabolite_means, test.rna)
    assert pred.shape == (test.rna.n_obs, 5)
    np.testing.assert_allclose(pred.X[0], np.asarray(train.metabolite_means.X).mean(0), rtol=1e-5)


def test_moscot_transfer_carries_metabolite_signal():
    data = synthetic_vicari(n_sections=2, n_spots=250, n_genes=80, n_metabolites=8, seed=2)
    train, test = data.sections
    pred = predict_moscot(train.rna, train.metabolite_means, test.rna, n_pcs=20)
    assert pred.shape == (test.rna.n_obs, 8) and list(pred.var_names) == list(train.metabolite_means.var_names)
    r = feature_correlation(pred, test.metabolite_means)["pearson"]
    # state-driven metabolites transfer through expression; a shuffled prediction would not
    assert np.nanmedian(r) > 0.2
    shuffled = ad.AnnData(pred.X[np.random.default_rng(0).permutation(pred.n_obs)], obs=pred.obs, var=pred.var)
    assert np.nanmedian(feature_correlation(shuffled, test.metabolite_means)["pearson"]) < 0.1
