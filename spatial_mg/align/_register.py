"""``register``: the transform from MSI micrometres to STR micrometres, with QC.

Default method (``"moscot"``), in five steps:

1. Both sides in micrometres; MSI background removed (see ``_background``).
2. moscot's ``AlignmentProblem`` couples an even subsample of each side by Gromov-
   Wasserstein (geometry only) or fused GW (with shared features), unbalanced so that
   partial overlap is allowed.
3. A weighted Procrustes fit turns the plan into a similarity (rotation, reflection,
   uniform scale, translation).
4. GW matches distances, which a mirror image or a symmetric outline share with the true
   pose, and under partial overlap its plan can put the MSI tissue at the wrong place
   among the spots; so its fit is one of several candidate poses: the plan's fit with
   either handedness, and the best poses of an exhaustive FFT search over turns and
   translations of the tissue masks (``_search``). Each is refined on all points by
   aligning the soft tissue masks where both modalities measured (``_refine``). Among the
   poses of plausible scale that match about as many pixels and spots as the best
   (``_agreement``), the one whose outlines then lie closest wins.
5. QC: overlap, matched fraction, residual, the pose's scale, how much worse the best
   distinct alternative fits (close to the winner: a nearly symmetric tissue), how far
   refits from nearby starts end apart (``pose_spread_um``) and how far the pose can slide
   before its outlines mismatch 20 % more (``pose_slack_um``, see ``MaskAligner.slack``).
"""

from __future__ import annotations

import time

import anndata as ad
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from ._agreement import Window, agreement
from ._background import tissue_mask
from ._gw import TransportDiverged, jax_device, solve_gw
from ._inputs import check_points, msi_coordinates, msi_pixel_size, msi_window, rna_coordinates, rna_window
from ._landmarks import fit_landmarks, parse_landmarks
from ._procrustes import apply_affine, decompose, fit_affine, fit_plan, fit_similarity
from ._qc import SCALE_RANGE, judge, match_radius, measure
from ._refine import MaskAligner
from ._result import RegistrationResult
from ._search import search_poses
from ._subsample import even_subsample, median_spacing

METHODS = ("moscot", "landmarks")
TRANSFORMS = ("similarity", "affine")

_SCALE_BOUNDS = (0.5, 2.0)  # a refined candidate that drifts outside is dropped
_SCORE_SLACK = 0.1  # poses within this of the best agreement compete on mask mismatch
_FINALISTS = 4  # candidates refitted in full after a quick screen


