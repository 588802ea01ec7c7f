"""MaskAligner.slack: how far a pose can slide before the outlines mismatch clearly more."""

from __future__ import annotations

import numpy as np

from spatial_mg.align import Pose
from spatial_mg.align._window import Window
from spatial_mg.align._qc import MAX_SLACK
from spatial_mg.align._refine import MaskAligner

PITCH = 100.0


def _lattice(half: float, pitch: float) -> np.ndarray:
    g = np.arange(-half, half + pitch / 2, pitch)
    xx, yy = np.meshgrid(g, g)
    return np.column_stack([xx.ravel(), yy.ravel()])


def _aligner(tissue) -> MaskAligner:
    """Both modalities measure the same square; ``tissue`` picks the tissue points."""
    spots, pixels = _lattice(1500.0, PITCH), _lattice(1500.0, 75.0)
    return MaskAligner(
        pixels[tissue(pixels)],
        Window(pixels, 37.5),
        spots[tissue(spots)],
        Window(spots, 50.0),
        msi_spacing=75.0,
        rna_spacing=PITCH,
    )


def _blob(p: np.ndarray) -> np.ndarray:
    """An ellipse with a corner bitten out: no direction to slide, turn or scale along for free."""
    inside = (p[:, 0] / 1000.0) ** 2 + (p[:, 1] / 650.0) ** 2 < 1.0
    return inside & ~((p[:, 0] > 400.0) & (p[:, 1] > 150.0))


def test_a_whole_blob_pins_the_pose():
    aligner = _aligner(_blob)
    assert aligner.slack(Pose.identity()) < MAX_SLACK * PITCH  # not flagged


def test_a_straight_edge_lets_the_pose_slide_along_it():
    """Tissue below a straight line across the whole window: a shift along the line costs nothing."""
    aligner = _aligner(lambda p: p[:, 1] < 200.0)
    assert aligner.slack(Pose.identity(), scale=False) >= 1.4 * PITCH  # the cap: no rise at all along the line
    assert aligner.slack(Pose.identity()) >= 1.4 * PITCH
