# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Predict metabolite maps for a section that has RNA only
#
# MALDI-MSI is slow and destroys the section, so most studies will have many more Visium
# sections than MSI images. If the metabolites of a tissue follow its cell states, then a
# model that has seen both modalities on a few paired sections can predict the metabolite
# maps of the sections that only have RNA, and say how sure it is.
#
# Here we:
#
# 1. read, register and pair three serial sections (the steps of
#    [tutorial 1](01_align_str_msi.ipynb));
# 2. train the Product-of-Experts VAE (PoE-VAE) on the paired spots of the first two;
# 3. predict the third section's metabolites from its RNA alone, with a predictive
#    standard deviation;
# 4. score the prediction against the MSI that was in fact measured on that section, next
#    to simple baselines (mean, ridge regression, k nearest neighbours, optimal transport);
# 5. ask which metabolites are predictable, by comparing each one's correlation with the
#    spatial structure of its measured map (Moran's I).
#
# The third section's MSI is used for scoring only: the model never sees it.

# %%
import os
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a notebook without ipywidgets
warnings.filterwarnings("ignore", message=".*zarr v3 autosharding.*")
warnings.filterwarnings("ignore", message=".*non-interactive.*")  # plt.show() when run as a script
warnings.filterwarnings("ignore", category=FutureWarning, module="mudata")
warnings.filterwarnings("ignore", category=SyntaxWarning, module="docrep")  # squidpy's docstrings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy.stats import spearmanr

import spatial_mg as smg
from spatial_mg import baselines

plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80})

# %% tags=["parameters"]
SMOKE = os.environ.get("SPATIAL_MG_SMOKE", "0") not in ("", "0")
DATA_DIR = os.environ.get("SPATIAL_MG_TUTORIAL_DATA") or None  # an unpacked SMA dataset; None: synthetic
OUT = Path(os.environ.get("SPATIAL_MG_TUTORIAL_OUT", "tutorial_outputs")) / "02_predict_metabolites_rna_only"
SMA_PIXEL_SIZE_UM = 100.0  # MALDI raster step of an SMA csv export (a csv records none)
MSI_MATRIX = None  # real data: use sections of this MALDI matrix (e.g. "DHB"); None: the matrix most sections have
N_REAL_SECTIONS = 3  # real data: the first sections of that matrix; the last of them plays the RNA-only one
MAX_EPOCHS = 5 if SMOKE else None  # None: the model's default schedule, with early stopping
OUT.mkdir(parents=True, exist_ok=True)
print(f"smoke mode: {SMOKE}; data: {DATA_DIR or 'synthetic'}; results in {OUT}")

# %% [markdown]
# ## Three serial sections
#
# The synthetic dataset has the size of the `spatial-mg demo` run: three serial sections of
# one tissue, each with Visium and MSI, each moved, turned and slightly deformed, with its
# own sequencing depth and batch effect. The metabolites depend nonlinearly on the cell
# states under each spot, plus a smooth field that RNA cannot explain, so no model can
# reach a perfect correlation. With `SPATIAL_MG_TUTORIAL_DATA` set, the sections of the
# downloaded SMA dataset are used instead: up to `N_REAL_SECTIONS` sections with MSI of one
# MALDI matrix (`MSI_MATRIX`; by default the matrix most sections have, DHB for sections
# A1 and B1 of the Mendeley deposit); the last one plays the RNA-only section.
#
# One matrix, because the matrix decides what the MSI measures: DHB (positive ion mode)
# and 9-AA (negative mode) ionise different molecules and come with different peak lists.
# A model trained on DHB sections shares no m/z with a 9-AA section, so there would be
# nothing to score its prediction against. `sma_sections` reports each section's matrix
# and polarity where the dataset's manifest records them, and
# `smg.pipeline.stack_sections` refuses to train on a mix unless asked
# (`mix_matrices=True`).

