"""Where one section's files lie: what the readers, the real-data layouts and the pipeline share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# keys of an MSI AnnData's uns["spatial_mg"] that say how it was acquired; sections whose
# values differ measured different molecules (see spatial_mg.pipeline.stack_sections)
MSI_ACQUISITION_KEYS = ("matrix", "polarity")
POLARITIES = ("positive", "negative")


@dataclass(frozen=True)
class SectionFiles:
    """One section's files: a spaceranger ``outs/`` folder and, where measured, an MSI file.

    Attributes
    ----------
    name
        The section's identity (``obs["section"]`` once read); unique within a study.
    visium
        The spaceranger ``outs/`` folder (or one laid out like it).
    msi
        An ``.imzML`` file (its ``.ibd`` beside it) or an SMA ``.csv`` export; ``None`` for a
        section that has RNA only.
    msi_matrix
        The MALDI matrix the MSI was acquired with (e.g. ``"DHB"``, ``"9-AA"``); ``None``
        where not known. Sections of different matrices measure different molecules.
    msi_polarity
        The ion mode of the MSI, ``"positive"`` or ``"negative"``; ``None`` where not known.
    landmarks
        A landmark table published with the section (SMA / MAGPIE ``landmarks_noHE.csv``),
        for ``spatial_mg.align.register(..., method="landmarks")``; ``None`` if there is none.
    """

    name: str
    visium: Path
    msi: Path | None = None
    msi_matrix: str | None = None
    msi_polarity: str | None = None
    landmarks: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "visium", Path(self.visium))
        for key in ("msi", "landmarks"):
            if getattr(self, key) is not None:
                object.__setattr__(self, key, Path(getattr(self, key)))
        if self.msi_polarity is not None and self.msi_polarity not in POLARITIES:
            raise ValueError(
                f"Section '{self.name}': msi_polarity must be one of {POLARITIES} or None (not known), "
                f"got {self.msi_polarity!r}."
            )

    def msi_acquisition(self) -> dict[str, str]:
        """The known ``matrix`` and ``polarity`` of the MSI, as the MSI AnnData records them in
        ``uns["spatial_mg"]`` (unknown ones left out)."""
        values = dict(zip(MSI_ACQUISITION_KEYS, (self.msi_matrix, self.msi_polarity), strict=True))
        return {key: value for key, value in values.items() if value is not None}
