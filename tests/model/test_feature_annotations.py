"""What a feature is (its m/z, its bin, a gene's id) is saved with the model and carried by
its predictions, so that a predicted metabolite can be read without the training data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from spatial_mg.model import PoEVAE

from poevae_data import QUICK, paired

V1 = Path(__file__).parent / "data" / "model_v1"


def _annotated():
    mdata = paired(n=60, n_genes=12, n_mets=5, seed=1)
    mz = np.array([104.1075, 146.0459, 203.0532, 281.2486, 885.5499])
    msi_var = mdata["msi"].var
    msi_var["mz"], msi_var["mz_min"], msi_var["mz_max"] = mz, mz * (1 - 1e-5), mz * (1 + 1e-5)
    msi_var["mean_intensity"] = np.arange(5.0)  # a statistic of the data, not of the feature
    mdata["rna"].var["gene_ids"] = [f"ENSMUSG{i:011d}" for i in range(12)]
    mdata.update()
    return mdata


def test_predictions_carry_the_training_msi_mz_through_save_and_load(tmp_path):
    mdata = _annotated()
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"})
    model = PoEVAE(mdata, n_latent=3, n_hidden=8)
    model.train(**QUICK)
    model.save(tmp_path / "model")
    loaded = PoEVAE.load(tmp_path / "model")
    query = mdata["rna"].copy()
    query.var = query.var.drop(columns="gene_ids")  # a query without the annotations: the model has them
    for predictor in (model, loaded):
        pred = predictor.predict(query, target="msi")
        assert list(pred.var_names) == list(mdata["msi"].var_names)  # the names stay the keys
        assert pred.var["mz"].dtype == np.float64
        np.testing.assert_array_equal(pred.var["mz"].to_numpy(), mdata["msi"].var["mz"].to_numpy())
        np.testing.assert_array_equal(pred.var["mz_max"].to_numpy(), mdata["msi"].var["mz_max"].to_numpy())
        assert "mean_intensity" not in pred.var
    genes = loaded.predict(mdata["msi"].copy(), target="rna")
    assert list(genes.var["gene_ids"]) == list(mdata["rna"].var["gene_ids"])
    saved = json.loads((tmp_path / "model" / "registry.json").read_text())
    assert saved["modalities"]["msi"]["annotations"]["mz"][1] == 146.0459


def test_a_prediction_written_and_read_keeps_a_numeric_mz(tmp_path):
    import anndata as ad

    mdata = _annotated()
    mdata["msi"].var.loc[mdata["msi"].var_names[2], "mz"] = np.nan  # an unknown m/z stays unknown
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"})
    model = PoEVAE(mdata, n_latent=3, n_hidden=8)
    model.train(**QUICK)
    model.predict(mdata["rna"], target="msi").write_h5ad(tmp_path / "pred.h5ad")
    mz = ad.read_h5ad(tmp_path / "pred.h5ad").var["mz"]
    assert mz.dtype == np.float64 and np.isnan(mz.iloc[2]) and mz.iloc[1] == 146.0459


def test_models_saved_before_annotations_load_and_predict_bare_names():
    registry = json.loads((V1 / "registry.json").read_text())
    assert all("annotations" not in m for m in registry["modalities"].values())
    pred = PoEVAE.load(V1).predict(paired(n=24, n_genes=6, n_mets=3, seed=0)["rna"], target="msi", n_samples=2)
    assert isinstance(pred.var, pd.DataFrame) and pred.var.shape[1] == 0
