import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from spatial_mg.baselines import log_normalize, predict_knn, predict_ridge


def _data(n=300, genes=60, seed=0):
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(n, 2))
    counts = rng.poisson(np.exp(h @ rng.normal(size=(2, genes)) * 0.5 + 2)).astype(np.float32)
    rna = ad.AnnData(sp.csr_matrix(counts), obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]))
    rna.var_names = [f"g{i}" for i in range(genes)]
    target = np.column_stack([h[:, 0], np.tanh(h[:, 1])])
    return rna, target


def test_log_normalize_matches_scanpy():
    sc = pytest.importorskip("scanpy")
    rna, _ = _data()
    ref = rna.copy()
    sc.pp.normalize_total(ref, target_sum=1e4)
    sc.pp.log1p(ref)
    assert np.allclose(log_normalize(rna.X), ref.X.toarray(), atol=1e-4)


@pytest.mark.parametrize("predict", [predict_ridge, predict_knn])
def test_baselines_recover_a_signal_in_rna(predict):
    rna, target = _data()
    pred = predict(rna[:200], target[:200], rna[200:][:, ::-1].copy(), n_pcs=10)
    assert pred.shape == (100, 2) and list(pred.obs_names) == list(rna.obs_names[200:])
    r = [np.corrcoef(pred.X[:, j], target[200:, j])[0, 1] for j in range(2)]
    assert min(r) > 0.7
    with pytest.raises(KeyError, match="missing"):
        predict(rna[:200], target[:200], rna[200:, 5:].copy(), n_pcs=10)


def test_baseline_maps_carry_the_test_spot_coordinates():
    from spatial_mg.baselines import predict_mean

    rna, target = _data()
    test = rna[200:].copy()
    test.obsm["spatial"] = np.random.default_rng(1).uniform(0, 1000, size=(test.n_obs, 2))
    for pred in (predict_mean(target[:200], test), predict_ridge(rna[:200], target[:200], test, n_pcs=10)):
        assert np.array_equal(pred.obsm["spatial"], test.obsm["spatial"])


def test_smoothing_averages_within_a_section_only():
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    from spatial_mg._neighbourhood import neighbourhood_mean

    # two sections whose spots sit at the same micrometres: smoothing must not mix them
    xy = np.array([[0.0, 0.0], [100.0, 0.0], [300.0, 0.0]] * 2)
    groups = ["a"] * 3 + ["b"] * 3
    values = sp.csr_matrix(np.array([[1.0], [3.0], [5.0], [10.0], [30.0], [50.0]]))
    out = neighbourhood_mean(values, xy, 150.0, groups).toarray().ravel()
    np.testing.assert_allclose(out, [2.0, 2.0, 5.0, 20.0, 20.0, 50.0])
    np.testing.assert_allclose(neighbourhood_mean(values.toarray(), xy, 0.0, groups).ravel(), values.toarray().ravel())


def test_smoothed_ridge_uses_the_neighbourhood():
    import anndata as ad
    import numpy as np
    import pandas as pd

    from spatial_mg.baselines import predict_ridge

    rng = np.random.default_rng(0)
    xy = np.column_stack([np.arange(60) % 10, np.arange(60) // 10]) * 100.0
    counts = rng.poisson(5.0, (60, 12)).astype(np.float32)
    rna = ad.AnnData(counts, obs=pd.DataFrame({"section": "s1"}, index=[f"c{i}" for i in range(60)]))
    rna.var_names = [f"g{i}" for i in range(12)]
    rna.obsm["spatial"] = xy
    target = rng.normal(size=(60, 2))
    plain = predict_ridge(rna, target, rna, n_pcs=5)
    smooth = predict_ridge(rna, target, rna, n_pcs=5, smooth_um=150.0)
    assert smooth.uns["spatial_mg"]["prediction"]["model"] == "ridge_smoothed"
    assert not np.allclose(plain.X, smooth.X)
