"""The tissue's content as a second estimate of the pose, weighted by how precisely it pins it.

The outlines give the pose (steps 2-5 of ``_register``). The content gives another: the turn
and shift, near that pose, under which the spots' RNA principal components, interpolated
where each MSI tissue pixel lands, explain most of the pixels' MSI components (ridge
regression refitted at every pose, so the estimate is not tied to the pose it checks).

How far to trust it is measured on the section itself: the content's optimum is found again
on spatial block-bootstrap draws of the pixels, and the spread of those optima (sigma_c)
against a prior for the outlines (sigma_o, a tenth of the coarser pitch) sets the share of
the way the pose moves towards it, sigma_o^2 / (sigma_o^2 + sigma_c^2). Thin or unrelated
content spreads widely and barely moves the pose; rich content moves it about half way.

Measured with ``benchmarks/content_probe.py --combine`` (``results/alignment_notes.md``):
on synthetic sections with 300 genes and 30 metabolites the median error went from 9.2 to
8.0 um (seeds 0-9) and from 9.6 to 7.7 um (held-out seeds 10-19); with 20 genes and 10
metabolites it was about neutral (7.9 to 8.0, 9.3 to 9.1). In ``register`` itself
(``benchmarks/alignment.py``, against ``--no-content``) it lowered the error on 19 of 20 rich sections.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import anndata as ad
import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.spatial import cKDTree

from ._intensity_scale import linear_intensities
from ._pose import Pose
from ._section import Section
from ._subsample import even_subsample

N_PIXELS = 4000  # MSI tissue pixels used (an even subsample): the optimum is found 11 times
N_COMPONENTS = 10  # principal components per side
N_GENES = 2000  # most variable genes kept for the RNA components
NEIGHBOURS = 12  # spots interpolated at each pixel
RIDGE = 1.0  # ridge penalty of the RNA -> MSI regression (components have variance ~ 1 or more)
N_DRAWS = 10  # block-bootstrap draws
BLOCK_PITCHES = 3  # bootstrap blocks, in coarser pitches: the content's noise is spatially correlated
OUTLINE_SD_PITCHES = 0.1  # prior spread of the outlines' pose, in coarser pitches


@dataclass(frozen=True)
class Content:
    """Each side's content as principal components.

    Attributes
    ----------
    msi_index
        Positions among the MSI tissue pixels (rows of ``Section.msi_um``).
    msi
        Their components (pixels x components).
    rna
        The spots' components (one row per spot of ``Section.rna_um``).
    """

    msi_index: np.ndarray
    msi: np.ndarray
    rna: np.ndarray


def read_content(rna: ad.AnnData, msi: ad.AnnData, section: Section) -> tuple[Content | None, str]:
    """Each side's content as principal components, or ``None`` and why not.

    MSI values are read on a linear scale where they can be (``linear_intensities``) and
    log-transformed; the spots' ``X`` as counts (scaled to 10,000 per spot, log-transformed)
    when it holds counts, else as it is. Neither input is modified.
    """
    if msi.n_vars < 2 or rna.n_vars < 2:
        return None, f"too few features ({rna.n_vars} genes, {msi.n_vars} MSI features)"
    msi_index = even_subsample(section.msi_um, N_PIXELS)
    msi_values = _msi_log_values(msi[np.flatnonzero(section.tissue.mask)[msi_index]])
    rna_values = _rna_log_values(rna.X)
    msi_pcs = None if msi_values is None else _components(msi_values)
    rna_pcs = None if rna_values is None else _components(rna_values)
    if msi_pcs is None or rna_pcs is None:
        return None, "the MSI intensities or the RNA values are missing or do not vary"
    return Content(msi_index, msi_pcs, rna_pcs), "RNA and MSI principal components"


def _msi_log_values(view: ad.AnnData) -> np.ndarray | None:
    try:
        x, _ = linear_intensities(view)
    except ValueError:  # standardised logs, say: already on a log-like scale
        x = view.X
    if x is None:
        return None
    x = x.toarray() if sp.issparse(x) else np.asarray(x, dtype=np.float64)
    x = x - np.minimum(x.min(axis=0), 0.0)
    positive = x[x > 0]
    return None if positive.size == 0 else np.log1p(x / np.median(positive))


def _rna_log_values(x) -> np.ndarray | None:
    if x is None:
        return None
    x = sp.csr_matrix(x, dtype=np.float64) if sp.issparse(x) else np.asarray(x, dtype=np.float64)
    values = x.data if sp.issparse(x) else x
    if values.size and values.min() >= 0 and np.array_equal(values, np.round(values)):  # counts
        totals = np.asarray(x.sum(axis=1)).ravel()
        factor = 1e4 / np.where(totals > 0, totals, 1.0)
        x = (sp.diags(factor) @ x).log1p() if sp.issparse(x) else np.log1p(x * factor[:, None])
    if sp.issparse(x):
        mean = np.asarray(x.mean(axis=0)).ravel()
        variance = np.asarray(x.multiply(x).mean(axis=0)).ravel() - mean**2
        return x[:, np.argsort(variance)[::-1][:N_GENES]].toarray()
    return x[:, np.argsort(x.var(axis=0))[::-1][:N_GENES]]


def _components(x: np.ndarray) -> np.ndarray | None:
    """Leading principal components of the standardised columns; ``None`` when fewer than two columns vary."""
    if not np.all(np.isfinite(x)):
        return None
    sd = x.std(axis=0)
    x = x[:, sd > 1e-9 * max(float(np.abs(x).max()), 1.0)]  # constant up to rounding: no content
    if x.shape[1] < 2 or len(x) < 3:
        return None
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    try:
        u, s, _ = np.linalg.svd(z, full_matrices=False)
    except np.linalg.LinAlgError:
        return None
    k = min(N_COMPONENTS, len(s))
    return u[:, :k] * s[:k]


class _ContentFit:
    """The share of the pixels' MSI components explained by the spots' interpolated RNA components, per pose."""

    def __init__(self, section: Section, content: Content):
        self.pixels = section.msi_um[content.msi_index]
        self.msi = content.msi
        self.rna = content.rna
        self.tree = cKDTree(section.rna_um)
        self.width = section.rna_spacing_um / 2
        self.k = min(NEIGHBOURS, len(section.rna_um))

    def interpolated(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The spots' components at ``points`` (Gaussian weights, half a pitch wide) and the weights' total:
        above 0.5 where the spots surround the point."""
        dist, idx = self.tree.query(points, k=self.k)
        dist, idx = dist.reshape(len(points), self.k), idx.reshape(len(points), self.k)
        w = np.exp(-0.5 * (dist / self.width) ** 2)
        total = w.sum(axis=1)
        return (w[:, :, None] * self.rna[idx]).sum(axis=1) / np.maximum(total, 1e-12)[:, None], total

    def regression(self, matrix: np.ndarray, rows: np.ndarray):
        """Under ``matrix``: the spots' components interpolated at the pixels the spots surround (with
        a constant column), those pixels' MSI components and the ridge map between them; ``None``
        when too few pixels are surrounded to fit it."""
        values, total = self.interpolated(self.pixels[rows] @ matrix[:2, :2].T + matrix[:2, 2])
        inside = total > 0.5  # pixels the spots surround
        if inside.sum() <= 2 * self.rna.shape[1]:
            return None
        g = np.column_stack([values[inside], np.ones(int(inside.sum()))])
        y = self.msi[rows][inside]
        beta = np.linalg.solve(g.T @ g + RIDGE * np.eye(g.shape[1]), g.T @ y)
        return g, y, beta

    def explained(self, matrix: np.ndarray, rows: np.ndarray) -> float:
        fitted = self.regression(matrix, rows)
        if fitted is None:
            return 0.0
        g, y, beta = fitted
        return float(1.0 - ((y - g @ beta) ** 2).sum() / ((y - y.mean(axis=0)) ** 2).sum())


