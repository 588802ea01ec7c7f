"""A held-out section's metabolites from its RNA alone: the model against baselines and the noise ceiling.

One run: ``synthetic_vicari`` sections, all but the last paired as perfect alignment would
pair them (``paired_truth``: each spot with a noisy observation of its metabolites), the
model trained on those by the default pipeline (``spatial_mg.pipeline.train_model``), the
last section predicted from its RNA (``predict_section``) and scored against its measured
(noisy, log1p) metabolites. Beside it:

- baselines fitted on the training sections: ridge and kNN (k=15) on 50 PCs of
  log-normalised RNA, each also on spatially smoothed RNA (spots averaged with their
  neighbours within ``SMOOTH_UM``), so that spatial context is credited fairly;
- the noise ceiling: the median Pearson of the best prediction from RNA (the expected
  intensity given the spot's cell states, the section's own field averaged out:
  ``metabolite_means.layers["from_states"]``) against the same measurements; and, for
  reference, that of the full noise-free truth (which no RNA-only method can reach: it
  holds each section's own field);
- the share of measured values inside the model's 90 % interval (mean +- 1.645 std, or the
  interval the model returns).

Data presets (``--data``): ``vicari``, the generator's defaults (3 sections, 300 genes,
2,500 UMIs); ``hard``, as hard as real Visium + MALDI (4 sections, 3,000 genes, median
about 5,000 UMIs a spot with library shifts between sections, gene-wise batch log-fold
changes of sd 0.5, per-section MSI gain and offset per metabolite).

Usage: ``python benchmarks/section_prediction.py --data hard --seed 0`` prints one JSON
line; ``prediction_sweep.py`` runs it over seeds and settings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SMOOTH_UM = 150.0  # a Visium spot and its six neighbours (100 um apart)
Z90 = 1.6448536269514722  # two-sided 90 % of a normal distribution


def dataset(name: str, seed: int):
    """The synthetic sections of a preset, and how many of them train."""
    from spatial_mg.sim import synthetic_vicari

    if name == "vicari":
        return synthetic_vicari(n_sections=3, seed=seed)
    if name == "hard":
        rng = np.random.default_rng([seed, 13])
        library = 5000.0 * rng.uniform(0.6, 1.6, size=4)  # median about 5,000 UMIs, shifted per section
        return synthetic_vicari(
            n_sections=4, n_genes=3000, library_size=library, batch_lfc_sd=0.5, msi_section_sd=0.3, seed=seed
        )
    raise ValueError(f"unknown data preset {name!r}; use 'vicari' or 'hard'")


def held_out_section(
    seed: int = 0,
    data: str = "vicari",
    train: dict | None = None,
    predict: dict | None = None,
    accelerator: str = "cpu",
) -> dict:
    """One run (see the module notes). ``train``/``predict``: keyword arguments of
    ``train_model`` and ``predict_section`` over their defaults (None: the pipeline
    exactly as a user runs it)."""
    import anndata as ad

    from spatial_mg.baselines import predict_knn, predict_ridge
    from spatial_mg.metrics import feature_correlation
    from spatial_mg.pipeline import predict_section, train_model
    from spatial_mg.sim import paired_truth

    sections = dataset(data, seed)
    n = len(sections.sections)
    train_pairs = paired_truth(sections, sections=list(range(n - 1)), seed=seed + 1)
    test = paired_truth(sections, sections=[n - 1], seed=seed + 2)
    measured = test["msi"]
    t0 = time.perf_counter()
    fitted = train_model(train_pairs, seed=seed, accelerator=accelerator, progress_bar=False, **(train or {}))
    seconds = time.perf_counter() - t0
    pred = predict_section(fitted, test["rna"], **{"interval": 0.9, **(predict or {})})
    predict_seconds = time.perf_counter() - t0 - seconds
    train_rna, train_msi = train_pairs["rna"], train_pairs["msi"]
    predictions = {
        "poevae": pred,
        "ridge": predict_ridge(train_rna, train_msi, test["rna"]),
        "knn15": predict_knn(train_rna, train_msi, test["rna"], k=15),
        "ridge_smoothed": predict_ridge(train_rna, train_msi, test["rna"], smooth_um=SMOOTH_UM),
        "knn15_smoothed": predict_knn(train_rna, train_msi, test["rna"], k=15, smooth_um=SMOOTH_UM),
    }
    truth = sections.sections[-1].metabolite_means
    names = [f"{b}-{sections.sections[-1].name}" for b in truth.obs_names]  # paired_truth's spot names
    ceilings = {}
    for key, values in (("ceiling", truth.layers["from_states"]), ("ceiling_full_truth", truth.X)):
        best = ad.AnnData(np.log1p(np.asarray(values, dtype=np.float64)), var=truth.var[[]].copy())
        best.obs_names = names
        ceilings[key] = float(feature_correlation(best[measured.obs_names], measured)["pearson"].median())
    out: dict = {"data": data, "seed": seed, "n_train_spots": train_pairs.n_obs, "n_test_spots": test.n_obs}
    for method, p in predictions.items():
        med = feature_correlation(p, measured).median()
        out[method] = {"pearson": round(float(med["pearson"]), 4), "spearman": round(float(med["spearman"]), 4)}
    out.update({k: round(v, 4) for k, v in ceilings.items()})
    best_baseline = max(out[m]["pearson"] for m in predictions if m != "poevae")
    out["ratio_to_ceiling"] = round(out["poevae"]["pearson"] / out["ceiling"], 4)
    out["margin_over_best_baseline"] = round(out["poevae"]["pearson"] - best_baseline, 4)
    out["coverage90"] = _coverage(pred, measured)
    out["calibrated"] = fitted.calibration is not None
    out["mapped"] = bool(pred.uns["spatial_mg"]["prediction"].get("mapped", False))
    out["epochs"] = len(fitted.history)
    out["train_seconds"] = round(seconds, 1)  # with calibration, when the pipeline calibrates
    out["predict_seconds"] = round(predict_seconds, 1)  # with the surgery, when it maps the section
    return out


def _coverage(pred, measured) -> float | None:
    """Share of measured values inside the prediction's 90 % interval."""
    x = np.asarray(measured[pred.obs_names, pred.var_names].X, dtype=np.float64)
    if pred.uns.get("spatial_mg", {}).get("prediction", {}).get("interval") == 0.9:
        lo, hi = (np.asarray(pred.layers[k], dtype=np.float64) for k in ("lower", "upper"))
    elif "std" in pred.layers:
        mean, std = np.asarray(pred.X, dtype=np.float64), np.asarray(pred.layers["std"], dtype=np.float64)
        lo, hi = mean - Z90 * std, mean + Z90 * std
    else:
        return None
    return round(float(np.mean((x >= lo) & (x <= hi))), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="vicari", choices=["vicari", "hard"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print(json.dumps(held_out_section(seed=args.seed, data=args.data, accelerator=args.accelerator)))


if __name__ == "__main__":
    main()
