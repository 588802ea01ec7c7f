"""How precisely the tissue's content pins the registration pose, against the outlines.

Issue 12 asks the transport coupling to carry the tissue's content (RNA and MSI features)
as well as its geometry. This probe measures what that content can give on the synthetic
sweep sections (``benchmarks/alignment.py``'s), with the true pose known:

- ``content_r2``: the share of the MSI principal components' variance explained by the
  spots' RNA principal components, interpolated where a pose puts each MSI tissue pixel
  (Gaussian kernel, half a spot pitch wide) and mapped by ridge regression; at the true
  pose and at the true pose shifted by ``--shifts`` um (mean over +x, -x, +y, -y).
- ``content_only_error_um``: the median pixel error of the pose that maximises that
  share, searched (Nelder-Mead over turn and shift) from the true pose: how far the
  content alone would put the tissue.
- ``registered_error_um``: ``register(content=False)``'s pose (the outlines'), for comparison.
- ``--fuse 30,100``: ``fused_error_um`` per weight: the pose that minimises, from
  ``register``'s pose, log(outline mismatch) + weight x log(1 - content share), each
  relative to its value at ``register``'s pose (Nelder-Mead over turn and shift; the
  mismatch is ``register``'s own, ``MaskAligner.mismatch``; the content share is taken
  over the pixels ``register`` called tissue).
- ``--combine``: ``combined_error_um``: ``register``'s outline pose moved by
  ``register``'s own content step (``_content.content_move``: towards the content's own
  optimum by the share sigma_o^2 / (sigma_o^2 + sigma_c^2), sigma_c the spread of that
  optimum over a spatial block bootstrap of the pixels, sigma_o a prior for the outlines).
  Until commit fb3a058 this was a copy of that step inside the probe (the figures of that
  time in ``results/content_probe_cpu_2026-11-29.jsonl``).
- ``--shares``: ``share_error_um``: the error of ``register``'s outline pose moved by
  each share (0, 0.05, ..., 1) of the way to the content's optimum
  (``_content.content_estimate``), with ``pose_slack_um`` (``register``'s QC of the
  outline pose), sigma_c and sigma_o; and the error under two rules for the share:
  ``register``'s (sigma_o fixed) and one where sigma_o^2 also grows with the outline's
  slack, (0.5 x slack)^2 (``slack_rule_error_um``).
- ``--global-search`` (with ``--tissue-outline disc``, a round tissue whose outline
  cannot place the turn): ``global_error_um``, the error of the pose ``register``'s
  content search (``_content_search.search_content``) finds from ``register``'s outline
  pose: every turn (10 degrees), handedness and shift (a spot pitch) scored by the
  content, the best refined locally; with the share of the MSI content it and the outline
  pose explain. (Until commit 31fbd86 the probe had its own grid and reported the five
  best grid poses unrefined: the figures of that time in
  ``results/content_probe_cpu_2026-11-29.jsonl``.)
- ``--transport 8``: ``transport_error_um``: the content carried by a moscot coupling
  instead of the kernel regression, iterated that many rounds from ``register``'s outline
  pose and from the true pose (``transport_from_truth_um``: where it drifts when started
  right). Each round: the ridge map from the spots' RNA components to the pixels' MSI
  components, learnt under the pose; moscot's ``SinkhornProblem`` (unbalanced, tau 0.9,
  epsilon 0.05) on 1,000 sampled pixels x all spots with the cost (distance under the
  pose / 100 um)^2 / 2 plus the pixel's MSI components' squared difference from each
  spot's predicted ones (per component, over the ridge residual variance) / 2; the pose
  moves by the rigid fit to the plan's barycentres net of the same fit to the plan solved
  on the distance alone (so the entropic blur at the edges cancels).

Prints one JSON line per seed (stderr) and a summary line (stdout)::

    python benchmarks/content_probe.py --seeds 0-9
    python benchmarks/content_probe.py --seeds 0-9 --genes 300 --metabolites 30
    python benchmarks/content_probe.py --seeds 0-9 --coverage 0.7-0.9 --fuse 30,100
    python benchmarks/content_probe.py --seeds 0-9 --genes 300 --metabolites 30 --transport 8
    python benchmarks/content_probe.py --seeds 0-9 --coverage 0.7-0.9 --shares
    python benchmarks/content_probe.py --seeds 0-9 --genes 300 --metabolites 30 --tissue-outline disc --global-search
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.spatial import cKDTree


def _components(x: np.ndarray, k: int = 10) -> np.ndarray:
    x = x[:, x.std(axis=0) > 0]
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    return u[:, :k] * s[:k]


def _rna_components(rna) -> np.ndarray:
    x = rna.X.toarray() if sp.issparse(rna.X) else np.asarray(rna.X, dtype=float)
    return _components(np.log1p(x / np.maximum(x.sum(axis=1, keepdims=True), 1) * 1e4))


def _msi_components(msi) -> np.ndarray:
    x = msi.X.toarray() if sp.issparse(msi.X) else np.asarray(msi.X, dtype=float)
    return _components(np.log1p(np.clip(x, 0, None) / np.median(x[x > 0])))


def content_r2(affine: np.ndarray, msi_xy, msi_pcs, spots_xy, spot_pcs, pitch: float) -> float:
    """Share of the MSI components' variance that the interpolated spot components explain under ``affine``."""
    moved = msi_xy @ affine[:2, :2].T + affine[:2, 2]
    dist, idx = cKDTree(spots_xy).query(moved, k=12)
    w = np.exp(-0.5 * (dist / (pitch / 2)) ** 2)
    total = w.sum(axis=1)
    inside = total > 0.5  # pixels the spots surround
    g = (w[:, :, None] * spot_pcs[idx]).sum(axis=1)[inside] / total[inside, None]
    y = msi_pcs[inside]
    g1 = np.column_stack([g, np.ones(len(g))])
    beta = np.linalg.solve(g1.T @ g1 + np.eye(g1.shape[1]), g1.T @ y)
    return float(1 - ((y - g1 @ beta) ** 2).sum() / ((y - y.mean(axis=0)) ** 2).sum())


