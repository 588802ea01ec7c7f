"""Where one section's files lie: what the readers, the real-data layouts and the pipeline share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


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
    """

    name: str
    visium: Path
    msi: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "visium", Path(self.visium))
        if self.msi is not None:
            object.__setattr__(self, "msi", Path(self.msi))
