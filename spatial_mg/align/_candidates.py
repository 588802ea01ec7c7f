"""Candidate poses: the transport plan's fit with either handedness, and the outline search's best.

moscot's Gromov-Wasserstein plan matches distances, which a mirror image or a nearly
symmetric outline share with the true pose, and under partial overlap it can put the MSI
tissue at the wrong place among the spots. So the plan's fit is one candidate among
several: it with either handedness, and the best poses of an exhaustive FFT search over
turns and translations of the tissue masks (``_search``), which cannot be fooled that way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._moscot import GWSolution, TransportDiverged, TransportSettings, solve_gw
from ._pose import Pose
from ._procrustes import fit_affine, fit_plan
from ._qc import plan_agreement
from ._search import search_poses
from ._section import Section
from ._subsample import even_subsample


@dataclass(frozen=True)
class Coupling:
    """moscot's transport plan between even subsamples of both sides, and its fits.

    Attributes
    ----------
    plan
        MSI subsample x RNA subsample.
    msi_index, rna_index
        The subsamples: positions among the MSI tissue pixels and among the spots.
    msi_points, rna_points
        Their coordinates (MSI um, RNA um).
    fit, mirrored_fit
        The plan's similarity (barycentric pairs, ``_procrustes.fit_plan``) with the
        handedness that fits best, and with the other one.
    solution
        How the plan was obtained (convergence, cost, time, device).
    """

    plan: np.ndarray
    msi_index: np.ndarray
    rna_index: np.ndarray
    msi_points: np.ndarray
    rna_points: np.ndarray
    fit: Pose
    mirrored_fit: Pose
    solution: GWSolution

    def affine_fit(self) -> Pose:
        """The least-squares affine transform through the plan's entries."""
        return fit_affine(self.msi_points, self.rna_points, plan=self.plan)

    def agreement(self, pose: Pose, section: Section) -> float:
        """Share of the plan's mass that ``pose`` maps within two match radii (``_qc.plan_agreement``)."""
        return plan_agreement(pose, self.msi_points, self.rna_points, self.plan, section)


@dataclass(frozen=True)
class Candidate:
    """A pose to try, and where it came from in words (kept in the QC details)."""

    pose: Pose
    origin: str


def couple(
    section: Section,
    features: tuple[np.ndarray, np.ndarray] | None,
    settings: TransportSettings,
    *,
    scale: bool,
) -> tuple[Coupling | None, dict]:
    """Solve the (fused) GW plan on even subsamples and fit a similarity to it.

    A solve that diverges is retried once with a smoother plan (``settings.smoother()``);
    when that diverges too the coupling is ``None`` and the failure is in the details.
    ``scale=False`` holds the fits' scale at 1. Returns the coupling and QC details.
    """
    msi_index = even_subsample(section.msi_um, settings.n_subsample)
    rna_index = even_subsample(section.rna_um, settings.n_subsample)
    msi_points, rna_points = section.msi_um[msi_index], section.rna_um[rna_index]
    msi_features = rna_features = None
    if features is not None:
        rna_features, msi_features = features[0][rna_index], features[1][msi_index]
    info: dict = {}
    solution = failure = None
    for attempt in (settings, settings.smoother()):
        try:
            solution = solve_gw(msi_points, rna_points, attempt, msi_features=msi_features, rna_features=rna_features)
            info["gw_epsilon"] = attempt.epsilon
            break
        except TransportDiverged as err:
            failure = str(err)
    info.update(n_gw_msi=len(msi_index), n_gw_rna=len(rna_index), fused=features is not None)
    if solution is None:
        info["gw_failed"] = failure
        return None, info
    info.update(
        gw_seconds=solution.seconds, gw_converged=solution.converged, gw_cost=solution.cost, device=solution.device
    )
    fit = fit_plan(msi_points, rna_points, solution.plan, scale=scale)
    mirrored = fit_plan(msi_points, rna_points, solution.plan, reflection=not fit.reflection, scale=scale)
    info["plan_fit"] = fit.parts()
    coupling = Coupling(solution.plan, msi_index, rna_index, msi_points, rna_points, fit, mirrored, solution)
    return coupling, info


def outline_search(section: Section, *, n_angles: int):
    """The outline search's best poses (``_search.search_poses``) on a prepared section, best first."""
    return search_poses(
        section.msi_um,
        section.msi_window,
        section.rna_um,
        section.rna_window,
        cell=section.pitch,
        n_angles=n_angles,
        rna_image=section.rna_outline.image,
    )


def candidate_poses(section: Section, coupling: Coupling | None, *, n_angles: int, hits=None) -> list[Candidate]:
    """The poses worth refining: the plan's fit with either handedness, and the outline search's best.

    The search (scale held at 1, both sides being micrometres) tries ``n_angles`` turns of
    either handedness at every translation, on masks drawn at the coarser pitch; without a
    coupling (the solver diverged) its poses are the only candidates. ``hits``: the search's
    result when it already ran (:func:`outline_search`).
    """
    candidates = []
    if coupling is not None:
        candidates += [Candidate(coupling.fit, "transport plan"), Candidate(coupling.mirrored_fit, "transport plan, mirrored")]
    if hits is None:
        hits = outline_search(section, n_angles=n_angles)
    for hit in hits:
        mirrored = ", mirrored" if hit.reflection else ""
        candidates.append(Candidate(hit.pose, f"outline search ({hit.turn_deg:.0f} deg{mirrored})"))
    return candidates