def _moved(affine: np.ndarray, p, centre: np.ndarray) -> np.ndarray:
    """``affine`` followed by a turn of ``p[2]`` rad about ``centre`` and a shift ``p[:2]`` um."""
    c, s = np.cos(p[2]), np.sin(p[2])
    turn = np.eye(3)
    turn[:2, :2] = [[c, -s], [s, c]]
    turn[:2, 2] = centre - turn[:2, :2] @ centre + p[:2]
    return turn @ affine


def _nelder_mead(objective, step_um: float):
    simplex = [[0, 0, 0], [step_um, 0, 0], [0, step_um, 0], [0, 0, step_um / 1000]]
    return minimize(objective, np.zeros(3), method="Nelder-Mead", options={"initial_simplex": simplex, "xatol": 0.3, "fatol": 1e-7})


def _around_register(s, reg):
    """The pixels ``register`` called tissue, both sides' components, its pose and the tissue's centre under it."""
    msi_xy = np.asarray(s.msi.obsm["spatial"], float)[reg.msi_tissue]
    start = np.asarray(reg.affine, float)
    centre = msi_xy.mean(axis=0) @ start[:2, :2].T + start[:2, 2]
    spots_xy = np.asarray(s.rna.obsm["spatial"], float)
    return msi_xy, _msi_components(s.msi[reg.msi_tissue]), spots_xy, _rna_components(s.rna), start, centre


def fused_errors(s, reg, weights, pitch: float, error) -> dict:
    """``register``'s pose moved to the minimum of log(mismatch) + weight x log(1 - content share), per weight."""
    from spatial_mg.align import Pose
    from spatial_mg.align._refine import (
        MaskAligner,  # no public path: register's own outline mismatch
    )
    from spatial_mg.align._section import prepare_section

    section = prepare_section(s.rna, s.msi, msi_pixel_size_um=None, msi_mask=None, tic_threshold=None, tissue_image="auto")
    aligner = MaskAligner.for_section(section)
    msi_xy, msi_pcs, spots_xy, spot_pcs, start, centre = _around_register(s, reg)
    m0 = aligner.mismatch(Pose(start))
    c0 = 1 - content_r2(start, msi_xy, msi_pcs, spots_xy, spot_pcs, pitch)
    out = {}
    for weight in weights:

        def objective(p, weight=weight):
            moved = _moved(start, p, centre)
            content = 1 - content_r2(moved, msi_xy, msi_pcs, spots_xy, spot_pcs, pitch)
            return np.log(aligner.mismatch(Pose(moved)) / m0) + weight * np.log(content / c0)

        out[f"{weight:g}"] = error(_moved(start, _nelder_mead(objective, 10.0).x, centre))
    return out