def _turned(pose: Pose, p: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """``pose`` followed by a turn of ``p[2]`` rad about ``centre`` and a shift of ``p[:2]`` um."""
    c, s = np.cos(p[2]), np.sin(p[2])
    turn = np.eye(3)
    turn[:2, :2] = [[c, -s], [s, c]]
    turn[:2, 2] = centre - turn[:2, :2] @ centre + p[:2]
    return turn @ pose.matrix


def local_optimum(fit: _ContentFit, pose: Pose, centre: np.ndarray, rows: np.ndarray, *, step_um: float) -> np.ndarray:
    """The shift (um) and turn (rad, about ``centre``) after ``pose`` under which the content explains most
    (Nelder-Mead from ``pose``, first steps of ``step_um``)."""
    simplex = [[0, 0, 0], [step_um, 0, 0], [0, step_um, 0], [0, 0, step_um / max(float(np.ptp(fit.pixels)), 1.0)]]
    result = minimize(
        lambda p: -fit.explained(_turned(pose, p, centre), rows),
        np.zeros(3),
        method="Nelder-Mead",
        options={"initial_simplex": simplex, "xatol": 0.3, "fatol": 1e-7},
    )
    return result.x


@dataclass(frozen=True)
class ContentEstimate:
    """The content's own optimum near a pose, and how precisely the section pins it.

    Attributes
    ----------
    pose
        The pose it was searched from.
    step
        The optimum as a shift (um, x and y) and a turn (rad) about ``centre``, after ``pose``.
    centre
        The pixels' centre under ``pose``.
    sigma_c2
        The mean squared displacement of the optimum over the block-bootstrap draws (um^2).
    """

    pose: Pose
    step: np.ndarray
    centre: np.ndarray
    sigma_c2: float

    def at(self, share: float) -> Pose:
        """``pose`` moved by ``share`` of the way to the optimum."""
        return Pose(_turned(self.pose, share * self.step, self.centre))


def content_estimate(pose: Pose, section: Section, content: Content, *, seed: int = 0) -> ContentEstimate:
    """The content's optimum near ``pose`` and its bootstrap spread (module notes)."""
    fit = _ContentFit(section, content)
    centre = pose.apply(fit.pixels).mean(axis=0)
    coarser = section.pitch

    def optimum(rows: np.ndarray) -> np.ndarray:
        return local_optimum(fit, pose, centre, rows, step_um=0.1 * coarser)

    best = optimum(np.arange(len(fit.pixels)))
    at_best = Pose(_turned(pose, best, centre))
    cells = np.floor(fit.pixels / (BLOCK_PITCHES * coarser)).astype(np.int64)
    blocks = np.unique(cells, axis=0, return_inverse=True)[1].ravel()
    members = [np.flatnonzero(blocks == b) for b in range(blocks.max() + 1)]
    rng = np.random.default_rng(seed)
    spreads = []
    for _ in range(N_DRAWS):
        rows = np.concatenate([members[b] for b in rng.integers(0, len(members), len(members))])
        spreads.append(Pose(_turned(pose, optimum(rows), centre)).displacement(at_best, fit.pixels))
    return ContentEstimate(pose, best, centre, float(np.mean(np.square(spreads))))


def outline_variance(section: Section) -> float:
    """sigma_o^2: the prior spread of the outlines' pose (um^2), a tenth of the coarser pitch squared."""
    return (OUTLINE_SD_PITCHES * section.pitch) ** 2


@dataclass(frozen=True)
class ContentMove:
    """The pose after the content's share of the way, and QC details."""

    pose: Pose
    details: dict


def content_move(
    pose: Pose, section: Section, content: Content, *, seed: int = 0, outline_sd_um: float | None = None
) -> ContentMove:
    """Move ``pose`` towards the content's optimum by the share its precision earns (module notes).

    ``outline_sd_um``: sigma_o where the outlines are known to pin the pose loosely (their
    slack, where it exceeds the QC's limit); ``None``: the prior (:func:`outline_variance`).

    Details: ``content_sd_um`` (sigma_c: the bootstrap spread of the content's optimum,
    mean over the pixels), ``content_share`` (of the way taken), ``content_offset_um`` (how
    far the content's optimum lies from ``pose``) and ``content_move_um`` (the move made).
    """
    start = time.perf_counter()
    estimate = content_estimate(pose, section, content, seed=seed)
    sigma_o2 = outline_variance(section) if outline_sd_um is None else max(outline_variance(section), outline_sd_um**2)
    share = sigma_o2 / (sigma_o2 + estimate.sigma_c2)
    moved = estimate.at(share)
    details = {
        "content": "used: the pose moved towards the content's optimum by its share",
        "content_sd_um": float(np.sqrt(estimate.sigma_c2)),
        "content_share": float(share),
        "content_offset_um": float(estimate.at(1.0).displacement(pose, section.msi_um)),
        "content_move_um": float(moved.displacement(pose, section.msi_um)),
        "content_seconds": time.perf_counter() - start,
    }
    return ContentMove(moved, details)
