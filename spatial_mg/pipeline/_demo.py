"""``spatial-mg demo``: the pipeline's steps on the built-in synthetic Vicari-type sections.

The sections are written in their real formats (spaceranger outs + imzML), then read,
aligned, stacked, trained on, predicted and evaluated by the same public steps a user
calls on real files; the held-out section's MSI is used only to score its prediction.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from .._constants import LATENT_KEY, SECTION_KEY
from ..io import SectionFiles
from ._align import align_section
from ._evaluate import _dense, score_methods, write_prediction_figures
from ._query import map_section
from ._outputs import OutputFolder
from ._predict import predict_section
from ._report import write_report
from ._sections import Section, read_section
from ._stack import stack_sections
from ._train import train_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo; ``smoke()`` is the few-second version CI runs."""

    n_sections: int = 3
    n_spots: int = 700
    n_genes: int = 300
    n_metabolites: int = 30
    msi_pitch_um: float = 75.0
    max_epochs: int | None = None
    seed: int = 0

    @classmethod
    def smoke(cls, seed: int = 0) -> DemoConfig:
        return cls(n_spots=250, n_genes=120, n_metabolites=12, msi_pitch_um=90.0, max_epochs=5, seed=seed)


def default_cache() -> Path:
    """Where the demo writes its input files: ``$SPATIAL_MG_DATA/demo`` or ``~/.cache/spatial_mg/demo``."""
    root = os.environ.get("SPATIAL_MG_DATA")
    return Path(root) / "demo" if root else Path.home() / ".cache" / "spatial_mg" / "demo"


class _Progress:
    """Numbered stages with their time, logged (INFO) as the run goes."""

    def __init__(self, n: int):
        self.n, self.i = n, 0
        self.started = time.perf_counter()

    def stage(self, text: str) -> None:
        self.i += 1
        log.info(f"[{self.i}/{self.n}] {text}  (t={time.perf_counter() - self.started:.0f} s)")


def run_demo(
    out: str | os.PathLike,
    *,
    config: DemoConfig | None = None,
    data_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    accelerator: str = "auto",
    echo=print,
) -> dict:
    """Run the demo and write its results into ``out``; returns the figures of ``metrics.json``.

    Its stages are logged (INFO, see ``spatial_mg.settings.verbosity``); ``echo`` gets the
    closing line that says where the report is.
    """
    import matplotlib

    matplotlib.use("Agg")

    config = config or DemoConfig()
    with OutputFolder(out, overwrite=overwrite, inputs=[data_dir]) as folder:
        progress = _Progress(7)

        progress.stage("writing the synthetic sections in their real formats (spaceranger outs/, imzML)")
        files, peaks, truth = _demo_files(config, Path(data_dir) if data_dir else default_cache())

        progress.stage(f"reading {len(files)} sections (read_visium, read_imzml)")
        sections = [read_section(f, mz_bins=peaks, ppm=10.0) for f in files]

        progress.stage("registering MSI onto Visium with moscot, and pairing")
        sections = [align_section(s) for s in sections]
        train, test = sections[:-1], sections[-1]
        registration = {
            s.name: {
                "median_error_um": _registration_error_um(s, truth[s.name]["affine"]),
                "qc": s.registration.qc.to_dict(),
                "n_paired": int(s.pairs.n_obs),
                "n_spots": int(s.rna.n_obs),
            }
            for s in sections
        }
        from .. import pl

        folder.save_figure("registration.png", pl.registration(test.rna, test.msi, test.registration))

        progress.stage(f"training the PoE-VAE on {len(train)} paired sections")
        mdata = stack_sections(train)
        t0 = time.perf_counter()
        model = train_model(mdata, n_latent=16, seed=config.seed, max_epochs=config.max_epochs, accelerator=accelerator)
        seconds = time.perf_counter() - t0
        epochs = len(model.history)
        training = {"seconds": seconds, "epochs": epochs, "n_cells": int(mdata.n_obs), "cells_per_s": float(mdata.n_obs * epochs / seconds)}

        progress.stage(f"predicting section {test.name}'s metabolites from its RNA alone, and the baselines")
        measured = {s.name: s.pairs["msi"] for s in sections}
        # a section the model has not seen is mapped onto it once (surgery), then predicted and drawn
        models = {s.name: map_section(model, s.pairs["rna"], name=s.name)[0] for s in sections}
        predictions = {s.name: _predict_all(models[s.name], mdata, s) for s in sections}

        progress.stage("scoring against the measured MSI and the noise-free truth")
        scores: dict = {}
        for s in sections:
            scores.setdefault("test" if s is test else "train", {})[s.name] = score_methods(predictions[s.name], measured[s.name])[0]
        test_vs_measured, table = score_methods(predictions[test.name], measured[test.name])
        noise_free = truth[test.name]["means"].copy()
        noise_free.X = np.log1p(np.asarray(noise_free.X))  # on the scale of the pairs (log_msi)
        test_vs_truth, _ = score_methods(predictions[test.name], noise_free)

        progress.stage(f"writing figures, tables and the report to {folder.path}")
        table.index.name = "metabolite"
        folder.write_csv("metabolites.csv", table)
        _figures(folder, models, sections, test, predictions[test.name]["poe_vae"], measured[test.name], table)
        metrics = {
            "config": asdict(config),
            "sections": {"train": [s.name for s in train], "test": test.name},
            "registration": registration,
            "training": training,
            "prediction": {"by_split": scores, "test_vs_measured": test_vs_measured, "test_vs_truth": test_vs_truth},
            "model_beats": {
                b: test_vs_measured["poe_vae"]["median_pearson"] > test_vs_measured[b]["median_pearson"]
                for b in test_vs_measured
                if b != "poe_vae"
            },
        }
        folder.write_text("report.md", write_report(metrics, table))
        folder.write_json("metrics.json", metrics)  # last: its presence marks a finished run
    echo(f"done in {time.perf_counter() - progress.started:.0f} s: {folder.path}/report.md")
    return metrics


