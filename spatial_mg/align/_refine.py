"""Local refinement of a pose: align the two soft tissue masks where both modalities measured.

The objective is the squared difference of the MSI and RNA tissue masks (``_masks``)
over a comparison area Omega, on the RNA grid:

    E(T) = sum_{z in Omega} (M_MSI(T^-1 z) - M_RNA(z))^2,

minimised over the similarity ``T`` (MSI um -> RNA um: rotation, log scale, translation;
handedness held) by L-BFGS with analytic gradients, optionally then over a full affine.
Both masks are blurred by the same width (the coarser pitch), so a curved outline is
drawn the same way by both and the blur biases neither scale nor position.

Omega is where both modalities measured under the current pose (both windows), eroded by
a margin, held fixed during a solve and then recomputed: tissue that one modality did not
measure (a raster that misses part of the section, spots cut off by the capture area)
pulls on nothing, and a pose cannot lower E by moving its window to compare less.
Matching masks rather than points keeps the scale unbiased (see ``_masks``) and, unlike
point-to-point ICP/CPD steps, converges in tens of evaluations even though only the
outline carries information. From spot centres alone the precision left (about 12 um at
a 100 um spot pitch and 75 um pixels) is set by how coarsely the spots sample the
outline, not by the optimiser; when the section carries its H&E image, the RNA mask is
the image's tissue (``_tissue_image``, ``_rna_outline``), whose edge is sharp, and the
MSI pixels are what is left coarse. Each MSI edge pixel is drawn by the share of it the
tissue covers, read from its signal (``_partial_volume``), when the intensities allow. What was tried is in
``benchmarks/results/alignment_notes.md``.

``MaskAligner.slack`` measures how well the outline pins the pose: how far it can slide
along the flattest combination of turn, scale and shift before the mismatch rises 20 %.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage
from scipy.optimize import minimize

from .._geometry import rotation_matrix
from ._window import Window
from ._masks import TissueImage
from ._pose import Pose

if TYPE_CHECKING:
    from ._section import Section

_ROUNDS = 4  # comparison-area updates
_FLAT = 1e-3  # a mask this close to 0 or 1 is flat (no outline nearby)
_SLACK_RISE = 0.2  # ``slack``: how much more mismatch counts as "the pose is pinned"


def _similarity_parts(p: np.ndarray, handed: float, length: float, anchor: np.ndarray, fit_scale: bool):
    theta, log_s = p[0], (p[1] if fit_scale else 0.0)
    tau = p[2:4] if fit_scale else p[1:3]
    s = np.exp(log_s)
    rot = rotation_matrix(theta)
    flip = np.diag([1.0, handed])
    t = anchor + length * tau
    return s, rot, flip, t


def _to_params(pose: Pose, length: float, anchor: np.ndarray, fit_scale: bool) -> tuple[np.ndarray, float]:
    handed = -1.0 if pose.reflection else 1.0
    tau = (pose.shift - anchor) / length
    head = [np.deg2rad(pose.rotation_deg)] + ([np.log(pose.scale)] if fit_scale else [])
    return np.array(head + list(tau)), handed


def _from_params(p, handed, length, anchor, fit_scale, fixed_scale: float) -> np.ndarray:
    s, rot, flip, t = _similarity_parts(p, handed, length, anchor, fit_scale)
    out = np.eye(3)
    out[:2, :2] = (s if fit_scale else fixed_scale) * rot @ flip
    out[:2, 2] = t
    return out


class _Terms:
    """E(T) and dE/d(A, t) on the RNA grid samples fixed for one round (see module notes)."""

    def __init__(self, aligner: MaskAligner, pose: Pose, margin: float):
        src, dst = aligner.src, aligner.dst
        pos = dst.grid.positions()
        m_src, w_src = src.sample(pose.inverse().apply(pos))
        both = (dst.window.ravel() > 0.5) & (w_src > 0.5)
        radius = max(int(np.ceil(margin / dst.grid.cell)), 0)
        disk = None
        if radius:
            yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
            disk = xx**2 + yy**2 <= radius**2
            both = ndimage.binary_erosion(both.reshape(dst.grid.shape), structure=disk).ravel()
        # only samples near an outline change E while the pose moves by < margin; the rest
        # add a constant (this saves most of the work)
        m_dst = dst.mask.ravel()
        edge = ((m_dst > _FLAT) & (m_dst < 1 - _FLAT)) | ((m_src > _FLAT) & (m_src < 1 - _FLAT))
        if disk is not None:
            edge = ndimage.binary_dilation(edge.reshape(dst.grid.shape), structure=disk).ravel()
        both &= edge
        self.src = src
        self.z = pos[both]
        self.target = m_dst[both]
        self.norm = max(float(both.sum()), 1.0)

    def __call__(self, pose: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """E, dE/dA (2 x 2) and dE/dt at the 3 x 3 matrix ``pose`` (A, t: its linear part and shift).

        A bare matrix: the optimisers call this for every trial step.
        """
        inv_linear = np.linalg.inv(pose[:2, :2])
        d = self.z - pose[:2, 2]
        u = d @ inv_linear.T
        m, mx, my = self.src.sample(u, with_gradients=True, window=False)
        r = m - self.target
        g = 2 * r[:, None] * np.column_stack([mx, my])  # dE/du per sample
        # u = B (z - t) with B = A^-1: dE/dB = g^T (z - t); dB = -B dA B
        d_b = g.T @ d
        d_linear = -inv_linear.T @ d_b @ inv_linear.T
        d_shift = -inv_linear.T @ g.sum(axis=0)
        return float((r * r).sum()) / self.norm, d_linear / self.norm, d_shift / self.norm


def _refine_similarity(terms: _Terms, init: Pose, fit_scale: bool, length: float, anchor: np.ndarray) -> Pose:
    fixed_scale = init.scale
    p0, handed = _to_params(init, length, anchor, fit_scale)
    flip = np.diag([1.0, handed])

    def f(p):
        s, rot, _, t = _similarity_parts(p, handed, length, anchor, fit_scale)
        s = s if fit_scale else fixed_scale
        pose = np.eye(3)
        pose[:2, :2] = s * rot @ flip
        pose[:2, 2] = t
        e, d_linear, d_shift = terms(pose)
        d_rot = np.array([[-np.sin(p[0]), -np.cos(p[0])], [np.cos(p[0]), -np.sin(p[0])]])
        grad = [float((d_linear * (s * d_rot @ flip)).sum())]
        if fit_scale:
            grad.append(float((d_linear * pose[:2, :2]).sum()))
        grad.extend(list(length * d_shift))
        return e, np.array(grad)

    res = minimize(f, p0, jac=True, method="L-BFGS-B", options={"maxiter": 100, "gtol": 1e-9, "ftol": 1e-10})
    return Pose(_from_params(res.x, handed, length, anchor, fit_scale, fixed_scale))


def _refine_affine(terms: _Terms, init: Pose, length: float, anchor: np.ndarray) -> Pose:
    p0 = np.concatenate([init.linear.ravel(), (init.shift - anchor) / length])

    def f(p):
        pose = np.eye(3)
        pose[:2, :2] = p[:4].reshape(2, 2)
        pose[:2, 2] = anchor + length * p[4:]
        e, d_linear, d_shift = terms(pose)
        return e, np.concatenate([d_linear.ravel(), length * d_shift])

    res = minimize(f, p0, jac=True, method="L-BFGS-B", options={"maxiter": 200, "gtol": 1e-10, "ftol": 1e-11})
    out = np.eye(3)
    out[:2, :2] = res.x[:4].reshape(2, 2)
    out[:2, 2] = anchor + length * res.x[4:]
    return Pose(out)


class MaskAligner:
    """Both modalities' tissue images, built once and reused for every candidate pose.

    Parameters
    ----------
    msi_tissue, msi_window
        MSI tissue pixels, and where the MSI measured.
    rna, rna_window
        Spot centres, and where the RNA array measured.
    msi_spacing, rna_spacing
        Pitches (micrometres).
    max_cells
        Grid size cap per side (grid spacing a third of the blur or coarser).
    rna_image
        The tissue of the section's H&E image (``_tissue_image.ImageTissue``), drawn as the
        RNA mask instead of the spots', or ``None``. Its edge is sharp, so the common blur
        is then set by the MSI pitch alone.
    msi_edge, msi_edge_share
        The pixels with any tissue share and their shares (``_partial_volume``), drawn as
        the MSI mask instead of ``msi_tissue`` at 0 / 1, or ``None``.
    """

    def __init__(
        self,
        msi_tissue: np.ndarray,
        msi_window: Window,
        rna: np.ndarray,
        rna_window: Window,
        *,
        msi_spacing: float,
        rna_spacing: float,
        max_cells: int = 800,
        rna_image=None,
        msi_edge: np.ndarray | None = None,
        msi_edge_share: np.ndarray | None = None,
    ):
        self.msi_tissue, self.msi_window = msi_tissue, msi_window
        self.msi_edge, self.msi_edge_share = msi_edge, msi_edge_share
        self.rna, self.rna_window = rna, rna_window
        self.rna_image = rna_image
        self.msi_spacing, self.rna_spacing = msi_spacing, rna_spacing
        # how coarsely the RNA side draws its outline: the spot pitch, or the image's pixel
        self.rna_edge = rna_spacing if rna_image is None else rna_image.um_per_px
        self.max_cells = max_cells
        self.anchor = rna.mean(axis=0)
        self.length = float(np.sqrt(((rna - self.anchor) ** 2).sum(axis=1).mean())) or 1.0
        self._images: dict = {}

    @classmethod
    def for_section(cls, section: Section) -> MaskAligner:
        """The aligner of a prepared section's tissue pixels, spots and windows."""
        return cls(
            section.msi_um,
            section.msi_window,
            section.rna_um,
            section.rna_window,
            msi_spacing=section.msi_pixel_size_um,
            rna_spacing=section.rna_spacing_um,
            rna_image=section.rna_outline.image,
            msi_edge=section.msi_edge_um,
            msi_edge_share=section.msi_edge_share,
        )

    def _build(self, sigma_msi: float, sigma_rna: float) -> None:
        rna_extent = (self.rna_window if self.rna_image is None else self.rna_image.window).points
        extent = max(np.ptp(rna_extent, axis=0).max(), np.ptp(self.msi_window.points, axis=0).max())
        cell = max(min(sigma_msi, sigma_rna) / 3, extent / self.max_cells)
        # each side cached by its own blur and grid: an RNA image drawn at a blur that does
        # not follow the pose's scale is built once
        src_key, dst_key = ("msi", round(sigma_msi, 6), round(cell, 6)), ("rna", round(sigma_rna, 6), round(cell, 6))
        # a blur narrower than 1.5 grid cells would alias on the grid
        if src_key not in self._images:
            # partly covered edge pixels drawn in proportion to their share, when known
            points, share = (self.msi_tissue, None) if self.msi_edge is None else (self.msi_edge, self.msi_edge_share)
            self._images[src_key] = TissueImage(
                points, self.msi_window.points, self.msi_window.pad, max(sigma_msi, 1.5 * cell), cell, weights=share
            )
        if dst_key not in self._images:
            self._images[dst_key] = TissueImage(
                self.rna, self.rna_window.points, self.rna_window.pad, max(sigma_rna, 1.5 * cell), cell, image=self.rna_image
            )
        self.src, self.dst = self._images[src_key], self._images[dst_key]

    def _images_for(self, pose: Pose) -> float:
        """Use the images blurred for ``pose``'s scale; return the blur ``h`` (RNA um).

        The same blur on both sides, in RNA micrometres: the coarser of the two pitches.
        With the image's outline the MSI pitch alone sets it, taken at scale 1 (both sides
        are micrometres, and scales stay within a few percent of 1), so that the RNA image
        and its grid stay the same for every pose and mismatches of poses of different
        scale compare on the same footing.
        """
        s = abs(pose.scale)
        if self.rna_image is None:
            h = max(s * self.msi_spacing, self.rna_spacing)
        else:
            h = max(self.msi_spacing, self.rna_edge)
        self._build(h / s, h)
        return h

    def mismatch(self, pose: Pose) -> float:
        """E per compared sample at ``pose``: how far the two outlines are apart (0: identical).

        The images are rebuilt for each pose's scale, and the new grid alone moves the
        mismatch by up to ~15 %: compare poses of different scale with care.
        """
        h = self._images_for(pose)
        return _Terms(self, pose, 2 * h)(pose.matrix)[0]

    def slack(self, pose: Pose, scale: bool = True, rise: float = _SLACK_RISE) -> float:
        """How far (um, mean over the MSI tissue) ``pose`` can slide before the outlines mismatch ``rise`` more.

        The mismatch with Omega recomputed at every pose (the images, i.e. the blur and the
        grid, held at those of ``pose``: rebuilding them for each scale adds grid noise of
        several percent) is probed around ``pose`` over small similarity moves (turn, scale,
        shift about the tissue centre, each in micrometres of mean displacement); along the
        flattest combination it is followed both ways until it has risen by ``rise``, and
        the farther of the two distances is returned (capped at 1.5 pitches). A pose that
        the outlines pin well gives a fraction of a pitch; a long, nearly straight or
        featureless common outline lets the pose slide much further at almost no cost.
        """
        h = self._images_for(pose)
        margin = 2 * h
        moved = pose.apply(self.msi_tissue)
        centre = moved.mean(axis=0)
        radius = float(np.sqrt(((moved - centre) ** 2).sum(axis=1).mean())) or 1.0

        def move(q: np.ndarray) -> Pose:
            # q: turn and log-scale times the radius, then the shift; all in um of mean displacement
            theta = q[0] / radius
            log_s = q[1] / radius if scale else 0.0
            shift = q[2:4] if scale else q[1:3]
            out = np.eye(3)
            out[:2, :2] = np.exp(log_s) * rotation_matrix(theta)
            out[:2, 2] = centre - out[:2, :2] @ centre + shift
            return Pose(out) @ pose

        def e(q: np.ndarray) -> float:
            t = move(q)
            return _Terms(self, t, margin)(t.matrix)[0]

        n = 4 if scale else 3
        step = 0.15 * h
        e0 = e(np.zeros(n))
        if e0 <= 0:
            return 0.0
        basis = np.eye(n) * step
        plus = [e(b) for b in basis]
        minus = [e(-b) for b in basis]
        hess = np.zeros((n, n))
        for i in range(n):
            hess[i, i] = (plus[i] - 2 * e0 + minus[i]) / step**2
            for j in range(i + 1, n):
                bi, bj = basis[i], basis[j]
                hess[i, j] = hess[j, i] = (e(bi + bj) - e(bi - bj) - e(-bi + bj) + e(-bi - bj)) / (4 * step**2)
        weakest = np.linalg.eigh(hess)[1][:, 0]
        far, reach, pace, level = 0.0, 1.5 * h, 0.1 * h, (1 + rise) * e0
        for sign in (1.0, -1.0):
            d, last = 0.0, e0
            while d < reach:
                now = e(sign * (d + pace) * weakest)
                if now > level:  # crossed: interpolate within the step
                    d += pace * (level - last) / max(now - last, 1e-30)
                    break
                d, last = d + pace, now
            far = max(far, min(d, reach))
        return far

    def refine(self, init: Pose, scale: bool = True, affine: bool = False, rounds: int = _ROUNDS) -> Pose:
        """Refine ``init`` (MSI um -> RNA um); its handedness is kept.

        ``scale=False`` keeps the scale of ``init``; ``affine=True`` finishes with a full
        affine fit; ``rounds`` caps the comparison-area updates (1: a quick screen).
        """
        current = init
        h = self._images_for(init)
        margin = 2 * h
        steps = [lambda terms, t: _refine_similarity(terms, t, scale, self.length, self.anchor)]
        if affine:
            steps.append(lambda terms, t: _refine_affine(terms, t, self.length, self.anchor))
        for step in steps:
            for _ in range(rounds):
                terms = _Terms(self, current, margin)
                previous = current
                current = step(terms, current)
                if previous.displacement(current, self.msi_tissue) < 0.01 * h:
                    break
        return current
