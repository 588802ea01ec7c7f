"""Visium capture-area geometry: the hexagonal spot grid and its fixed barcode whitelist."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .._constants import VISIUM_CAPTURE_AREA_11MM, VISIUM_PITCH_UM

_MAX_ROWS, _MAX_COLS = VISIUM_CAPTURE_AREA_11MM  # the largest area: the whitelist covers all its grid positions
_WHITELIST_SEED = 20190408  # fixed: like 10x's whitelist, barcodes never depend on the data seed


def grid_spots(n_rows: int, n_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(array_row, array_col)`` of every spot of an ``n_rows x n_cols`` capture area."""
    row, col = np.mgrid[0:n_rows, 0:n_cols]
    keep = (row + col) % 2 == 0
    return row[keep].astype(np.int64), col[keep].astype(np.int64)


def grid_to_um(array_row: np.ndarray, array_col: np.ndarray) -> np.ndarray:
    """Spot centres in micrometres relative to spot (0, 0): x = col * pitch / 2, y = row * pitch * sqrt(3) / 2."""
    half = VISIUM_PITCH_UM / 2
    return np.column_stack([array_col * half, array_row * half * np.sqrt(3.0)]).astype(np.float64)


@lru_cache(maxsize=1)
def _whitelist() -> np.ndarray:
    rng = np.random.default_rng(_WHITELIST_SEED)
    n = _MAX_ROWS * _MAX_COLS
    while True:  # 4^16 codes: a collision is astronomically rare, but never silently allowed
        codes = rng.integers(0, 4, size=(n, 16), dtype=np.uint8)
        letters = np.frombuffer(b"ACGT", dtype=np.uint8)[codes]
        barcodes = np.array([row.tobytes().decode() + "-1" for row in letters])
        if np.unique(barcodes).size == n:
            return barcodes


def spot_barcodes(array_row: np.ndarray, array_col: np.ndarray) -> np.ndarray:
    """Deterministic 16-letter ``ACGT`` barcodes with the ``-1`` gem-group suffix, one per grid position.

    As on a real slide, a grid position always carries the same barcode, so serial sections
    share barcodes: give sections distinct keys when concatenating them.
    """
    return _whitelist()[np.asarray(array_row) * _MAX_COLS + np.asarray(array_col)]
