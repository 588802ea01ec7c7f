"""Quality figures of a registration and the confidence flag, with reasons in plain words."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ._agreement import MATCH_PITCHES, match_radius
from ._pose import Pose
from ._result import RegistrationQC
from ._section import Section

# thresholds of the confidence flag
MIN_MATCHED = 0.8  # share of points matched where both modalities measured
MIN_OVERLAP = 0.1  # share of spots under the MSI raster
MIN_MATCHED_POINTS = 20
SCALE_RANGE = (0.85, 1.18)  # tissue shrinks or swells a few percent between sections, not more
MAX_ANISOTROPY = 1.1
MIN_MARGIN = 0.25  # a distinct alternative pose (mirror / turn) must mismatch this much more
MAX_SPREAD = 0.3  # refits from nearby starts may end this far apart, in coarser pitches
MAX_SLACK = 0.7  # the pose may slide this far (coarser pitches) before the outlines mismatch 20 % more
# refitting the pose on the outlines may move it this far (coarser pitches): where the
# outlines agree best lies up to ~0.27 pitch from the true pose on the synthetic sweeps
# (benchmarks/results/alignment_notes.md), so the truth itself drifts that far, while the
# QC probe's poses 73 um or more off drift 0.5 pitch or more
MAX_DRIFT = 0.3
# a distinct rival pose may match this much more per point (the agreement score: +1 per
# matched pixel or spot, -2 per bare one, over all points) before the pose is plainly wrong;
# the same tolerance within which choose_pose lets the mask mismatch decide
MAX_RIVAL_GAIN = 0.1
# plan mass landing within this many match radii of where the pose puts its source agrees
# with the pose: an entropic plan spreads each point over its neighbours a pitch or so away
PLAN_AGREEMENT_RADII = 2


def assess(
    pose: Pose,
    section: Section,
    *,
    method: str,
    residual_um: float | None,
    details: dict,
    notes: list[str],
) -> RegistrationQC:
    """The QC of ``pose``: figures measured on all tissue pixels and spots, and the verdict.

    ``residual_um`` is the landmark residual; ``None`` takes the median pixel-to-spot
    distance instead (what a geometry-only registration leaves).
    """
    figures = measure(pose, section)
    if residual_um is None:
        residual_um = figures["pixel_to_spot_median_um"]
    return judge(figures, residual_um=residual_um, method=method, details=details, notes=notes)


def measure(pose: Pose, section: Section) -> dict:
    """Overlap, matched fraction and nearest-spot distances at full resolution."""
    radius = match_radius(section.msi_pixel_size_um, section.rna_spacing_um, pose.scale)
    moved = pose.apply(section.msi_um)
    rna_um = section.rna_um
    rna_under_raster = section.msi_window.contains(pose.inverse().apply(rna_um))
    msi_over_spots = section.rna_window.contains(moved)
    d_msi, _ = cKDTree(rna_um).query(moved, distance_upper_bound=radius)
    d_rna, _ = cKDTree(moved).query(rna_um, distance_upper_bound=radius)
    msi_hit, rna_hit = np.isfinite(d_msi), np.isfinite(d_rna)
    n_common = int(msi_over_spots.sum() + rna_under_raster.sum())
    n_matched = int((msi_hit & msi_over_spots).sum() + (rna_hit & rna_under_raster).sum())
    return {
        "overlap_fraction": float(rna_under_raster.mean()),
        "matched_fraction": n_matched / n_common if n_common else 0.0,
        "n_matched": n_matched,
        "n_common": n_common,
        "pixel_to_spot_median_um": float(np.median(d_msi[msi_hit])) if msi_hit.any() else float("nan"),
        "spots_covered_fraction": float(rna_hit.mean()),
        "pixels_matched_fraction": float(msi_hit.mean()),
        "match_radius_um": radius,
        **pose.parts(),
    }


def plan_agreement(pose: Pose, msi_points: np.ndarray, rna_points: np.ndarray, plan: np.ndarray, section: Section) -> float:
    """Share of the transport plan's mass that ``pose`` maps within two match radii.

    Near 1 when the solver already found the chosen pose; low when another candidate won.
    """
    r = PLAN_AGREEMENT_RADII * match_radius(section.msi_pixel_size_um, section.rna_spacing_um, pose.scale)
    moved = pose.apply(msi_points)
    d2 = ((moved[:, None, :] - rna_points[None, :, :]) ** 2).sum(axis=-1)
    return float(plan[d2 <= r * r].sum() / plan.sum())


def judge(
    figures: dict,
    *,
    residual_um: float,
    method: str,
    details: dict,
    notes: list[str] | None = None,
) -> RegistrationQC:
    """Turn the measured figures into a :class:`RegistrationQC` with a confidence flag."""
    reasons = list(notes or [])
    lo, hi = SCALE_RANGE
    if figures["overlap_fraction"] < MIN_OVERLAP:
        reasons.append(
            f"only {figures['overlap_fraction']:.0%} of the spots lie under the registered MSI raster: "
            "check that both are the same tissue section (or neighbours) and that the MSI covers it"
        )
    if figures["n_matched"] < MIN_MATCHED_POINTS:
        reasons.append(f"only {figures['n_matched']} pixels and spots are matched: too few to trust a transform")
    if figures["matched_fraction"] < MIN_MATCHED:
        reasons.append(
            f"where both modalities measured, only {figures['matched_fraction']:.0%} of pixels and spots have a "
            "counterpart nearby (expected > 80%): the outlines disagree - check the background rule (msi_mask / "
            "tic_threshold), the MSI pixel size, or register with landmarks"
        )
    if not lo <= figures["scale"] <= hi:
        reasons.append(
            f"the fitted scale {figures['scale']:.3f} is far from 1 although both sides are in micrometres: "
            "check the MSI pixel size and that rna.obsm['spatial'] is in micrometres"
        )
    if figures["anisotropy"] > MAX_ANISOTROPY:
        reasons.append(f"the affine fit stretches one axis {figures['anisotropy']:.2f} times the other: check for distortion")
    spread = details.get("pose_spread_um")
    pitch = figures["match_radius_um"] / MATCH_PITCHES
    drift = details.get("pose_drift_um")
    if drift is not None and drift > MAX_DRIFT * pitch:
        reasons.append(
            f"refitted on the tissue outlines the pose moves {drift:.0f} um: it is not where the outlines agree "
            "best, so pairs are off by about that much - register with the default refine_fit=True, or give landmarks"
        )
    gain = details.get("rival_score_gain")
    if gain is not None and gain > MAX_RIVAL_GAIN:
        reasons.append(
            f"another pose ({details.get('runner_up_by_score', 'elsewhere')}) matches clearly more pixels and spots "
            f"(+{gain:.2f} per point): this pose is wrong - register with the default refine_fit=True, or give landmarks"
        )
    if spread is not None and spread > MAX_SPREAD * pitch:
        reasons.append(
            f"the fit is loose: refits from nearby starts end up to {spread:.0f} um apart (the tissue outline where "
            "both modalities measured pins the pose only that well); pairs may be off by that much - check the "
            "overlay, or give landmarks"
        )
    slack = details.get("pose_slack_um")
    if slack is not None and slack > MAX_SLACK * pitch:
        reasons.append(
            f"the fit is loose along one direction: the pose can slide {slack:.0f} um (a turn, scaling or shift) "
            "before the outlines where both modalities measured mismatch 20% more, so that part of the outline "
            "hardly pins it; pairs may be off by tens of um - check the overlay, or give landmarks"
        )
    placed = details.get("content_placed_um")
    if placed is not None:
        reasons.append(
            f"the tissue outlines could not place the pose ({details.get('outline_unpinned', 'not pinned')}), so the "
            f"tissue's content placed it, {placed:.0f} um from where they put it; the outline cannot confirm it - "
            "check the overlay, or give landmarks"
        )
    margin = details.get("candidate_margin")
    if margin is not None and margin < 0:
        alt = details.get("runner_up", "another pose")
        reasons.append(
            f"{alt} fits the tissue outlines better (its outlines mismatch {-margin:.0%} less): this pose is likely "
            "wrong - check the overlay, or give shared features or landmarks"
        )
    elif margin is not None and margin < MIN_MARGIN:
        alt = details.get("runner_up", "another pose")
        reasons.append(
            f"{alt} fits the outline almost as well (its outlines mismatch only {margin:.0%} more): the tissue is "
            "nearly symmetric, so the geometry alone cannot tell; check the overlay, or give shared features or landmarks"
        )
    return RegistrationQC(
        overlap_fraction=figures["overlap_fraction"],
        matched_fraction=figures["matched_fraction"],
        residual_um=float(residual_um),
        scale=figures["scale"],
        rotation_deg=figures["rotation_deg"],
        reflection=figures["reflection"],
        anisotropy=figures["anisotropy"],
        confidence="low" if reasons else "high",
        reason="; ".join(reasons),
        details={
            **details,
            "method": method,
            "n_matched": figures["n_matched"],
            "n_common": figures["n_common"],
            "pixel_to_spot_median_um": figures["pixel_to_spot_median_um"],
            "spots_covered_fraction": figures["spots_covered_fraction"],
            "pixels_matched_fraction": figures["pixels_matched_fraction"],
            "match_radius_um": figures["match_radius_um"],
        },
    )
