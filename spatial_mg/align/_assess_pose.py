"""``assess_pose``: the registration's QC for any pose, however it was made.

A pose from another tool, one fixed by hand, or one read back from a file gets the same
figures and verdict as a pose :func:`register` returns: the tissue outlines refit from it
(drift and spread), how firmly they hold it (slack), and the outline search's poses as
rivals (``_verify``).
"""

from __future__ import annotations

import anndata as ad
import numpy as np

from ..io._spatialdata import as_anndata
from ._agreement import PoseScore
from ._candidates import candidate_poses
from ._choose import refine_candidates
from ._inputs import shared_feature_matrices
from ._pose import Pose
from ._qc import assess
from ._refine import MaskAligner
from ._result import RegistrationQC, RegistrationResult
from ._section import prepare_section
from ._verify import verify


def assess_pose(
    rna: ad.AnnData,
    msi: ad.AnnData,
    pose,
    *,
    shared_features: str | tuple[str, str] | None = None,
    scale: bool = True,
    msi_mask: np.ndarray | str | None = None,
    tic_threshold: float | None = None,
    msi_pixel_size_um: float | None = None,
    n_angles: int = 72,
    tissue_image: str | None = "auto",
    msi_edge: str = "soft",
) -> RegistrationQC:
    """The QC of ``pose`` (MSI um -> STR um) on this section, as :func:`register` computes it.

    Parameters
    ----------
    rna, msi
        The section, as for :func:`register`.
    pose
        A :class:`Pose`, a 3 x 3 matrix, or a :class:`RegistrationResult` (its pose).
    shared_features, scale, msi_mask, tic_threshold, msi_pixel_size_um, n_angles, tissue_image, msi_edge
        As for :func:`register`: what the rival poses may use, and how the MSI tissue is
        found. Use the same values the pose was made with.

    Returns
    -------
    :class:`RegistrationQC` (``method`` in its details: ``"given"``).
    """
    if isinstance(pose, RegistrationResult):
        pose = pose.pose
    pose = pose if isinstance(pose, Pose) else Pose(pose)
    rna, msi = as_anndata(rna, "rna", load_images=tissue_image is not None), as_anndata(msi, "msi")
    section = prepare_section(
        rna, msi, msi_pixel_size_um=msi_pixel_size_um, msi_mask=msi_mask, tic_threshold=tic_threshold, tissue_image=tissue_image,
        msi_edge=msi_edge,
    )
    features = shared_feature_matrices(rna, msi, shared_features, section.tissue.mask)
    aligner = MaskAligner.for_section(section)
    score = PoseScore.for_section(section, features)
    rivals = refine_candidates(candidate_poses(section, None, n_angles=n_angles), aligner, score, scale=scale)
    checks = verify(
        pose, rivals, aligner, score, section.msi_um, pitch=section.pitch, scale=scale, affine=not pose.is_similarity
    )
    notes = [] if section.rna_units_known else ["rna.uns['spatial_mg'] does not record micrometres (assumed)"]
    return assess(pose, section, method="given", residual_um=None, details={**section.details(), **checks.details()}, notes=notes)
