"""Plane geometry shared by the simulator and the registration: one rotation, written once."""

from __future__ import annotations

import numpy as np


def rotation_matrix(theta_rad: float) -> np.ndarray:
    """The 2 x 2 matrix that turns column vectors by ``theta_rad`` (counter-clockwise for y up)."""
    c, s = np.cos(theta_rad), np.sin(theta_rad)
    return np.array([[c, -s], [s, c]])
