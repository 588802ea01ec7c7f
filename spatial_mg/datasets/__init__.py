"""Datasets: a synthetic Vicari-type (SMA) generator that writes the real file formats."""

from ._dataset import SyntheticSection, SyntheticVicari
from ._synthetic_vicari import synthetic_vicari

__all__ = ["SyntheticSection", "SyntheticVicari", "synthetic_vicari"]
