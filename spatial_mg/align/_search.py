"""Global pose search: every rotation and both handednesses, every translation, by FFT.

Gromov-Wasserstein cannot tell a pose from its mirror image or from a turn that a nearly
symmetric outline allows, and with partial overlap its plan can put the MSI tissue at the
wrong place inside the spots. So the transport fit is checked against an exhaustive
search of the tissue masks: for each candidate turn (and both handednesses), the MSI
masks are drawn turned, and one FFT cross-correlation scores every translation at once by

    overlap(M_MSI, M_STR) - penalty * [M_MSI on bare STR window + M_STR on bare MSI window],

the mask form of the point score in ``_agreement.agreement``. Scale is held at 1 (both sides
are micrometres); the local refinement fits it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._geometry import rotation_matrix
from ._agreement import MISMATCH_PENALTY
from ._window import Window
from ._masks import Grid, density_mask, hull_mask
from ._pose import Pose


@dataclass(frozen=True)
class SearchHit:
    """A searched pose (MSI um -> RNA um), its mask score, and the turn it was searched at."""

    pose: Pose
    score: float
    turn_deg: float  # in [0, 360): the angle searched (the pose reads it in [-180, 180])
    reflection: bool


def _next_fast(n: int) -> int:
    from scipy.fft import next_fast_len

    return next_fast_len(int(n))


def search_poses(
    msi_tissue: np.ndarray,
    msi_window: Window,
    rna: np.ndarray,
    rna_window: Window,
    *,
    cell: float,
    scale: float = 1.0,
    n_angles: int = 72,
    top: int = 4,
    min_separation_deg: float = 20.0,
    rna_image=None,
) -> list[SearchHit]:
    """The best ``top`` distinct poses over ``n_angles`` turns x both handednesses.

    Parameters
    ----------
    msi_tissue, msi_window
        MSI tissue pixels, and where the MSI measured (micrometres, MSI frame).
    rna, rna_window
        Spots, and where the RNA array measured.
    cell
        Grid spacing of the masks (about the coarser pitch); the blur is the same.
    scale
        MSI -> RNA scale held during the search.
    n_angles
        Turns tried per handedness (72: every 5 degrees).
    top
        Poses returned, best first, at least ``min_separation_deg`` apart (or of the other
        handedness).
    rna_image
        The tissue of the section's H&E image (``_tissue_image.ImageTissue``): the RNA mask
        and window are then the image's, not the spots'.
    """
    sigma = cell
    if rna_image is not None:
        rna_window = rna_image.window
    margin = rna_window.pad + 3 * sigma + cell
    lo = np.minimum(rna.min(axis=0), rna_window.points.min(axis=0)) - margin
    hi = np.maximum(rna.max(axis=0), rna_window.points.max(axis=0)) + margin
    grid_d = Grid(lo, hi, cell)
    # binary masks: soft edges would count as half-mismatched even at the right pose
    m_d = density_mask(rna, grid_d, sigma) if rna_image is None else rna_image.soft_mask(grid_d, sigma)
    m_d = (m_d > 0.5).astype(np.float64)
    w_d = (hull_mask(rna_window.points, rna_window.pad, grid_d, sigma) > 0.5).astype(np.float64)
    bare_d = w_d * (1.0 - m_d)

    centre = msi_tissue.mean(axis=0)
    msi_pad = msi_window.pad
    reach = np.sqrt(((msi_window.points - centre) ** 2).sum(axis=1).max()) * scale + msi_pad * scale + 3 * sigma + 2 * cell
    grid_s = Grid(np.array([-reach, -reach]), np.array([reach, reach]), cell)
    shape = (_next_fast(grid_d.shape[0] + grid_s.shape[0]), _next_fast(grid_d.shape[1] + grid_s.shape[1]))
    f_md = np.fft.rfft2(m_d, shape)
    f_bare_d = np.fft.rfft2(bare_d, shape)

    found = []
    for reflection in (False, True):
        flip = np.diag([1.0, -1.0 if reflection else 1.0])
        for k in range(n_angles):
            theta = 2 * np.pi * k / n_angles
            linear = scale * rotation_matrix(theta) @ flip
            tissue = (msi_tissue - centre) @ linear.T
            window = (msi_window.points - centre) @ linear.T
            m_s = (density_mask(tissue, grid_s, sigma) > 0.5).astype(np.float64)
            w_s = (hull_mask(window, msi_pad * scale, grid_s, sigma) > 0.5).astype(np.float64)
            u = m_s - MISMATCH_PENALTY * w_s * (1.0 - m_s)
            # correlation: sum_p S[p] D[p + tau], via conj(F(S)) F(D)
            corr = np.fft.irfft2(np.conj(np.fft.rfft2(u, shape)) * f_md, shape)
            corr -= MISMATCH_PENALTY * np.fft.irfft2(np.conj(np.fft.rfft2(m_s, shape)) * f_bare_d, shape)
            best = np.unravel_index(int(np.argmax(corr)), corr.shape)
            shift = np.array(best, dtype=float)
            # wrap negative shifts
            shift[0] -= shape[0] if shift[0] > shape[0] - grid_s.shape[0] else 0
            shift[1] -= shape[1] if shift[1] > shape[1] - grid_s.shape[1] else 0
            # S pixel p lands on D pixel p + tau: local q -> grid_d.origin + tau * cell + (q - grid_s.origin)
            t = grid_d.origin - grid_s.origin + shift[::-1] * cell
            affine = np.eye(3)
            affine[:2, :2] = linear
            affine[:2, 2] = t - linear @ centre
            found.append(SearchHit(Pose(affine), float(corr[best]) * cell * cell, np.degrees(theta), reflection))

    found.sort(key=lambda hit: -hit.score)
    chosen: list[SearchHit] = []
    for hit in found:
        distinct = all(
            hit.reflection != c.reflection or abs((hit.turn_deg - c.turn_deg + 180) % 360 - 180) >= min_separation_deg
            for c in chosen
        )
        if distinct:
            chosen.append(hit)
        if len(chosen) == top:
            break
    return chosen

