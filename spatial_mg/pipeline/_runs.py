"""The pipeline on files: each step reads its inputs, runs the in-memory steps and writes a folder.

Between steps the data travel as standard files: ``pairs.h5mu`` (MuData), a model folder,
``predicted.h5ad`` / ``predicted.zarr`` (SpatialData) and JSON/CSV figures. The command
line maps its flags onto these functions one to one.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Sequence
from contextlib import ExitStack
from os import PathLike
from pathlib import Path

import anndata as ad
import mudata as md

import pandas as pd

from .._constants import MODEL_STD_LAYER, SECTION_KEY, STD_LAYER
from .._errors import RegistrationFailedError
from .._validation import existing_file
from ._align import align_section
from ._evaluate import evaluate_prediction
from ._model_folder import MODEL_DIR, load_models, save_models
from ._outputs import OutputFolder
from ._predict import predict_section, predictions_spatialdata
from ._sections import Section, read_peak_list, read_section
from ._stack import stack_sections
from ._stack_on_disk import close_backed, stack_sections_on_disk
from ._train import AUTO, check_training_options, train_model

PAIRS_FILE = "pairs.h5mu"

log = logging.getLogger(__name__)


def run_align(
    *,
    visium: str | PathLike,
    msi: str | PathLike,
    out: str | PathLike,
    name: str | None = None,
    mz_bins: str | PathLike | Sequence[float] | None = None,
    ppm: float = 10.0,
    bin_width: float | None = None,
    pixel_size_um: float | None = None,
    landmarks: str | PathLike | pd.DataFrame | None = None,
    strategy: str = "spot_mean",
    msi_scale: str = "log1p",
    device: str | None = None,
    normalize: str | None = None,
    strict: bool = False,
    overwrite: bool = False,
    register_kwargs: dict | None = None,
    echo=print,
) -> Section:
    """Read one section, register its MSI onto its spots, pair, and write everything into ``out``.

    Writes ``pairs.h5mu``, ``registration.json``, ``registration.png`` (the overlay) and
    ``spatialdata.zarr`` (spots, pixels and the registration). ``mz_bins`` is a peak list
    file or the m/z values; ``landmarks`` a csv (``msi_x, msi_y, rna_x, rna_y`` in
    micrometres, or an SMA/MAGPIE ``landmarks_noHE.csv`` as published) or its table, which
    registers by landmarks instead of moscot.
    ``normalize`` (``None``, ``"tic"``, ``"rms"``) divides each MSI pixel by its total ion
    count or spectrum RMS. ``strict``: a registration of low confidence raises
    :class:`~spatial_mg.RegistrationFailedError` with the QC's reasons, and nothing is
    written. ``register_kwargs``: further keyword arguments of
    :func:`spatial_mg.align.register` (``content``, ``tissue_image``, ``msi_edge``, ...).
    The other arguments are those of :func:`read_section` and :func:`align_section`.
    """
    from .. import align, pl

    with OutputFolder(out, overwrite=overwrite, inputs=[visium, msi, mz_bins, landmarks]) as folder:
        if isinstance(mz_bins, (str, PathLike)):
            mz_bins = read_peak_list(mz_bins)
        section = read_section(
            visium, msi, name=name, mz_bins=mz_bins, ppm=ppm, bin_width=bin_width, pixel_size_um=pixel_size_um, normalize=normalize
        )
        if isinstance(landmarks, (str, PathLike)):
            landmarks = _read_file(pd.read_csv, landmarks, "landmarks csv", "a csv with columns msi_x, msi_y, rna_x, rna_y (um), or X_left, Y_left, X_right, Y_right as the SMA files have")
        method = "moscot" if landmarks is None else "landmarks"
        with warnings.catch_warnings():
            if strict:  # a low confidence is an error below, which names the reasons: not a warning first
                warnings.filterwarnings("ignore", message="Pairing with a low-confidence registration")
            section = align_section(
                section, method=method, landmarks=landmarks, strategy=strategy, msi_scale=msi_scale, device=device,
                register_kwargs=register_kwargs,
            )
        reg = section.registration
        if strict and reg.qc.confidence == "low":
            raise RegistrationFailedError(
                f"{section.name}: the registration's confidence is low ({reg.qc.reason}); strict mode writes nothing. "
                "Check the overlay of a run without --strict, the MSI pixel size and that both files are of this "
                "section, or register with --landmarks."
            )
        folder.write_h5mu(PAIRS_FILE, section.pairs)
        folder.write_text("registration.json", reg.to_json())
        folder.save_figure("registration.png", pl.registration(section.rna, section.msi, reg))
        folder.write_spatialdata("spatialdata.zarr", align.to_spatialdata(section.rna, section.msi, reg))
    reason = f" ({reg.qc.reason})" if reg.qc.reason else ""
    echo(f"{section.name}: {section.pairs.n_obs} of {section.rna.n_obs} spots paired; "
         f"confidence {reg.qc.confidence}{reason}; results in {folder.path}")
    return section


def run_train(
    *,
    pairs: Sequence[str | PathLike],
    out: str | PathLike,
    n_latent: int | None = None,
    max_epochs: int | None = None,
    batch_size: int | None = None,
    accelerator: str = "auto",
    seed: int = 0,
    batch_key: str | None = AUTO,
    fusion: str | None = None,
    batch_mmd_weight: float | None = None,
    modality_mmd_weight: float | None = None,
    context_radius_um: float | None = None,
    checkpoint_dir: str | PathLike | None = None,
    resume: bool = False,
    n_models: int = 1,
    calibrate: bool = True,
    mix_matrices: bool = False,
    overwrite: bool = False,
    strategy: str = "auto",
    devices: int | None = None,
    on_disk: bool = False,
    echo=print,
):
    """Train the PoE-VAE on one or more ``pairs.h5mu`` files; save it to ``out/model``.

    Each file's section is named by its spots' ``obs["section"]`` (set when it was read),
    else by the folder holding the file; two files of one section are an error. Writes the
    model folder and ``history.csv`` (the first model's epochs).

    ``n_models`` > 1 trains an ensemble with seeds ``seed, seed + 1, ...``: the first in
    ``out/model``, the others in ``out/model_seed<k>``, listed in ``out/ensemble.json``;
    :func:`run_predict` given ``out`` predicts with all of them
    (:func:`spatial_mg.model.predict_ensemble`). Their checkpoints go to
    ``checkpoint_dir/seed<k>``. ``mix_matrices`` lets sections of different MALDI matrices
    or ion modes train together (see :func:`stack_sections`). The other arguments are
    those of :func:`train_model`.

    Under ``torchrun`` every rank runs this function in step with the others (each
    training step is shared out among them, see :meth:`spatial_mg.PoEVAE.train`); rank 0
    alone writes ``out`` and reports, the others write into a scratch folder they delete.

    ``on_disk``: the pairs stay on disk. They are stacked a section at a time into scratch
    files beside ``out`` (:func:`stack_sections_on_disk`), which training reads a chunk
    of cells at a time, so memory is set by the largest section and the chunk, not by
    the atlas; the scratch files are removed afterwards (the returned model then has no
    training data attached: pass data to its methods). Calibration across sections
    refits on subsets held in memory, so it is refused here (``calibrate=False``).

    Returns
    -------
    The trained model; for an ensemble, the list of models.
    """
    if isinstance(n_models, bool) or not isinstance(n_models, int) or n_models < 1:
        raise ValueError(f"n_models must be a whole number >= 1, not {n_models!r}")
    check_training_options(batch_key=batch_key, batch_mmd_weight=batch_mmd_weight, checkpoint_dir=checkpoint_dir, resume=resume)
    if on_disk and calibrate:
        raise ValueError(
            "calibrating the intervals across sections (the default) refits the model on all sections but one, held in "
            "memory, which on_disk (--on-disk) is there to avoid: pass calibrate=False (--no-calibration), or train in memory"
        )
    from ..model._distributed import is_main_process, launched_by_torchrun

    if on_disk and launched_by_torchrun():
        raise ValueError(
            "on_disk (--on-disk) under torchrun would have every rank stack the sections into its own copy: stack them "
            "once (spatial_mg.pipeline.stack_sections_on_disk, or train --on-disk in one process) and launch a script "
            "that opens the stacked files backed on every rank, or train in memory"
        )

    with ExitStack() as stack:
        if not is_main_process():  # another rank of a torchrun launch: rank 0 writes the results
            OutputFolder(out, overwrite=overwrite, inputs=pairs)  # refuses what rank 0 refuses, so no rank waits on it
            out = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="spatial_mg_rank_"))) / "out"
            overwrite, echo = False, lambda *args, **kwargs: None
        models = _train_into(
            out, overwrite, pairs, seed, n_models, checkpoint_dir, mix_matrices, on_disk, echo,
            dict(n_latent=n_latent, max_epochs=max_epochs, batch_size=batch_size, accelerator=accelerator,
                 batch_key=batch_key, fusion=fusion, batch_mmd_weight=batch_mmd_weight,
                 modality_mmd_weight=modality_mmd_weight, context_radius_um=context_radius_um,
                 calibrate=calibrate, resume=resume, strategy=strategy, devices=devices),
        )
    return models[0] if n_models == 1 else models


def _train_into(out, overwrite: bool, pairs, seed: int, n_models: int, checkpoint_dir, mix_matrices: bool, on_disk: bool, echo,
                common: dict):
    """:func:`run_train`'s work: read, stack, train, write ``out``; the models."""
    with OutputFolder(out, overwrite=overwrite, inputs=pairs) as folder, ExitStack() as scratch:
        if on_disk:  # beside the output, on its disk: an atlas may not fit in the system's temporary folder
            where = Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix=".spatial_mg_stack_", dir=folder.path.resolve().parent)))
            stacked = stack_sections_on_disk(_sections_in(pairs), where, mix_matrices=mix_matrices)
            scratch.callback(close_backed, stacked)  # before the folder goes
        else:
            stacked = stack_sections(dict(_sections_in(pairs)), mix_matrices=mix_matrices)
        n_sections = stacked.obs[SECTION_KEY].nunique()
        models = []
        for k in range(seed, seed + n_models):
            if n_models > 1:
                log.info(f"training model {k - seed + 1} of {n_models} (seed {k})")
            checkpoints = checkpoint_dir if checkpoint_dir is None or n_models == 1 else Path(checkpoint_dir) / f"seed{k}"
            models.append(train_model(stacked, seed=k, checkpoint_dir=checkpoints, **common))
        names = save_models(folder, models)
        folder.write_csv("history.csv", models[0].history)
    epochs = ", ".join(str(len(m.history)) for m in models)
    where = f"model in {folder.path / MODEL_DIR}" if n_models == 1 else f"models in {folder.path} ({', '.join(names)})"
    read = " read from disk" if on_disk else ""
    echo(f"trained {_models_text(n_models, seed)} on {stacked.n_obs} paired spots of {n_sections} section(s){read} "
         f"for {epochs} epochs; {where}")
    return models