# %%
if DATA_DIR is None:
    data = smg.sim.synthetic_vicari(
        n_sections=3,
        n_spots=150 if SMOKE else 700,
        n_genes=120 if SMOKE else 300,
        n_metabolites=12 if SMOKE else 30,
        msi_pitch_um=90.0 if SMOKE else 75.0,
        seed=0,
    )
    written = data.write(OUT / "raw", overwrite=True)
    files = {s.name: smg.io.SectionFiles(s.name, written[s.name]["visium"], written[s.name]["imzml"]) for s in data.sections}
    peaks = pd.read_csv(written["peaks"]["csv"])["mz"].to_numpy()
else:
    from spatial_mg.datasets import sma_sections  # the real-data loader, needed on this branch only

    with_msi = [f for f in sma_sections(DATA_DIR) if f.msi is not None]  # sorted by name
    by_matrix = {}
    for f in with_msi:
        by_matrix.setdefault(f.msi_matrix or "unknown", []).append(f)
    known = sorted(m for m in by_matrix if m != "unknown")
    matrix = MSI_MATRIX or (max(known, key=lambda m: len(by_matrix[m])) if known else "unknown")
    print("sections with MSI, by MALDI matrix:", {m: [f.name for f in fs] for m, fs in by_matrix.items()})
    if len(by_matrix.get(matrix, [])) < 2:
        raise ValueError(f"Tutorial 2 needs two sections with MSI of one matrix; matrix {matrix!r} has "
                         f"{len(by_matrix.get(matrix, []))}. Set MSI_MATRIX to one of {known}.")
    files = {f.name: f for f in by_matrix[matrix][:N_REAL_SECTIONS]}
    print(f"using the {matrix} sections" + (" (their matrix is not recorded: check they match)" if matrix == "unknown" else ""))
    peak_file = Path(DATA_DIR) / "peaks.csv"
    peaks = pd.read_csv(peak_file)["mz"].to_numpy() if peak_file.is_file() else None
names = list(files)
train_names, test_name = names[:-1], names[-1]
print(f"training sections: {train_names}; RNA-only section: {test_name}")

# %% [markdown]
# ## Read, register and pair every section
#
# The steps of tutorial 1, once per section, as the pipeline's functions:
# `smg.pipeline.read_section` reads the Visium outs and the MSI file, and
# `smg.pipeline.align_section` registers (`smg.align.register`) and pairs
# (`smg.align.pair`). The QC figures of all sections are drawn side by side below; look at
# each before going on, since a badly registered training section would teach the model
# wrong pairs.
#
# MSI intensities spread over orders of magnitude, roughly log-normally, so
# `align_section` keeps the intensities in `layers["raw"]` and the pairs hold
# `log1p(intensity)` from here on: the Gaussian likelihood of the model (and the linear
# baselines) fit the logarithm far better, and predictions and scores are on that scale
# too (`spatial-mg align` does the same; `msi_scale="linear"` keeps the intensities).

# %%
sections = {}
for name, section_files in files.items():
    csv = section_files.msi.suffix.lower() == ".csv"  # a csv export records no pixel size
    section = smg.pipeline.read_section(
        section_files, mz_bins=peaks, ppm=10.0, pixel_size_um=SMA_PIXEL_SIZE_UM if csv else None
    )
    sections[name] = smg.pipeline.align_section(section)

qc = pd.DataFrame(
    {
        n: {
            "spots": s.rna.n_obs,
            "paired spots": s.pairs.n_obs,
            "confidence": s.registration.qc.confidence,
            "matched fraction": round(s.registration.qc.matched_fraction, 3),
            "scale": round(s.registration.qc.scale, 3),
        }
        for n, s in sections.items()
    }
).T
if DATA_DIR is None:  # the synthetic truth tells us the registration error too
    for n, s in sections.items():
        error = s.registration.distance_to(data[n].affine, s.registration.msi_um(s.msi))
        qc.loc[n, "error (um, median)"] = round(float(np.median(error)), 1)
qc

