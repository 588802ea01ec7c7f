"""Centroid mass spectra: a metabolite peak list, contaminant/matrix peaks, and per-pixel peak lists."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

MZ_RANGE = (100.0, 1000.0)
MIN_PEAK_SEPARATION_PPM = 1000.0  # far wider than any binning tolerance a reader would use
MIN_NOISE_DISTANCE_PPM = 300.0  # noise peaks never fall inside a metabolite's window
JITTER_CLIP = 3.0  # jitter is clipped at 3 standard deviations


def spaced_mz(
    rng: np.random.Generator, n: int, min_ppm: float, avoid: np.ndarray | None = None, avoid_ppm: float = 0.0
) -> np.ndarray:
    """``n`` sorted m/z in :data:`MZ_RANGE`, rounded to 4 decimals, pairwise ``min_ppm`` apart.

    Rounding to 4 decimals lets a csv column name (``"123.4567"``) carry the exact value.
    """
    lo, hi = MZ_RANGE
    chosen: list[float] = []
    avoid = np.empty(0) if avoid is None else np.asarray(avoid)
    for _ in range(200 * n):
        mz = round(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))), 4)
        near_chosen = any(abs(mz - c) < c * min_ppm * 1e-6 for c in chosen)
        near_avoid = avoid.size and np.min(np.abs(avoid - mz) / avoid) * 1e6 < avoid_ppm
        if not near_chosen and not near_avoid:
            chosen.append(mz)
            if len(chosen) == n:
                return np.sort(np.array(chosen))
    raise ValueError(f"Cannot place {n} peaks {min_ppm:g} ppm apart in m/z {lo:g}-{hi:g}; ask for fewer metabolites.")


def pixel_spectra(
    intensities: np.ndarray,
    mz: np.ndarray,
    noise: np.ndarray,
    noise_mz: np.ndarray,
    jitter_ppm: float,
    rng: np.random.Generator,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield each pixel's centroid peak list: detected metabolites and noise peaks, m/z jittered.

    Zero intensities are undetected peaks and are left out, as a peak picker would.
    """
    all_mz = np.concatenate([mz, noise_mz])
    both = np.concatenate([intensities, noise], axis=1)
    for row in both:
        keep = np.flatnonzero(row)
        jitter = np.clip(rng.standard_normal(keep.size), -JITTER_CLIP, JITTER_CLIP) * jitter_ppm * 1e-6
        peaks = all_mz[keep] * (1.0 + jitter)
        order = np.argsort(peaks)
        yield peaks[order], row[keep][order]
