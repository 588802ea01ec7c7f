"""A section the model has not seen: map it onto the model by scArches surgery before predicting.

A model trained with the section as its batch covariate has one learned embedding per
training section. A new section gets its own row, trained on its RNA alone with every
reference weight frozen (``PoEVAE.load_query_data``), so that its batch effect is
modelled rather than ignored; the prediction is then made through that row.
"""

from __future__ import annotations

import anndata as ad
import pandas as pd

from .._constants import SECTION_KEY

# Epochs of a new section's surgery: only its embedding rows train, which settle in tens of
# epochs (early stopping on its validation loss ends sooner where they do)
QUERY_EPOCHS = 100


def section_covariate(model) -> str | None:
    """The obs key of the model's section covariate (its batch key when that is ``section``), or None."""
    return SECTION_KEY if SECTION_KEY in model.registry.covariates else None


def map_section(model, rna: ad.AnnData, *, name: str | None = None, max_epochs: int | None = None, accelerator=None):
    """The model to predict ``rna`` with, and the spots as that model reads them.

    Parameters
    ----------
    model
        A trained :class:`spatial_mg.PoEVAE`.
    rna
        The section's spots (raw counts); ``obs["section"]`` names it (else ``name``, else
        ``"query"``). It is not modified.
    name
        The section's name where ``rna`` carries none.
    max_epochs
        Epochs of the surgery's training; None: ``QUERY_EPOCHS``.
    accelerator
        Device of the surgery's training; None: the model's.

    Returns
    -------
    ``(model, rna)``: the given model and spots when the model has no section covariate
    or knows this section; else a query model (new embedding row trained on the
    section's RNA, the reference weights bit-identical, the reference's calibration kept)
    and the spots labelled with their section.
    """
    from ..model import PoEVAE

    key = section_covariate(model)
    if key is None:
        return model, rna
    labels = rna.obs[key].astype(str).unique() if key in rna.obs else []
    if len(labels) > 1:
        raise ValueError(f"The spots come from several sections ({sorted(labels)}); predict one section at a time.")
    section = labels[0] if len(labels) else (name or "query")
    if section in model.registry.covariates[key]:
        return model, rna
    labelled = rna
    if key not in rna.obs:  # label a copy: the caller's spots are not modified
        labelled = rna.copy()
        labelled.obs[key] = pd.Categorical([section] * labelled.n_obs)
    query = PoEVAE.load_query_data(labelled, model)
    query.train(
        max_epochs=QUERY_EPOCHS if max_epochs is None else max_epochs,
        kl_warmup_epochs=0,  # the reference trained with the KL term at its full weight
        accelerator=accelerator if accelerator is not None else model.device,
        progress_bar=False,
    )
    query.calibration = model.calibration
    return query, labelled