def _section_and_content(s):
    """``register``'s prepared section and the tissue's content for one generated section."""
    from spatial_mg.align._content import read_content
    from spatial_mg.align._section import prepare_section

    section = prepare_section(s.rna, s.msi, msi_pixel_size_um=None, msi_mask=None, tic_threshold=None, tissue_image="auto")
    content, why = read_content(s.rna, s.msi, section)
    if content is None:
        raise SystemExit(f"seed content cannot be read: {why}")
    return section, content


def combined_error(s, reg, error) -> dict:
    """``register``'s outline pose moved as ``register(content=True)`` moves it (``_content.content_move``)."""
    from spatial_mg.align._content import content_move  # no public path: step 5b alone

    section, content = _section_and_content(s)
    move = content_move(reg.pose, section, content)
    return {
        "combined_error_um": error(move.pose.matrix),
        "content_sd_um": move.details["content_sd_um"],
        "content_share": move.details["content_share"],
        "content_from_register_um": move.details["content_offset_um"],
    }


def share_errors(s, reg, error) -> dict:
    """``--shares``: the outline pose moved by each share of the way to the content's optimum."""
    from spatial_mg.align._content import content_estimate, outline_variance  # no public path: step 5b's parts

    section, content = _section_and_content(s)
    estimate = content_estimate(reg.pose, section, content)
    slack = float(reg.qc.details["pose_slack_um"])
    sigma_o2 = outline_variance(section)
    rules = {"register_rule": sigma_o2, "slack_rule": sigma_o2 + (0.5 * slack) ** 2}
    return {
        "share_error_um": {f"{k:.2f}": error(estimate.at(k).matrix) for k in np.linspace(0, 1, 21)},
        "pose_slack_um": slack,
        "content_sd_um": float(np.sqrt(estimate.sigma_c2)),
        "outline_sd_um": float(np.sqrt(sigma_o2)),
        **{f"{name}_error_um": error(estimate.at(v / (v + estimate.sigma_c2)).matrix) for name, v in rules.items()},
    }


def global_search(s, reg, error) -> dict:
    """``--global-search``: ``register``'s search of the content over every turn and shift, from its outline pose."""
    from spatial_mg.align._content_search import search_content  # no public path: the search alone

    section, content = _section_and_content(s)
    start = time.perf_counter()
    found, grid = search_content(reg.pose, section, content)
    return {
        "global_error_um": error(found.matrix),
        "global_explained": grid.explained(found.matrix),
        "outline_explained": grid.explained(np.asarray(reg.affine, float)),
        "global_seconds": time.perf_counter() - start,
    }


def _transport_plan(cost: np.ndarray) -> np.ndarray:
    """moscot's unbalanced Sinkhorn plan for a given pixels x spots cost matrix."""
    import anndata as ad
    import pandas as pd
    from moscot.problems.generic import SinkhornProblem
    from moscot.utils.tagged_array import Tag, TaggedArray

    from spatial_mg.align._moscot import quiet_moscot

    n, m = cost.shape
    side = pd.Categorical(["msi"] * n + ["rna"] * m, categories=["msi", "rna"])
    adata = ad.AnnData(np.zeros((n + m, 1), np.float32), obs=pd.DataFrame({"side": side}, index=[str(i) for i in range(n + m)]))
    with quiet_moscot():
        problem = SinkhornProblem(adata).prepare(
            key="side", joint_attr=None, xy_callback=lambda *a, **k: TaggedArray(cost, tag=Tag.COST_MATRIX)
        )
        problem = problem.solve(epsilon=0.05, tau_a=0.9, tau_b=0.9, scale_cost=1.0)
        return np.asarray(problem.solutions[("msi", "rna")].transport_matrix, float)


