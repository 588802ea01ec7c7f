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


def test_evaluate_writes_the_maps_and_the_morans_i_figure_of_a_prediction_with_mz(aligned, written, tmp_path):
    """train -> predict -> evaluate on files: the prediction keeps the training MSI's m/z, and
    evaluate draws the best, median and worst maps (titled by m/z) and the Moran's I scatter."""
    import json

    import anndata as ad

    from spatial_mg import pl
    from spatial_mg.pipeline import run_evaluate, run_predict, run_train

    _, _, files = written
    train, held_out = aligned
    quiet = dict(echo=lambda *a, **k: None)
    train.pairs.write(tmp_path / "train.h5mu")
    held_out.pairs.write(tmp_path / "held_out.h5mu")
    run_train(pairs=[tmp_path / "train.h5mu"], out=tmp_path / "trained", max_epochs=2, accelerator="cpu", **quiet)
    run_predict(model=tmp_path / "trained", visium=files[1].visium, name=held_out.name, out=tmp_path / "predicted",
                accelerator="cpu", **quiet)
    pred = ad.read_h5ad(tmp_path / "predicted" / "predicted.h5ad")
    assert pred.var["mz"].dtype == np.float64
    np.testing.assert_array_equal(pred.var["mz"].to_numpy(), train.pairs["msi"].var["mz"].to_numpy())

    said = []
    figures = run_evaluate(pred=tmp_path / "predicted" / "predicted.h5ad", truth=tmp_path / "held_out.h5mu",
                           out=tmp_path / "evaluated", echo=said.append)
    names = ("maps_best.png", "maps_median.png", "maps_worst.png", "correlation_vs_morans_i.png")
    for name in (*names, "metabolites.csv", "metrics.json"):
        assert (tmp_path / "evaluated" / name).stat().st_size > 0, name
    assert json.loads((tmp_path / "evaluated" / "metrics.json").read_text()) == figures
    assert all(name in said[0] for name in names)
    feature = pred.var_names[0]
    fig = pl.metabolite_maps(pred, None, [feature])
    assert fig.axes[0].get_title().startswith(f"m/z {pred.var['mz'].iloc[0]:.4f}")


def test_evaluate_without_coordinates_writes_the_numbers_and_says_why_no_maps(aligned, tmp_path):
    from spatial_mg.pipeline import run_evaluate

    truth = aligned[0].pairs["msi"]
    bare = truth.copy()
    del bare.obsm["spatial"]
    bare.write_h5ad(tmp_path / "pred.h5ad")
    truth.write_h5ad(tmp_path / "truth.h5ad")
    said = []
    run_evaluate(pred=tmp_path / "pred.h5ad", truth=tmp_path / "truth.h5ad", out=tmp_path / "out", echo=said.append)
    assert not (tmp_path / "out" / "maps_best.png").exists()
    assert (tmp_path / "out" / "correlation_vs_morans_i.png").stat().st_size > 0  # the truth has its coordinates
    assert (tmp_path / "out" / "metrics.json").is_file()