def register(
    rna: ad.AnnData,
    msi: ad.AnnData,
    *,
    method: str = "moscot",
    shared_features: str | tuple[str, str] | None = None,
    alpha: float | None = None,
    landmarks=None,
    transform: str = "similarity",
    refine_fit: bool = True,
    scale: bool = True,
    msi_mask: np.ndarray | str | None = None,
    tic_threshold: float | None = None,
    msi_pixel_size_um: float | None = None,
    n_subsample: int = 500,
    epsilon: float = 1e-2,
    tau_a: float = 0.9,
    tau_b: float = 0.9,
    rank: int = -1,
    max_iterations: int | None = None,
    n_angles: int = 72,
    device: str | None = None,
    solve_kwargs: dict | None = None,
) -> RegistrationResult:
    """Register MSI pixels onto STR spots.

    Parameters
    ----------
    rna
        Spots (Visium or any STR), ``obsm["spatial"]`` in micrometres.
    msi
        MSI pixels x m/z, ``obsm["spatial"]`` in micrometres and the pixel size recorded by
        the reader (``uns["spatial_mg"]["pixel_size_um"]``) or given as ``msi_pixel_size_um``.
    method
        ``"moscot"`` (optimal transport on the tissue geometry, see the module notes) or
        ``"landmarks"`` (a least-squares fit through ``landmarks``).
    shared_features
        Features measured on both sides (e.g. an image intensity sampled at spots and
        pixels) for fused GW: an ``obsm`` key or ``obs`` column present in both, or a
        ``(rna_key, msi_key)`` pair. ``None``: coordinates only (pure GW).
    alpha
        Weight of geometry against shared features in fused GW (default 0.5).
    landmarks
        For ``method="landmarks"``: ``(msi_points_um, rna_points_um)``, two (k, 2) arrays
        of matching points (k >= 3), or a DataFrame with ``msi_x, msi_y, rna_x, rna_y``.
    transform
        ``"similarity"`` (rotation, reflection, uniform scale, translation) or ``"affine"``.
    refine_fit
        Check the transport fit against the other candidate poses and refine the best on all
        points (module notes); ``False`` returns the Procrustes fit of the plan as is.
    scale
        Fit the scale; ``False`` keeps it at 1 (trust both micrometre scales).
    msi_mask
        On-tissue MSI pixels (booleans or an ``obs`` column), replacing the background rule.
    tic_threshold
        Keep MSI pixels whose summed feature intensity exceeds this, replacing the rule.
    msi_pixel_size_um
        MSI pixel size when the AnnData does not record it.
    n_subsample
        Points per side for the transport solve (an even spatial subsample).
    epsilon, tau_a, tau_b, rank, max_iterations, solve_kwargs
        moscot ``AlignmentProblem.solve`` settings: entropic regularisation, unbalancedness
        on the MSI / STR side (< 1 tolerates partial overlap), low-rank rank (-1: full
        rank), outer iterations and anything else ``solve`` accepts.
    n_angles
        Turns per handedness in the outline search (72: every 5 degrees).
    device
        JAX device for moscot: ``None`` uses a GPU when JAX sees one, else the CPU;
        ``"cpu"`` or ``"gpu"`` to choose.

    Returns
    -------
    :class:`RegistrationResult` with ``affine`` (3 x 3, MSI um -> STR um), ``method`` and
    ``qc`` (overlap and matched fractions, residual, scale, rotation, reflection,
    confidence and its reason).
    """
    start = time.perf_counter()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
    if transform not in TRANSFORMS:
        raise ValueError(f"transform must be one of {TRANSFORMS}, got {transform!r}.")
    if method == "moscot":
        jax_device(device)  # fail early on a device JAX does not see
    pixel_um = msi_pixel_size(msi, msi_pixel_size_um)
    msi_all = msi_coordinates(msi, pixel_um)
    rna_um, rna_units_known = rna_coordinates(rna)
    tissue = tissue_mask(msi, msi_mask, tic_threshold)
    if tissue.mask.sum() < 3:
        raise ValueError(
            f"Only {int(tissue.mask.sum())} of {msi.n_obs} MSI pixels are left as tissue by the background rule "
            f"({tissue.rule}). Check the intensities, or pass msi_mask=<booleans> or a lower tic_threshold."
        )
    msi_um = check_points(msi_all[tissue.mask], "The MSI tissue pixels")
    rna_spacing = median_spacing(rna_um)
    msi_win = msi_window(msi_all, tissue.mask, pixel_um)
    rna_win = rna_window(rna, rna_um, rna_spacing)
    notes = [] if rna_units_known else ["rna.uns['spatial_mg'] does not record micrometres (assumed)"]
    details = {
        "background_rule": tissue.rule,
        "tic_threshold": tissue.threshold,
        "n_msi_pixels": int(msi.n_obs),
        "n_msi_tissue": int(tissue.mask.sum()),
        "n_rna_spots": int(rna.n_obs),
        "msi_pixel_size_um": pixel_um,
        "rna_spacing_um": rna_spacing,
        "msi_window": msi_win[2],
        "rna_window": rna_win[2],
    }
    params = {
        "method": method,
        "transform": transform,
        "refine_fit": refine_fit,
        "scale": scale,
        "shared_features": shared_features,
        "alpha": alpha,
        "n_subsample": n_subsample,
        "epsilon": epsilon,
        "tau_a": tau_a,
        "tau_b": tau_b,
        "rank": rank,
        "n_angles": n_angles,
        "device": device,
    }
    plan = plan_src = plan_dst = None

    if method == "landmarks":
        lm_msi, lm_rna = parse_landmarks(landmarks)
        affine, info = fit_landmarks(lm_msi, lm_rna, transform, scale)
        details.update(info)
        residual = info["landmark_rms_um"]
        if len(lm_msi) == 3 and transform == "affine":
            notes.append("three landmarks determine an affine exactly: the residual cannot reveal a misplaced one")
        limit = 2 * max(pixel_um, rna_spacing)
        if residual > limit:
            worst = int(np.argmax(info["landmark_residuals_um"]))
            notes.append(
                f"the landmarks miss the fitted transform by {residual:.0f} um RMS (more than {limit:.0f} um); "
                f"landmark {worst} is furthest off: check it"
            )
    else:
        features = _shared_features(rna, msi, shared_features, tissue.mask)
        affine, plan, plan_src, plan_dst, info = _register_moscot(
            msi_um,
            rna_um,
            msi_window=msi_win,
            rna_window=rna_win,
            features=features,
            msi_spacing=pixel_um,
            rna_spacing=rna_spacing,
            alpha=alpha,
            transform=transform,
            refine_fit=refine_fit,
            scale=scale,
            n_subsample=n_subsample,
            epsilon=epsilon,
            tau_a=tau_a,
            tau_b=tau_b,
            rank=rank,
            max_iterations=max_iterations,
            n_angles=n_angles,
            device=device,
            solve_kwargs=solve_kwargs,
        )
        details.update(info)
        residual = None
        # positions in the full AnnData of the plan's rows / columns
        plan_src = None if plan_src is None else np.flatnonzero(tissue.mask)[plan_src]

    figures = measure(
        affine,
        msi_um,
        rna_um,
        msi_window=Window(msi_win[0], msi_win[1]),
        rna_window=Window(rna_win[0], rna_win[1]),
        msi_spacing_um=pixel_um,
        rna_spacing_um=rna_spacing,
    )
    if residual is None:
        residual = figures["pixel_to_spot_median_um"]
    details["seconds"] = time.perf_counter() - start
    qc = judge(figures, residual_um=residual, method=method, details=details, notes=notes)
    return RegistrationResult(
        affine=affine,
        method=method,
        qc=qc,
        msi_tissue=tissue.mask,
        n_msi=int(msi.n_obs),
        n_rna=int(rna.n_obs),
        plan=plan,
        plan_msi_index=plan_src,
        plan_rna_index=plan_dst,
        params=params,
    )


