"""Prediction by an ensemble of independently trained PoE-VAEs (a deep ensemble).

Why: on a few thousand spots two training seeds of the same model predict a held-out
section with median correlations that differ as much as the model's margin over ridge
regression (``benchmarks/results/model_notes.md``). Averaging the predictive
distributions of a few seeds removes most of that spread, and the disagreement between
them is an honest extra term of the uncertainty: what more training data, not more
measurement, would shrink.
"""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np

from .._constants import MODEL_STD_LAYER, STD_LAYER, UNS_KEY
from ._model import PoEVAE


def predict_ensemble(models: Sequence[PoEVAE], query, target: str = "msi", return_std: bool = True, **predict_kwargs) -> ad.AnnData:
    """Posterior-predictive mean (and standard deviation) of the equal-weight mixture of ``models``.

    Parameters
    ----------
    models
        Two or more trained :class:`PoEVAE` with the same target features (e.g. one
        ``setup_mudata``, trained with different ``seed``).
    query, target, predict_kwargs
        As for :meth:`PoEVAE.predict` (each model predicts the query in turn).
    return_std
        Add the mixture's standard deviation as layer ``"std"`` and the spread of the
        models' means as layer ``"model_std"`` (part of ``"std"``).

    Returns
    -------
    AnnData like :meth:`PoEVAE.predict`'s, with ``uns["spatial_mg"]["prediction"]["n_models"]``.
    """
    models = list(models)
    if len(models) < 2:
        raise ValueError(f"an ensemble needs at least 2 trained models, got {len(models)}")
    features = [tuple(m.registry.modalities[target].features) if target in m.registry.modalities else None for m in models]
    if features[0] is None or any(f != features[0] for f in features):
        raise ValueError(
            f"the models do not all predict the same '{target}' features; train them from one setup_mudata"
        )
    preds = [m.predict(query, target=target, return_std=return_std, **predict_kwargs) for m in models]
    means = np.stack([np.asarray(p.X, dtype=np.float64) for p in preds])
    mean = means.mean(0)
    out = preds[0].copy()
    out.X = mean.astype(np.float32)
    if return_std:
        second = np.mean([np.asarray(p.layers[STD_LAYER], np.float64) ** 2 for p in preds], axis=0) + (means**2).mean(0)
        out.layers[STD_LAYER] = np.sqrt(np.clip(second - mean**2, 0, None)).astype(np.float32)
        out.layers[MODEL_STD_LAYER] = means.std(0).astype(np.float32)
    info = dict(out.uns[UNS_KEY]["prediction"])
    info.update(model="PoEVAE ensemble", n_models=len(models))
    out.uns[UNS_KEY] = {**out.uns[UNS_KEY], "prediction": info}
    return out