# %%
fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 5.5), layout="constrained")
for ax, n in zip(np.atleast_1d(axes), names):
    smg.pl.registration(sections[n].rna, sections[n].msi, sections[n].registration, ax=ax)
    ax.set_title(f"{n}\n" + ax.get_title(), fontsize=8)
plt.show()

# %% [markdown]
# A `low` confidence comes with a reason (printed under its panel); on a small tissue the
# outline can be nearly symmetric, so a turned pose fits almost as well as the right one.
# On your own data, fix such a section with landmarks
# (`smg.align.register(rna, msi, method="landmarks", landmarks=...)`) before pairing.

# %% [markdown]
# ## Train the PoE-VAE on the paired sections
#
# The paired spots of the training sections are stacked into one MuData (the spot names
# are prefixed with their section, since barcodes repeat between Visium slides). The model
# reads raw UMI counts with a negative-binomial likelihood and MSI intensities with a
# Gaussian one (standardised per metabolite inside the model). Each modality has its own
# encoder; the joint posterior over the 16-dimensional latent is the product of the
# encoders' Gaussian "experts". During training, some spots show their encoders only one
# of their modalities, which teaches the RNA expert to stand on its own: exactly what
# prediction from RNA alone needs.
#
# `smg.pipeline.train_model` does this the section-aware way whenever it is given two or
# more sections: the section is the model's batch covariate (a learned embedding, so each
# section's batch effect is modelled rather than mixed into the biology), an MMD term pulls
# the sections' latents together, and the predictive intervals are calibrated by leaving
# each training section out in turn (one more, shorter, training per section) and
# measuring how far the left-out section's metabolites fall from their prediction.

# %%
train = smg.pipeline.stack_sections([sections[n] for n in train_names])
model = smg.pipeline.train_model(train, n_latent=16, seed=0, max_epochs=MAX_EPOCHS, progress_bar=False)
print(model)
print(f"trained on {train.n_obs} paired spots for {len(model.history)} epochs; batch covariate: {model.registry.batch_key}; "
      f"intervals calibrated on sections {model.calibration.groups if model.calibration else 'none'}")

# %% [markdown]
# The loss per spot on the training spots and on the 10 % held out for validation.
# The weights scored and kept are a moving average over about the last 20 epochs (which
# smooths out the wander of single minibatch steps); training stops when the validation
# loss has not improved for 20 epochs and keeps the averaged weights of the best epoch. A validation curve that rises while the training one keeps
# falling would mean overfitting; both flattening together means the model has learnt what
# these data can teach it.

# %%
history = model.history
fig, ax = plt.subplots(figsize=(5.5, 3.5))
for column in ("train_loss", "val_loss"):
    if column in history:
        ax.plot(history.index, history[column], label=column.replace("_", " "))
ax.set_xlabel("epoch")
ax.set_ylabel("negative ELBO per spot")
ax.legend()
plt.show()

# %% [markdown]
# The model is saved as a folder (weights, the registry of what it was trained on:
# modalities, features, likelihoods, covariates, and the calibration) and loaded back, as
# you would on another day or machine. The training data are not saved with it.

# %%
model.save(OUT / "model", overwrite=True)
model = smg.PoEVAE.load(OUT / "model")
print(model)

# %% [markdown]
# ## Predict the RNA-only section
#
# For the held-out section we use only the Visium output: every in-tissue spot, whether
# the MSI covered it or not. The model has not seen this section, so
# `smg.pipeline.predict_section` first maps it onto the model: a new row of the section
# embedding is trained on the section's RNA with every other weight frozen (scArches
# surgery). It then encodes each spot's RNA, draws latents from that posterior and averages
# the decoded metabolites: `X` holds the predictive mean (in the units trained on),
# `layers["std"]` the predictive standard deviation scaled by the calibration, and
# `layers["lower"]`, `layers["upper"]` a 90 % interval.

