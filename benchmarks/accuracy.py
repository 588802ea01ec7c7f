"""Accuracy of the PoE-VAE on the project's synthetic data. Prints one JSON line.

- metabolite prediction: train on paired sections 0..n-2 of ``synthetic_vicari`` (spots
  paired with a noisy observation of their metabolites, ``paired_truth``), predict the
  whole held-out last section from RNA only; median per-metabolite Pearson and Spearman
  of PoE-VAE, ridge and kNN (k=15) on 50 PCs of log-normalised RNA;
- mosaic integration: ``synthetic_mosaic`` (RNA + ATAC + protein; paired and unimodal
  batches): NMI / ARI of k-means on the joint latent against the true cell types, and the
  modality (and batch) mixing silhouette;
- query mapping: a query batch with an unseen batch effect mapped by scArches surgery:
  kNN label transfer accuracy from reference to query latents, reference weights
  bit-identical;
- save -> load -> predict gives identical numbers.

Usage: ``python benchmarks/accuracy.py [--quick] [--seed 0]``. The tests import these
functions (tests/model/test_accuracy.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ACCELERATOR = "auto"  # --accelerator; the GPU path computes the same model (dense NB special functions)
# Training settings over the model's own defaults (none: the defaults are what
# benchmarks/prediction_sweep.py found best for this task).
PREDICTION_TRAIN: dict = {}


def metabolite_prediction(
    n_sections: int = 3,
    seed: int = 0,
    synthetic: dict | None = None,
    model: dict | None = None,
    train: dict | None = None,
    n_models: int = 1,
) -> dict:
    """Whole held-out section from RNA only: PoE-VAE vs ridge vs kNN (medians over metabolites).

    ``n_models`` > 1: ``"poevae"`` is the ensemble of that many training seeds
    (``predict_ensemble``), and ``"poevae_single"`` the first seed's model alone.
    """
    from spatial_mg.baselines import predict_knn, predict_ridge
    from spatial_mg.sim import paired_truth, synthetic_vicari
    from spatial_mg.metrics import feature_correlation
    from spatial_mg.model import PoEVAE, predict_ensemble

    data = synthetic_vicari(n_sections=n_sections, seed=seed, **(synthetic or {}))
    train_data = paired_truth(data, sections=list(range(n_sections - 1)), seed=seed + 1)
    test = paired_truth(data, sections=[n_sections - 1], seed=seed + 2)
    t0 = time.perf_counter()
    PoEVAE.setup_mudata(train_data, likelihoods={"rna": "nb", "msi": "gaussian"})
    vaes = []
    for k in range(n_models):
        vae = PoEVAE(train_data, seed=seed + k, **(model or {}))
        vaes.append(vae.train(progress_bar=False, accelerator=ACCELERATOR, **{**PREDICTION_TRAIN, **(train or {})}))
    vae = vaes[0]
    seconds = time.perf_counter() - t0
    truth = test["msi"]
    single = vae.predict(test["rna"], target="msi", return_std=False)
    predictions = {
        "poevae": single if n_models == 1 else predict_ensemble(vaes, test["rna"], target="msi", return_std=False),
        **({"poevae_single": single} if n_models > 1 else {}),
        "ridge": predict_ridge(train_data["rna"], train_data["msi"], test["rna"]),
        "knn15": predict_knn(train_data["rna"], train_data["msi"], test["rna"], k=15),
    }
    out = {"n_train_spots": train_data.n_obs, "n_test_spots": test.n_obs, "n_metabolites": truth.n_vars}
    for name, pred in predictions.items():
        med = feature_correlation(pred, truth).median()
        out[name] = {"pearson": round(float(med["pearson"]), 4), "spearman": round(float(med["spearman"]), 4)}
    out["poevae_epochs"] = len(vae.history)
    out["poevae_train_s"] = round(seconds, 1)
    return out


def mosaic_integration(seed: int = 0, n_cells_per_batch: int = 200, model: dict | None = None, train: dict | None = None) -> dict:
    """Trimodal mosaic: cell types apart (NMI, ARI), modalities and batches mixed (silhouette)."""
    from spatial_mg.sim import synthetic_mosaic
    from spatial_mg.metrics import cluster_agreement, mixing_silhouette
    from spatial_mg.model import PoEVAE

    mdata = synthetic_mosaic(n_cells_per_batch=n_cells_per_batch, seed=seed)
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "atac": "bernoulli", "protein": "gaussian"}, batch_key="batch")
    vae = PoEVAE(mdata, seed=seed, **(model or {}))
    vae.train(progress_bar=False, accelerator=ACCELERATOR, **(train or {}))
    z = vae.get_latent_representation()
    types = mdata.obs["cell_type"]
    out = cluster_agreement(z, types, seed=seed)
    out["modality_silhouette"] = mixing_silhouette(z, mdata.obs["modality"], types)
    out["batch_silhouette"] = mixing_silhouette(z, mdata.obs["batch"], types)
    out = {k: round(v, 4) for k, v in out.items()}
    out["n_cells"] = mdata.n_obs
    return out


QUERY_LAYOUT = {
    "r_trimodal": ("rna", "atac", "protein"),
    "r_rna_protein": ("rna", "protein"),
    "r_rna": ("rna",),
    "r_atac": ("atac",),
    "query": ("rna", "protein"),
}


def query_mapping(seed: int = 0, n_cells_per_batch: int = 200, model: dict | None = None, train: dict | None = None) -> dict:
    """Map an unseen batch by surgery; label transfer accuracy; reference weights untouched."""
    from spatial_mg.sim import synthetic_mosaic
    from spatial_mg.metrics import label_transfer_accuracy
    from spatial_mg.model import PoEVAE

    full = synthetic_mosaic(QUERY_LAYOUT, n_cells_per_batch=n_cells_per_batch, seed=seed)
    is_query = (full.obs["batch"] == "query").to_numpy()
    ref, query = full[~is_query].copy(), full[is_query].copy()
    PoEVAE.setup_mudata(ref, likelihoods={"rna": "nb", "atac": "bernoulli", "protein": "gaussian"}, batch_key="batch")
    vae = PoEVAE(ref, seed=seed, **(model or {}))
    vae.train(progress_bar=False, accelerator=ACCELERATOR, **(train or {}))
    before = {k: v.clone() for k, v in vae.module.state_dict().items()}
    qvae = PoEVAE.load_query_data(query, vae)
    qvae.train(progress_bar=False, accelerator=ACCELERATOR, **(train or {}))
    after = qvae.module.state_dict()
    unchanged = all(np.array_equal(after[k].cpu().numpy(), v.cpu().numpy()) for k, v in before.items() if not k.endswith(".new"))
    z_ref = vae.get_latent_representation()
    z_query = qvae.get_latent_representation()
    acc = label_transfer_accuracy(z_ref, ref.obs["cell_type"], z_query, query.obs["cell_type"], k=15)
    return {"label_transfer_accuracy": round(acc, 4), "reference_weights_unchanged": bool(unchanged), "n_query": query.n_obs}


def save_load_identical(seed: int = 0) -> bool:
    """save -> load -> predict returns the same numbers, bit for bit."""
    from spatial_mg.sim import paired_truth, synthetic_vicari
    from spatial_mg.model import PoEVAE

    data = synthetic_vicari(n_sections=2, n_spots=200, n_genes=60, n_metabolites=8, seed=seed)
    mdata = paired_truth(data, sections=[0], seed=seed)
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"})
    vae = PoEVAE(mdata, seed=seed)
    vae.train(max_epochs=5, progress_bar=False, accelerator=ACCELERATOR)
    query = data.sections[1].rna
    with tempfile.TemporaryDirectory() as tmp:
        vae.save(Path(tmp) / "model")
        loaded = PoEVAE.load(Path(tmp) / "model", accelerator=vae.device)
        a, b = vae.predict(query, target="msi"), loaded.predict(query, target="msi")
    return bool(np.array_equal(a.X, b.X) and np.array_equal(a.layers["std"], b.layers["std"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small data, few epochs: a smoke run")
    parser.add_argument("--accelerator", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--n-models", type=int, default=1, help="metabolite prediction by an ensemble of this many seeds")
    args = parser.parse_args()
    global ACCELERATOR
    ACCELERATOR = args.accelerator
    warnings.filterwarnings("ignore")
    small = dict(n_spots=250, n_genes=100, n_metabolites=10) if args.quick else None
    train = dict(max_epochs=5) if args.quick else None
    n_cells = 60 if args.quick else 200
    t0 = time.perf_counter()
    out = {
        "metabolite_prediction": metabolite_prediction(seed=args.seed, synthetic=small, train=train, n_models=args.n_models),
        "mosaic_integration": mosaic_integration(seed=args.seed, n_cells_per_batch=n_cells, train=train),
        "query_mapping": query_mapping(seed=args.seed, n_cells_per_batch=n_cells, train=train),
        "save_load_predict_identical": save_load_identical(args.seed),
    }
    out["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
