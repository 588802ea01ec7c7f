"""A synthetic Vicari-type (SMA) dataset: serial sections with Visium RNA and MALDI-MSI, and the truth.

Each section has a Visium capture area (hexagonal spot grid, counts from a negative
binomial over cell-state gene programmes with section batch effects) and an MSI raster
laid over the same tissue by a known similarity transform (rotation, optional reflection,
scale, translation) that covers the tissue only partly. Metabolite means depend
nonlinearly on the cell-state mixture plus a smooth field RNA cannot explain, so a model
has something real to learn and a ceiling it cannot pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._constants import (
    DOMAIN_KEY,
    SECTION_KEY,
    SPATIAL_KEY,
    STATE_PROPORTIONS_KEY,
    UNS_KEY,
    VISIUM_CAPTURE_AREAS,
    VISIUM_PITCH_UM,
)
from ._centroids import MIN_NOISE_DISTANCE_PPM, MIN_PEAK_SEPARATION_PPM, spaced_mz
from ._containers import SyntheticSection, SyntheticVicari
from ._expression import GeneProgrammes
from ._images import LOWRES_PX, SlideRenderer, squidpy_spatial
from ._msi import N_NOISE_PEAKS, MsiRaster, footprint_cover, noise_peak_intensities, observe_intensities, straight_cut
from ._tissue import OUTLINES, SectionPose, TissueModel
from ._visium_grid import grid_spots, grid_to_um, spot_barcodes

# metabolite_means.layers: the expected intensity given the spot's cell states alone (the
# section's own field averaged out): what the best RNA-only predictor can reach
FROM_STATES_LAYER = "from_states"
# Bumped whenever the same arguments write other files (caches of written sections key on
# it): 2 = the H&E images drawn with the true tissue edge at 600 / 2,000 px; 3 = MSI pixels
# integrate the tissue over their footprint (partial-volume edges) (both 2026-11-29).
GENERATOR_VERSION = 3
_SPOT_AREA_UM2 = VISIUM_PITCH_UM**2 * np.sqrt(3) / 2  # one hexagonal grid cell
_IMAGE_MARGIN_UM = 700.0  # fiducial frame and glass around the capture area


def synthetic_vicari(
    n_sections: int = 3,
    *,
    n_spots: int = 700,
    n_genes: int = 300,
    n_metabolites: int = 30,
    n_states: int = 8,
    n_domains: int = 5,
    msi_pitch_um: float = 75.0,
    msi_rotation_deg: float | None = None,
    msi_reflect: bool = False,
    msi_scale: float | None = None,
    library_size: float | Sequence[float] | None = None,
    batch_lfc_sd: float = 0.3,
    msi_section_sd: float = 0.0,
    um_per_px: float | None = None,
    msi_coverage: float | None = None,
    msi_keep_unacquired: bool = False,
    tissue_outline: str = "blob",
    seed: int = 0,
) -> SyntheticVicari:
    """Generate a synthetic Vicari-type dataset: Visium RNA + MALDI-MSI on serial sections.

    Parameters
    ----------
    n_sections
        Number of serial sections (same tissue layout, each moved and slightly deformed).
    n_spots
        Approximate number of in-tissue Visium spots per section. Up to about 2,000 fit a
        6.5 mm capture area (78 x 128 array); larger tissues, up to about 5,000 spots, use
        an 11 mm one (128 x 224).
    n_genes, n_metabolites, n_states, n_domains
        Genes, metabolites (peaks), cell states and spatial domains.
    msi_pitch_um
        MSI raster step in micrometres. A section gets about
        ``12,000 * n_spots / msi_pitch_um**2`` pixels (1,000-2,000 at the defaults); about
        40 % of them lie off the tissue.
    msi_rotation_deg
        Rotation of the MSI raster relative to the Visium image; ``None``: random per section.
    msi_reflect
        Mirror the MSI frame (a slide imaged face down).
    msi_scale
        MSI micrometres -> STR micrometres scale (tissue shrinkage between acquisitions);
        ``None``: random in [0.92, 1.06] per section.
    library_size
        Expected UMIs per spot, one number for all sections or one per section; ``None``:
        2,500 times a random section factor in [0.6, 1.6].
    batch_lfc_sd
        Standard deviation of the per-gene, per-section log fold changes (batch effects).
    msi_section_sd
        Per-section, per-metabolite MSI effects, as matrix coating and ionisation differ
        between sections: each metabolite's intensity is multiplied by ``exp(N(0, sd))`` and
        raised by an offset of ``exp(N(log 0.05, sd))`` times its typical on-tissue level
        (both in the truth too). 0 (default): none, and the draws are those of earlier
        versions.
    um_per_px
        Micrometres per full-resolution Visium image pixel; ``None``: random in [0.16, 0.4]
        per section (readers must fit it from the array grid).
    msi_coverage
        Share of the tissue the MSI acquisition covers, in (0, 1]: the raster is laid over
        the whole tissue (centred, a rim of background around it) and then cut along one
        straight edge at a random angle, as when the acquisition region is drawn smaller
        than the tissue; pixels beyond the edge are not acquired. ``None`` (default): the
        off-centre raster described under ``msi_pitch_um``, unchanged from earlier versions.
    msi_keep_unacquired
        With ``msi_coverage``: keep the raster pixels beyond the acquisition edge as empty
        spectra (all intensities and ``obs["tic"]`` 0), as exports that fill the raster's
        bounding rectangle do, instead of leaving them out. ``obs["acquired"]`` says which
        pixels were acquired (truth; ``obs["in_tissue"]`` stays where the tissue lies).
    tissue_outline
        ``"blob"`` (default): an irregular outline. ``"disc"``: a circle, as a tissue core or
        punch has, whose outline says nothing of the tissue's turn (only its content does);
        everything else is drawn as for the blob.
    seed
        Everything is a deterministic function of the arguments and ``seed``.

    Returns
    -------
    :class:`SyntheticVicari` with ``.sections`` (RNA AnnData, MSI AnnData, true affine,
    noise-free metabolite means, ...) and ``.write(path)``.
    """
    params = {k: v for k, v in locals().items()}
    _check_args(n_sections, n_spots, n_genes, n_metabolites, n_states, n_domains, msi_pitch_um, library_size)
    if msi_coverage is not None and not (np.isfinite(msi_coverage) and 0 < msi_coverage <= 1):
        raise ValueError(f"msi_coverage must be a share of the tissue in (0, 1] (or None), got {msi_coverage!r}.")
    if tissue_outline not in OUTLINES:
        raise ValueError(f"tissue_outline must be one of {OUTLINES}, got {tissue_outline!r}.")
    streams = np.random.SeedSequence(seed).spawn(4 + n_sections)
    rng_tissue, rng_genes, rng_peaks, rng_sections = (np.random.default_rng(s) for s in streams[:4])

    tissue = TissueModel.sample(rng_tissue, n_spots * _SPOT_AREA_UM2, n_domains, n_states, n_metabolites, outline=tissue_outline)
    # regions differ in UMI yield; keep the tissue-wide mean at 1 so library_size means what it says
    lib_norm = float(tissue.library_factor(tissue.reference_points()).mean())
    genes = GeneProgrammes.sample(rng_genes, n_genes, n_states)
    mz = spaced_mz(rng_peaks, n_metabolites, MIN_PEAK_SEPARATION_PPM)
    noise_mz = spaced_mz(rng_peaks, N_NOISE_PEAKS, MIN_PEAK_SEPARATION_PPM, avoid=mz, avoid_ppm=MIN_NOISE_DISTANCE_PPM)
    noise_sd = rng_peaks.uniform(0.1, 0.5, size=n_metabolites)

    if library_size is None:
        lib_means = 2500.0 * rng_sections.uniform(0.6, 1.6, size=n_sections)
    else:
        lib_means = np.broadcast_to(np.asarray(library_size, dtype=float), (n_sections,)).copy()

    var_msi = pd.DataFrame({"mz": mz}, index=pd.Index([f"mz_{v:.4f}" for v in mz]))
    var_truth = var_msi.assign(
        state_fraction=tissue.state_fraction, noise_sd=noise_sd, metabolite=[f"M{j + 1:02d}" for j in range(n_metabolites)]
    )
    sections = []
    for i in range(n_sections):
        rng = np.random.default_rng(streams[4 + i])
        sections.append(
            _section(
                f"S{i + 1}",
                rng,
                tissue=tissue,
                genes=genes,
                var_msi=var_msi,
                var_truth=var_truth,
                noise_sd=noise_sd,
                noise_mz=noise_mz,
                lib_mean=float(lib_means[i]),
                lib_norm=lib_norm,
                batch_lfc_sd=batch_lfc_sd,
                msi_section_sd=float(msi_section_sd),
                msi_pitch_um=float(msi_pitch_um),
                msi_rotation_deg=msi_rotation_deg,
                msi_reflect=msi_reflect,
                msi_scale=msi_scale,
                um_per_px=um_per_px,
                msi_coverage=msi_coverage,
                msi_keep_unacquired=msi_keep_unacquired,
            )
        )
    return SyntheticVicari(sections=sections, noise_mz=noise_mz, params=params)


def _check_args(n_sections, n_spots, n_genes, n_metabolites, n_states, n_domains, pitch, library_size) -> None:
    for name, value, low in (
        ("n_sections", n_sections, 1),
        ("n_spots", n_spots, 20),
        ("n_genes", n_genes, 10),
        ("n_metabolites", n_metabolites, 1),
        ("n_states", n_states, 2),
        ("n_domains", n_domains, 1),
    ):
        if int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
    if not (np.isfinite(pitch) and 5 <= pitch <= 500):
        raise ValueError(f"msi_pitch_um must be between 5 and 500 micrometres, got {pitch!r}.")
    if library_size is not None:
        sizes = np.atleast_1d(np.asarray(library_size, dtype=float))
        if sizes.size not in (1, n_sections) or np.any(sizes <= 0):
            raise ValueError(f"library_size must be positive, one value or one per section ({n_sections}).")


def _section(
    name: str,
    rng: np.random.Generator,
    *,
    tissue: TissueModel,
    genes: GeneProgrammes,
    var_msi: pd.DataFrame,
    var_truth: pd.DataFrame,
    noise_sd: np.ndarray,
    noise_mz: np.ndarray,
    lib_mean: float,
    lib_norm: float,
    batch_lfc_sd: float,
    msi_section_sd: float,
    msi_pitch_um: float,
    msi_rotation_deg: float | None,
    msi_reflect: bool,
    msi_scale: float | None,
    um_per_px: float | None,
    msi_coverage: float | None = None,
    msi_keep_unacquired: bool = False,
) -> SyntheticSection:
    upp = float(um_per_px) if um_per_px is not None else float(rng.uniform(0.16, 0.4))
    n_spots = int(round(tissue.area_um2() / _SPOT_AREA_UM2))
    r_max = tissue.max_radius_um()
    # the pose's warp moves the outline by at most a few percent of the radius
    fits = [s for s in VISIUM_CAPTURE_AREAS if _extent_um(s).min() / 2 > 1.05 * r_max + 60]  # smallest first
    if not fits:
        raise ValueError(
            f"A tissue of {n_spots} spots reaches {r_max:.0f} um from its centre and does not fit an 11 mm "
            "capture area; ask for fewer n_spots (about 5,000 fit)."
        )
    shape = fits[0]

    # --- Visium capture area: every spot, in integer full-resolution pixels ------------------
    origin = rng.uniform(0.8, 1.2, size=2) * _IMAGE_MARGIN_UM
    array_row, array_col = grid_spots(*shape)
    extent = _extent_um(shape)
    px = np.rint((origin + grid_to_um(array_row, array_col)) / upp).astype(np.int64)  # (x, y)
    spot_um = px * upp  # the STR micrometre frame is the image's: pixels times um_per_px
    fullres_shape = tuple(int(v) for v in np.ceil((2 * origin + extent)[::-1] / upp))

    slack = min(extent) / 2 - 1.05 * r_max - 60
    centre = origin + extent / 2 + rng.uniform(-1, 1, size=2) * 0.5 * slack
    pose = SectionPose.sample(rng, centre, tissue.radius_um)
    v_all = pose.to_canonical(spot_um)
    in_tissue = tissue.depth(v_all) > 0
    barcodes = spot_barcodes(array_row, array_col)
    capture_area = pd.DataFrame(
        {
            "in_tissue": in_tissue.astype(np.int64),
            "array_row": array_row,
            "array_col": array_col,
            "pxl_row_in_fullres": px[:, 1],
            "pxl_col_in_fullres": px[:, 0],
        },
        index=pd.Index(barcodes),
    )

    # --- RNA ------------------------------------------------------------------------------
    v = v_all[in_tissue]
    props = tissue.state_proportions(v)
    domain = tissue.domain_weights(v).argmax(axis=1)
    batch_lfc = rng.normal(0.0, batch_lfc_sd, size=genes.names.size)
    counts = genes.sample_counts(rng, props, lib_mean * tissue.library_factor(v) / lib_norm, batch_lfc)

    obs = pd.DataFrame(
        {
            "in_tissue": np.ones(len(v), dtype=np.int64),
            "array_row": array_row[in_tissue],
            "array_col": array_col[in_tissue],
            SECTION_KEY: pd.Categorical([name] * len(v)),
            DOMAIN_KEY: pd.Categorical.from_codes(domain, [f"D{d + 1}" for d in range(tissue.domain_centres.shape[0])]),
        },
        index=pd.Index(barcodes[in_tissue]),
    )
    var = pd.DataFrame(
        {"gene_ids": genes.ids, "feature_types": "Gene Expression", "genome": "mm10"}, index=pd.Index(genes.names)
    )
    rna = ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=var)
    rna.X.eliminate_zeros()
    rna.obsm[SPATIAL_KEY] = spot_um[in_tissue]
    state_names = [f"state_{k + 1}" for k in range(props.shape[1])]
    rna.obsm[STATE_PROPORTIONS_KEY] = pd.DataFrame(props, index=rna.obs_names, columns=state_names)
    renderer = SlideRenderer(tissue, pose, fullres_shape, upp)
    lowres = renderer.render(LOWRES_PX)
    rna.uns["spatial"] = {name: squidpy_spatial(lowres, fullres_shape, upp)}
    rna.uns[UNS_KEY] = {"reader": "synthetic_vicari", "units": "um", "um_per_fullres_px": upp, "library_id": name}

    # --- MSI: its own raster; each pixel sees the tissue at its true STR position ------------
    if msi_coverage is None:
        raster = MsiRaster.sample(rng, centre, tissue.radius_um, msi_pitch_um, msi_rotation_deg, msi_reflect, msi_scale)
    else:
        # the pose's warp moves the outline by at most a few percent of the radius
        reach = 1.05 * r_max
        raster = MsiRaster.covering(rng, centre, reach, msi_pitch_um, msi_rotation_deg, msi_reflect, msi_scale)
    xy = raster.pixels()
    msi_um = (xy * msi_pitch_um).astype(np.float64)
    v_px = pose.to_canonical(raster.to_str(msi_um))
    section_scale = float(np.exp(rng.normal(0.0, 0.2)))
    met_field = tissue.sample_metabolite_field(rng)
    background = section_scale * np.exp(tissue.metabolite_base) * tissue.background_fraction
    section_effect = _MsiSectionEffect.sample(rng, tissue, section_scale, msi_section_sd)
    # each pixel integrates the tissue over its footprint (partial volume at the edge); its
    # content is taken at its centre
    depth = tissue.depth(v_px)
    cover = footprint_cover(raster, msi_um, lambda u: tissue.tissue_weight(pose.to_canonical(u)), depth)
    intensity = observe_intensities(
        rng, section_effect(section_scale * tissue.metabolite_mean(v_px, met_field, cover)), noise_sd, background
    )
    on_tissue = depth > 0
    noise_peaks = noise_peak_intensities(rng, cover, float(np.median(background)))
    acquired = np.ones(len(xy), dtype=bool)
    if msi_coverage is not None and msi_coverage < 1:
        acquired = straight_cut(rng, raster.to_str(msi_um), on_tissue, msi_coverage)
        if msi_keep_unacquired:  # empty spectra where nothing was acquired
            intensity[~acquired], noise_peaks[~acquired] = 0.0, 0.0
        else:
            xy, msi_um, intensity = xy[acquired], msi_um[acquired], intensity[acquired]
            on_tissue, noise_peaks, cover = on_tissue[acquired], noise_peaks[acquired], cover[acquired]
            acquired = acquired[acquired]

    msi_obs = pd.DataFrame(
        {
            "x": xy[:, 0],
            "y": xy[:, 1],
            "tic": intensity.sum(axis=1, dtype=np.float64) + noise_peaks.sum(axis=1, dtype=np.float64),
            "in_tissue": on_tissue,
            "tissue_cover": cover,  # truth: share of the pixel's footprint on tissue
            **({"acquired": acquired} if msi_coverage is not None else {}),
        },
        index=pd.Index([f"px_{a}_{b}" for a, b in xy]),
    )
    msi = ad.AnnData(X=intensity, obs=msi_obs, var=var_msi.copy())
    msi.obs[SECTION_KEY] = pd.Categorical([name] * msi.n_obs)
    msi.obsm[SPATIAL_KEY] = msi_um
    msi.uns[UNS_KEY] = {
        "reader": "synthetic_vicari",
        "units": "um",
        "pixel_size_um": [msi_pitch_um, msi_pitch_um],
        "normalization": "none",
    }

    means = ad.AnnData(
        X=section_effect(section_scale * tissue.metabolite_mean(v, met_field)).astype(np.float32),
        obs=rna.obs[[SECTION_KEY, DOMAIN_KEY]].copy(),
        var=var_truth.copy(),
        layers={FROM_STATES_LAYER: section_effect(section_scale * tissue.metabolite_mean_from_states(v)).astype(np.float32)},
    )
    means.obsm[SPATIAL_KEY] = rna.obsm[SPATIAL_KEY].copy()
    means.obsm[STATE_PROPORTIONS_KEY] = rna.obsm[STATE_PROPORTIONS_KEY].copy()

    return SyntheticSection(
        name=name,
        rna=rna,
        msi=msi,
        affine=raster.affine,
        metabolite_means=means,
        pixel_size_um=msi_pitch_um,
        um_per_px=upp,
        library_size_mean=lib_mean,
        batch_lfc=batch_lfc,
        msi_scale=section_scale,
        capture_area=capture_area,
        lowres_image=lowres,
        fullres_shape=fullres_shape,
        noise_mz=noise_mz,
        noise_intensities=noise_peaks,
        spectra_seed=int(rng.integers(2**31)),
        renderer=renderer,
    )


class _MsiSectionEffect:
    """One section's MSI gain and offset per metabolite (identity when ``sd`` is 0)."""

    def __init__(self, gain: np.ndarray | None, offset: np.ndarray | None):
        self.gain, self.offset = gain, offset

    @classmethod
    def sample(cls, rng: np.random.Generator, tissue: TissueModel, section_scale: float, sd: float) -> _MsiSectionEffect:
        if sd < 0 or not np.isfinite(sd):
            raise ValueError(f"msi_section_sd must be a finite number >= 0, got {sd!r}.")
        if sd == 0:  # draw nothing: the sections of earlier versions stay as they were
            return cls(None, None)
        n = tissue.metabolite_base.size
        gain = np.exp(rng.normal(0.0, sd, size=n))
        offset = np.exp(rng.normal(np.log(0.05), sd, size=n)) * section_scale * np.exp(tissue.metabolite_base)
        return cls(gain, offset)

    def __call__(self, mean: np.ndarray) -> np.ndarray:
        return mean if self.gain is None else mean * self.gain + self.offset


def _extent_um(shape: tuple[int, int]) -> np.ndarray:
    """(width, height) in micrometres spanned by the spot centres of a capture area."""
    return grid_to_um(np.array([shape[0] - 1]), np.array([shape[1] - 1]))[0]