# %%
test_rna = sections[test_name].rna  # every in-tissue spot, with its micrometres
pred = smg.pipeline.predict_section(model, test_rna, interval=0.9)
pred.write_h5ad(OUT / f"{test_name}_predicted.h5ad")
print(pred)
print({k: v for k, v in pred.uns["spatial_mg"]["prediction"].items() if k in ("mapped", "calibrated", "interval")})

# %% [markdown]
# On a few thousand spots, two training seeds of the same model can differ by a few
# hundredths in median correlation. Averaging the predictive distributions of several
# seeds (a deep ensemble) removes most of that spread, and the models' disagreement,
# `layers["model_std"]`, shows where more training data would help. It costs one training
# per seed (here without their own calibration, so we compare only their means).

# %%
more_seeds = [
    smg.pipeline.train_model(train, n_latent=16, seed=s, max_epochs=MAX_EPOCHS, calibrate=False, progress_bar=False)
    for s in (1, 2)
]
pred_x3 = smg.pipeline.predict_section([model, *more_seeds], test_rna)
print(pred_x3.layers["model_std"].mean(), "mean spread of the three models' means")

# %% [markdown]
# ## Baselines
#
# A prediction is only as good as what it beats. Each baseline learns from the same paired
# training spots:
#
# - **mean**: every spot gets the training average, a flat map whose correlation is
#   undefined (NaN): the answer of a model that learnt nothing, and a reminder that a
#   correlation scores the shape of a map, not its level;
# - **ridge**: ridge regression on 50 principal components of log-normalised RNA;
# - **knn15**: the average of the 15 training spots nearest in that PCA space;
# - **moscot**: optimal transport of the test spots onto the training spots by their
#   expression, each test spot taking the transported metabolites.

# %%
train_rna, train_msi = train["rna"], train["msi"]
predictions = {
    "poe_vae": pred,
    "poe_vae_x3": pred_x3,
    "mean": baselines.predict_mean(train_msi, test_rna),
    "ridge": baselines.predict_ridge(train_rna, train_msi, test_rna),
    "knn15": baselines.predict_knn(train_rna, train_msi, test_rna, k=15),
    "moscot": baselines.predict_moscot(train_rna, train_msi, test_rna),
}

# %% [markdown]
# ## Score against the measured MSI
#
# The test section's MSI was measured after all, so we score each method at the spots
# that the registration paired with MSI pixels: per metabolite, the Pearson correlation
# (linear agreement) and the Spearman correlation (agreement of ranks, robust to a few
# bright spots) between predicted and measured intensities across spots. The summary is
# the median over metabolites. A correlation says whether the map has the right shape;
# it ignores the overall level, which varies between MSI runs anyway.

# %%
measured = sections[test_name].pairs["msi"]
spots = measured.obs_names
tables = {m: smg.metrics.feature_correlation(p[spots], measured) for m, p in predictions.items()}
summary = pd.DataFrame({m: t.median() for m, t in tables.items()}).T.round(3)
summary.columns = ["median Pearson", "median Spearman"]
summary

# %%
poe = summary.loc["poe_vae", "median Pearson"]
others = summary.drop(index=["poe_vae", "poe_vae_x3", "mean"])["median Pearson"]
best = others.idxmax()
print(f"PoE-VAE median Pearson {poe:.3f} (ensemble of 3: {summary.loc['poe_vae_x3', 'median Pearson']:.3f}); "
      f"best baseline {best} {others[best]:.3f}.")
if poe > others[best]:
    print(f"On this run the PoE-VAE is ahead of every baseline, by {poe - others[best]:.3f}.")
else:
    ahead = list(others.index[others < poe])
    print(f"On this run the PoE-VAE does not beat {best}" + (f"; it is ahead of {', '.join(ahead)}." if ahead else "."))
wins = {m: float((tables["poe_vae"]["pearson"] > tables[m]["pearson"]).mean()) for m in others.index}
print("share of metabolites where the PoE-VAE correlates better:", {m: f"{w:.0%}" for m, w in wins.items()})