def _demo_files(config: DemoConfig, cache: Path) -> tuple[list[SectionFiles], np.ndarray, dict]:
    """Write the synthetic sections once per configuration and generator version; later runs reuse the files."""
    from ..sim import GENERATOR_VERSION, synthetic_vicari

    settings = "-".join(f"{k}{v}" for k, v in sorted(asdict(config).items()) if k != "max_epochs")
    key = f"v{GENERATOR_VERSION}-{settings}"  # files of an older generator are not reused
    root = cache / key
    if not (root / "peaks.csv").is_file():
        data = synthetic_vicari(
            n_sections=config.n_sections,
            n_spots=config.n_spots,
            n_genes=config.n_genes,
            n_metabolites=config.n_metabolites,
            msi_pitch_um=config.msi_pitch_um,
            seed=config.seed,
        )
        data.write(root, overwrite=True)
    names = sorted(p.name for p in root.iterdir() if (p / "outs").is_dir())
    files = [SectionFiles(n, root / n / "outs", root / n / "msi" / f"{n}.imzML") for n in names]
    peaks = pd.read_csv(root / "peaks.csv")["mz"].to_numpy()
    truth = {
        n: {
            "affine": np.asarray(json.loads((root / n / "truth" / "affine.json").read_text())["msi_um_to_str_um"]),
            "means": ad.read_h5ad(root / n / "truth" / "metabolite_means.h5ad"),
        }
        for n in names
    }
    return files, peaks, truth


def _registration_error_um(section: Section, true_affine: np.ndarray) -> float:
    """Median distance (um) between where the registration and the truth put each MSI pixel."""
    reg = section.registration
    return float(np.median(reg.distance_to(true_affine, reg.msi_um(section.msi))))