def _shared_features(rna: ad.AnnData, msi: ad.AnnData, key, tissue: np.ndarray):
    """The shared feature matrices (spots, tissue pixels), or ``None``."""
    if key is None:
        return None
    rna_key, msi_key = (key, key) if isinstance(key, str) else key

    def get(adata, k, what):
        if k in adata.obsm:
            values = adata.obsm[k]
            values = values.to_numpy() if isinstance(values, pd.DataFrame) else np.asarray(values)
        elif k in adata.obs:
            values = adata.obs[k].to_numpy()
        else:
            raise KeyError(f"shared feature {k!r} is neither an obsm key nor an obs column of {what}.")
        values = np.asarray(values, dtype=np.float64).reshape(adata.n_obs, -1)
        if not np.isfinite(values).all():
            raise ValueError(f"shared feature {k!r} of {what} has NaN or infinite values; fill or drop them first.")
        return values

    a, b = get(rna, rna_key, "rna"), get(msi, msi_key, "msi")[tissue]
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"shared features differ in width: rna {a.shape[1]} columns, msi {b.shape[1]}.")
    return a, b


def _displacement(a: np.ndarray, b: np.ndarray, points: np.ndarray) -> float:
    """Mean distance between two transforms' images of ``points``."""
    return float(np.linalg.norm(apply_affine(a, points) - apply_affine(b, points), axis=1).mean())


def _describe(candidate: np.ndarray, best: np.ndarray) -> str:
    """In words, how a pose differs from the chosen one."""
    a, b = decompose(candidate), decompose(best)
    if a["reflection"] != b["reflection"]:
        return "a mirrored pose"
    turn = (a["rotation_deg"] - b["rotation_deg"] + 180) % 360 - 180
    return f"a pose turned by {turn:.0f} degrees"