# %% [markdown]
# How to read this: differences of a few hundredths between methods can come and go with
# another random seed or another section; a gap of a tenth or more is worth taking seriously. If
# ridge or kNN is level with the PoE-VAE, the relation between RNA and metabolites in these
# data is close to what a linear map of the main expression axes captures; the VAE's
# advantages then lie elsewhere (it uses raw counts, gives an uncertainty, works from any
# subset of modalities), not in the median correlation.
#
# With synthetic data we can also score against the noise-free truth, the metabolite
# means the generator drew the pixels from. The measured MSI is noisy, so a method
# usually scores higher against the truth; the gap shows how much of the remaining disagreement
# is measurement noise rather than model error.

# %%
if DATA_DIR is None:
    truth = data[test_name].metabolite_means.copy()
    truth.X = np.log1p(truth.X)  # on the scale of the pairs
    vs_truth = {m: smg.metrics.feature_correlation(p[spots], truth).median() for m, p in predictions.items()}
    both = summary[["median Pearson"]].rename(columns={"median Pearson": "vs measured"})
    both["vs noise-free truth"] = pd.DataFrame(vs_truth).T["pearson"].round(3)
    print(both.to_string())

# %% [markdown]
# ## Look at the maps
#
# Three metabolites, chosen by the PoE-VAE's Pearson correlation: the best, the median and
# the worst. Each row shows the measured map, the predicted map (on the same colour scale)
# and the predictive standard deviation. Read the std column as "where the model is
# unsure": high values should fall where the prediction is off, or where the spot's RNA
# is unlike anything in the training sections.

