"""Assigning centroid or profile m/z values to features: a peak list, uniform bins, or a shared axis."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


# Far beyond any instrument's resolution (1e7 bins of 0.0002 Da span 2000 Da); more is a
# mistaken bin_width or a corrupt m/z, and would ask for terabytes
MAX_UNIFORM_BINS = 10_000_000


@dataclass(frozen=True)
class MzBinning:
    """Feature centres and, per centre, the half-width of the window that feeds it.

    ``kind`` is ``"peaks"`` (a peak list with a ppm tolerance), ``"uniform"`` (equal
    bins) or ``"axis"`` (a continuous-mode file's own m/z axis, one feature per value).
    """

    kind: str
    centres: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    ppm: float | None = None
    bin_width: float | None = None

    @property
    def n_bins(self) -> int:
        return len(self.centres)

    def assign(self, mz: np.ndarray) -> np.ndarray:
        """Index of the feature each m/z falls into, or -1 outside every window (nearest centre wins)."""
        if self.kind == "uniform":  # half-open [lower, upper); the last bin also takes its upper edge
            idx = np.floor((mz - self.lower[0]) / self.bin_width).astype(np.int64)
            idx[mz == self.upper[-1]] = self.n_bins - 1
            return np.where((idx >= 0) & (idx < self.n_bins), idx, -1)
        idx = np.searchsorted(self.centres, mz)
        left = np.clip(idx - 1, 0, self.n_bins - 1)
        right = np.clip(idx, 0, self.n_bins - 1)
        nearest = np.where(np.abs(mz - self.centres[left]) <= np.abs(self.centres[right] - mz), left, right)
        inside = (mz >= self.lower[nearest]) & (mz <= self.upper[nearest])
        return np.where(inside, nearest, -1)

    def accumulate(self, mz: np.ndarray, intensity: np.ndarray, owner: np.ndarray, n_rows: int) -> np.ndarray:
        """Sum intensities per (row, feature); ``owner`` gives each value's row."""
        bins = self.assign(mz)
        ok = bins >= 0
        flat = owner[ok] * self.n_bins + bins[ok]
        summed = np.bincount(flat, weights=intensity[ok], minlength=n_rows * self.n_bins)
        return summed.reshape(n_rows, self.n_bins)

    def var(self) -> pd.DataFrame:
        names = [f"mz_{c:.4f}" for c in self.centres]
        if len(set(names)) != len(names):
            names = [f"mz_{c:.6f}" for c in self.centres]
        return pd.DataFrame({"mz": self.centres, "mz_min": self.lower, "mz_max": self.upper}, index=names)

    def describe(self) -> dict:
        out = {"kind": self.kind, "n_bins": int(self.n_bins)}
        if self.ppm is not None:
            out["ppm"] = float(self.ppm)
        if self.bin_width is not None:
            out["bin_width"] = float(self.bin_width)
        return out


def make_binning(
    *,
    mz_bins=None,
    ppm: float = 10.0,
    bin_width: float | None = None,
    mz_range: tuple[float, float] | None = None,
    mz_axis: np.ndarray | None = None,
) -> MzBinning:
    """Build the binning the reader was asked for, validating its arguments."""
    if mz_axis is not None:
        axis = np.asarray(mz_axis, dtype=np.float64)
        if axis.size == 0 or not np.all(np.isfinite(axis)) or np.any(np.diff(axis) <= 0):
            raise ValueError("The continuous-mode m/z axis must be non-empty, finite and strictly increasing.")
        half = np.diff(axis).min() / 4 if axis.size > 1 else 1e-6
        return MzBinning("axis", axis, axis - half, axis + half)
    if mz_bins is not None and bin_width is not None:
        raise ValueError("Give either mz_bins (a peak list) or bin_width (uniform bins), not both.")
    if mz_bins is not None:
        peaks = np.asarray(mz_bins, dtype=np.float64).ravel()
        if peaks.size == 0 or not np.all(np.isfinite(peaks)) or np.any(peaks <= 0):
            raise ValueError("mz_bins must be a non-empty list of positive, finite m/z values.")
        if len(np.unique(peaks)) != len(peaks):
            raise ValueError("mz_bins contains duplicate m/z values; give each peak once.")
        if not np.isfinite(ppm) or ppm <= 0:
            raise ValueError(f"ppm must be a positive tolerance, got {ppm}.")
        peaks = np.sort(peaks)
        half = peaks * ppm * 1e-6
        return MzBinning("peaks", peaks, peaks - half, peaks + half, ppm=ppm)
    if bin_width is None or not np.isfinite(bin_width) or bin_width <= 0:
        raise ValueError(f"bin_width must be a positive width in Da, got {bin_width}.")
    lo, hi = (float(v) for v in mz_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"mz_range must be finite (min, max) with min < max, got {mz_range}.")
    n = max(1, int(np.ceil((hi - lo) / bin_width)))
    if n > MAX_UNIFORM_BINS:
        raise ValueError(
            f"bin_width={bin_width} over mz_range=({lo}, {hi}) makes {n:,} bins, more than {MAX_UNIFORM_BINS:,}: "
            "pass a wider bin_width or a narrower mz_range (m/z values far outside the instrument's range are "
            "a sign of corrupt spectra)."
        )
    edges = lo + bin_width * np.arange(n + 1)
    return MzBinning("uniform", (edges[:-1] + edges[1:]) / 2, edges[:-1], edges[1:], bin_width=bin_width)
