"""The command-line steps on a user's files: align, train, predict, evaluate.

Between steps the data travel as standard files: ``pairs.h5mu`` (MuData), a model folder,
``predicted.h5ad`` / ``predicted.zarr`` (SpatialData) and JSON/CSV figures.
"""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd

from .._atomic import atomic_dir, atomic_file
from .._constants import SECTION_KEY, SPATIAL_KEY, STD_LAYER, VISIUM_SPOT_RADIUS_UM
from .._validation import existing_dir, existing_file
from ._evaluate import summarise
from ._outputs import OutputFolder
from ._sections import SectionFiles, log_msi, read_section


def align_step(args: Namespace) -> None:
    """Read one section, register its MSI onto its spots, pair, and write everything."""
    from .. import align, pl

    folder = OutputFolder(args.out, overwrite=args.overwrite)
    files = SectionFiles(Path(args.visium).resolve().parent.name, Path(args.visium), Path(args.msi))
    section = read_section(
        files,
        mz_bins=_peak_list(args.mz_bins) if args.mz_bins else None,
        ppm=args.ppm,
        bin_width=args.bin_width,
        pixel_size_um=args.pixel_size_um,
    )
    if args.landmarks:
        table = pd.read_csv(existing_file(args.landmarks, "landmarks csv"))
        reg = align.register(section.rna, section.msi, method="landmarks", landmarks=table, device=args.device)
    else:
        reg = align.register(section.rna, section.msi, device=args.device)
    pairs = align.pair(section.rna, section.msi, reg, strategy=args.strategy)
    if args.msi_scale == "log1p":
        pairs = log_msi(pairs)
    with atomic_file(folder.file("pairs.h5mu")) as tmp:
        pairs.write(tmp.with_suffix(".h5mu"))
        tmp.with_suffix(".h5mu").replace(tmp)
    folder.write_text("registration.json", reg.to_json())
    fig = pl.registration(section.rna, section.msi, reg)
    folder.save_figure("registration.png", getattr(fig, "figure", fig))
    with atomic_dir(folder.file("spatialdata.zarr"), overwrite=True) as tmp:
        align.to_spatialdata(section.rna, section.msi, reg).write(tmp / "sdata.zarr")
    print(f"{files.name}: {pairs.n_obs} of {section.rna.n_obs} spots paired; confidence {reg.qc.confidence}"
          f"{' (' + reg.qc.reason + ')' if reg.qc.reason else ''}; results in {folder.path}")


def train_step(args: Namespace) -> None:
    """Train the PoE-VAE on one or more ``pairs.h5mu`` and save it into ``--out``."""
    from .. import PoEVAE

    folder = OutputFolder(args.out, overwrite=args.overwrite)
    mdata = stack_mudata({Path(p).resolve().parent.name: md.read_h5mu(existing_file(p, "pairs file")) for p in args.pairs})
    PoEVAE.setup_mudata(mdata, modalities={"rna": "nb", "msi": "gaussian"})
    model = PoEVAE(mdata, n_latent=args.n_latent, seed=args.seed)
    model.train(max_epochs=args.epochs, batch_size=args.batch_size, accelerator=args.accelerator)
    model.save(folder.path / "model", overwrite=True)
    folder.write_csv("history.csv", model.history)
    print(f"trained on {mdata.n_obs} paired spots for {len(model.history)} epochs; model in {folder.path / 'model'}")


def predict_step(args: Namespace) -> None:
    """Predict the metabolites (mean and std) of an RNA-only section; write h5ad and zarr."""
    from .. import PoEVAE
    from ..io import read_visium

    folder = OutputFolder(args.out, overwrite=args.overwrite)
    model_dir = existing_dir(args.model, "model folder")
    if (model_dir / "model").is_dir():
        model_dir = model_dir / "model"
    model = PoEVAE.load(model_dir, accelerator=args.accelerator)
    rna = read_visium(args.visium) if args.visium else ad.read_h5ad(existing_file(args.rna, "RNA h5ad"))
    pred = model.predict(rna, target="msi", return_std=True)  # carries rna's obsm["spatial"]
    folder.write_h5ad("predicted.h5ad", pred)
    if SPATIAL_KEY in pred.obsm:
        with atomic_dir(folder.file("predicted.zarr"), overwrite=True) as tmp:
            predictions_spatialdata(pred).write(tmp / "sdata.zarr")
    print(f"predicted {pred.n_vars} metabolites for {pred.n_obs} spots (mean in X, std in layers['{STD_LAYER}']);"
          f" results in {folder.path}")


