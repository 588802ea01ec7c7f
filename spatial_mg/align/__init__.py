"""Register MALDI-MSI pixels onto spatial-transcriptomics spots, pair them, and store both.

- :func:`register`: the pose from MSI micrometres to STR micrometres (moscot optimal
  transport on the tissue geometry, or landmarks), with QC figures and a confidence flag.
- :func:`assess_pose`: the same QC for any pose (one made elsewhere or by hand).
- :func:`pair`: one row per spot with the MSI intensities at its place, as MuData.
- :func:`to_spatialdata`: spots, pixels and the registration in one SpatialData object.
- :class:`Pose`: a plane transform (MSI um -> STR um) as a value; :func:`fit_similarity`,
  :func:`fit_affine` and :func:`fit_plan` fit one to point pairs or a transport plan;
  :func:`landmarks_um` reads landmark tables (micrometres, or SMA / MAGPIE files as published).
- :func:`circles`, :func:`annotating_table` and :data:`GLOBAL`: the spatialdata pieces
  that others who store spots (predictions) reuse.
"""

from ._assess_pose import assess_pose
from ._landmarks import landmarks_um
from ._pair import pair
from ._pose import Pose
from ._procrustes import fit_affine, fit_plan, fit_similarity
from ._register import register
from ._result import RegistrationQC, RegistrationResult
from ._spatialdata import GLOBAL, annotating_table, circles, to_spatialdata

__all__ = [
    "GLOBAL",
    "Pose",
    "RegistrationQC",
    "RegistrationResult",
    "annotating_table",
    "assess_pose",
    "circles",
    "fit_affine",
    "fit_plan",
    "fit_similarity",
    "landmarks_um",
    "pair",
    "register",
    "to_spatialdata",
]
