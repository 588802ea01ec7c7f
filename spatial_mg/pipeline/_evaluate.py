"""Score predicted metabolite maps against measured ones: per feature, flattened, per method."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr

from .._constants import SECTION_KEY, SPATIAL_KEY


def _dense(x) -> np.ndarray:
    return np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=float)


def evaluate_prediction(pred: ad.AnnData, truth: ad.AnnData) -> tuple[dict[str, float], pd.DataFrame]:
    """Median per-metabolite Pearson and Spearman, and the flattened (all values) ones.

    Parameters
    ----------
    pred
        Predicted maps (spots x metabolites), e.g. from :func:`predict_section`.
    truth
        Measured maps on the same scale: the ``"msi"`` modality of the section's pairs.
        Spots are matched by name; only shared spots count.

    Returns
    -------
    The figures (``median_pearson``, ``median_spearman``, ``flat_pearson``,
    ``flat_spearman``, ``n_spots``, ``n_metabolites``) and a per-metabolite table
    (``pearson``, ``spearman``, and the measured map's ``morans_i_measured`` and ``mz``
    where the truth has coordinates and m/z).

    Notes
    -----
    A metabolite predicted as one constant value (the per-metabolite mean baseline) has no
    defined correlation; it scores 0 here, what a map without any pattern is worth, so that
    medians compare methods instead of turning NaN.
    """
    from ..metrics import feature_correlation

    _check_same_section(pred, truth)
    common = pred.obs_names.intersection(truth.obs_names)
    if len(common) == 0:
        raise ValueError("No spot of the prediction is in the measured data: are they the same section?")
    pred, truth = pred[common], truth[common]
    table = feature_correlation(pred, truth)
    values = _dense(pred[:, list(table.index)].X)
    flat = np.ptp(values, axis=0) == 0
    table.loc[flat, ["pearson", "spearman"]] = table.loc[flat, ["pearson", "spearman"]].fillna(0.0)
    measured = _dense(truth[:, list(table.index)].X).ravel()
    figures = {
        "median_pearson": float(np.nanmedian(table["pearson"])),
        "median_spearman": float(np.nanmedian(table["spearman"])),
        "flat_pearson": float(pearsonr(values.ravel(), measured)[0]),
        "flat_spearman": float(spearmanr(values.ravel(), measured)[0]),
        "n_spots": int(len(common)),
        "n_metabolites": int(table.shape[0]),
    }
    return figures, table.join(measured_map_columns(truth, table.index))


def _check_same_section(pred: ad.AnnData, truth: ad.AnnData) -> None:
    """Barcodes repeat between Visium slides, so matching spots by name alone can pair two
    different sections; where both sides name their section, the names must agree."""
    if SECTION_KEY in pred.obs and SECTION_KEY in truth.obs:
        mine, theirs = set(map(str, pred.obs[SECTION_KEY].unique())), set(map(str, truth.obs[SECTION_KEY].unique()))
        if not mine & theirs:
            raise ValueError(
                f"The prediction is of section(s) {sorted(mine)} but the measured data are of {sorted(theirs)}: "
                "score a prediction against the same section's measurements (or name them alike: --name / name=)."
            )


def score_methods(predictions: dict[str, ad.AnnData], truth: ad.AnnData) -> tuple[dict, pd.DataFrame]:
    """:func:`evaluate_prediction` for each method; figures by method and one table of all
    (``<method>_pearson``, ``<method>_spearman``, then the measured maps' columns)."""
    figures, columns = {}, {}
    for method, pred in predictions.items():
        figures[method], table = evaluate_prediction(pred, truth)
        columns[f"{method}_pearson"] = table["pearson"]
        columns[f"{method}_spearman"] = table["spearman"]
    combined = pd.DataFrame(columns)
    return figures, measured_map_columns(truth, combined.index).join(combined)


def measured_map_columns(truth: ad.AnnData, features: pd.Index) -> pd.DataFrame:
    """Per metabolite of the measured maps: spatial structure (Moran's I) and m/z, where known."""
    from ..metrics import morans_i

    out = pd.DataFrame(index=features)
    if SPATIAL_KEY in truth.obsm:
        out["morans_i_measured"] = morans_i(truth).reindex(features)
    if "mz" in truth.var:
        out["mz"] = truth.var["mz"].reindex(features)
    return out


MAP_RANKS = ("best", "median", "worst")


def write_prediction_figures(
    folder,
    pred: ad.AnnData,
    measured: ad.AnnData,
    correlation: pd.Series,
    morans_i: pd.Series | None = None,
    *,
    section: str | None = None,
    label: str = "PoE-VAE prediction",
    score_name: str = "Pearson",
) -> list[str]:
    """Draw how a prediction compares with the measurements, into an output folder.

    ``maps_best.png``, ``maps_median.png`` and ``maps_worst.png``: measured | predicted |
    std maps (:func:`spatial_mg.pl.metabolite_maps`) of the metabolites with the highest,
    median and lowest ``correlation``, titled by m/z; ``correlation_vs_morans_i.png``: each
    metabolite's correlation against the Moran's I of its measured map
    (:func:`spatial_mg.pl.correlation_vs_morans_i`).

    Parameters
    ----------
    folder
        The :class:`~spatial_mg.pipeline._outputs.OutputFolder` to write into.
    pred, measured
        Predicted and measured maps (spots x metabolites); spots are matched by name. The
        maps need the prediction's ``obsm["spatial"]``; the measured spots are drawn where
        the prediction puts them when they carry no coordinates of their own.
    correlation
        Per metabolite, the score that ranks the maps (e.g. Pearson).
    morans_i
        Per metabolite, the Moran's I of the measured map; ``None``: no scatter.
    section
        The section's name, put before the titles.
    label
        What the prediction is, for the scatter's axis.
    score_name
        What ``correlation`` is, for the maps' titles.

    Returns
    -------
    The names of the files written: a figure whose inputs are missing (no coordinates, no
    scored metabolite, no Moran's I) is left out rather than drawn empty.
    """
    from .. import pl
    from ..pl._maps import feature_label

    prefix = f"{section}: " if section else ""
    written = []
    ranked = correlation.dropna().sort_values(ascending=False)
    common = pred.obs_names.intersection(measured.obs_names)
    if SPATIAL_KEY in pred.obsm and len(ranked) and len(common):
        shown, truth = pred[common], measured[common].copy()
        if SPATIAL_KEY not in truth.obsm:
            truth.obsm[SPATIAL_KEY] = np.asarray(shown.obsm[SPATIAL_KEY])
        picks = (ranked.index[0], ranked.index[len(ranked) // 2], ranked.index[-1])
        for rank, feature in zip(MAP_RANKS, picks, strict=True):
            fig = pl.metabolite_maps(shown, truth, [feature])
            fig.suptitle(f"{prefix}{rank}: {feature_label(shown, feature)} ({score_name} {ranked[feature]:.2f})", y=1.02)
            written.append(folder.save_figure(f"maps_{rank}.png", fig).name)
    if morans_i is not None and len(ranked.index.intersection(morans_i.dropna().index)):
        ax = pl.correlation_vs_morans_i(ranked, morans_i, label=label)
        ax.set_title(prefix + ax.get_title(), fontsize=9)
        written.append(folder.save_figure("correlation_vs_morans_i.png", ax.figure).name)
    return written
