"""Predictive intervals calibrated across sections: how far a new section's values fall from the prediction.

The model's predictive std describes the noise and the latent uncertainty it saw within
its training sections, not what differs between sections (each section's own metabolite
field, matrix and ionisation). A :class:`Calibration` records, per feature, the quantiles
of ``|y - mean| / std`` over sections that the model predicted without having trained on
them (leave one section out; ``spatial_mg.pipeline.train_model`` makes it), with the
split-conformal correction for a finite number of values. ``PoEVAE.predict`` then scales
the std and returns intervals with the coverage those held-out sections showed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ONE_SIGMA = 0.6826894921370859  # a calibrated std covers this share, as a normal's does
LEVELS = tuple(sorted({round(x, 2) for x in np.arange(0.50, 0.99, 0.01)} | {0.975, 0.99, ONE_SIGMA}))


@dataclass(frozen=True)
class Calibration:
    """Per-feature quantiles of held-out sections' absolute residuals in units of the predictive std.

    Attributes
    ----------
    target
        The modality calibrated.
    features
        Its features, in the model's order.
    levels
        Central coverage levels at which quantiles are kept.
    quantiles
        ``(len(levels), len(features))``: at each level, the factor by which the std must be
        multiplied for ``mean +- factor * std`` to cover that share of held-out values.
    groups
        The sections held out in turn to measure them.
    n_values
        Held-out values per feature.
    """

    target: str
    features: tuple[str, ...]
    levels: tuple[float, ...]
    quantiles: np.ndarray
    groups: tuple[str, ...]
    n_values: int

    @classmethod
    def from_residuals(cls, target: str, features, scaled_residuals: np.ndarray, groups) -> Calibration:
        """From held-out ``(y - mean) / std`` (cells x features); the conformal quantile at
        each level is the ``ceil((n + 1) level) / n`` empirical quantile of ``|r|``."""
        r = np.abs(np.asarray(scaled_residuals, dtype=np.float64))
        if r.ndim != 2 or r.shape[1] != len(features):
            raise ValueError(f"scaled_residuals must be cells x {len(features)} features, got shape {r.shape}")
        if not np.isfinite(r).all():
            raise ValueError("scaled_residuals must be finite; a zero predictive std gives no scale to calibrate")
        n = r.shape[0]
        if n < 20:
            raise ValueError(f"{n} held-out values are too few to calibrate intervals (need 20 or more)")
        probs = [min(1.0, math.ceil((n + 1) * level) / n) for level in LEVELS]
        quantiles = np.quantile(r, probs, axis=0, method="higher")
        return cls(target, tuple(map(str, features)), LEVELS, quantiles, tuple(map(str, groups)), n)

    def factor(self, level: float) -> np.ndarray:
        """Per feature, the std multiplier of a central interval of ``level`` (interpolated between kept levels)."""
        if not (self.levels[0] <= level <= self.levels[-1]):
            raise ValueError(f"interval must be between {self.levels[0]} and {self.levels[-1]}, not {level}")
        levels = np.asarray(self.levels)
        return np.array([np.interp(level, levels, self.quantiles[:, j]) for j in range(len(self.features))])

    def for_features(self, features) -> Calibration:
        """This calibration with its features in the order given (all must be known)."""
        index = {f: j for j, f in enumerate(self.features)}
        missing = [f for f in features if f not in index]
        if missing:
            raise KeyError(f"the calibration of '{self.target}' lacks features {missing[:5]}")
        cols = [index[f] for f in features]
        return Calibration(self.target, tuple(features), self.levels, self.quantiles[:, cols], self.groups, self.n_values)

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "features": list(self.features),
            "levels": list(self.levels),
            "quantiles": self.quantiles.tolist(),
            "groups": list(self.groups),
            "n_values": int(self.n_values),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        quantiles = np.asarray(data["quantiles"], dtype=np.float64)
        levels, features = tuple(float(x) for x in data["levels"]), tuple(map(str, data["features"]))
        if quantiles.shape != (len(levels), len(features)):
            raise ValueError(f"calibration quantiles have shape {quantiles.shape}, expected {(len(levels), len(features))}")
        return cls(str(data["target"]), features, levels, quantiles, tuple(map(str, data["groups"])), int(data["n_values"]))
