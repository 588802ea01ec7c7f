"""Where the outlines cannot place the pose, the tissue's content searched over every turn and shift.

A round tissue (a core, a punch, an organoid) under a raster that covers only part of it:
its outline says nothing of its turn and little of its shift, so the outline search lands
anywhere. On ten such synthetic sections, 6 landed beyond 50 um and 4 of them 1-2 mm off,
every one rated "low" (``benchmarks/results/alignment_notes.md``, the disc sweep). The
content still says where the tissue lies.

When the outlines' settled pose is not pinned, by the QC's own measures (it slides or its
refits spread beyond ``_qc.MAX_SLACK`` / ``MAX_SPREAD``, or a distinct rival fits the
outline within ``_qc.MIN_MARGIN``), every pose of both handednesses, every 10 degrees and
every spot pitch of shift (coarser on a large tissue: ``MAX_TARGETS``), at the settled pose's scale, is scored by how much of 600
sampled pixels' MSI components the spots' RNA components explain. That is the ridge map
of ``_content``, refitted per pose; a pixel off the spots explains nothing, so a pose
cannot score by leaving most pixels out. The spots' components are interpolated once on
a 20 um grid. The best pose is then refined locally (``_content.local_optimum``). It
replaces the outlines' pose only when it explains clearly more (``MIN_GAIN``); nearby or
far, the outlines could not say where the pose lies.

The pose so placed rests on the content alone: the outline cannot confirm it, so the QC
keeps the outline's reasons and says the content placed it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import map_coordinates
from scipy.spatial import cKDTree

from .._geometry import rotation_matrix
from ._agreement import MATCH_PITCHES, match_radius
from ._choose import DISTINCT_PITCHES, Choice
from ._content import RIDGE, Content, _ContentFit, _turned, local_optimum
from ._pose import Pose
from ._qc import MAX_SLACK, MAX_SPREAD, MIN_MARGIN
from ._section import Section
from ._settle import Settled
from ._subsample import even_subsample

TURN_STEP_DEG = 10.0
SHIFT_STEP_PITCHES = 1.0  # in spot pitches
GRID_STEP_UM = 20.0  # the spots' components interpolated this finely
N_PIXELS = 600  # MSI tissue pixels scored per pose (an even subsample)
MAX_TARGETS = 1500  # shifts searched per turn: a large tissue gets a coarser grid (a 3,000-spot disc: 55 s, one core)
MIN_GAIN = 0.05  # of the pixels' MSI variance: what the content's pose must explain beyond the outlines'


def outline_cannot_place(settled: Settled, choice: Choice, section: Section) -> str | None:
    """Why the outlines do not pin ``settled.pose``, by the QC's thresholds; ``None`` when they do."""
    pitch = match_radius(section.msi_pixel_size_um, section.rna_spacing_um, settled.pose.scale) / MATCH_PITCHES
    if settled.slack_um > MAX_SLACK * pitch:
        return f"the pose slides {settled.slack_um:.0f} um along the outline"
    if settled.spread_um > MAX_SPREAD * pitch:
        return f"refits from nearby starts end {settled.spread_um:.0f} um apart"
    rival = choice.rival
    if rival is not None and rival.pose.displacement(settled.pose, section.msi_um) > DISTINCT_PITCHES * section.pitch:
        margin = rival.mismatch / max(choice.chosen.mismatch, 1e-12) - 1.0
        if margin < MIN_MARGIN:
            return f"a distinct pose fits the outline within {max(margin, 0.0):.0%}"
    return None


