"""Storage keys and physical constants, in one place (squidpy's habit)."""

from types import MappingProxyType

# --- AnnData keys -----------------------------------------------------------------------
SPATIAL_KEY = "spatial"  # obsm: coordinates, always micrometres
LATENT_KEY = "X_poe"  # obsm: joint latent of the PoE-VAE
UNS_KEY = "spatial_mg"  # uns: provenance and units written by spatial_mg
RAW_LAYER = "raw"  # layers: raw MSI intensities kept when X is normalised
STD_LAYER = "std"  # layers: predictive standard deviation
MODEL_STD_LAYER = "model_std"  # layers: spread of an ensemble's means (part of "std")
UNCALIBRATED_STD_LAYER = "std_uncalibrated"  # layers: the model's own std, where "std" is calibrated across sections
LOWER_LAYER, UPPER_LAYER = "lower", "upper"  # layers: a predictive interval (predict(interval=...))
DOMAIN_KEY = "domain"  # obs: spatial domain label (synthetic ground truth)
SECTION_KEY = "section"  # obs: section / sample identifier
STATE_PROPORTIONS_KEY = "cell_state_proportions"  # obsm: cell-state mixture per spot (synthetic ground truth)

# --- Visium geometry (10x Genomics) -----------------------------------------------------
VISIUM_PITCH_UM = 100.0  # centre-to-centre distance of neighbouring spots
VISIUM_SPOT_DIAMETER_UM = 55.0  # capture area of one spot
VISIUM_SPOT_RADIUS_UM = VISIUM_SPOT_DIAMETER_UM / 2
# 10x's ``spot_diameter_fullres`` draws a 65 um circle, not the 55 um capture area
# (measured on two real Visium sets: using 55 um shrinks the 100 um pitch to ~85 um).
VISIUM_SCALEFACTOR_SPOT_DIAMETER_UM = 65.0
# (rows, cols) of a capture area's spot array; a spot exists where row + col is even
VISIUM_CAPTURE_AREA_6_5MM = (78, 128)  # 4,992 spots, standard Visium slide
VISIUM_CAPTURE_AREA_11MM = (128, 224)  # 14,336 spots, CytAssist 11 mm slide
# smallest first: the first area whose array holds a section's spots is the slide it was on
VISIUM_CAPTURE_AREAS = (VISIUM_CAPTURE_AREA_6_5MM, VISIUM_CAPTURE_AREA_11MM)

# --- PoE-VAE ----------------------------------------------------------------------------
MODALITY_KEY = "modality"  # obs: which modalities a cell has (integration metrics)
CELL_TYPE_KEY = "cell_type"  # obs: cell type label (synthetic ground truth)
BATCH_KEY = "batch"  # obs: batch label (synthetic data)
LIKELIHOODS = ("nb", "gaussian", "bernoulli")  # per-modality observation models
# setup_mudata(likelihoods=...) of paired Visium + MALDI-MSI data: raw UMI counts by a negative
# binomial, MSI values (log1p intensities by default) by a Gaussian standardised per metabolite
PAIRED_LIKELIHOODS = MappingProxyType({"rna": "nb", "msi": "gaussian"})
SETUP_UNS_KEY = "_spatial_mg_setup"  # uns of a set-up MuData: the setup record, a JSON string
NORMALIZE_TARGET_SUM = 1e4  # counts per cell for "normalised expression" (scanpy's habit)
MODEL_WEIGHTS_FILE = "model.pt"  # in a saved model folder: weights and init arguments
MODEL_REGISTRY_FILE = "registry.json"  # in a saved model folder: what setup_mudata recorded
MODEL_CALIBRATION_FILE = "calibration.json"  # in a saved model folder: intervals calibrated across sections
CHECKPOINT_FILE = "last.ckpt"  # in a checkpoint folder: the last finished epoch

# --- Registration (spatial_mg.align) ----------------------------------------------------
PAIR_N_PIXELS_KEY = "n_pixels"  # obs of a paired MuData: MSI pixels averaged into the spot
PAIR_DISTANCE_KEY = "pair_distance_um"  # obs: mean distance of those pixels from the spot centre
PAIR_UNS_KEY = "pairing"  # uns of a paired MuData: strategy, unpaired spots, registration QC

# --- SpatialData stores (align.to_spatialdata, pipeline.predictions_spatialdata) ----------
GLOBAL_FRAME = "global"  # coordinate system: STR micrometres
MSI_FRAME = "msi"  # coordinate system: MSI micrometres, before registration
RNA_SPOTS, MSI_PIXELS, MSI_IMAGE = "rna_spots", "msi_pixels", "msi_image"  # shapes, shapes, image
RNA_TABLE, MSI_TABLE = "rna_table", "msi_table"  # tables annotating RNA_SPOTS and MSI_PIXELS
HE_IMAGE = "he_image"  # image: the section's H&E (RGB uint8), scaled into GLOBAL_FRAME
PRED_SPOTS, PRED_TABLE = "spots", "table"  # a predictions store: spot circles and their table
REGION_KEY, INSTANCE_KEY = "region", "instance_id"  # obs of a table: the shapes element and row it annotates
