"""Synthetic data with a known truth, written in the real file formats.

:func:`synthetic_vicari` makes serial tissue sections in the Vicari et al. (SMA) design:
Visium RNA on a hexagonal spot grid and MALDI-MSI on its own raster, with everything the
real data hide (the MSI -> Visium affine, the noise-free metabolite means at each spot,
spatial domains, cell-state mixtures). :meth:`SyntheticVicari.write` writes spaceranger
outs, imzML (processed or continuous centroids) and the SMA csv export, so the readers,
the registration and the whole pipeline run on it as on real files.

It is made hard enough to be honest about what a method recovers:

- RNA counts are sparse: negative-binomial draws over cell-state gene programmes, with a
  heavy-tailed gene abundance and library sizes that vary by spot, region and section;
- each section has its own per-gene batch effect, MSI intensity scale and metabolite field
  that RNA cannot explain, so what a model learns on some sections bounds what it can
  predict on another;
- each section lies on its slide in its own pose (shift, rotation, small smooth warp), and
  the MSI raster is rotated, scaled, optionally mirrored and off-centre: it covers the
  tissue only in part and hits plenty of background;
- MSI spectra carry pixel-wide and per-peak noise, a detection limit (exact zeros), matrix
  and contaminant peaks, and centroid m/z jitter.

:func:`paired_truth` pairs each spot with a noisy observation of its true metabolites, as a
perfect alignment would: the model's input without the alignment stage.
:func:`synthetic_mosaic` makes a mosaic multiome (RNA, ATAC, protein; batches that measured
different modalities) for integration and query mapping.
"""

from ._containers import SyntheticSection, SyntheticVicari
from ._paired_truth import paired_truth
from ._synthetic_mosaic import synthetic_mosaic
from ._synthetic_vicari import GENERATOR_VERSION, synthetic_vicari

__all__ = ["GENERATOR_VERSION", "SyntheticSection", "SyntheticVicari", "paired_truth", "synthetic_mosaic", "synthetic_vicari"]
