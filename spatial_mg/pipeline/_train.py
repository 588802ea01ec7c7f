"""Train the PoE-VAE on stacked pairs: negative-binomial RNA counts, Gaussian (log) metabolites."""

from __future__ import annotations

import mudata as md

from .._constants import PAIRED_LIKELIHOODS, SECTION_KEY


# Weight of the MMD that pulls the sections' joint latents together when the section is the
# batch covariate (see benchmarks/results/prediction_notes.md for the sweep behind it).
SECTION_MMD_WEIGHT = 1.0


def train_model(
    pairs: md.MuData,
    *,
    n_latent: int | None = None,
    seed: int = 0,
    max_epochs: int | None = None,
    batch_size: int | None = None,
    accelerator: str = "auto",
    batch_key: str | None = "auto",
    batch_mmd_weight: float | None = None,
    calibrate: bool = True,
    progress_bar: bool = True,
):
    """Set up, build and train a :class:`spatial_mg.PoEVAE` on paired spots.

    With two or more sections the model is section-aware: the section is its batch
    covariate, an MMD on the joint latent aligns the sections, and its intervals are
    calibrated across sections (each left out in turn; see :func:`calibrate_across_sections`).

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
        Obs column of the batch covariate; ``"auto"``: ``"section"`` when the pairs hold two
        or more sections, else none; ``None``: none.
    batch_mmd_weight
        Weight of the batch MMD; ``None``: ``SECTION_MMD_WEIGHT`` when the section is the
        batch, else 0.
    calibrate
        Calibrate the predictive intervals across sections (two or more sections; costs
        one more training per section); with one section a warning says it cannot be done.
    progress_bar
        Show a bar over epochs.

    Returns
    -------
    The trained model; per-epoch losses in ``model.history``, the calibration in
    ``model.calibration``.
    """
    import warnings

    from ._calibrate import calibrate_across_sections, sections_of

    sections = sections_of(pairs)
    if batch_key == "auto":
        batch_key = SECTION_KEY if len(sections) >= 2 else None
    if batch_mmd_weight is None:
        batch_mmd_weight = SECTION_MMD_WEIGHT if batch_key == SECTION_KEY else 0.0
    architecture = {"batch_mmd_weight": batch_mmd_weight, **({} if n_latent is None else {"n_latent": n_latent})}
    training = {"accelerator": accelerator, **{k: v for k, v in {"max_epochs": max_epochs, "batch_size": batch_size}.items() if v is not None}}

    def fit(data: md.MuData, bar: bool = False):
        from ..model import PoEVAE

        PoEVAE.setup_mudata(data, likelihoods=PAIRED_LIKELIHOODS, batch_key=batch_key)
        return PoEVAE(data, seed=seed, **architecture).train(progress_bar=bar, **training)

    model = fit(pairs, progress_bar)
    if calibrate and len(sections) >= 2:
        # the refits train as long as the model did (early stopping still on), which
        # bounds the cost of calibrating at about one more training per left-out section
        training.setdefault("max_epochs", len(model.history))
        model.calibration = calibrate_across_sections(pairs, fit)
    elif calibrate:
        warnings.warn(
            "the pairs hold one section: its predictive intervals cannot be calibrated across sections, and the "
            "model's own are too narrow on a new section; train on two or more sections to calibrate them",
            stacklevel=2,
        )
    return model
