"""The QC judges every pose by the same checks, whatever made it (register's options, a hand)."""

from __future__ import annotations

import numpy as np
import pytest
from align_data import median_error

from spatial_mg.align import Pose, assess_pose, register


def _turned_about_tissue(pose: Pose, msi, degrees: float) -> Pose:
    """``pose`` followed by a turn about the registered tissue's centre."""
    centre = pose.apply(np.asarray(msi.obsm["spatial"], float)[msi.obs["in_tissue"].to_numpy(bool)]).mean(axis=0)
    turn = Pose.similarity(1.0, degrees)
    return Pose.similarity(1.0, degrees, False, centre - turn.apply(centre[None])[0]) @ pose


def test_true_pose_is_high(mirrored_pair):
    rna, msi, affine = mirrored_pair
    qc = assess_pose(rna, msi, affine)
    assert qc.confidence == "high", qc.reason
    assert qc.details["method"] == "given"
    assert qc.details["pose_drift_um"] < 20.0  # the outlines hold the true pose


@pytest.mark.parametrize(
    ("shift_um", "turn_deg"),
    [(300.0, 0.0), (0.0, 10.0)],  # 300 um off; a 10 degree turn puts the tissue edge ~150 um off
)
def test_pose_moved_by_hand_is_low(mirrored_pair, shift_um, turn_deg):
    rna, msi, affine = mirrored_pair
    moved = _turned_about_tissue(Pose.similarity(1.0, 0.0, False, (shift_um, 0.0)) @ affine, msi, turn_deg)
    qc = assess_pose(rna, msi, moved)
    assert qc.confidence == "low"
    assert "refitted on the tissue outlines the pose moves" in qc.reason
    assert qc.details["pose_drift_um"] > 50.0


def test_plan_fit_without_refinement_gets_the_same_checks(mirrored_pair, mirrored_registration):
    """refine_fit=False returns moscot's fit as is; it is checked like the default pose."""
    rna, msi, affine = mirrored_pair
    raw = register(rna, msi, refine_fit=False, device="cpu", n_subsample=200)
    assert raw.qc.details["chosen"] == "transport plan (refine_fit=False)"
    for key in ("pose_drift_um", "pose_spread_um", "pose_slack_um", "plan_agreement"):
        assert key in raw.qc.details and key in mirrored_registration.qc.details
    error = median_error(raw, msi, affine)
    assert error > 30.0  # here moscot's own fit is off: the premise of the test
    assert raw.qc.confidence == "low"
    # the coupling's agreement with the pose is reported: the default pose differs from the plan's
    assert 0.0 <= mirrored_registration.qc.details["plan_agreement"] <= 1.0
