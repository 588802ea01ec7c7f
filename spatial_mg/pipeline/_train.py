"""Train the PoE-VAE on stacked pairs: negative-binomial RNA counts, Gaussian (log) metabolites."""

from __future__ import annotations

import mudata as md

from .._constants import PAIRED_LIKELIHOODS


def train_model(
    pairs: md.MuData,
    *,
    n_latent: int | None = None,
    seed: int = 0,
    max_epochs: int | None = None,
    batch_size: int | None = None,
    accelerator: str = "auto",
    batch_key: str | None = None,
    progress_bar: bool = True,
):
    """Set up, build and train a :class:`spatial_mg.PoEVAE` on paired spots.

    Parameters
    ----------
    pairs
        MuData ``{"rna", "msi"}`` (:func:`stack_sections`, or one section's pairs). Its
        setup is recorded in ``pairs.uns``, as :meth:`spatial_mg.PoEVAE.setup_mudata` does.
    n_latent
        Latent dimensions; ``None``: the model's default.
    seed
        Seeds the weights, the validation split and the minibatches.
    max_epochs, batch_size
        ``None``: the model's defaults (epochs from the data size, with early stopping).
    accelerator
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    batch_key
        Obs column to use as the batch covariate (e.g. ``"section"``); ``None``: none.
    progress_bar
        Show a bar over epochs.

    Returns
    -------
    The trained model; per-epoch losses in ``model.history``.
    """
    from ..model import PoEVAE

    PoEVAE.setup_mudata(pairs, likelihoods=PAIRED_LIKELIHOODS, batch_key=batch_key)
    model = PoEVAE(pairs, seed=seed, **({} if n_latent is None else {"n_latent": n_latent}))
    given = {"max_epochs": max_epochs, "batch_size": batch_size}
    model.train(accelerator=accelerator, progress_bar=progress_bar, **{k: v for k, v in given.items() if v is not None})
    return model
