"""Train the PoE-VAE on stacked pairs: negative-binomial RNA counts, Gaussian (log) metabolites."""

from __future__ import annotations

from os import PathLike

import logging

import mudata as md

from .._constants import PAIRED_LIKELIHOODS
from .._settings import settings as package_settings


def train_model(
    pairs: md.MuData,
    *,
    n_latent: int | None = None,
    seed: int = 0,
    max_epochs: int | None = None,
    batch_size: int | None = None,
    accelerator: str = "auto",
    batch_key: str | None = None,
    fusion: str | None = None,
    batch_mmd_weight: float | None = None,
    modality_mmd_weight: float | None = None,
    checkpoint_dir: str | PathLike | None = None,
    resume: bool = False,
    progress_bar: bool | None = None,
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
        ``"auto"``, ``"cpu"``, ``"gpu"`` or ``"cuda"``.
    batch_key
        Obs column to use as the batch covariate (e.g. ``"section"``); ``None``: none.
    fusion
        ``"poe"`` (product of experts) or ``"moe"`` (mixture); ``None``: the model's default.
    batch_mmd_weight
        Weight of the MMD that aligns the batches of ``batch_key`` in the latent (needs
        ``batch_key``); ``None``: the model's default (none).
    modality_mmd_weight
        Weight of the MMD between the RNA and MSI latents of each spot; ``None``: the
        model's default (none).
    checkpoint_dir, resume
        Write ``last.ckpt`` there after every epoch; ``resume`` continues from it (see
        :meth:`spatial_mg.PoEVAE.train`).
    progress_bar
        Show a bar over epochs; ``None``: while ``spatial_mg.settings.verbosity`` shows
        INFO (not with ``spatial-mg --quiet``).

    Returns
    -------
    The trained model; per-epoch losses in ``model.history``.
    """
    from ..model import PoEVAE

    check_training_options(batch_key=batch_key, batch_mmd_weight=batch_mmd_weight, checkpoint_dir=checkpoint_dir, resume=resume)
    if progress_bar is None:
        progress_bar = package_settings.verbosity <= logging.INFO
    PoEVAE.setup_mudata(pairs, likelihoods=PAIRED_LIKELIHOODS, batch_key=batch_key)
    architecture = {"n_latent": n_latent, "fusion": fusion, "batch_mmd_weight": batch_mmd_weight,
                    "modality_mmd_weight": modality_mmd_weight}
    model = PoEVAE(pairs, seed=seed, **_given(architecture))
    training = {"max_epochs": max_epochs, "batch_size": batch_size, "checkpoint_dir": checkpoint_dir}
    model.train(accelerator=accelerator, progress_bar=progress_bar, resume=resume, **_given(training))
    return model


def check_training_options(*, batch_key: str | None, batch_mmd_weight: float | None, checkpoint_dir, resume: bool) -> None:
    """Refuse options that would be silently ignored: checked before any data are read."""
    if batch_mmd_weight and batch_key is None:
        raise ValueError(
            f"batch_mmd_weight={batch_mmd_weight} (--batch-mmd-weight) aligns batches, and no batch_key names them: "
            "give batch_key (--batch-key), e.g. 'section', or leave the weight at 0."
        )
    if resume and checkpoint_dir is None:
        raise ValueError(
            "resume (--resume) needs checkpoint_dir (--checkpoint-dir): the folder whose last.ckpt to continue from."
        )


def _given(values: dict) -> dict:
    """The values that were given: None leaves the model's own default in place."""
    return {k: v for k, v in values.items() if v is not None}
