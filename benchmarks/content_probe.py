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
- ``registered_error_um``: ``register``'s pose (outlines), for comparison.

Prints one JSON line per seed (stderr) and a summary line (stdout)::

    python benchmarks/content_probe.py --seeds 0-9
    python benchmarks/content_probe.py --seeds 0-9 --genes 300 --metabolites 30
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


def probe(seed: int, args) -> dict:
    import spatial_mg as smg

    s = smg.sim.synthetic_vicari(
        n_sections=1, seed=seed, n_spots=args.n_spots, n_genes=args.genes, n_metabolites=args.metabolites,
        msi_reflect=bool(seed % 2),
    ).sections[0]
    tissue = s.msi.obs["in_tissue"].to_numpy(bool)
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
    best = minimize(
        lambda p: -content_r2(_moved(truth, p, centre), msi_xy, msi_pcs, spots_xy, spot_pcs, pitch),
        np.zeros(3),
        method="Nelder-Mead",
        options={"initial_simplex": [[0, 0, 0], [20, 0, 0], [0, 20, 0], [0, 0, 0.02]], "xatol": 0.5, "fatol": 1e-6},
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = smg.align.register(s.rna, s.msi, device="cpu")
    return {
        "seed": seed,
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
    args = parser.parse_args()
    lo, _, hi = args.seeds.partition("-")
    seeds = list(range(int(lo), int(hi or lo) + 1))
    rows = []
    for seed in seeds:
        rows.append(probe(seed, args))
        print(json.dumps({"benchmark": "content_probe", **rows[-1]}), file=sys.stderr, flush=True)
    drop = {str(d): float(np.median([r["content_r2"]["0"] - r["content_r2"][str(float(d))] for r in rows])) for d in args.shifts}
    print(json.dumps({
        "benchmark": "content_probe",
        "seeds": seeds,
        "genes": args.genes,
        "metabolites": args.metabolites,
        "content_r2_at_truth_median": float(np.median([r["content_r2"]["0"] for r in rows])),
        "content_r2_drop_median": drop,
        "content_only_error_um_median": float(np.median([r["content_only_error_um"] for r in rows])),
        "content_only_error_um_max": float(np.max([r["content_only_error_um"] for r in rows])),
        "registered_error_um_median": float(np.median([r["registered_error_um"] for r in rows])),
        "registered_error_um_max": float(np.max([r["registered_error_um"] for r in rows])),
    }), flush=True)


if __name__ == "__main__":
    main()
