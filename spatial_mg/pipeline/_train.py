"""Train the PoE-VAE on stacked pairs: negative-binomial RNA counts, Gaussian (log) metabolites."""

from __future__ import annotations

import logging
import warnings
from os import PathLike

import mudata as md

from .._constants import PAIRED_LIKELIHOODS, SECTION_KEY
from .._settings import settings as package_settings

# Weight of the MMD that pulls the sections' joint latents together when the section is the
# batch covariate (benchmarks/results/prediction_notes.md has the sweep behind it).
SECTION_MMD_WEIGHT = 1.0
AUTO = "auto"


def train_model(
    pairs: md.MuData,
    *,
    n_latent: int | None = None,
    seed: int = 0,
    max_epochs: int | None = None,
    batch_size: int | None = None,
    accelerator: str = "auto",
    batch_key: str | None = AUTO,
    fusion: str | None = None,
    batch_mmd_weight: float | None = None,
    modality_mmd_weight: float | None = None,
    context_radius_um: float | None = None,
    msi_weight: float | None = None,
    calibrate: bool = True,
    checkpoint_dir: str | PathLike | None = None,
    resume: bool = False,
    progress_bar: bool | None = None,
    strategy: str = "auto",
    devices: int | None = None,
):
    """Set up, build and train a :class:`spatial_mg.PoEVAE` on paired spots.

    With two or more sections the model is section-aware by default: the section is its
    batch covariate, an MMD on the joint latent aligns the sections, and its predictive
    intervals are calibrated across sections (each left out in turn; see
    :func:`calibrate_across_sections`). :func:`predict_section` then maps a new section
    onto the model before predicting it.

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
        Obs column of the batch covariate; ``"auto"``: ``"section"`` when the pairs hold two
        or more sections, else none; ``None``: none.
    fusion
        ``"poe"`` (product of experts) or ``"moe"`` (mixture); ``None``: the model's default.
    batch_mmd_weight
        Weight of the MMD that aligns the batches of ``batch_key`` in the latent (needs a
        batch key); ``None``: ``SECTION_MMD_WEIGHT`` when the section is the batch, else none.
    modality_mmd_weight
        Weight of the MMD between the RNA and MSI latents of each spot; ``None``: the
        model's default (none).
    context_radius_um
        Give the RNA encoder each spot's spatial context: the mean RNA of the spots within
        this radius in its section (150: a Visium spot and its six neighbours); ``None``:
        none (``benchmarks/results/prediction_notes.md`` has the comparison).
    msi_weight
        Weight of the metabolites' likelihood in the loss against the RNA's (1: the ELBO).
    calibrate
        Calibrate the predictive intervals across sections (two or more sections; one more
        training per section, each as long as the model's); with one section a warning
        says it cannot be done.
    checkpoint_dir, resume
        Write ``last.ckpt`` there after every epoch; ``resume`` continues from it (see
        :meth:`spatial_mg.PoEVAE.train`). The calibration's refits are not checkpointed.
    progress_bar
        Show a bar over epochs; ``None``: while ``spatial_mg.settings.verbosity`` shows
        INFO (not with ``spatial-mg --quiet``).
    strategy, devices
        Data-parallel training (``"ddp"``) in ``devices`` local processes or under
        torchrun; see :meth:`spatial_mg.PoEVAE.train`. The calibration's refits train
        the same way.

    Returns
    -------
    The trained model; per-epoch losses in ``model.history``, the calibration in
    ``model.calibration``.
    """
    from ._calibrate import calibrate_across_sections, sections_of

    sections = sections_of(pairs)
    if batch_key == AUTO:
        batch_key = SECTION_KEY if len(sections) >= 2 else None
    if batch_mmd_weight is None:
        batch_mmd_weight = SECTION_MMD_WEIGHT if batch_key == SECTION_KEY else None
    check_training_options(batch_key=batch_key, batch_mmd_weight=batch_mmd_weight, checkpoint_dir=checkpoint_dir, resume=resume)
    if progress_bar is None:
        progress_bar = package_settings.verbosity <= logging.INFO
    architecture = _given({"n_latent": n_latent, "fusion": fusion, "batch_mmd_weight": batch_mmd_weight,
                           "modality_mmd_weight": modality_mmd_weight,
                           "modality_weights": {"msi": msi_weight} if msi_weight is not None else None})
    training = _given({"max_epochs": max_epochs, "batch_size": batch_size}) | {"strategy": strategy, "devices": devices}
    context = {"rna": context_radius_um} if context_radius_um else None

    def fit(data: md.MuData, **more):
        from ..model import PoEVAE

        PoEVAE.setup_mudata(data, likelihoods=PAIRED_LIKELIHOODS, batch_key=batch_key, spatial_context=context)
        return PoEVAE(data, seed=seed, **architecture).train(accelerator=accelerator, **{**training, **more})

    model = fit(pairs, progress_bar=progress_bar, resume=resume, **_given({"checkpoint_dir": checkpoint_dir}))
    if calibrate and len(sections) >= 2:
        # the refits train as long as the model did (early stopping still on), which
        # bounds the cost of calibrating at about one more training per left-out section
        epochs = training.get("max_epochs", len(model.history))
        model.calibration = calibrate_across_sections(
            pairs, lambda data: fit(data, progress_bar=False, max_epochs=epochs)
        )
    elif calibrate:
        warnings.warn(
            "the pairs hold one section: its predictive intervals cannot be calibrated across sections, and the "
            "model's own are too narrow on a new section; train on two or more sections to calibrate them",
            stacklevel=2,
        )
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
