"""Datasets: a synthetic Vicari-type (SMA) generator that writes the real file formats."""

from ._paired_truth import paired_truth
from ._synthetic_mosaic import synthetic_mosaic
from ._synthetic_vicari import SyntheticSection, SyntheticVicari, synthetic_vicari

__all__ = ["paired_truth", "SyntheticSection", "SyntheticVicari", "synthetic_mosaic", "synthetic_vicari"]