def _rigid_fit_of_plan(moved: np.ndarray, spots: np.ndarray, plan: np.ndarray) -> np.ndarray:
    """The turn and shift (3 x 3) that best take the moved pixels to their plan barycentres."""
    from spatial_mg.align._procrustes import fit_similarity

    mass = plan.sum(axis=1)
    keep = mass > 1e-3 * mass.max()
    barycentres = (plan[keep] @ spots) / mass[keep, None]
    return fit_similarity(moved[keep], barycentres, mass[keep], reflection=False, scale=False).matrix


def transport_rounds(section, content, start: np.ndarray, rounds: int) -> np.ndarray:
    """``--transport``: the pose after ``rounds`` rounds of the content coupling (module notes)."""
    from spatial_mg.align._content import _ContentFit
    from spatial_mg.align._subsample import even_subsample

    fit = _ContentFit(section, content)
    rows = even_subsample(fit.pixels, 1000)
    pixels, spots, h = fit.pixels[rows], section.rna_um, 100.0
    pose = start.copy()
    for _ in range(rounds):
        moved = pixels @ pose[:2, :2].T + pose[:2, 2]
        g, y, beta = fit.regression(pose, rows)
        residual = ((y - g @ beta) ** 2).mean(axis=0)
        predicted = np.column_stack([fit.rna, np.ones(len(fit.rna))]) @ beta
        content_cost = (((fit.msi[rows][:, None, :] - predicted[None]) ** 2) / residual).sum(axis=-1) / 2
        distance_cost = ((moved[:, None, :] - spots[None]) ** 2).sum(axis=-1) / (2 * h * h)
        with_content = _rigid_fit_of_plan(moved, spots, _transport_plan(distance_cost + content_cost - content_cost.min(axis=1, keepdims=True)))
        without = _rigid_fit_of_plan(moved, spots, _transport_plan(distance_cost))
        pose = with_content @ np.linalg.inv(without) @ pose
    return pose


def transport_errors(s, reg, rounds: int, error) -> dict:
    """``--transport``: the content coupling's pose from ``register``'s outline pose and from the truth."""
    section, content = _section_and_content(s)
    start = time.perf_counter()
    from_register = transport_rounds(section, content, np.asarray(reg.affine, float), rounds)
    return {
        "transport_error_um": error(from_register),
        "transport_from_truth_um": error(transport_rounds(section, content, np.asarray(s.affine, float), rounds)),
        "transport_seconds": (time.perf_counter() - start) / 2,
    }


