"""Accuracy on synthetic data. The slow ones are the issue's criteria (benchmarks/accuracy.py)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from poevae_data import paired

from spatial_mg.metrics import feature_correlation
from spatial_mg.model import PoEVAE

_BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "accuracy.py"


def _benchmarks():
    spec = importlib.util.spec_from_file_location("accuracy_benchmark", _BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rna_alone_predicts_metabolites_of_unseen_spots():
    data = paired(n=300, n_genes=40, n_mets=8, seed=3)
    train, test = data[:220].copy(), data[220:].copy()
    PoEVAE.setup_mudata(train, likelihoods={"rna": "nb", "msi": "gaussian"})
    model = PoEVAE(train, n_latent=6, n_hidden=32)
    model.train(max_epochs=15, batch_size=64, lr=3e-3, progress_bar=False, accelerator="cpu")
    pred = model.predict(test["rna"], target="msi")
    r = feature_correlation(pred, test["msi"]).median()
    assert r["pearson"] > 0.6 and r["spearman"] > 0.6, r
    # the posterior-predictive std is larger where the prediction is worse
    err = np.abs(pred.X - test["msi"].X)
    assert np.corrcoef(pred.layers["std"].ravel(), err.ravel())[0, 1] > 0


@pytest.mark.slow
def test_metabolites_of_a_held_out_section_beat_ridge_and_knn():
    """An ensemble of 3 training seeds (``predict_ensemble``): one model alone ties kNN on this
    seed (0.483 vs 0.484 Pearson on this CPU), three beat both baselines by about 0.01."""
    out = _benchmarks().metabolite_prediction(n_models=3)
    for base in ("ridge", "knn15"):
        for stat in ("pearson", "spearman"):
            assert out["poevae"][stat] > out[base][stat], out


@pytest.mark.slow
def test_mosaic_integration_separates_types_and_mixes_modalities():
    out = _benchmarks().mosaic_integration()
    assert out["nmi"] > 0.8 and out["ari"] > 0.8 and out["modality_silhouette"] > 0.7, out


@pytest.mark.slow
def test_query_maps_next_to_its_reference_type_with_reference_frozen():
    out = _benchmarks().query_mapping()
    assert out["label_transfer_accuracy"] >= 0.9 and out["reference_weights_unchanged"], out
