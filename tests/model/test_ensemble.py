"""predict_ensemble: the equal-weight mixture of several trained models' predictive distributions."""

import numpy as np
import pytest

from spatial_mg.model import PoEVAE, predict_ensemble

from poevae_data import QUICK, paired


@pytest.fixture(scope="module")
def two_models():
    mdata = paired()
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"})
    models = [PoEVAE(mdata, n_latent=4, n_hidden=16, seed=s).train(**QUICK) for s in (0, 1)]
    return mdata, models


def test_mean_and_std_are_the_mixture_moments(two_models):
    mdata, models = two_models
    single = [m.predict(mdata["rna"], target="msi") for m in models]
    out = predict_ensemble(models, mdata["rna"], target="msi")
    m = np.stack([p.X for p in single]).astype(np.float64)
    s = np.stack([p.layers["std"] for p in single]).astype(np.float64)
    np.testing.assert_allclose(out.X, m.mean(0), rtol=1e-5, atol=1e-6)
    # law of total variance: mean of the variances plus the variance of the means
    np.testing.assert_allclose(out.layers["std"] ** 2, (s**2).mean(0) + m.var(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out.layers["model_std"], m.std(0), rtol=1e-4, atol=1e-6)
    assert (out.layers["model_std"] > 0).any()  # two seeds do disagree
    assert out.uns["spatial_mg"]["prediction"]["n_models"] == 2
    assert list(out.obs_names) == list(mdata["rna"].obs_names)


def test_needs_two_models_with_the_same_target_features(two_models):
    mdata, models = two_models
    with pytest.raises(ValueError, match="at least 2"):
        predict_ensemble(models[:1], mdata["rna"])
    other = paired(seed=3)
    other.mod["msi"].var_names = [f"other_{v}" for v in other["msi"].var_names]
    other.update()
    PoEVAE.setup_mudata(other, likelihoods={"rna": "nb", "msi": "gaussian"})
    stranger = PoEVAE(other, n_latent=4, n_hidden=16).train(**QUICK)
    with pytest.raises(ValueError, match="same 'msi' features"):
        predict_ensemble([models[0], stranger], mdata["rna"])
