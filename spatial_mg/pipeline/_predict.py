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
        A trained :class:`spatial_mg.PoEVAE`, or several (an ensemble: each is mapped, and
        the prediction is their mixture, :func:`spatial_mg.model.predict_ensemble`).
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
    from ..model import predict_ensemble
    from ._query import map_section

    rna = section.rna if isinstance(section, Section) else section
    name = section.name if isinstance(section, Section) else None
    models = list(model) if isinstance(model, list | tuple) else [model]
    mapped = [map_section(m, rna, name=name, max_epochs=query_epochs) if map_unseen else (m, rna) for m in models]
    if len(models) == 1:
        pred = mapped[0][0].predict(mapped[0][1], target=target, return_std=return_std, interval=interval)
    else:
        if interval is not None:
            raise ValueError("interval= is for one model; an ensemble's prediction gives its mixture's std")
        pred = predict_ensemble([m for m, _ in mapped], mapped[0][1], target=target, return_std=return_std)
    pred.uns["spatial_mg"]["prediction"]["mapped"] = any(m is not orig for (m, _), orig in zip(mapped, models))
    return pred


def predictions_spatialdata(pred: ad.AnnData, radius_um: float = VISIUM_SPOT_RADIUS_UM, *, section=None):
    """SpatialData with the spots as circles, the predictions (mean, std layer) as their table, and the H&E.

    Parameters
    ----------
    pred
        Predictions (:func:`predict_section`), ``obsm["spatial"]`` in micrometres.
    radius_um
        Radius of the spot circles.
    section
        The spots the predictions are of (AnnData or SpatialData, e.g. ``Section.rna``):
        their H&E image is stored as ``"he_image"``, scaled into micrometres. Default: the
        image ``pred`` carries, if any.

    Returns
    -------
    ``SpatialData`` with shapes ``"spots"``, table ``"table"`` and, where there is one, the
    image ``"he_image"``, all in the coordinate system ``"global"`` (micrometres).
    """
    import spatialdata as sd
    from spatialdata.transformations import Identity

    from .._constants import HE_IMAGE, PRED_SPOTS, PRED_TABLE
    from ..align import GLOBAL, annotating_table, circles
    from ..io._he_image import he_image_of
    from ..io._spatialdata import as_anndata

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
    he = he_image_of(pred if section is None else as_anndata(section, "rna"))
    return sd.SpatialData(
        images={} if he is None else {HE_IMAGE: he.to_element()},
        shapes={PRED_SPOTS: circles(xy, radius_um, {GLOBAL: Identity()})},
        tables={PRED_TABLE: annotating_table(table, PRED_SPOTS)},
    )
