"""Refine the candidate poses on the tissue outlines, and choose one.

Every candidate gets a quick refit (``MaskAligner.refine`` with one comparison-area
round) to rank it, the best few a full one; then the choice weighs, in this order, a
plausible scale, how many pixels and spots the pose matches (``PoseScore``) and how
closely the outlines lie (``MaskAligner.mismatch``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._errors import RegistrationFailedError
from ._agreement import PoseScore
from ._pose import Pose
from ._qc import SCALE_RANGE
from ._refine import MaskAligner

# A candidate whose quick refit ends outside this scale range is dropped, not ranked: both
# sides are micrometres, so such a fit has shrunk the MSI tissue onto part of the spots
# or swollen it around them. Wide on purpose: the screen discards only the absurd, and
# SCALE_RANGE (the band real sections stay in) ranks the rest.
_SCALE_BOUNDS = (0.5, 2.0)
# Candidates refitted in full after the quick screen, best first. The full refit is the
# costly step, so only the most promising few get it; four leave room for the right pose
# and its usual rivals (the mirror image, a turn of a nearly symmetric outline), which
# choose_pose must then tell apart.
_FINALISTS = 4
# Poses whose agreement (per point: +1 matched, -MISMATCH_PENALTY bare) is within this
# of the best match about as many pixels and spots; the mirror image of the right pose on
# a nearly symmetric tissue does. Among them the mask mismatch, which sees the outline's
# finer shape, decides.
SCORE_SLACK = 0.1
# A contender counts as a distinct rival when it puts the MSI tissue this many coarser
# pitches away (mean) from the chosen pose; closer, it is the same pose found twice.
DISTINCT_PITCHES = 2


@dataclass(frozen=True)
class Refined:
    """A candidate after its full refit: the pose, its origin, agreement score and mask mismatch."""

    pose: Pose
    origin: str
    score: float
    mismatch: float


@dataclass(frozen=True)
class Choice:
    """The chosen pose, every finalist, and the best distinct rival (``None`` when there is none)."""

    chosen: Refined
    finalists: list[Refined]
    rival: Refined | None

    def details(self) -> dict:
        """The finalists and the choice (QC details)."""
        out = {
            "candidates": [
                {"origin": r.origin, "score": float(r.score), "mismatch": float(r.mismatch), "pose": r.pose.parts()}
                for r in self.finalists
            ],
            "chosen": self.chosen.origin,
        }
        # the rival's margin is measured on the final pose, as for any pose (``_verify``)
        return out


def _plausible(pose: Pose) -> bool:
    lo, hi = SCALE_RANGE
    return lo <= pose.scale <= hi


def refine_candidates(candidates, aligner: MaskAligner, score: PoseScore, *, scale: bool) -> list[Refined]:
    """Refit every candidate quickly, rank them, and refit the best ``_FINALISTS`` in full.

    The ranking puts a plausible scale first, then the agreement score. A candidate whose
    quick refit fails or leaves ``_SCALE_BOUNDS`` is dropped; when none is left the two
    point clouds do not look like the same tissue, and that is an error that says what
    to check.
    """
    screened = []
    for candidate in candidates:
        try:
            fit = aligner.refine(candidate.pose, scale=scale, rounds=1)
        except (ValueError, np.linalg.LinAlgError):
            continue
        if _SCALE_BOUNDS[0] <= fit.scale <= _SCALE_BOUNDS[1]:
            screened.append((fit, candidate.origin, score(fit)))
    screened.sort(key=lambda r: (not _plausible(r[0]), -r[2]))
    refined = []
    for fit, origin, _ in screened[:_FINALISTS]:
        fit = aligner.refine(fit, scale=scale)
        refined.append(Refined(fit, origin, score(fit), aligner.mismatch(fit)))
    if not refined:
        raise RegistrationFailedError(
            "Every candidate pose drifted to a scale far from 1: the two point clouds do not look like the same "
            "tissue. Check the background rule and units, or use method='landmarks'."
        )
    return refined


def choose_pose(refined: list[Refined], msi_um: np.ndarray, *, pitch: float) -> Choice:
    """Choose among the refined poses, and name the best distinct rival.

    A plausible scale first (both sides are micrometres); then, among the poses that
    match about as many pixels and spots as the best (agreement within ``SCORE_SLACK``),
    the one whose outlines lie closest (least mask mismatch). The point score counts a
    pixel matched up to 3/4 of a pitch away, so a mirrored fit of a nearly symmetric
    outline can tie with the right one; the mask mismatch still sees the difference. The
    rival is the next contender that puts the tissue elsewhere (``DISTINCT_PITCHES``):
    how close its mismatch comes is the QC's ``candidate_margin``.
    """
    plausible = [r for r in refined if _plausible(r.pose)] or refined
    top = max(r.score for r in plausible)
    contenders = sorted((r for r in plausible if r.score >= top - SCORE_SLACK), key=lambda r: r.mismatch)
    chosen = contenders[0]
    rivals = [r for r in contenders[1:] if r.pose.displacement(chosen.pose, msi_um) > DISTINCT_PITCHES * pitch]
    return Choice(chosen, refined, rivals[0] if rivals else None)


def describe(candidate: Pose, best: Pose, points: np.ndarray | None = None) -> str:
    """In words, how a pose differs from the chosen one (``points``: the MSI tissue, for a shift's size)."""
    if candidate.reflection != best.reflection:
        return "a mirrored pose"
    turn = (candidate.rotation_deg - best.rotation_deg + 180) % 360 - 180
    if abs(turn) < 0.5 and points is not None:
        return f"a pose {candidate.displacement(best, points):.0f} um away"
    return f"a pose turned by {turn:.0f} degrees"