def probe(seed: int, args, coverage: float | None) -> dict:
    import spatial_mg as smg

    s = smg.sim.synthetic_vicari(
        n_sections=1, seed=seed, n_spots=args.n_spots, n_genes=args.genes, n_metabolites=args.metabolites,
        msi_reflect=bool(seed % 2), msi_coverage=coverage, tissue_outline=args.tissue_outline,
    ).sections[0]
    acquired = s.msi.obs["acquired"].to_numpy(bool) if "acquired" in s.msi.obs else np.ones(s.msi.n_obs, bool)
    tissue = s.msi.obs["in_tissue"].to_numpy(bool) & acquired
    msi_xy = np.asarray(s.msi.obsm["spatial"], float)[tissue]
    spots_xy = np.asarray(s.rna.obsm["spatial"], float)
    msi_pcs, spot_pcs = _msi_components(s.msi[tissue]), _rna_components(s.rna)
    truth = np.asarray(s.affine, float)
    pitch = 100.0

    def error(affine):
        moved = msi_xy @ affine[:2, :2].T + affine[:2, 2]
        return float(np.median(np.linalg.norm(moved - (msi_xy @ truth[:2, :2].T + truth[:2, 2]), axis=1)))

    r2 = {0: content_r2(truth, msi_xy, msi_pcs, spots_xy, spot_pcs, pitch)}
    for d in args.shifts:
        values = []
        for dx, dy in ((d, 0), (-d, 0), (0, d), (0, -d)):
            shifted = truth.copy()
            shifted[:2, 2] += (dx, dy)
            values.append(content_r2(shifted, msi_xy, msi_pcs, spots_xy, spot_pcs, pitch))
        r2[d] = float(np.mean(values))
    centre = msi_xy.mean(axis=0) @ truth[:2, :2].T + truth[:2, 2]
    best = _nelder_mead(lambda p: -content_r2(_moved(truth, p, centre), msi_xy, msi_pcs, spots_xy, spot_pcs, pitch), 20.0)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = smg.align.register(s.rna, s.msi, device="cpu", content=False)  # the outlines' pose
    return {
        "seed": seed,
        "msi_coverage": coverage,
        **({"fused_error_um": fused_errors(s, reg, args.fuse, pitch, error)} if args.fuse else {}),
        **(combined_error(s, reg, error) if args.combine else {}),
        **(transport_errors(s, reg, args.transport, error) if args.transport else {}),
        **(share_errors(s, reg, error) if args.shares else {}),
        **(global_search(s, reg, error) if args.global_search else {}),
        "content_r2": {str(k): round(v, 5) for k, v in r2.items()},
        "content_only_error_um": error(_moved(truth, best.x, centre)),
        "registered_error_um": error(np.asarray(reg.affine, float)),
        "register_seconds": time.perf_counter() - start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--n-spots", type=int, default=700)
    parser.add_argument("--genes", type=int, default=20, help="20 and 10: the alignment sweep's sections")
    parser.add_argument("--metabolites", type=int, default=10)
    parser.add_argument("--shifts", default="20,40,80", type=lambda t: [float(x) for x in t.split(",")])
    parser.add_argument("--tissue-outline", default="blob", choices=("blob", "disc"), help="the generator's tissue outline")
    parser.add_argument("--global-search", action="store_true", help="the content's best pose over every turn and shift")
    parser.add_argument("--coverage", default=None, help="MSI coverage of the tissue, e.g. 0.8 or 0.7-0.9 (spread over the seeds)")
    parser.add_argument("--fuse", default="", type=lambda t: [float(x) for x in t.split(",") if x], help="content weights")
    parser.add_argument("--combine", action="store_true", help="precision-weighted outline and content estimates")
    parser.add_argument("--shares", action="store_true", help="the error along the way to the content's optimum, and two share rules")
    parser.add_argument("--transport", type=int, default=0, help="rounds of the content carried by a moscot coupling")
    args = parser.parse_args()
    lo, _, hi = args.seeds.partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))
    if args.coverage is None:
        coverages = [None] * len(seeds)
    else:
        first, _, last = args.coverage.partition("-")
        coverages = list(np.linspace(float(first), float(last or first), len(seeds)))
    rows = []
    for seed, coverage in zip(seeds, coverages):
        rows.append(probe(seed, args, None if coverage is None else float(coverage)))
        print(json.dumps({"benchmark": "content_probe", **rows[-1]}), file=sys.stderr, flush=True)
    def summary(key: str, what) -> float:
        return float(what([r[key] for r in rows]))

    out = {
        "benchmark": "content_probe",
        "seeds": seeds,
        "genes": args.genes,
        "metabolites": args.metabolites,
        "coverage": args.coverage,
        "content_r2_at_truth_median": float(np.median([r["content_r2"]["0"] for r in rows])),
        "content_r2_drop_median": {
            str(d): float(np.median([r["content_r2"]["0"] - r["content_r2"][str(float(d))] for r in rows])) for d in args.shifts
        },
        "content_only_error_um_median": summary("content_only_error_um", np.median),
        "content_only_error_um_max": summary("content_only_error_um", np.max),
        "registered_error_um_median": summary("registered_error_um", np.median),
        "registered_error_um_max": summary("registered_error_um", np.max),
    }
    for weight in rows[0].get("fused_error_um", {}):
        errors = [r["fused_error_um"][weight] for r in rows]
        out[f"fused_{weight}_error_um_median"], out[f"fused_{weight}_error_um_max"] = float(np.median(errors)), float(np.max(errors))
    keys = [*(("transport_error_um", "transport_from_truth_um") if args.transport else ()),
            *(("register_rule_error_um", "slack_rule_error_um") if args.shares else ())]
    if args.global_search:
        out["global_error_um_per_seed"] = [r["global_error_um"] for r in rows]
    for key in keys:
        out[f"{key}_median"], out[f"{key}_max"] = summary(key, np.median), summary(key, np.max)
    if args.combine:
        out["combined_error_um_median"] = summary("combined_error_um", np.median)
        out["combined_error_um_max"] = summary("combined_error_um", np.max)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
