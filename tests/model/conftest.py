"""Fixtures of the PoE-VAE tests."""

from __future__ import annotations

import mudata as md
import pytest
from poevae_data import QUICK, paired


@pytest.fixture
def mdata() -> md.MuData:
    return paired()


@pytest.fixture
def trained(mdata):
    from spatial_mg.model import PoEVAE

    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"})
    model = PoEVAE(mdata, n_latent=4, n_hidden=16)
    model.train(**QUICK)
    return model
