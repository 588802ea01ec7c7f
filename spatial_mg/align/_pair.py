"""``pair``: one row per spot with the MSI intensities that fall on it, as MuData.

All strategies look pixels up in a KD-tree over the registered pixel centres (or over
the spots), so they scale to Visium HD bins and high-resolution MSI; the sparse
spot x pixel weight matrix is applied to the intensities in one product.
"""

from __future__ import annotations

import warnings

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial import cKDTree

from .._constants import PAIR_DISTANCE_KEY, PAIR_N_PIXELS_KEY, PAIR_UNS_KEY, SPATIAL_KEY, UNS_KEY
from ..io._he_image import spatial_without_images
from ..io._section_files import MSI_ACQUISITION_KEYS
from ..io._spatialdata import as_anndata
from ._inputs import spot_radius
from ._moscot import MODALITY, MSI, RNA, jax_device, quiet_moscot, stacked
from ._overlap import disk_square_overlap
from ._result import RegistrationResult
from ._subsample import median_spacing

STRATEGIES = ("spot_mean", "nearest_spot", "transport")
_BLOCK = 250_000  # spots per KD-tree query block: bounds memory on Visium HD
_REGISTERED = "_spatial_mg_registered"  # obsm key of the registered points moscot couples


def pair(
    rna: ad.AnnData,
    msi: ad.AnnData,
    reg: RegistrationResult,
    strategy: str = "spot_mean",
    *,
    layer: str | None = None,
    spot_radius_um: float | None = None,
    margin_um: float | None = None,
    max_distance_um: float | None = None,
    use_background: bool = False,
    epsilon: float = 0.1,
    tau: float = 0.5,
    batch_size: int | None = None,
    device: str | None = None,
) -> md.MuData:
    """Pair every spot with the MSI intensities at its place.

    Parameters
    ----------
    rna, msi
        The objects given to :func:`register` (they are not modified): AnnData, or SpatialData.
    reg
        The registration (MSI micrometres -> STR micrometres).
    strategy
        - ``"spot_mean"``: the mean of the pixels whose registered squares overlap the spot's
          disk, weighted by the overlap area (pixel centres within spot radius plus
          ``margin_um``).
        - ``"nearest_spot"``: the SMA rule: each pixel goes to its nearest spot if that is
          within ``max_distance_um``; a spot gets the plain mean of its pixels.
        - ``"transport"``: barycentric projection of the pixels' intensities through an
          unbalanced entropic transport plan (moscot) between the registered pixels and the
          spots, solved here on all of them - not the registration's GW plan, which couples
          subsamples and, when another candidate pose won, disagrees with the transform.
    layer
        MSI layer to aggregate (default ``X``).
    spot_radius_um
        Spot footprint radius; default: recorded by the reader, else Visium's 27.5 um.
    margin_um
        ``"spot_mean"``: extra reach beyond the spot radius for pixel centres; default half
        a registered pixel diagonal (every pixel that touches the disk).
    max_distance_um
        ``"nearest_spot"``: farthest a pixel may be from its spot; default the spot pitch
        over sqrt(3) (no point of a full hexagonal grid is farther from its nearest spot).
    use_background
        Also use the pixels the registration's background rule left out.
    epsilon, tau, batch_size, device
        ``"transport"``: entropic regularisation (in squared spot pitches), unbalancedness
        (< 1: spots outside the MSI need not receive mass), moscot batch size for large
        problems and the JAX device.

    Returns
    -------
    MuData with modalities ``"rna"`` (the paired spots' rows of ``rna``, counts untouched;
    its ``uns["spatial"]`` keeps the scale factors but not the H&E image, which
    :func:`to_spatialdata` stores once) and ``"msi"`` (aggregated intensities, the same obs
    names, ``var`` of ``msi``), one row per paired spot. ``obs`` of both holds ``n_pixels`` and ``pair_distance_um``;
    ``uns["pairing"]`` the strategy, the unpaired spots and their count, and the
    registration (``RegistrationResult.from_json(mdata.uns["pairing"]["registration"])``).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}.")
    rna, msi = as_anndata(rna, "rna", load_images=False), as_anndata(msi, "msi")
    reg.check_pair(rna, msi)
    if reg.qc.confidence == "low":
        warnings.warn(
            f"Pairing with a low-confidence registration: {reg.qc.reason}. Check the overlay "
            "(spatial_mg.pl.registration) before training on these pairs.",
            UserWarning,
            stacklevel=2,
        )
    pixel_um = reg.msi_pixel_size_um
    msi_um = reg.msi_um(msi)
    rna_um = reg.rna_um(rna)
    use = np.ones(msi.n_obs, dtype=bool) if use_background or reg.msi_tissue is None else np.asarray(reg.msi_tissue)
    pixel_idx = np.flatnonzero(use)
    if pixel_idx.size == 0:
        raise ValueError("No MSI pixels to pair: the background rule left none (pass use_background=True to use all).")
    moved = reg.transform(msi_um[pixel_idx])
    scale = reg.pose.scale
    radius = spot_radius(rna, spot_radius_um)

    if strategy == "spot_mean":
        weights, distance, info = _spot_mean(rna_um, moved, msi_um[pixel_idx], reg, radius, pixel_um, scale, margin_um)
    elif strategy == "nearest_spot":
        weights, distance, info = _nearest_spot(rna_um, moved, max_distance_um)
    else:
        weights, distance, info = _transport(rna_um, moved, epsilon, tau, batch_size, device)

    if layer is not None and layer not in msi.layers:
        raise KeyError(f"layer {layer!r} is not in msi.layers ({list(msi.layers)}).")
    values = (msi.layers[layer] if layer is not None else msi.X)[pixel_idx]
    mass = np.asarray(weights.sum(axis=1)).ravel()
    if strategy == "transport":
        n_pixels, paired = info.pop("n_pixels"), info.pop("paired")
    else:
        n_pixels = np.diff(weights.indptr)
        paired = (mass > 0) & (n_pixels > 0)
    summed = weights @ values
    summed = summed.toarray() if sp.issparse(summed) else np.asarray(summed)
    aggregated = summed / np.where(mass > 0, mass, 1.0)[:, None]

    keep = np.flatnonzero(paired)
    obs = pd.DataFrame(
        {PAIR_N_PIXELS_KEY: n_pixels[keep].astype(np.int64), PAIR_DISTANCE_KEY: distance[keep]},
        index=rna.obs_names[keep],
    )
    for key, column in info.pop("columns", {}).items():
        obs[key] = column[keep]
    rna_out = rna[keep].copy()
    if "spatial" in rna_out.uns:  # the image is the section's, not each pairs file's: it would be most of the file
        rna_out.uns["spatial"] = spatial_without_images(rna_out.uns["spatial"])
    for key in obs.columns:
        rna_out.obs[key] = obs[key].to_numpy()
    msi_out = ad.AnnData(
        X=aggregated[keep].astype(np.float32),
        obs=obs.copy(),
        var=msi.var.copy(),
    )
    msi_out.obsm[SPATIAL_KEY] = rna_um[keep].copy()
    msi_out.uns[UNS_KEY] = {
        "units": "um",
        "aggregated_from": "msi",
        "strategy": strategy,
        "layer": layer or "X",
        # how the MSI was acquired (MALDI matrix, ion mode) travels with its values
        **{k: v for k, v in msi.uns.get(UNS_KEY, {}).items() if k in MSI_ACQUISITION_KEYS},
    }
    unpaired = rna.obs_names[~paired]
    with md.set_options(pull_on_update=False):  # obs: the pairing columns, not every modality's
        mdata = md.MuData({"rna": rna_out, "msi": msi_out})
    mdata.obs[PAIR_N_PIXELS_KEY] = obs[PAIR_N_PIXELS_KEY].to_numpy()
    mdata.obs[PAIR_DISTANCE_KEY] = obs[PAIR_DISTANCE_KEY].to_numpy()
    mdata.uns[PAIR_UNS_KEY] = {
        "strategy": strategy,
        "n_paired": int(keep.size),
        "n_unpaired": int(unpaired.size),
        "unpaired_spots": unpaired.tolist(),
        "n_msi_pixels_used": int(pixel_idx.size),
        "spot_radius_um": radius,
        **{k: v for k, v in info.items() if np.isscalar(v)},
        "registration": reg.to_json(),  # JSON text: h5mu cannot hold None or nested lists
    }
    return mdata


def _footprint_pairs(spots: np.ndarray, pixels: np.ndarray, reach: float, expected: float):
    """(spot, pixel, distance) for every pixel centre within ``reach`` of a spot centre."""
    tree = cKDTree(pixels)
    k = int(min(len(pixels), max(4, np.ceil(expected * 1.5) + 4)))
    rows, cols, dists = [], [], []
    for start in range(0, len(spots), _BLOCK):
        block = spots[start : start + _BLOCK]
        dist, idx = tree.query(block, k=k, distance_upper_bound=reach)
        dist, idx = dist.reshape(len(block), -1), idx.reshape(len(block), -1)
        if np.isfinite(dist[:, -1]).any() and k < len(pixels):  # some spot has more: ask again, wider
            full = np.flatnonzero(np.isfinite(dist[:, -1]))
            more = tree.query_ball_point(block[full], reach)
            for row, found in zip(full, more, strict=True):
                found = np.asarray(found, dtype=np.int64)
                d = np.linalg.norm(pixels[found] - block[row], axis=1)
                rows.append(np.full(found.size, start + row))
                cols.append(found)
                dists.append(d)
            dist[full] = np.inf
        ok = np.isfinite(dist)
        rows.append(np.broadcast_to(np.arange(start, start + len(block))[:, None], dist.shape)[ok])
        cols.append(idx[ok])
        dists.append(dist[ok])
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(dists)


def _spot_mean(rna_um, moved, msi_um, reg, radius, pixel_um, scale, margin_um):
    half_reg = scale * pixel_um / 2
    margin = half_reg * np.sqrt(2) if margin_um is None else float(margin_um)
    reach = radius + margin
    expected = np.pi * reach**2 / (scale * pixel_um) ** 2
    rows, cols, dist = _footprint_pairs(rna_um, moved, reach, expected)
    # overlap in the pixel's own frame, where it is an axis-aligned square
    spot_in_msi = reg.inverse_transform(rna_um[rows])
    offset = spot_in_msi - msi_um[cols]
    area = disk_square_overlap(offset[:, 0], offset[:, 1], radius / scale, pixel_um / 2) * scale**2
    good = area > 0
    rows, cols, dist, area = rows[good], cols[good], dist[good], area[good]
    weights = sp.csr_matrix((area, (rows, cols)), shape=(len(rna_um), len(moved)))
    weights.sum_duplicates()
    weights.eliminate_zeros()
    mass = np.asarray(weights.sum(axis=1)).ravel()
    distance = np.bincount(rows, weights=area * dist, minlength=len(rna_um)) / np.where(mass > 0, mass, 1.0)
    distance[mass == 0] = np.nan
    coverage = mass / (np.pi * radius**2)
    return weights, distance, {"margin_um": margin, "columns": {"spot_coverage": coverage}}


def _nearest_spot(rna_um, moved, max_distance_um):
    cutoff = median_spacing(rna_um) / np.sqrt(3) if max_distance_um is None else float(max_distance_um)
    dist, spot = cKDTree(rna_um).query(moved, distance_upper_bound=cutoff)
    ok = np.isfinite(dist)
    pix = np.flatnonzero(ok)
    weights = sp.csr_matrix((np.ones(pix.size), (spot[ok], pix)), shape=(len(rna_um), len(moved)))
    count = np.asarray(weights.sum(axis=1)).ravel()
    distance = np.bincount(spot[ok], weights=dist[ok], minlength=len(rna_um)) / np.where(count > 0, count, 1.0)
    distance[count == 0] = np.nan
    return weights, distance, {"max_distance_um": cutoff}


def _transport(rna_um, moved, epsilon, tau, batch_size, device):
    """Barycentric projection through an unbalanced entropic plan (moscot SinkhornProblem)."""
    import jax
    from moscot.problems.generic import SinkhornProblem

    pitch = median_spacing(rna_um)
    # costs in squared spot pitches
    adata = stacked(moved / pitch, rna_um / pitch, key=_REGISTERED)
    if batch_size is None and len(moved) * len(rna_um) > 5e7:
        batch_size = 4096  # do not materialise a dense plan of that size
    with jax.default_device(jax_device(device)), quiet_moscot():
        problem = SinkhornProblem(adata).prepare(key=MODALITY, joint_attr=_REGISTERED)
        problem = problem.solve(epsilon=epsilon, tau_a=tau, tau_b=tau, scale_cost=1.0, batch_size=batch_size)
        sol = problem.solutions[(MSI, RNA)]
        received = np.asarray(sol.push(np.ones(len(moved))), dtype=np.float64).ravel()
        centre = np.asarray(sol.push(moved), dtype=np.float64)
        # the plan is applied to the intensities by pair() through this operator
        weights = _PlanOperator(sol, len(rna_um), len(moved))
    typical = np.median(received[received > 0]) if np.any(received > 0) else 0.0
    paired = received > 0.1 * typical
    distance = np.linalg.norm(centre / np.where(received > 0, received, 1.0)[:, None] - rna_um, axis=1)
    distance[~paired] = np.nan
    # pixels within a spot pitch: how many the plan mainly draws on
    near = cKDTree(moved).query_ball_point(rna_um, r=0.5 * pitch, return_length=True)
    return weights, distance, {"epsilon": epsilon, "tau": tau, "n_pixels": np.asarray(near), "paired": paired}


class _PlanOperator:
    """The transport plan as spots x pixels weights, applied without forming it."""

    def __init__(self, solution, n_spots: int, n_pixels: int):
        self.solution = solution
        self.shape = (n_spots, n_pixels)

    def sum(self, axis: int) -> np.ndarray:
        """Mass each spot receives (``axis=1``: summed over pixels)."""
        if axis != 1:
            raise ValueError("only sums over pixels (axis=1) are needed")
        return np.asarray(self.solution.push(np.ones(self.shape[1])), dtype=np.float64).reshape(-1, 1)

    def __matmul__(self, values):
        dense = values.toarray() if sp.issparse(values) else np.asarray(values)
        return np.asarray(self.solution.push(dense.astype(np.float64)), dtype=np.float64)
