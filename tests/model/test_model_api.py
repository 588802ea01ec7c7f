"""The habits scvi-tools users expect of a model: is_trained, view_setup, get_elbo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spatial_mg.model import PoEVAE

from poevae_data import QUICK, paired

LIKELIHOODS = {"rna": "nb", "msi": "gaussian"}


def _model(mdata, **kwargs) -> PoEVAE:
    return PoEVAE(mdata, n_latent=4, n_hidden=16, **kwargs)


# --- is_trained ---------------------------------------------------------------------------------
def test_is_trained_after_training_and_after_loading(mdata, tmp_path):
    PoEVAE.setup_mudata(mdata, likelihoods=LIKELIHOODS)
    model = _model(mdata)
    assert model.is_trained is False
    model.save(tmp_path / "fresh")
    assert PoEVAE.load(tmp_path / "fresh").is_trained is False
    model.train(**QUICK)
    assert model.is_trained is True
    model.save(tmp_path / "trained")
    assert PoEVAE.load(tmp_path / "trained").is_trained is True


# --- view_setup -------------------------------------------------------------------------------
def test_view_setup_shows_modalities_covariates_and_keys(mdata, capsys):
    mdata["rna"].layers["counts"] = mdata["rna"].X.copy()
    PoEVAE.setup_mudata(mdata, likelihoods=LIKELIHOODS, batch_key="section", layers={"rna": "counts"})
    model = _model(mdata)
    assert model.view_setup() is None
    text = capsys.readouterr().out
    lines = text.splitlines()
    rna = next(line for line in lines if line.strip().startswith("rna"))
    msi = next(line for line in lines if line.strip().startswith("msi"))
    assert "nb" in rna and "layers['counts']" in rna and "30 features" in rna
    assert "gaussian" in msi and " X," in msi and "8 features" in msi
    assert "section (batch): 2 categories: s0, s1" in text
    assert "batch key: section" in text and "MMD key: section (2 groups)" in text
    assert model.view_anndata_setup == model.view_setup  # scvi-tools' name


def test_view_setup_of_other_data_and_of_data_not_set_up(mdata, capsys):
    PoEVAE.setup_mudata(mdata, likelihoods=LIKELIHOODS)
    model = _model(mdata)
    model.view_setup()
    assert "covariates: none" in capsys.readouterr().out
    other = paired(n_mets=5)
    PoEVAE.setup_mudata(other, likelihoods=LIKELIHOODS, batch_key="section")
    model.view_setup(other)
    text = capsys.readouterr().out
    assert "5 features" in text and "batch key: section" in text
    with pytest.raises(ValueError, match="not set up"):
        model.view_setup(paired())


# --- get_elbo ---------------------------------------------------------------------------------
def _negative_loss_by_hand(model: PoEVAE, mdata, seed: int = 0) -> float:
    """Minus the ELBO terms of the module on all cells in one pass (eval mode, full KL)."""
    host = model._read(mdata, None)
    model.module.eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        (batch,) = model._batches(host, host.n_obs)
        terms = model.module.loss_terms(batch, kl_weight=1.0)
    return -float(sum(v for k, v in terms.items() if k.startswith(("nll_", "kl_"))))


def test_get_elbo_is_the_elbo_per_cell_higher_is_better(mdata):
    PoEVAE.setup_mudata(mdata, likelihoods=LIKELIHOODS)
    untrained = _model(mdata, seed=1)
    before = untrained.get_elbo()
    assert before == pytest.approx(_negative_loss_by_hand(untrained, mdata), rel=1e-5)
    trained = _model(mdata, seed=1).train(**{**QUICK, "max_epochs": 10})
    after = trained.get_elbo()
    assert after > before  # training raises the ELBO: it is not the loss
    assert after == pytest.approx(_negative_loss_by_hand(trained, mdata), rel=1e-5)
    # a mean over cells, not a sum over batches: the batch size hardly matters
    assert trained.get_elbo(batch_size=16) == pytest.approx(after, rel=0.1)


def test_the_elbo_of_counts_is_at_most_zero(trained, mdata):
    # a negative-binomial probability is at most 1 and a KL at least 0: log p(x) >= ELBO, ELBO <= 0
    assert trained.get_elbo(mdata["rna"]) <= 0


def test_get_elbo_is_repeatable_in_eval_mode_and_ignores_the_mmd(mdata):
    PoEVAE.setup_mudata(mdata, likelihoods=LIKELIHOODS, batch_key="section")
    model = _model(mdata, batch_mmd_weight=1.0, modality_mmd_weight=1.0, dropout_rate=0.5).train(**QUICK)
    value = model.get_elbo()
    assert np.isfinite(value) and model.get_elbo() == value
    assert model.get_elbo(seed=1) != value  # the expectation is a (seeded) Monte Carlo estimate
    model.module.train()  # dropout and modality dropout would change the value: get_elbo evaluates
    assert model.get_elbo() == value
    model.module.batch_mmd_weight = model.module.modality_mmd_weight = 0.0
    assert model.get_elbo() == value  # the MMD penalties are no part of the ELBO


def test_get_elbo_checks_its_arguments(trained):
    with pytest.raises(ValueError, match="batch_size"):
        trained.get_elbo(batch_size=0)