def _sections_in(pairs):
    """``(section name, pairs)`` of each pairs file, read one at a time when asked."""
    seen: set[str] = set()
    for path in pairs:
        mdata = _read_file(md.read_h5mu, path, "pairs file", "a pairs.h5mu written by 'spatial-mg align'")
        name = _section_of(mdata, Path(path))
        if name in seen:
            raise ValueError(
                f"Two pairs files hold section '{name}' ('{path}' is the second): give each section once, "
                "or name the sections apart when aligning (--name)."
            )
        seen.add(name)
        yield name, mdata


def _models_text(n_models: int, seed: int) -> str:
    return "the model" if n_models == 1 else f"{n_models} models (seeds {seed} to {seed + n_models - 1})"


def _section_of(mdata: md.MuData, path: Path) -> str:
    values = mdata["rna"].obs[SECTION_KEY].unique() if SECTION_KEY in mdata["rna"].obs else []
    if len(values) == 1:
        return str(values[0])
    return path.resolve().parent.name


def run_predict(
    *,
    model: str | PathLike,
    out: str | PathLike,
    visium: str | PathLike | None = None,
    rna: str | PathLike | None = None,
    name: str | None = None,
    accelerator: str = "auto",
    overwrite: bool = False,
    echo=print,
) -> ad.AnnData:
    """Predict the metabolites (mean and std) of an RNA-only section; write ``predicted.h5ad`` and ``predicted.zarr``.

    ``model`` is the folder written by :func:`run_train` (or a model folder inside it); an
    ensemble's folder predicts with the mixture of all its models (the spread of their
    means in ``layers["model_std"]``, part of ``layers["std"]``);
    the section comes as a spaceranger ``visium`` outs folder or an ``rna`` .h5ad (raw
    counts, ``obsm["spatial"]`` in micrometres). ``name`` is the section's identity
    (default: the folder holding ``outs/``); :func:`run_evaluate` checks it against the
    measured section's.
    """
    if (visium is None) == (rna is None):
        raise ValueError("Give the RNA-only section once: visium=<outs folder> or rna=<file.h5ad>.")
    with OutputFolder(out, overwrite=overwrite, inputs=[model, visium, rna]) as folder:
        trained = load_models(model, accelerator=accelerator)
        if visium is not None:
            spots = read_section(visium, name=name).rna
        else:
            spots = _read_file(ad.read_h5ad, rna, "RNA file", "an .h5ad of spots x genes (raw counts)")
            if name is not None:
                spots.obs[SECTION_KEY] = pd.Categorical([name] * spots.n_obs)
        pred = predict_section(trained[0] if len(trained) == 1 else trained, spots)
        folder.write_h5ad("predicted.h5ad", pred)
        if "spatial" in pred.obsm:
            folder.write_spatialdata("predicted.zarr", predictions_spatialdata(pred, section=spots))
    spread = "" if len(trained) == 1 else f", the models' spread in layers['{MODEL_STD_LAYER}']"
    by = "" if len(trained) == 1 else f" with an ensemble of {len(trained)} models"
    echo(f"predicted {pred.n_vars} metabolites for {pred.n_obs} spots{by} (mean in X, std in layers['{STD_LAYER}']{spread}); "
         f"results in {folder.path}")
    return pred