# %%
table = tables["poe_vae"].dropna().sort_values("pearson", ascending=False)
picks = [table.index[0], table.index[len(table) // 2], table.index[-1]]
print(table.loc[picks].round(3).assign(rank=["best", "median", "worst"]).to_string())
fig = smg.pl.metabolite_maps(pred[spots], measured, picks, panel_size=2.8)
fig.savefig(OUT / f"{test_name}_maps.png", bbox_inches="tight")
plt.show()

# %% [markdown]
# ## Is the uncertainty honest?
#
# If the 90 % interval means what it says, about 90 % of the measured values should lie
# inside it, and spots with a larger std should tend to have a larger error. The model's
# own std (`layers["std_uncalibrated"]`) describes the noise and latent uncertainty it saw
# within its training sections; what differs between sections (each section's own
# metabolite field, matrix and ionisation, which its RNA does not show) is only in the
# calibration, measured on sections the model had not trained on.

# %%
def dense(x):
    return x.toarray() if hasattr(x, "toarray") else np.asarray(x)


mean = dense(pred[spots].X)
observed = dense(measured[:, pred.var_names].X)
inside = (observed >= dense(pred[spots].layers["lower"])) & (observed <= dense(pred[spots].layers["upper"]))
own = dense(pred[spots].layers.get("std_uncalibrated", pred[spots].layers["std"]))
std = dense(pred[spots].layers["std"])
rho = [spearmanr(std[:, j], np.abs(observed - mean)[:, j])[0] for j in range(mean.shape[1])]
print(f"measured values inside the calibrated 90 % interval: {inside.mean():.1%}")
print(f"inside the model's own 90 % interval (+-1.645 of its own std): {np.mean(np.abs(observed - mean) <= 1.645 * own):.1%}")
print(f"median Spearman correlation between std and absolute error, per metabolite: {np.nanmedian(rho):.2f}")

# %% [markdown]
# The model's own interval is too narrow on a new section; the calibrated one covers about
# what it claims, because its width was measured where it matters: on sections left out of
# training. The std still ranks spots by their error only weakly: most of the error on a new
# section is the section's own field, which is no larger at one spot than another. Read the
# interval as an honest band for the section as a whole, and the std map as where the RNA
# is unlike the training spots. With one training section nothing can be left out, and
# `predict_section` says the interval is uncalibrated.

# %% [markdown]
# ## Which metabolites can be predicted? Moran's I
#
# Moran's I measures how smooth a measured map is: near 1 when neighbouring spots are
# alike, near 0 when the map is pixel-to-pixel noise. A noisy map cannot be predicted by
# any method, because there is nothing spatial to predict; a smooth map can be, if what
# shapes it also shows in the RNA. Plotting each metabolite's correlation against the
# Moran's I of its measured map separates "there was nothing to learn" (low I, low
# correlation) from "structured, but not by anything the RNA shows" (high I, low
# correlation).

# %%
table = pd.concat({m: t["pearson"] for m, t in tables.items()}, axis=1).add_suffix("_pearson")
table.insert(0, "morans_i", smg.metrics.morans_i(measured).reindex(table.index))
table.insert(1, "mz", measured.var["mz"].reindex(table.index))
table.to_csv(OUT / f"{test_name}_metabolites.csv")
rho_i, _ = spearmanr(table["morans_i"], table["poe_vae_pearson"], nan_policy="omit")
print(f"Spearman rho between Moran's I and the PoE-VAE's Pearson: {rho_i:.2f} over {len(table)} metabolites")
if rho_i > 0.3:
    print("here, the more spatially structured a metabolite, the better it is predicted")
elif rho_i < -0.3:
    print("here, the smoothest maps are among the worst predicted: their structure is not in the RNA")
else:
    print("here, spatial structure alone does not tell which metabolites are predictable")

fig, ax = plt.subplots(figsize=(5, 4))
ax.scatter(table["morans_i"], table["poe_vae_pearson"], s=16, label="PoE-VAE")
ax.scatter(table["morans_i"], table["ridge_pearson"], s=10, marker="x", color="0.5", label="ridge")
ax.set_xlabel("Moran's I of the measured map")
ax.set_ylabel("Pearson, prediction vs measured")
ax.set_title(f"{test_name}: Spearman rho = {rho_i:.2f} (PoE-VAE)", fontsize=10)
ax.legend()
plt.show()
columns = ["morans_i", "poe_vae_pearson", "ridge_pearson", "knn15_pearson", "moscot_pearson"]
print(table[columns].round(3).sort_values("morans_i", ascending=False).head(10).to_string())

# %% [markdown]
# Which way rho goes depends on the tissue. Where smooth maps follow the cell types, it is
# positive and the low scores belong to noisy maps, which say little about the model.
# Metabolites with a high Moran's I but a low correlation are the interesting failures:
# something other than the cell states shapes them (a gradient of supply, a diffusing
# drug, a section artefact). The synthetic tissue is built with such a part on purpose:
# each metabolite mixes a cell-state signal with a smooth field that RNA cannot explain,
# so a map can be smooth and still unpredictable from RNA.
#
# With synthetic data we know each metabolite's mix: the generator records the share of
# its spatial variation that comes from cell states (`state_fraction`). If the model
# learns what RNA can tell, its correlation should rise with that share, whatever the
# Moran's I.

# %%
if DATA_DIR is None:
    state_fraction = data[test_name].metabolite_means.var["state_fraction"].reindex(table.index)
    for method in ("poe_vae", "ridge"):
        rho_s, _ = spearmanr(state_fraction, table[f"{method}_pearson"], nan_policy="omit")
        print(f"Spearman rho between state_fraction and the {method} Pearson: {rho_s:.2f}")

# %% [markdown]
# ## What you have now
#
# In the output folder: the trained model (`model/`), the predicted metabolites of the
# RNA-only section with their std (`<section>_predicted.h5ad`, spot coordinates in
# `obsm["spatial"]`), the per-metabolite table of correlations and Moran's I
# (`<section>_metabolites.csv`) and the map figure. From the shell the same runs as
# `spatial-mg train`, `spatial-mg predict` and `spatial-mg evaluate`.
#
# [Tutorial 3](03_mosaic_integration_and_query.ipynb) uses the same model for
# Multigrate's general jobs: integrating a mosaic of RNA, ATAC and protein samples,
# mapping new samples onto a reference, and imputing missing modalities.
