"""evaluate_prediction: what a perfect, a flat and a foreign prediction score."""

from __future__ import annotations

import numpy as np
import pytest

from spatial_mg.pipeline import evaluate_prediction, score_methods


def test_perfect_flat_and_foreign_predictions(aligned):
    truth = aligned[0].pairs["msi"]
    figures, table = evaluate_prediction(truth, truth)
    assert figures["median_pearson"] == pytest.approx(1.0) and figures["flat_spearman"] == pytest.approx(1.0)
    assert figures["n_spots"] == truth.n_obs and figures["n_metabolites"] == truth.n_vars
    assert {"pearson", "spearman", "morans_i_measured", "mz"} <= set(table.columns)
    flat = truth.copy()
    flat.X = np.tile(np.asarray(truth.X).mean(0), (truth.n_obs, 1))
    figures, table = evaluate_prediction(flat, truth)
    assert figures["median_pearson"] == 0.0 and not table["pearson"].isna().any()  # a flat map scores 0, not NaN
    other = aligned[1].pairs["msi"]
    with pytest.raises(ValueError, match="same section"):
        evaluate_prediction(other, truth)


def test_score_methods_puts_every_method_in_one_table(aligned):
    truth = aligned[0].pairs["msi"]
    noisy = truth.copy()
    noisy.X = np.asarray(truth.X) + np.random.default_rng(0).normal(0, 1.0, truth.shape)
    figures, table = score_methods({"exact": truth, "noisy": noisy}, truth)
    assert figures["exact"]["median_pearson"] > figures["noisy"]["median_pearson"]
    assert list(table.columns[:2]) == ["morans_i_measured", "mz"]
    assert {"exact_pearson", "noisy_spearman"} <= set(table.columns)
