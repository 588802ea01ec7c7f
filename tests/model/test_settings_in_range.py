"""Out-of-range settings are refused where they are given, before any work: a model is
never trained for no epochs (or with no batch, no latent) and then saved as if trained."""

import numpy as np
import pytest
import torch

from spatial_mg.model import PoEVAE

from poevae_data import QUICK

SMALL = dict(n_latent=4, n_hidden=16)


@pytest.fixture
def model(mdata):
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"})
    return PoEVAE(mdata, **SMALL)


@pytest.mark.parametrize(("setting", "value"), [("max_epochs", -1), ("max_epochs", 0), ("batch_size", 0), ("batch_size", -8)])
def test_train_refuses_no_epochs_or_no_batch_and_leaves_the_model_untouched(model, tmp_path, setting, value):
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    with pytest.raises(ValueError, match=rf"^{setting} must be an integer >= 1"):
        model.train(**dict(QUICK, checkpoint_dir=tmp_path / "ckpt", **{setting: value}))
    assert model.history.empty and not (tmp_path / "ckpt").exists()
    after = model.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize(("setting", "value"), [("n_latent", 0), ("n_hidden", 0), ("modality_dropout", 2.0), ("seed", -1)])
def test_the_model_refuses_an_empty_latent_or_out_of_range_architecture(mdata, setting, value):
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"})
    with pytest.raises(ValueError, match=rf"^{setting} must be"):
        PoEVAE(mdata, **{**SMALL, setting: value})


@pytest.mark.parametrize(
    ("setting", "value"), [("n_samples", 0), ("n_samples", -4), ("batch_size", 0), ("library_size", 0.0), ("library_size", -1.0)]
)
def test_predict_refuses_out_of_range_settings(trained, mdata, setting, value):
    with pytest.raises(ValueError, match=rf"^{setting} must be"):
        trained.predict(mdata["rna"], target="msi", **{setting: value})


def test_latent_refuses_an_empty_batch(trained):
    with pytest.raises(ValueError, match="^batch_size must be an integer >= 1"):
        trained.get_latent_representation(batch_size=0)


def test_one_sample_and_one_cell_per_batch_still_predict(trained, mdata):
    pred = trained.predict(mdata["rna"][:5], target="msi", n_samples=1, batch_size=1)
    assert np.isfinite(pred.X).all() and pred.shape == (5, 8)
