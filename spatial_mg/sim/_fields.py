"""Smooth random fields that can be evaluated at any point (random Fourier features).

The synthetic tissue must be evaluable at arbitrary positions (Visium spot centres and
MSI pixel centres on a rotated raster), so fields are functions, not images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SmoothField:
    """A vector-valued stationary Gaussian-like random field with a squared-exponential spectrum.

    ``f(p) = sqrt(2 / M) * cos(p @ omega.T + phase) @ weights``: each output has unit
    variance over space and correlation length ``lengthscale``.

    Attributes
    ----------
    omega
        Frequencies, shape ``(M, 2)``, drawn from ``N(0, 1 / lengthscale**2)``.
    phase
        Phases, shape ``(M,)``, uniform on ``[0, 2 pi)``.
    weights
        Output weights, shape ``(M, n_out)``, standard normal.
    """

    omega: np.ndarray
    phase: np.ndarray
    weights: np.ndarray

    @classmethod
    def sample(cls, rng: np.random.Generator, lengthscale: float, n_out: int = 1, n_features: int = 64) -> SmoothField:
        """Draw a field with ``n_out`` independent outputs and the given correlation length (same units as points)."""
        omega = rng.normal(0.0, 1.0 / lengthscale, size=(n_features, 2))
        phase = rng.uniform(0.0, 2 * np.pi, size=n_features)
        weights = rng.normal(size=(n_features, n_out))
        return cls(omega, phase, weights)

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Evaluate at ``points`` (shape ``(n, 2)``); returns shape ``(n, n_out)``."""
        m = self.omega.shape[0]
        out = np.empty((points.shape[0], self.weights.shape[1]))
        # chunked so that 10^6 points x 64 features never needs more than ~100 MB
        step = 200_000
        for i in range(0, points.shape[0], step):
            proj = points[i : i + step] @ self.omega.T + self.phase
            out[i : i + step] = np.cos(proj) @ self.weights
        return out * np.sqrt(2.0 / m)
