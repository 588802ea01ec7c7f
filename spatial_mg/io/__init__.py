"""Readers and writers of the real file formats (Visium outs, imzML, SMA csv exports), and sections from SpatialData."""

from ._read_imzml import read_imzml
from ._read_sma_csv import read_sma_csv
from ._read_visium import read_visium
from ._section_files import SectionFiles
from ._spatialdata import msi_from_spatialdata, section_from_spatialdata
from ._write_imzml import IMZML_MODES, write_imzml
from ._write_sma_csv import write_sma_csv
from ._write_visium import write_visium

__all__ = [
    "IMZML_MODES",
    "SectionFiles",
    "msi_from_spatialdata",
    "read_imzml",
    "read_sma_csv",
    "read_visium",
    "section_from_spatialdata",
    "write_imzml",
    "write_sma_csv",
    "write_visium",
]
