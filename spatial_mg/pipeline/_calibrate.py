"""Calibrate predictive intervals across sections: leave each training section out in turn.

For every training section, a model with the same settings is trained on the other
sections and predicts the left-out one from its RNA, as a new section is predicted
(mapped by surgery first). The held-out values' residuals in units of the predictive std
give, per metabolite, how much wider than the model's own the intervals must be to cover
what a new section does (:class:`spatial_mg.model.Calibration`).
"""

from __future__ import annotations

from collections.abc import Callable

import mudata as md
import numpy as np

from .._constants import SECTION_KEY


def section_labels(pairs: md.MuData) -> np.ndarray | None:
    """Each pair's section (``obs["section"]``, of the MuData or pooled from its modalities) as
    strings; None when unnamed."""
    from ..model._registry import obs_column

    try:
        return obs_column(pairs, SECTION_KEY).astype(str).to_numpy()
    except KeyError:
        return None


def sections_of(pairs: md.MuData) -> list[str]:
    """The sections of stacked pairs, in order of appearance; [] when unnamed."""
    labels = section_labels(pairs)
    return [] if labels is None else list(dict.fromkeys(labels))


def calibrate_across_sections(pairs: md.MuData, fit: Callable[[md.MuData], object], *, target: str = "msi"):
    """A :class:`~spatial_mg.model.Calibration` of ``target`` from leave-one-section-out refits.

    Parameters
    ----------
    pairs
        Stacked pairs of two or more sections (``obs["section"]``).
    fit
        Trains a model on a subset of ``pairs`` with the settings of the model to calibrate.
    target
        The modality predicted.
    """
    from ..model import Calibration
    from ._predict import predict_section

    sections = sections_of(pairs)
    if len(sections) < 2:
        raise ValueError(
            f"Calibrating across sections needs two or more sections in obs['{SECTION_KEY}'], got {sections}."
        )
    labels = section_labels(pairs)
    residuals, features = [], None
    for section in sections:
        held = labels == section
        model = fit(pairs[~held].copy())
        spots = pairs[held].copy()
        pred = predict_section(model, spots["rna"], target=target, return_std=True)
        measured = spots[target][pred.obs_names, pred.var_names].X
        measured = np.asarray(measured.toarray() if hasattr(measured, "toarray") else measured, dtype=np.float64)
        std = np.asarray(pred.layers["std"], dtype=np.float64)
        residuals.append((measured - np.asarray(pred.X, dtype=np.float64)) / np.maximum(std, 1e-12))
        features = list(pred.var_names)
    return Calibration.from_residuals(target, features, np.vstack(residuals), sections)