def _read_file(reader, path, what: str, expected: str):
    """``reader(path)``, or one clear error naming the file and what it should be."""
    path = existing_file(path, what)
    try:
        return reader(path)
    except Exception as err:  # h5py, anndata and mudata raise many types for a wrong file
        detail = " ".join(str(err).split())[:200]
        raise ValueError(f"{what} '{path}' cannot be read ({type(err).__name__}: {detail}); give {expected}.") from err


def run_evaluate(
    *,
    pred: str | PathLike,
    truth: str | PathLike,
    out: str | PathLike,
    overwrite: bool = False,
    echo=print,
) -> dict:
    """Pearson and Spearman per metabolite (and flattened) of a prediction against measurements.

    ``pred`` is a ``predicted.h5ad``; ``truth`` the section's ``pairs.h5mu`` (its MSI) or an
    .h5ad of measured maps on the same scale. Writes ``metabolites.csv`` and ``metrics.json``,
    and the figures of :func:`write_prediction_figures`: the measured | predicted | std maps
    of the best, median and worst predicted metabolite (``maps_best.png``, ...) and the
    correlation against the Moran's I of each measured map (``correlation_vs_morans_i.png``).
    """
    from ._evaluate import write_prediction_figures

    with OutputFolder(out, overwrite=overwrite, inputs=[pred, truth]) as folder:
        predicted = _read_file(ad.read_h5ad, pred, "prediction file", "the predicted.h5ad written by 'spatial-mg predict'")
        if Path(truth).suffix == ".h5mu":
            pairs = _read_file(md.read_h5mu, truth, "measured data", "the section's pairs.h5mu written by 'spatial-mg align'")
            if "msi" not in pairs.mod:
                raise ValueError(f"'{truth}' has no 'msi' modality; give the section's pairs.h5mu written by 'spatial-mg align'.")
            measured = pairs["msi"]
        else:
            measured = _read_file(ad.read_h5ad, truth, "measured data", "the section's pairs.h5mu, or an .h5ad of measured maps")
        if not len(predicted.obs_names.intersection(measured.obs_names)):
            raise ValueError(f"No spot of '{pred}' is in '{truth}': are they the same section?")
        figures, table = evaluate_prediction(predicted, measured)
        table.index.name = "metabolite"
        folder.write_csv("metabolites.csv", table)
        sections = predicted.obs[SECTION_KEY].unique() if SECTION_KEY in predicted.obs else []
        drawn = write_prediction_figures(
            folder, predicted, measured, table["pearson"], table.get("morans_i_measured"),
            section=str(sections[0]) if len(sections) == 1 else None,
        )
        folder.write_json("metrics.json", figures)
    echo(f"median Pearson {figures['median_pearson']:.3f}, median Spearman {figures['median_spearman']:.3f} "
         f"over {figures['n_metabolites']} metabolites and {figures['n_spots']} spots; results in {folder.path}"
         + (f" (figures: {', '.join(drawn)})" if drawn else " (no figures: the prediction has no spot coordinates)"))
    return figures



