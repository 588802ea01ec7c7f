"""How well two tissues agree where both modalities measured: the score that picks a pose."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ._pose import Pose
from ._section import Section
from ._window import Window

MISMATCH_PENALTY = 2.0  # cost of a bare pixel or spot in the common area, against +1 per matched one
# a pixel and a spot this many coarser pitches apart still count as matched: beyond the
# farthest a point of a shared tissue can lie from the other lattice's nearest point
# (pitch / sqrt(2) on a square raster, pitch / sqrt(3) on a hexagonal grid), so a right
# pose matches everything it overlaps whatever the two lattices' phase
MATCH_PITCHES = 0.75


def match_radius(msi_spacing_um: float, rna_spacing_um: float, scale: float) -> float:
    """Distance within which a pixel and a spot count as matched: 3/4 of the coarser pitch."""
    return MATCH_PITCHES * max(abs(scale) * msi_spacing_um, rna_spacing_um)


def agreement(
    src_reg: np.ndarray,
    dst: np.ndarray,
    radius: float,
    src_keep: np.ndarray,
    dst_keep: np.ndarray,
    dst_tree: cKDTree | None = None,
) -> tuple[float, int, int]:
    """Score a pose by how the two tissues agree where both modalities measured.

    Points inside the other modality's window count +1 when a counterpart lies within
    ``radius`` and -``MISMATCH_PENALTY`` when none does; the sum is divided by the number
    of all points. A right pose matches everything it overlaps; a wrong one that fits the
    outline in places leaves pixels or spots bare; a pose that overlaps little scores
    little. Returns the score, the matched and the compared point counts.
    """
    dst_tree = dst_tree or cKDTree(dst)
    d_src, _ = dst_tree.query(src_reg[src_keep], distance_upper_bound=radius)
    d_dst, _ = cKDTree(src_reg).query(dst[dst_keep], distance_upper_bound=radius)
    matched = int(np.isfinite(d_src).sum() + np.isfinite(d_dst).sum())
    compared = int(src_keep.sum() + dst_keep.sum())
    score = (matched - MISMATCH_PENALTY * (compared - matched)) / (len(src_reg) + len(dst))
    return float(score), matched, compared


class PoseScore:
    """Scores poses (MSI um -> RNA um) of one section by :func:`agreement` plus shared features.

    Built once per registration, so the spots' KD-tree and both windows serve every pose.

    Parameters
    ----------
    msi_um, rna_um
        MSI tissue pixel centres (MSI um) and spot centres (RNA um).
    msi_window, rna_window
        Where each modality measured.
    msi_spacing_um, rna_spacing_um
        The two pitches.
    features
        ``(rna_features, msi_features)`` for the spots and the tissue pixels, or ``None``.
    """

    def __init__(
        self,
        msi_um: np.ndarray,
        rna_um: np.ndarray,
        *,
        msi_window: Window,
        rna_window: Window,
        msi_spacing_um: float,
        rna_spacing_um: float,
        features: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        self.msi_um, self.rna_um = msi_um, rna_um
        self.msi_window, self.rna_window = msi_window, rna_window
        self.msi_spacing_um, self.rna_spacing_um = msi_spacing_um, rna_spacing_um
        self.features = features
        self.rna_tree = cKDTree(rna_um)

    @classmethod
    def for_section(cls, section: Section, features: tuple[np.ndarray, np.ndarray] | None = None) -> PoseScore:
        """The score of a prepared section's tissue pixels and spots."""
        return cls(
            section.msi_um,
            section.rna_um,
            msi_window=section.msi_window,
            rna_window=section.rna_window,
            msi_spacing_um=section.msi_pixel_size_um,
            rna_spacing_um=section.rna_spacing_um,
            features=features,
        )

    def __call__(self, pose: Pose) -> float:
        """The agreement of the outlines at ``pose``, plus that of the shared features."""
        moved = pose.apply(self.msi_um)
        radius = match_radius(self.msi_spacing_um, self.rna_spacing_um, pose.scale)
        keep_msi = self.rna_window.contains(moved)
        keep_rna = self.msi_window.contains(pose.inverse().apply(self.rna_um))
        outline, _, _ = agreement(moved, self.rna_um, radius, keep_msi, keep_rna, self.rna_tree)
        return outline + self._feature_agreement(moved, radius)

    def _feature_agreement(self, moved: np.ndarray, radius: float) -> float:
        """Half the mean correlation of shared features between matched pixels and spots (0 without).

        Breaks ties between poses that fit the outline alike (a symmetric tissue): only the
        right one also lines up the features.
        """
        if self.features is None:
            return 0.0
        f_rna, f_msi = self.features
        dist, j = self.rna_tree.query(moved, distance_upper_bound=radius)
        hit = np.isfinite(dist)
        if hit.sum() < 3:
            return 0.0
        a, b = f_msi[hit], f_rna[j[hit]]
        corr = [np.corrcoef(a[:, c], b[:, c])[0, 1] for c in range(a.shape[1]) if a[:, c].std() > 0 and b[:, c].std() > 0]
        return 0.5 * float(np.mean(corr)) if corr else 0.0
