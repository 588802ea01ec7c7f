"""Predict a section's metabolites from its RNA alone, and hold the maps as SpatialData."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import SPATIAL_KEY, VISIUM_SPOT_RADIUS_UM
from ._sections import Section


def predict_section(
    model,
    section: Section | ad.AnnData,
    *,
    target: str = "msi",
    return_std: bool = True,
    interval: float | None = None,
    map_unseen: bool = True,
    query_epochs: int | None = None,
) -> ad.AnnData:
    """The posterior-predictive mean (and std) of ``target`` for every spot of an RNA-only section.

    A section the model has not seen (one trained with the section as its batch
    covariate, as :func:`train_model` does with two or more sections) is first mapped onto
    the model: its own covariate row is trained on its RNA with the reference frozen
    (scArches surgery), so its batch effect is removed rather than ignored.

    Parameters
    ----------
    model
        A trained :class:`spatial_mg.PoEVAE`.
    section
        A :class:`Section` (its ``rna``) or the spots' AnnData (raw counts); its
        ``obs["section"]`` names it.
    target
        The modality to predict.
    return_std
        Add the predictive standard deviation as ``layers["std"]`` (calibrated across
        sections where the model carries a calibration).
    interval
        Also return a central interval covering this share (e.g. 0.9) as layers
        ``"lower"`` and ``"upper"``; see :meth:`spatial_mg.PoEVAE.predict`.
    map_unseen
        Map an unseen section first (default); False predicts through the reference alone
        (an unseen section is then an error of the model's).
    query_epochs
        Epochs of the surgery's training; None: ``QUERY_EPOCHS`` (100).

    Returns
    -------
    AnnData, spots x target features: the mean in ``X`` (on the scale trained on: log1p
    intensities for pairs from :func:`align_section`), the std in ``layers["std"]``, the
    spots' micrometres in ``obsm["spatial"]``; ``uns["spatial_mg"]["prediction"]["mapped"]``
    says whether the section was mapped.
    """
    from ._query import map_section

    rna = section.rna if isinstance(section, Section) else section
    name = section.name if isinstance(section, Section) else None
    mapped, spots = map_section(model, rna, name=name, max_epochs=query_epochs) if map_unseen else (model, rna)
    pred = mapped.predict(spots, target=target, return_std=return_std, interval=interval)
    pred.uns["spatial_mg"]["prediction"]["mapped"] = mapped is not model
    return pred


def predictions_spatialdata(pred: ad.AnnData, radius_um: float = VISIUM_SPOT_RADIUS_UM):
    """SpatialData with the spots as circles and the predictions (mean, std layer) as their table."""
    import spatialdata as sd
    from spatialdata.transformations import Identity

    from ..align import GLOBAL, annotating_table, circles

    if SPATIAL_KEY not in pred.obsm:
        raise KeyError(f"The predictions have no obsm[{SPATIAL_KEY!r}]: predict from spots that carry their micrometres.")
    xy = np.asarray(pred.obsm[SPATIAL_KEY], dtype=np.float64)
    table = ad.AnnData(
        X=np.asarray(pred.X),
        obs=pd.DataFrame(index=pred.obs_names),
        var=pred.var.copy(),
        layers={k: np.asarray(v) for k, v in pred.layers.items()},
    )
    table.obsm[SPATIAL_KEY] = xy
    return sd.SpatialData(
        shapes={"spots": circles(xy, radius_um, {GLOBAL: Identity()})},
        tables={"table": annotating_table(table, "spots")},
    )
