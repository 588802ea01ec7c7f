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
# # 1. Align a Visium section with its MALDI-MSI image
#
# You cut a tissue section, ran 10x Visium on it (spatial transcriptomics, one RNA profile
# per 55 um spot) and MALDI mass-spectrometry imaging (MSI) on the same or the next section
# (one mass spectrum per raster pixel), as in the spatial multimodal analysis (SMA) protocol
# of Vicari et al. 2024. The two instruments know nothing about each other: the spots live
# in the coordinates of the Visium slide image, the pixels in those of the MALDI stage, and
# the MSI image may be turned, shifted, mirrored or shrunk relative to the Visium one.
#
# This notebook brings both onto one frame, the way you would do it for your own files:
#
# 1. read the spaceranger output and the imzML file into AnnData, both in micrometres;
# 2. register the MSI onto the spots with optimal transport (moscot);
# 3. look at the quality-control figure before trusting the result;
# 4. pair each spot with the metabolite intensities measured at its place;
# 5. store spots, pixels and the registration in one SpatialData object on disk.
#
# By default it runs on the built-in synthetic Vicari-type section, which is written in the
# real file formats and comes with the true transform, so we can check how far off the
# registration is. Point the environment variable `SPATIAL_MG_TUTORIAL_DATA` at a downloaded
# SMA dataset to run the same steps on real data.

# %%
import os
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm in a notebook without ipywidgets
warnings.filterwarnings("ignore", message=".*zarr v3 autosharding.*")  # zarr's notice, once per array
warnings.filterwarnings("ignore", message=".*non-interactive.*")  # plt.show() when run as a script
warnings.filterwarnings("ignore", category=FutureWarning, module="mudata")  # mudata 0.4's coming change of defaults

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

import spatial_mg as smg

np.set_printoptions(precision=3, suppress=True)
plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80})

# %% [markdown]
# ## Settings
#
# Three environment variables steer the notebook: `SPATIAL_MG_SMOKE=1` makes everything
# small (the quick check CI runs), `SPATIAL_MG_TUTORIAL_DATA` switches to real data, and
# `SPATIAL_MG_TUTORIAL_OUT` says where results go (default `tutorial_outputs/`).

# %% tags=["parameters"]
SMOKE = os.environ.get("SPATIAL_MG_SMOKE", "0") not in ("", "0")
DATA_DIR = os.environ.get("SPATIAL_MG_TUTORIAL_DATA") or None  # an unpacked SMA dataset; None: synthetic
OUT = Path(os.environ.get("SPATIAL_MG_TUTORIAL_OUT", "tutorial_outputs")) / "01_align_str_msi"
SMA_PIXEL_SIZE_UM = 100.0  # MALDI raster step of an SMA csv export (a csv records none)
OUT.mkdir(parents=True, exist_ok=True)
print(f"smoke mode: {SMOKE}; data: {DATA_DIR or 'synthetic'}; results in {OUT}")

# %% [markdown]
# ## The files of one section
#
# A section is two things on disk: the spaceranger `outs/` folder (count matrix, spot
# positions, scale factors, tissue image) and the MSI file (an imzML + ibd pair, or the csv
# export of the SMA pipeline). The synthetic generator writes exactly these; it also writes
# `peaks.csv`, the metabolite peak list, and a `truth/` folder that real data do not have.

# %%
if DATA_DIR is None:
    data = smg.sim.synthetic_vicari(
        n_sections=1,
        n_spots=250 if SMOKE else 700,
        n_genes=120 if SMOKE else 300,
        n_metabolites=12 if SMOKE else 30,
        msi_pitch_um=90.0 if SMOKE else 75.0,
        seed=0,
    )
    written = data.write(OUT / "raw", overwrite=True)
    name = data.sections[0].name
    visium_dir, msi_file = written[name]["visium"], written[name]["imzml"]
    peaks = pd.read_csv(written["peaks"]["csv"])["mz"].to_numpy()
    true_affine = data[name].affine  # known only because the data are synthetic
else:
    from spatial_mg.datasets import sma_sections  # the real-data loader, needed on this branch only

    first = next(f for f in sma_sections(DATA_DIR) if f.msi is not None)  # the first section with MSI
    name, visium_dir, msi_file = first.name, first.visium, first.msi
    peak_file = Path(DATA_DIR) / "peaks.csv"
    peaks = pd.read_csv(peak_file)["mz"].to_numpy() if peak_file.is_file() else None
    true_affine = None
print(f"section {name}\n  Visium: {visium_dir}\n  MSI:    {msi_file}")

