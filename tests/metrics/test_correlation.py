import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

from spatial_mg.metrics import feature_correlation


def _adata(x, cells, features):
    return ad.AnnData(np.asarray(x, dtype=np.float32), obs=pd.DataFrame(index=cells), var=pd.DataFrame(index=features))


def test_matches_scipy_per_feature_and_aligns_by_name():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(50, 4))
    pred = truth + rng.normal(size=(50, 4)) * [0.1, 1.0, 3.0, 0.5]
    pred[:, 3] = np.exp(pred[:, 3])  # monotone: Spearman unchanged, Pearson not
    cells, feats = [f"c{i}" for i in range(50)], list("abcd")
    t = _adata(truth, cells, feats)
    p = _adata(pred, cells, feats)[::-1, ["d", "b", "a", "c"]]  # shuffled cells and features
    table = feature_correlation(p, t)
    assert list(table.index) == ["d", "b", "a", "c"]
    for j, f in enumerate(feats):
        assert table.loc[f, "pearson"] == pytest.approx(pearsonr(pred[:, j], truth[:, j])[0], abs=1e-5)
        assert table.loc[f, "spearman"] == pytest.approx(spearmanr(pred[:, j], truth[:, j])[0], abs=1e-5)


def test_constant_features_are_nan_and_nan_values_are_skipped():
    truth = np.column_stack([np.arange(10.0), np.ones(10), np.arange(10.0)])
    pred = np.column_stack([np.arange(10.0) ** 2, np.arange(10.0), np.arange(10.0)])
    pred[3, 2] = np.nan
    with np.errstate(all="raise"):  # no division warnings either
        table = feature_correlation(pred, truth)
    assert np.isnan(table.iloc[1]).all()
    assert table.iloc[0]["spearman"] == pytest.approx(1.0)
    assert table.iloc[2]["pearson"] == pytest.approx(1.0)


def test_mismatches_are_errors():
    with pytest.raises(ValueError, match="shape"):
        feature_correlation(np.zeros((3, 2)), np.zeros((3, 3)))
    a = _adata(np.zeros((2, 2)), ["x", "y"], ["f", "g"])
    b = _adata(np.zeros((2, 2)), ["x", "y"], ["f", "h"])
    with pytest.raises(KeyError, match="not in the truth"):
        feature_correlation(a, b)
