"""Settle the chosen pose: refit it from nearby starts, keep their consensus, measure how firmly it is held."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._geometry import rotation_matrix
from ._pose import Pose
from ._procrustes import fit_affine, fit_similarity
from ._refine import MaskAligner

# The two nearby starts: the pose turned, scaled (about the tissue centre) and shifted by
# these, in opposite directions. Small moves, each about half a pitch or less at the edge of a
# few-millimetre tissue, so that a pose the outline pins well brings both refits back to
# it, while a loose one lets them wander along the directions it leaves free.
_NUDGE_TURN_DEG = 1.0
_NUDGE_SCALE = 0.02
_NUDGE_SHIFT_PITCHES = 0.5
_NUDGE_DIRECTION = np.array([0.6, 0.8])  # a unit vector off both coordinate axes


@dataclass(frozen=True)
class Settled:
    """The final pose, how far refits from nearby starts ended apart, and how far it can slide (um)."""

    pose: Pose
    spread_um: float
    slack_um: float


def settle(pose: Pose, aligner: MaskAligner, msi_um: np.ndarray, *, pitch: float, scale: bool, affine: bool) -> Settled:
    """Refit ``pose`` from two nearby starts; return their consensus, its spread and its slack.

    ``affine=True`` first refines the pose as a full affine. Where the outlines pin the
    pose well all three fits coincide; where the objective is flat along some direction
    (little outline in the common area) they spread along it, and their mean is the
    better estimate, the spread the warning (QC ``pose_spread_um``). The slack
    (``MaskAligner.slack``, QC ``pose_slack_um``) catches what the spread can miss: a
    direction the pose slides along at almost no cost although the refits agree.
    """
    if affine:
        pose = aligner.refine(pose, scale=scale, affine=True)
    centre = pose.apply(msi_um).mean(axis=0)
    fits = [pose]
    for sign in (1.0, -1.0):
        nudge = np.eye(3)
        nudge[:2, :2] = (1 + _NUDGE_SCALE * sign) * rotation_matrix(np.deg2rad(_NUDGE_TURN_DEG * sign))
        nudge[:2, 2] = centre - nudge[:2, :2] @ centre + sign * _NUDGE_SHIFT_PITCHES * pitch * _NUDGE_DIRECTION
        fits.append(aligner.refine(Pose(nudge) @ pose, scale=scale))
    spread = max(fit.displacement(pose, msi_um) for fit in fits[1:])
    mean_points = np.mean([fit.apply(msi_um) for fit in fits], axis=0)
    if affine:
        consensus = fit_affine(msi_um, mean_points)
    else:
        consensus = fit_similarity(msi_um, mean_points, reflection=pose.reflection, scale=scale)
    return Settled(consensus, spread, aligner.slack(consensus, scale=scale))