def _predict_all(model, train_mdata, section: Section) -> dict[str, ad.AnnData]:
    """The PoE-VAE from RNA alone, and each baseline trained on the same paired spots."""
    from .. import baselines

    train_rna, train_msi = train_mdata["rna"], train_mdata["msi"]
    rna = section.pairs["rna"]  # spots with a measurement to score against
    return {  # each carries the spots' obsm["spatial"]
        "poe_vae": predict_section(model, rna),
        "mean": baselines.predict_mean(train_msi, rna),
        "ridge": baselines.predict_ridge(train_rna, train_msi, rna),
        "knn15": baselines.predict_knn(train_rna, train_msi, rna, k=15),
        "moscot": baselines.predict_moscot(train_rna, train_msi, rna),
    }


def _figures(folder: OutputFolder, models: dict, sections: list[Section], test: Section, pred, measured, table: pd.DataFrame) -> None:
    from .. import pl

    write_prediction_figures(
        folder, pred, measured, table["poe_vae_pearson"], table["morans_i_measured"], section=test.name
    )
    latent = latent_frame(models, sections, test, seed=0)
    fig = pl.latent_umap(latent, [SECTION_KEY, SPLIT_KEY, MSI_CLUSTER_KEY])
    fig.suptitle(
        "RNA-only latent (each spot encoded from its RNA alone, as for prediction) of every section's paired spots; "
        f"{MSI_CLUSTER_KEY}: k-means of the measured MSI",
        y=1.04,
        fontsize=10,
    )
    folder.save_figure("latent_umap.png", fig)


SPLIT_KEY = "split"  # obs of latent_frame: "training" or "held-out"
MSI_CLUSTER_KEY = "msi_cluster"  # obs of latent_frame: k-means cluster of the measured MSI
N_MSI_CLUSTERS = 6


def latent_frame(models, sections: list[Section], test: Section, *, n_clusters: int = N_MSI_CLUSTERS, seed: int = 0) -> ad.AnnData:
    """The data of the demo's latent figure: comparable latents of all sections, with labels the files carry.

    ``models``: the trained model, or ``{section name: model}`` where a section the model
    had not seen was mapped onto it (:func:`predict_section` does that).

    Every paired spot of every section is encoded from its RNA alone (the RNA expert with
    the prior, ``get_latent_representation(..., modality="rna")``): the latent a prediction
    starts from, and the same kind for training and held-out spots. (The joint RNA+MSI
    latent of the training spots would sit apart from the RNA-only latent of the held-out
    ones and read as a batch effect.)

    Returns
    -------
    AnnData, spots x 0, with ``obsm["X_poe"]`` the latent and ``obs``: ``section``,
    ``split`` (``"training"`` or ``"held-out"``) and ``msi_cluster``, a k-means clustering
    of the measured MSI of the pairs (each metabolite standardised within its section, so
    that a section's overall MSI level does not make its own cluster): whether the RNA
    latent separates what the MSI separates.
    """
    from sklearn.cluster import KMeans

    parts = []
    for section in sections:
        rna = section.pairs["rna"]
        part = ad.AnnData(
            obs=pd.DataFrame(
                {SECTION_KEY: section.name, SPLIT_KEY: "held-out" if section is test else "training"},
                index=[f"{section.name}:{barcode}" for barcode in rna.obs_names],
            )
        )
        model = models[section.name] if isinstance(models, dict) else models
        part.obsm[LATENT_KEY] = model.get_latent_representation(rna, modality="rna")
        parts.append(part)
    latent = ad.concat(parts)
    shared = sorted(set.intersection(*(set(s.pairs["msi"].var_names) for s in sections)))
    msi = np.vstack([_standardised(_dense(s.pairs["msi"][:, shared].X)) for s in sections])
    clusters = KMeans(n_clusters=min(n_clusters, len(msi)), n_init=10, random_state=seed).fit_predict(msi)
    latent.obs[MSI_CLUSTER_KEY] = pd.Categorical([f"M{c + 1}" for c in clusters])
    for key in (SECTION_KEY, SPLIT_KEY):
        latent.obs[key] = pd.Categorical(latent.obs[key])
    return latent


def _standardised(values: np.ndarray) -> np.ndarray:
    spread = values.std(axis=0)
    return (values - values.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