def _register_moscot(
    msi_um: np.ndarray,
    rna_um: np.ndarray,
    *,
    msi_window,
    rna_window,
    features,
    msi_spacing: float,
    rna_spacing: float,
    alpha,
    transform: str,
    refine_fit: bool,
    scale: bool,
    n_subsample: int,
    epsilon: float,
    tau_a: float,
    tau_b: float,
    rank: int,
    max_iterations,
    n_angles: int,
    device,
    solve_kwargs,
):
    info: dict = {}
    src_idx = even_subsample(msi_um, n_subsample)
    dst_idx = even_subsample(rna_um, n_subsample)
    fx = fy = None
    if features is not None:
        fy, fx = features[0][dst_idx], features[1][src_idx]
    gw_args = dict(
        msi_features=fx,
        str_features=fy,
        alpha=alpha,
        tau_a=tau_a,
        tau_b=tau_b,
        rank=rank,
        device=device,
        max_iterations=max_iterations,
        solve_kwargs=solve_kwargs,
    )
    sol, failure = None, None
    for eps in (epsilon, 5 * epsilon):  # one retry, smoother, when the solver diverges
        try:
            sol = solve_gw(msi_um[src_idx], rna_um[dst_idx], epsilon=eps, **gw_args)
            info["gw_epsilon"] = eps
            break
        except TransportDiverged as err:
            failure = str(err)
    info.update(n_gw_msi=len(src_idx), n_gw_rna=len(dst_idx), fused=features is not None)
    x_gw, y_gw = msi_um[src_idx], rna_um[dst_idx]
    candidates = []
    if sol is None:
        if not refine_fit:
            raise RuntimeError(f"{failure} (also with a 5 times larger epsilon); refine_fit=False has nothing else to use.")
        info["gw_failed"] = failure
    else:
        info.update(gw_seconds=sol.seconds, gw_converged=sol.converged, gw_cost=sol.cost, device=sol.device)
        plan_fit = fit_plan(x_gw, y_gw, sol.plan, scale=scale)
        info["plan_fit"] = decompose(plan_fit)
        if not refine_fit:
            affine = fit_affine(x_gw, y_gw, plan=sol.plan) if transform == "affine" else plan_fit
            info["plan_agreement"] = _plan_agreement(affine, x_gw, y_gw, sol.plan, msi_spacing, rna_spacing)
            return affine, sol.plan, src_idx, dst_idx, info
        mirrored = fit_plan(x_gw, y_gw, sol.plan, reflection=not decompose(plan_fit)["reflection"], scale=scale)
        candidates = [(plan_fit, "transport plan"), (mirrored, "transport plan, mirrored")]

    refine_start = time.perf_counter()
    msi_all, msi_pad, _ = msi_window
    rna_win, rna_pad, _ = rna_window
    h = max(msi_spacing, rna_spacing)  # both near unit scale
    # candidate poses: the plan's fit with either handedness (above), and the best of an
    # exhaustive search of turns x translations of the tissue masks (see _search)
    poses = search_poses(msi_um, msi_all, rna_um, rna_win, msi_pad=msi_pad, rna_pad=rna_pad, cell=h, n_angles=n_angles)
    for p in poses:
        candidates.append((p.affine, f"outline search ({p.rotation_deg:.0f} deg{', mirrored' if p.reflection else ''})"))
    info["search_seconds"] = time.perf_counter() - refine_start

    msi_win = Window(msi_all, msi_pad)
    rna_win_hull = Window(rna_win, rna_pad)
    rna_tree = cKDTree(rna_um)

    def score(affine: np.ndarray) -> float:
        moved = apply_affine(affine, msi_um)
        radius = match_radius(msi_spacing, rna_spacing, decompose(affine)["scale"])
        keep_msi = rna_win_hull.contains(moved)
        keep_rna = msi_win.contains(apply_affine(np.linalg.inv(affine), rna_um))
        outline, _, _ = agreement(moved, rna_um, radius, keep_msi, keep_rna, rna_tree)
        return outline + _feature_agreement(affine, msi_um, rna_um, rna_tree, radius, features)

    aligner = MaskAligner(
        msi_um,
        msi_all,
        rna_um,
        rna_win,
        msi_pad=msi_pad,
        rna_pad=rna_pad,
        msi_spacing=msi_spacing,
        rna_spacing=rna_spacing,
    )
    screened = []
    for affine, origin in candidates:  # a quick refit of every candidate, to rank them
        try:
            fit = aligner.refine(affine, scale=scale, rounds=1)
        except (ValueError, np.linalg.LinAlgError):
            continue
        if _SCALE_BOUNDS[0] <= decompose(fit)["scale"] <= _SCALE_BOUNDS[1]:
            screened.append((fit, origin, score(fit)))
    lo, hi = SCALE_RANGE
    screened.sort(key=lambda r: (not lo <= decompose(r[0])["scale"] <= hi, -r[2]))
    refined = []
    for fit, origin, _ in screened[:_FINALISTS]:  # the full refit for the best few
        fit = aligner.refine(fit, scale=scale)
        refined.append({"affine": fit, "origin": origin, "score": score(fit), "mismatch": aligner.mismatch(fit)})
    if not refined:
        raise RuntimeError(
            "Every candidate pose drifted to a scale far from 1: the two point clouds do not look like the same "
            "tissue. Check the background rule and units, or use method='landmarks'."
        )
    # Choose: a plausible scale (both sides are micrometres) first; then, among the poses
    # that overlap about as much as the best (agreement within _SCORE_SLACK), the one whose
    # outlines lie closest (least mask mismatch). The point score counts a pixel matched up
    # to 3/4 of a pitch away, so a mirrored fit of a nearly symmetric outline can tie with
    # the right one; the mask mismatch still sees the difference.
    plausible = [r for r in refined if lo <= decompose(r["affine"])["scale"] <= hi] or refined
    top = max(r["score"] for r in plausible)
    contenders = sorted((r for r in plausible if r["score"] >= top - _SCORE_SLACK), key=lambda r: r["mismatch"])
    chosen = contenders[0]
    best = chosen["affine"]
    info["candidates"] = [
        {"origin": r["origin"], "score": float(r["score"]), "mismatch": float(r["mismatch"]), "pose": decompose(r["affine"])}
        for r in refined
    ]
    info["chosen"] = chosen["origin"]
    rivals = [r for r in contenders[1:] if _displacement(r["affine"], best, msi_um) > 2 * h]
    if rivals:
        # how much worse the best distinct alternative's outlines fit (0: equally well)
        info["candidate_margin"] = float(rivals[0]["mismatch"] / max(chosen["mismatch"], 1e-12) - 1.0)
        info["runner_up"] = _describe(rivals[0]["affine"], best)
    if transform == "affine":
        best = aligner.refine(best, scale=scale, affine=True)
    best, info["pose_spread_um"] = _settle(aligner, best, msi_um, h, scale, transform == "affine")
    info["pose_slack_um"] = aligner.slack(best, scale=scale)
    info["refine_seconds"] = time.perf_counter() - refine_start
    if sol is None:
        return best, None, None, None, info
    info["plan_agreement"] = _plan_agreement(best, x_gw, y_gw, sol.plan, msi_spacing, rna_spacing)
    return best, sol.plan, src_idx, dst_idx, info


