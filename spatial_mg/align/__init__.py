"""Register MALDI-MSI pixels onto spatial-transcriptomics spots, pair them, and store both.

- :func:`register`: the transform from MSI micrometres to STR micrometres (moscot optimal
  transport on the tissue geometry, or landmarks), with QC figures and a confidence flag.
- :func:`pair`: one row per spot with the MSI intensities at its place, as MuData.
- :func:`to_spatialdata`: spots, pixels and the registration in one SpatialData object.
"""

from ._pair import pair
from ._register import register
from ._result import RegistrationQC, RegistrationResult
from ._spatialdata import to_spatialdata

__all__ = ["RegistrationQC", "RegistrationResult", "pair", "register", "to_spatialdata"]