class _GridContent:
    """The spots' components on a fine grid, and the share of sampled pixels' MSI variance they explain under a pose."""

    def __init__(self, section: Section, content: Content, fit: _ContentFit):
        spots, width = section.rna_um, fit.width
        self.origin = spots.min(axis=0) - 2 * width
        axes = [np.arange(self.origin[k], spots[:, k].max() + 2 * width, GRID_STEP_UM) for k in (0, 1)]
        nodes = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
        values, total = fit.interpolated(nodes)
        shape = (len(axes[0]), len(axes[1]))
        self.values = [values[:, k].reshape(shape) for k in range(values.shape[1])]
        self.surrounded = (total > 0.5).reshape(shape).astype(np.float64)
        rows = even_subsample(section.msi_um[content.msi_index], N_PIXELS)
        self.pixels = section.msi_um[content.msi_index][rows]
        self.msi = content.msi[rows]
        self.total = float(((self.msi - self.msi.mean(axis=0)) ** 2).sum())

    def explained(self, matrix: np.ndarray) -> float:
        at = ((self.pixels @ matrix[:2, :2].T + matrix[:2, 2] - self.origin) / GRID_STEP_UM).T
        on = map_coordinates(self.surrounded, at, order=1, cval=0.0) > 0.5
        if on.sum() <= 3 * len(self.values) or self.total <= 0:
            return 0.0
        g = np.column_stack([*(map_coordinates(v, at[:, on], order=1) for v in self.values), np.ones(int(on.sum()))])
        y = self.msi[on]
        beta = np.linalg.solve(g.T @ g + RIDGE * np.eye(g.shape[1]), g.T @ y)
        return float((((y - y.mean(axis=0)) ** 2).sum() - ((y - g @ beta) ** 2).sum()) / self.total)


@dataclass(frozen=True)
class Placement:
    """The pose the content placed (``None``: the outlines' pose stands) and QC details."""

    pose: Pose | None
    details: dict


def _shift_targets(spots: np.ndarray, step: float) -> tuple[np.ndarray, float]:
    """Where the pixels' centre may land: a grid over the spots, coarsened so that a large tissue has at most ``MAX_TARGETS``."""
    while True:
        axes = [np.arange(spots[:, k].min(), spots[:, k].max() + step, step) for k in (0, 1)]
        targets = np.stack(np.meshgrid(*axes), axis=-1).reshape(-1, 2)
        targets = targets[cKDTree(spots).query(targets)[0] <= step]  # on the tissue
        if len(targets) <= MAX_TARGETS:
            return targets, step
        step *= np.sqrt(len(targets) / MAX_TARGETS) * 1.05


def search_content(pose: Pose, section: Section, content: Content) -> tuple[Pose, _GridContent]:
    """The content's best pose over every turn, handedness and shift at ``pose``'s scale, refined locally; and the grid it was scored on."""
    fit = _ContentFit(section, content)
    grid = _GridContent(section, content, fit)
    centre = grid.pixels.mean(axis=0)
    targets, step = _shift_targets(section.rna_um, SHIFT_STEP_PITCHES * section.rna_spacing_um)
    best, best_matrix = -np.inf, None
    for mirror in (False, True):
        for degrees in np.arange(0.0, 360.0, TURN_STEP_DEG):
            linear = pose.scale * rotation_matrix(np.deg2rad(degrees)) @ np.diag([1.0, -1.0 if mirror else 1.0])
            for target in targets:
                matrix = np.eye(3)
                matrix[:2, :2], matrix[:2, 2] = linear, target - linear @ centre
                share = grid.explained(matrix)
                if share > best:
                    best, best_matrix = share, matrix
    found = Pose(best_matrix)
    moved_centre = found.apply(fit.pixels).mean(axis=0)
    step_back = local_optimum(fit, found, moved_centre, np.arange(len(fit.pixels)), step_um=0.5 * step)
    return Pose(_turned(found, step_back, moved_centre)), grid


def place_by_content(pose: Pose, section: Section, content: Content) -> Placement:
    """The content's best pose (:func:`search_content`) where it explains clearly more than ``pose`` (module notes)."""
    start = time.perf_counter()
    found, grid = search_content(pose, section, content)
    outline_share, content_share = grid.explained(pose.matrix), grid.explained(found.matrix)
    away = found.displacement(pose, section.msi_um)
    details = {
        "content_search_explained": [outline_share, content_share],
        "content_search_seconds": time.perf_counter() - start,
    }
    if content_share < outline_share + MIN_GAIN:
        details["content_search"] = (
            f"the content's best pose ({away:.0f} um away) explains {content_share:.2f} of the MSI content against "
            f"{outline_share:.2f}: not clearly more, so the outlines' pose is kept (the content then moves it by its share)"
        )
        return Placement(None, details)
    details["content_search"] = (
        f"placed by the content: {away:.0f} um from the outlines' pose, explaining {content_share:.2f} of the MSI "
        f"content against {outline_share:.2f}"
    )
    details["content_placed_um"] = float(away)
    return Placement(found, details)
