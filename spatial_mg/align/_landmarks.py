"""Registration from user-given point pairs (landmarks), with residuals that expose a bad one."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._inputs import check_points
from ._pose import Pose
from ._procrustes import fit_affine, fit_similarity

LANDMARK_COLUMNS = ("msi_x", "msi_y", "rna_x", "rna_y")
# an RMS residual beyond this many coarser pitches is more than hand placement scatters
# (a landmark lands within about a pixel or a spot): one of them is misplaced
_MAX_RMS_PITCHES = 2


def landmark_pose(landmarks, *, transform: str, scale: bool, pitch: float) -> tuple[Pose, dict, list[str]]:
    """The pose through the landmarks, its residual figures, and what to doubt about it.

    ``pitch`` is the coarser of the two pitches (um): the unit of what a residual may be.
    """
    msi, rna = parse_landmarks(landmarks)
    pose, info = fit_landmarks(msi, rna, transform, scale)
    notes = []
    if len(msi) == 3 and transform == "affine":
        notes.append("three landmarks determine an affine exactly: the residual cannot reveal a misplaced one")
    limit = _MAX_RMS_PITCHES * pitch
    if info["landmark_rms_um"] > limit:
        worst = int(np.argmax(info["landmark_residuals_um"]))
        notes.append(
            f"the landmarks miss the fitted transform by {info['landmark_rms_um']:.0f} um RMS (more than {limit:.0f} um); "
            f"landmark {worst} is furthest off: check it"
        )
    return pose, info, notes


def parse_landmarks(landmarks) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks as ``(msi_um, rna_um)`` arrays from a pair of arrays or a DataFrame.

    A DataFrame needs the columns ``msi_x, msi_y, rna_x, rna_y`` (micrometres).
    """
    if landmarks is None:
        raise ValueError(
            "method='landmarks' needs landmarks=(msi_points_um, rna_points_um): two (k, 2) arrays of matching "
            "points, k >= 3, in micrometres (or a DataFrame with columns msi_x, msi_y, rna_x, rna_y)."
        )
    if isinstance(landmarks, pd.DataFrame):
        missing = [c for c in LANDMARK_COLUMNS if c not in landmarks.columns]
        if missing:
            raise KeyError(f"The landmark table lacks columns {missing}; it needs {list(LANDMARK_COLUMNS)} in micrometres.")
        msi = landmarks[["msi_x", "msi_y"]].to_numpy(np.float64)
        rna = landmarks[["rna_x", "rna_y"]].to_numpy(np.float64)
    else:
        try:
            msi, rna = (np.asarray(p, dtype=np.float64) for p in landmarks)
        except (TypeError, ValueError):
            raise ValueError("landmarks must be (msi_points_um, rna_points_um), two (k, 2) arrays.") from None
    if msi.shape != rna.shape:
        raise ValueError(f"The MSI and RNA landmarks differ in shape: {msi.shape} vs {rna.shape}; each MSI point needs its partner.")
    check_points(msi, "MSI landmarks")
    check_points(rna, "RNA landmarks")
    return msi, rna


def fit_landmarks(msi: np.ndarray, rna: np.ndarray, transform: str = "similarity", scale: bool = True) -> tuple[Pose, dict]:
    """Fit the transform through the landmarks; return it with residual figures.

    The figures are the RMS and per-landmark residuals, and for more landmarks than the
    transform needs, the leave-one-out residuals (each landmark predicted by a fit to the
    others), which are what a misplaced landmark inflates.
    """
    need = 3 if transform == "affine" else 2

    def fit(a, b):
        return fit_affine(a, b) if transform == "affine" else fit_similarity(a, b, scale=scale)

    pose = fit(msi, rna)
    residuals = np.linalg.norm(pose.apply(msi) - rna, axis=1)
    info = {
        "n_landmarks": len(msi),
        "landmark_rms_um": float(np.sqrt(np.mean(residuals**2))),
        "landmark_median_um": float(np.median(residuals)),
        "landmark_residuals_um": residuals.tolist(),
    }
    if len(msi) > need + 1:
        loo = []
        for k in range(len(msi)):
            keep = np.arange(len(msi)) != k
            try:
                t = fit(msi[keep], rna[keep])
            except ValueError:
                continue
            loo.append(float(np.linalg.norm(t.apply(msi[k : k + 1]) - rna[k])))
        info["landmark_loo_um"] = loo
        info["landmark_loo_median_um"] = float(np.median(loo)) if loo else float("nan")
    return pose, info
