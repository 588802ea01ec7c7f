"""The spatial context: the RNA encoder also reads each spot's neighbourhood, section by section."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.sparse as sp
from poevae_data import QUICK, paired

from spatial_mg.model import PoEVAE
from spatial_mg.model._data import read_data
from spatial_mg.model._registry import read_setup

RADIUS = 150.0


def _with_grid(mdata):
    """Both sections on the same 100 um grid, so that only the section keeps them apart."""
    n = mdata["rna"].n_obs
    half = n // 2
    cell = np.arange(n) % half
    coords = np.c_[(cell % 10) * 100.0, (cell // 10) * 100.0]
    for name in ("rna", "msi"):
        rows = mdata[name].obs_names.map(lambda s: int(s.removeprefix("spot"))).to_numpy()
        mdata[name].obsm["spatial"] = coords[rows]
    return mdata


@pytest.fixture
def spatial_mdata():
    mdata = _with_grid(paired())
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"}, batch_key="section", spatial_context={"rna": RADIUS})
    return mdata


def test_context_is_the_mean_of_the_spot_and_its_neighbours_in_its_own_section(spatial_mdata):
    host = read_data(spatial_mdata, read_setup(spatial_mdata))
    rna = spatial_mdata["rna"]
    counts = rna.X.toarray()
    context = host.modalities["rna"].context
    context = context.toarray() if sp.issparse(context) else context
    coords, section = rna.obsm["spatial"], rna.obs["section"].to_numpy()
    for i in (0, 11, 59, 60, 75):
        near = (np.linalg.norm(coords - coords[i], axis=1) <= RADIUS) & (section == section[i])
        np.testing.assert_allclose(context[i], counts[near].mean(0), rtol=1e-5)
    assert host.modalities["msi"].context is None


def test_a_neighbours_counts_change_a_spots_prediction_only_with_context(spatial_mdata):
    plain = _with_grid(paired())
    PoEVAE.setup_mudata(plain, likelihoods={"rna": "nb", "msi": "gaussian"}, batch_key="section")
    for data, reads_neighbours in ((spatial_mdata, True), (plain, False)):
        model = PoEVAE(data, n_latent=4, n_hidden=16).train(**QUICK)
        query = data["rna"][data["rna"].obs["section"] == "s0"].copy()
        before = model.predict(query, target="msi").X
        changed = query.copy()
        counts = changed.X.toarray()
        counts[1] = 50.0  # spot 1 is 100 um from spot 0
        changed.X = sp.csr_matrix(counts)
        after = model.predict(changed, target="msi").X
        assert np.abs(after[0] - before[0]).max() > 1e-4 if reads_neighbours else np.allclose(after[0], before[0])
        far = np.linalg.norm(query.obsm["spatial"] - query.obsm["spatial"][1], axis=1) > RADIUS
        np.testing.assert_allclose(after[far], before[far], rtol=1e-5, atol=1e-6)


def test_context_survives_save_and_load(spatial_mdata, tmp_path):
    model = PoEVAE(spatial_mdata, n_latent=4, n_hidden=16).train(**QUICK)
    assert model.module_config.context_modalities == ("rna",)
    rna_block, msi_block = model.module.blocks
    assert rna_block.encoder.first.in_features == 2 * spatial_mdata["rna"].n_vars
    assert msi_block.encoder.first.in_features == spatial_mdata["msi"].n_vars
    model.save(tmp_path / "m")
    loaded = PoEVAE.load(tmp_path / "m")
    assert loaded.registry.spatial_context == {"rna": RADIUS}
    query = spatial_mdata["rna"].copy()
    np.testing.assert_allclose(loaded.predict(query, target="msi").X, model.predict(query, target="msi").X, rtol=1e-5)


def test_setup_without_context_records_nothing_new():
    mdata = paired()
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"})
    raw = json.loads(mdata.uns["_spatial_mg_setup"])
    assert not {"spatial_context", "spatial_key"} & set(raw)
    model = PoEVAE(mdata, n_latent=4, n_hidden=16)
    assert "context_modalities" not in model.module_config.to_dict()


def test_bad_context_settings_say_what_to_do():
    mdata = paired()
    with pytest.raises(KeyError, match=r"obsm\['spatial'\].*single-cell"):
        PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"}, spatial_context={"rna": RADIUS})
    mdata = _with_grid(paired())
    with pytest.raises(ValueError, match="radius in micrometres"):
        PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"}, spatial_context={"rna": -1})
    with pytest.raises(KeyError, match="not in `likelihoods`"):
        PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"}, spatial_context={"atac": RADIUS})


def test_a_query_without_coordinates_is_refused_by_a_context_model(spatial_mdata):
    model = PoEVAE(spatial_mdata, n_latent=4, n_hidden=16).train(**QUICK)
    query = spatial_mdata["rna"].copy()
    del query.obsm["spatial"]
    with pytest.raises(KeyError, match="spot coordinates in micrometres"):
        model.predict(query, target="msi")