def _settle(aligner: MaskAligner, pose: np.ndarray, msi_um: np.ndarray, pitch: float, scale: bool, affine: bool):
    """Refit from two nearby starts; return their consensus and how far apart they ended (um).

    The starts are the pose moved by half a pitch, turned by a degree and scaled by 2 %, in
    opposite directions. Where the outlines pin the pose well all three fits coincide;
    where the objective is flat along some direction (little outline in the common area)
    they spread along it, and their mean is the better estimate, the spread the warning.
    """
    centre = apply_affine(pose, msi_um).mean(axis=0)
    fits = [pose]
    for sign in (1.0, -1.0):
        t = np.deg2rad(sign)
        nudge = np.eye(3)
        nudge[:2, :2] = (1 + 0.02 * sign) * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        nudge[:2, 2] = centre - nudge[:2, :2] @ centre + sign * 0.5 * pitch * np.array([0.6, 0.8])
        fits.append(aligner.refine(nudge @ pose, scale=scale))
    spread = max(_displacement(f, pose, msi_um) for f in fits[1:])
    mean_points = np.mean([apply_affine(f, msi_um) for f in fits], axis=0)
    if affine:
        return fit_affine(msi_um, mean_points), spread
    return fit_similarity(msi_um, mean_points, reflection=decompose(pose)["reflection"], scale=scale), spread


def _plan_agreement(affine, x, y, plan, msi_spacing, rna_spacing) -> float:
    """Share of the transport plan's mass that the final transform maps within two match radii."""
    r = 2 * match_radius(msi_spacing, rna_spacing, decompose(affine)["scale"])
    moved = apply_affine(affine, x)
    d2 = ((moved[:, None, :] - y[None, :, :]) ** 2).sum(axis=-1)
    return float(plan[d2 <= r * r].sum() / plan.sum())


def _feature_agreement(affine, msi_um, rna_um, rna_tree, radius, features) -> float:
    """Half the mean correlation of shared features between matched pixels and spots (0 without).

    Breaks ties between poses that fit the outline alike (a symmetric tissue): only the
    right one also lines up the features.
    """
    if features is None:
        return 0.0
    f_rna, f_msi = features
    dist, j = rna_tree.query(apply_affine(affine, msi_um), distance_upper_bound=radius)
    hit = np.isfinite(dist)
    if hit.sum() < 3:
        return 0.0
    a, b = f_msi[hit], f_rna[j[hit]]
    corr = [np.corrcoef(a[:, c], b[:, c])[0, 1] for c in range(a.shape[1]) if a[:, c].std() > 0 and b[:, c].std() > 0]
    return 0.5 * float(np.mean(corr)) if corr else 0.0
