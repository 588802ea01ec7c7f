"""Checks of a finished pose that do not depend on how it was found.

Whatever produced a pose (the default pipeline, moscot's plan fit with ``refine_fit=False``,
a pose given by hand to :func:`assess_pose`), the QC asks the outlines the same three
questions about it:

- **drift**: refitted on the tissue masks, how far does the pose move
  (``pose_drift_um``)? A pose the outlines hold stays; a pose that is off is pulled
  towards where the outlines agree.
- **spread and slack** of that refit, the local optimum the pose belongs to
  (``_settle.settle``): how far refits from two nearby starts end apart
  (``pose_spread_um``) and how far it slides before the outlines mismatch 20 % more
  (``pose_slack_um``).
- **rivals**: the outline search's refined poses (``_choose.refine_candidates``) that put
  the tissue elsewhere. One that matches clearly more pixels and spots, or whose outlines
  lie closer or nearly as close (``candidate_margin`` below ``_qc.MIN_MARGIN``; negative:
  the rival fits better), says the pose is wrong or cannot be told from another.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._agreement import PoseScore
from ._choose import DISTINCT_PITCHES, SCORE_SLACK, Refined, describe
from ._pose import Pose
from ._refine import MaskAligner
from ._settle import settle


@dataclass(frozen=True)
class Checks:
    """What the outlines say of one pose (see module notes); distances in um."""

    drift_um: float
    spread_um: float
    slack_um: float
    score: float
    mismatch: float
    margin: float | None
    runner_up: str | None
    rival_score_gain: float | None
    runner_up_by_score: str | None

    def details(self) -> dict:
        """The checks as QC details (the keys ``_qc.judge`` reads)."""
        out = {
            "pose_drift_um": self.drift_um,
            "pose_spread_um": self.spread_um,
            "pose_slack_um": self.slack_um,
            "pose_score": self.score,
            "pose_mismatch": self.mismatch,
        }
        if self.margin is not None:
            out["candidate_margin"] = self.margin
            out["runner_up"] = self.runner_up
        if self.rival_score_gain is not None:
            out["rival_score_gain"] = self.rival_score_gain
            out["runner_up_by_score"] = self.runner_up_by_score
        return out


def verify(
    pose: Pose,
    rivals: list[Refined],
    aligner: MaskAligner,
    score: PoseScore,
    msi_um: np.ndarray,
    *,
    pitch: float,
    scale: bool,
    affine: bool,
) -> Checks:
    """Drift, spread, slack and the best distinct rival of ``pose`` (module notes).

    ``rivals`` are refined candidate poses (any that coincide with ``pose`` are skipped);
    ``scale`` and ``affine`` are the refits' degrees of freedom, as the registration's.
    """
    refit = aligner.refine(pose, scale=scale, affine=affine)
    drift = refit.displacement(pose, msi_um)
    settled = settle(refit, aligner, msi_um, pitch=pitch, scale=scale, affine=affine)
    own_score, own_mismatch = score(pose), aligner.mismatch(pose)
    distinct = [r for r in rivals if r.pose.displacement(pose, msi_um) > DISTINCT_PITCHES * pitch]
    top = max(distinct, key=lambda r: r.score, default=None)
    close = [r for r in distinct if r.score >= own_score - SCORE_SLACK]
    margin = runner_up = None
    if close:
        best = min(close, key=lambda r: r.mismatch)
        margin = float(best.mismatch / max(own_mismatch, 1e-12) - 1.0)
        runner_up = describe(best.pose, pose, msi_um)
    return Checks(
        drift_um=float(drift),
        spread_um=float(settled.spread_um),
        slack_um=float(settled.slack_um),
        score=float(own_score),
        mismatch=float(own_mismatch),
        margin=margin,
        runner_up=runner_up,
        rival_score_gain=None if top is None else float(top.score - own_score),
        runner_up_by_score=None if top is None else describe(top.pose, pose, msi_um),
    )