# %% [markdown]
# ## Read both modalities
#
# `read_visium` returns the in-tissue spots with their raw UMI counts in `X` (never
# normalised in place) and their positions in `obsm["spatial"]`, in micrometres: the
# reader fits the slide-image scale from the 100 um spot grid. `read_imzml` sums each
# pixel's intensities within 10 ppm of every peak of the list (`mz_bins`) and puts the
# pixels at their raster position times the pixel size recorded in the file, also in
# micrometres. From here on both are AnnData, and all distances are physical.

# %%
rna = smg.io.read_visium(visium_dir)
if Path(msi_file).suffix.lower() == ".csv":
    msi = smg.io.read_sma_csv(msi_file, pixel_size_um=SMA_PIXEL_SIZE_UM)
else:
    msi = smg.io.read_imzml(msi_file, mz_bins=peaks, ppm=10.0)
print(rna)
print(msi)
print(f"\n{rna.n_obs} spots x {rna.n_vars} genes, median {np.median(np.asarray(rna.X.sum(1))):.0f} UMIs per spot")
print(f"{msi.n_obs} pixels x {msi.n_vars} m/z features, pixel size {msi.uns['spatial_mg']['pixel_size_um']} um")

# %% [markdown]
# Side by side, in their own frames. On the left the spots, coloured by their UMI count;
# on the right the MSI raster, coloured by its total ion count (TIC). The raster also
# covers glass around the tissue (low TIC), and its tissue outline may be turned, shifted or
# mirrored relative to the spots: this is what the registration has to undo.

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.5))
xy = rna.obsm["spatial"]
art = ax1.scatter(xy[:, 0], xy[:, 1], c=np.asarray(rna.X.sum(1)).ravel(), s=8, cmap="viridis")
fig.colorbar(art, ax=ax1, label="UMIs per spot")
ax1.set_title(f"Visium spots ({rna.n_obs})")
pix = msi.obsm["spatial"]
art = ax2.scatter(pix[:, 0], pix[:, 1], c=np.log1p(msi.obs["tic"]), s=8, marker="s", cmap="magma")
fig.colorbar(art, ax=ax2, label="log(1 + TIC)")
ax2.set_title(f"MSI pixels ({msi.n_obs})")
for ax in (ax1, ax2):
    ax.set_aspect("equal")
    ax.invert_yaxis()  # image orientation: y grows downwards
    ax.set_xlabel("x (um)")
    ax.set_ylabel("y (um)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Register the MSI onto the spots
#
# `register` separates the MSI tissue from the background, matches the two point clouds
# by Gromov-Wasserstein optimal transport (moscot's `AlignmentProblem`: it compares
# distances within each modality, so it needs no feature measured by both), turns the
# transport plan into a similarity transform (rotation, possible mirroring, uniform scale,
# translation), checks that pose against mirrored and turned alternatives, and refines the
# winner on all points. The result holds the 3 x 3 affine matrix from MSI micrometres to
# Visium micrometres and a QC record.

# %%
reg = smg.align.register(rna, msi)
qc = reg.qc
print("affine (MSI um -> Visium um):\n", reg.affine)
print(
    pd.Series(
        {
            "confidence": qc.confidence,
            "overlap fraction": round(qc.overlap_fraction, 3),
            "matched fraction": round(qc.matched_fraction, 3),
            "residual (um)": round(qc.residual_um, 1),
            "scale": round(qc.scale, 3),
            "rotation (deg)": round(qc.rotation_deg, 1),
            "mirrored": qc.reflection,
        }
    ).to_string()
)
if qc.reason:
    print("\nwhy the confidence is low:", qc.reason)

# %% [markdown]
# How to read these numbers:
#
# - **matched fraction**: where both modalities measured, the share of MSI tissue pixels
#   and spots that have a partner nearby. A correct registration gives values close to 1;
#   a turned or mirrored one leaves many pixels over empty glass.
# - **overlap fraction**: the share of spots that lie under the MSI raster. It is a
#   property of the experiment (how much of the tissue the MALDI run covered), not of the
#   fit; spots outside get no metabolites.
# - **residual**: the median distance from a matched pixel centre to the nearest spot
#   centre. The two grids differ, so even a perfect fit leaves about a third of the coarser
#   pitch (tens of micrometres for Visium).
# - **scale**: both sides are in micrometres, so it should be near 1; a few percent
#   off is tissue shrinkage between acquisitions, far more means something is wrong.
# - **confidence**: `high` when these agree and no mirrored or turned alternative pose
#   fits almost as well; `low` comes with a reason in words.

# %% [markdown]
# ## Check the QC figure
#
# Never trust a registration you have not looked at. The overlay draws the registered MSI
# pixels (coloured by summed intensity; background pixels in grey) under the spot outlines
# (red circles). A good fit puts the bright tissue pixels under the spots and the
# background pixels outside them, with the outlines of both tissues on top of each other.

# %%
ax = smg.pl.registration(rna, msi, reg)
ax.figure.set_size_inches(6, 6)
ax.figure.savefig(OUT / f"{name}_registration.png", bbox_inches="tight")
plt.show()

# %% [markdown]
# With synthetic data we also know the true transform, so we can measure the error
# directly: the median distance between where the registration and the truth put each MSI
# pixel. Compare it with the 100 um spot pitch: an error well below half the pitch means
# nearly every pixel is paired with the right spot.

# %%
if true_affine is not None:
    pixels_um = np.asarray(msi.obsm["spatial"], dtype=float)
    truth_um = pixels_um @ true_affine[:2, :2].T + true_affine[:2, 2]
    error_um = np.linalg.norm(reg.transform(pixels_um) - truth_um, axis=1)
    print(f"registration error: median {np.median(error_um):.1f} um, 95th percentile {np.percentile(error_um, 95):.1f} um")
else:
    print("real data: no true transform to compare with; judge the registration by the QC figure and figures above")

# %% [markdown]
# ## Pair spots with metabolites
#
# `pair` gives every spot under the registered raster the MSI intensities measured at its
# place: by default the mean of the pixels whose registered squares overlap the 55 um spot
# disk, weighted by the overlap area. The result is a MuData with one row per paired spot:
# `mdata["rna"]` holds the spot's counts and `mdata["msi"]` its metabolite intensities, and
# `obs["n_pixels"]` says how many pixels went into each spot. This is what the PoE-VAE
# trains on in the next tutorial.

# %%
pairs = smg.align.pair(rna, msi, reg)
print(pairs)
print(f"\n{pairs.n_obs} of {rna.n_obs} spots paired ({pairs.n_obs / rna.n_obs:.0%});")
print("pixels per paired spot:", pairs.obs["n_pixels"].describe()[["min", "50%", "max"]].to_dict())

# %% [markdown]
# One metabolite before and after pairing: left, its intensity in the registered MSI
# pixels under the spot outlines; right, the value each spot received. The spot map should
# look like a coarser copy of the pixel map; spots outside the raster have no value.

# %%
feature = pairs["msi"].var_names[int(np.argmax(np.asarray(pairs["msi"].X).std(0)))]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 5))
smg.pl.registration(rna, msi, reg, mz=feature, ax=ax1)
spot_xy = pairs["msi"].obsm["spatial"]
art = ax2.scatter(spot_xy[:, 0], spot_xy[:, 1], c=np.asarray(pairs["msi"][:, feature].X).ravel(), s=14, cmap="viridis")
fig.colorbar(art, ax=ax2, shrink=0.7, label="paired intensity")
ax2.set_xlim(ax1.get_xlim())
ax2.set_ylim(ax1.get_ylim())
ax2.set_aspect("equal")
ax2.set_title(f"{feature} at the paired spots", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## One SpatialData object for both
#
# `to_spatialdata` stores the spots (circles) and the pixels (squares), each with its
# table, and an MSI image with one channel per m/z. The registration is not applied to the
# pixel coordinates: it is stored as data, an `Affine` transformation from the MSI elements
# to the shared `global` coordinate system, which is the Visium micrometre frame. Any
# spatialdata tool (napari-spatialdata, spatialdata-plot) then draws both in place.

# %%
import spatialdata as sd
from spatialdata.transformations import get_transformation

sdata = smg.align.to_spatialdata(rna, msi, reg)
print(sdata)

zarr_path = OUT / f"{name}.zarr"
sdata.write(zarr_path, overwrite=True)
pairs.write(OUT / f"{name}_pairs.h5mu")
with open(OUT / f"{name}_registration.json", "w") as f:
    f.write(reg.to_json())

# %% [markdown]
# Read it back, as a collaborator would, and check that the stored transformation is the
# registration's affine matrix:

# %%
back = sd.read_zarr(zarr_path)
stored = get_transformation(back["msi_pixels"], to_coordinate_system="global")
matrix = stored.to_affine_matrix(input_axes=("x", "y"), output_axes=("x", "y"))
print(type(stored).__name__, "MSI -> global:\n", matrix)
print("equal to reg.affine:", np.allclose(matrix, reg.affine))
print("\nwritten:", *sorted(p.name for p in OUT.iterdir()), sep="\n  ")

# %% [markdown]
# ## What you have now
#
# - `<section>.zarr`: the SpatialData object (spots, pixels, MSI image, tables, the
#   registration as a transformation);
# - `<section>_pairs.h5mu`: the paired spots, the input of the model;
# - `<section>_registration.json` and `<section>_registration.png`: the transform and
#   its QC, to keep with the analysis.
#
# The same steps run from the shell with `spatial-mg align --visium ... --msi ...`.
# Next, [tutorial 2](02_predict_metabolites_rna_only.ipynb) trains the PoE-VAE on paired
# sections and predicts metabolite maps for a section that has RNA only.
