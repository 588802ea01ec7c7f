"""Readers (and writers) of the real file formats: Visium outs, imzML, SMA csv exports."""

from ._read_imzml import read_imzml
from ._read_sma_csv import read_sma_csv
from ._read_visium import read_visium

__all__ = ["read_imzml", "read_sma_csv", "read_visium"]