def evaluate_step(args: Namespace) -> None:
    """Pearson/Spearman per metabolite (and flattened) of a prediction against measurements."""
    from ..metrics import morans_i

    folder = OutputFolder(args.out, overwrite=args.overwrite)
    pred = ad.read_h5ad(existing_file(args.pred, "prediction h5ad"))
    truth_path = existing_file(args.truth, "measured data")
    truth = md.read_h5mu(truth_path)["msi"] if truth_path.suffix == ".h5mu" else ad.read_h5ad(truth_path)
    common = pred.obs_names.intersection(truth.obs_names)
    if len(common) == 0:
        raise ValueError(f"No spot of '{args.pred}' is in '{args.truth}': are they the same section?")
    figures, table = summarise(pred[common], truth)
    if SPATIAL_KEY in truth.obsm:
        table["morans_i_measured"] = morans_i(truth[common]).reindex(table.index)
    table.index.name = "metabolite"
    folder.write_csv("metabolites.csv", table)
    folder.write_json("metrics.json", {**figures, "n_spots": len(common), "n_metabolites": int(table.shape[0])})
    print(f"median Pearson {figures['median_pearson']:.3f}, median Spearman {figures['median_spearman']:.3f} "
          f"over {table.shape[0]} metabolites and {len(common)} spots; results in {folder.path}")


def stack_mudata(by_section: dict[str, md.MuData]) -> md.MuData:
    """Concatenate paired sections; obs names become ``section:barcode``, ``obs["section"]`` set."""
    mods = {"rna": [], "msi": []}
    for name, mdata in by_section.items():
        for mod, store in mods.items():
            if mod not in mdata.mod:
                raise KeyError(f"Section '{name}' has no '{mod}' modality; pass pairs.h5mu from 'spatial-mg align'.")
            adata = mdata[mod].copy()
            adata.obs_names = [f"{name}:{barcode}" for barcode in adata.obs_names]
            adata.obs[SECTION_KEY] = name
            store.append(adata)
    stacked = md.MuData({mod: ad.concat(parts, merge="same") for mod, parts in mods.items()})
    stacked.obs[SECTION_KEY] = pd.Categorical(stacked["rna"].obs[SECTION_KEY].reindex(stacked.obs_names))
    return stacked


def predictions_spatialdata(pred: ad.AnnData, radius_um: float = VISIUM_SPOT_RADIUS_UM):
    """SpatialData with the spots as circles and the predictions (mean, std layer) as their table."""
    import spatialdata as sd
    from spatialdata.transformations import Identity

    from ..align._spatialdata import GLOBAL, annotating_table, circles

    xy = np.asarray(pred.obsm[SPATIAL_KEY], dtype=np.float64)
    table = ad.AnnData(X=np.asarray(pred.X), obs=pd.DataFrame(index=pred.obs_names), var=pred.var[[]].copy(),
                       layers={k: np.asarray(v) for k, v in pred.layers.items()})
    table.obsm[SPATIAL_KEY] = xy
    return sd.SpatialData(
        shapes={"spots": circles(xy, radius_um, {GLOBAL: Identity()})},
        tables={"table": annotating_table(table, "spots")},
    )


def _peak_list(path) -> np.ndarray:
    path = existing_file(path, "peak list")
    table = pd.read_csv(path)
    column = "mz" if "mz" in table.columns else table.columns[0]
    values = pd.to_numeric(table[column], errors="coerce").dropna().to_numpy()
    if values.size == 0:
        raise ValueError(f"Peak list '{path}' holds no m/z values (a csv with an 'mz' column).")
    return values
