"""``report.md``: the demo's numbers and figures, told for a biologist."""

from __future__ import annotations

import pandas as pd

_METHOD_NAMES = {
    "poe_vae": "PoE-VAE (RNA only)",
    "mean": "per-metabolite mean",
    "ridge": "ridge on 50 PCs",
    "knn15": "kNN (k=15) on 50 PCs",
    "moscot": "moscot MappingProblem.impute",
}


def write_report(metrics: dict, table: pd.DataFrame) -> str:
    """Markdown that ties ``metrics.json``, ``metabolites.csv`` and the PNG figures together."""
    test = metrics["sections"]["test"]
    train = ", ".join(metrics["sections"]["train"])
    lines = [
        "# spatial-mg demo report",
        "",
        f"Synthetic Vicari-type serial sections. The model was trained on the paired sections {train} "
        f"and predicted the metabolites of section **{test}** from its RNA alone; the prediction is scored "
        f"against {test}'s own MSI, registered and paired the same way.",
        "",
        "## Registration (MSI onto Visium, moscot)",
        "",
        "| section | median error vs true transform (um) | spots paired | confidence |",
        "| --- | --- | --- | --- |",
    ]
    for name, reg in metrics["registration"].items():
        qc = reg.get("qc") or {}
        confidence = qc.get("confidence", "?") if isinstance(qc, dict) else "?"
        lines.append(f"| {name} | {reg['median_error_um']:.1f} | {reg['n_paired']} / {reg['n_spots']} | {confidence} |")
    lines += ["", "![registration](registration.png)", "", f"## Prediction of {test} from RNA alone", ""]
    lines += ["| method | median Pearson | median Spearman | flattened Pearson | vs noise-free truth (median Pearson) |"]
    lines += ["| --- | --- | --- | --- | --- |"]
    measured, truth = metrics["prediction"]["test_vs_measured"], metrics["prediction"]["test_vs_truth"]
    for method, fig in measured.items():
        lines.append(
            f"| {_METHOD_NAMES.get(method, method)} | {fig['median_pearson']:.3f} | {fig['median_spearman']:.3f} | "
            f"{fig['flat_pearson']:.3f} | {truth[method]['median_pearson']:.3f} |"
        )
    beaten = [m for m, won in metrics["model_beats"].items() if won]
    lost = [m for m, won in metrics["model_beats"].items() if not won]
    lines.append("")
    if lost:
        lines.append(
            f"**The PoE-VAE does not beat {', '.join(_METHOD_NAMES.get(m, m) for m in lost)}** on the median "
            "Pearson of this run."
        )
    else:
        lines.append(f"The PoE-VAE beats every baseline ({len(beaten)}) on the median Pearson of this run.")
    training = metrics["training"]
    lines += [
        "",
        f"Training: {training['epochs']} epochs on {training['n_cells']} paired spots in {training['seconds']:.1f} s "
        f"({training['cells_per_s']:.0f} cells/s).",
        "",
        "Maps (measured | predicted | predictive std), best, median and worst metabolite:",
        "",
        "![best](maps_best.png) ![median](maps_median.png) ![worst](maps_worst.png)",
        "",
        _structure_sentence(table) + " The per-metabolite table is `metabolites.csv`.",
        "",
        "![correlation vs Moran's I](correlation_vs_morans_i.png)",
        "",
        "RNA-only latent of every section's paired spots (comparable for training and held-out sections), by section, "
        "by split and by k-means cluster of the measured MSI:",
        "",
        "![latent](latent_umap.png)",
        "",
    ]
    return "\n".join(lines)


def _structure_sentence(table: pd.DataFrame) -> str:
    """What this run says about predictability against spatial structure, read off its numbers."""
    from scipy.stats import spearmanr

    both = table[["morans_i_measured", "poe_vae_pearson"]].dropna()
    if len(both) < 3:
        return "Too few metabolites to relate predictability to spatial structure (Moran's I)."
    rho = float(spearmanr(both["morans_i_measured"], both["poe_vae_pearson"])[0])
    if rho > 0.2:
        reading = "metabolites with more spatial structure are the better predicted ones"
    elif rho < -0.2:
        reading = (
            "the most spatially structured metabolites are among the worst predicted: their structure is not "
            "carried by the RNA (on the synthetic data, part of each map is a per-section field no RNA explains)"
        )
    else:
        reading = "spatial structure says little about which metabolites are predictable"
    return f"Spearman's rho between the Moran's I of each measured map and its PoE-VAE Pearson is {rho:.2f}: {reading}."
