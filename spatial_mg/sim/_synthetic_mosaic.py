"""A synthetic mosaic multiome: RNA counts, binarised ATAC and CLR protein, some cells paired.

Cell types are clusters in a hidden space; each modality reads that space through its own
random map and observation noise, and each batch adds its own per-feature effect. Batches
differ in which modalities they measured, so integration must place unimodal cells of a
type next to the paired ones. The truth (cell type, batch, modality set) is in ``obs``.
"""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._constants import BATCH_KEY, CELL_TYPE_KEY, MODALITY_KEY

MODALITIES = ("rna", "atac", "protein")
DEFAULT_LAYOUT = {
    "b_trimodal": ("rna", "atac", "protein"),
    "b_rna_atac": ("rna", "atac"),
    "b_rna_protein": ("rna", "protein"),
    "b_rna": ("rna",),
    "b_atac": ("atac",),
    "b_protein": ("protein",),
}


def synthetic_mosaic(
    batches: dict[str, tuple[str, ...]] | None = None,
    n_cells_per_batch: int = 200,
    n_types: int = 6,
    n_genes: int = 300,
    n_peaks: int = 400,
    n_proteins: int = 30,
    batch_effect: float = 0.4,
    library_size: float = 2000.0,
    seed: int = 0,
) -> md.MuData:
    """Generate a mosaic MuData with modalities ``rna`` (counts), ``atac`` (0/1), ``protein`` (CLR).

    Parameters
    ----------
    batches
        Batch name -> the modalities it measured; default six batches: trimodal, two
        bimodal, three unimodal. The hidden structure depends on ``seed`` alone, so a
        batch added here (a query) shares cell types with the others.
    n_cells_per_batch
        Cells per batch (types drawn uniformly).
    n_types
        Cell types.
    n_genes, n_peaks, n_proteins
        Features per modality.
    batch_effect
        Standard deviation of each batch's per-feature shift (log scale for RNA and
        protein, logit scale for ATAC).
    library_size
        Mean RNA UMIs per cell.
    seed
        Everything is a function of the arguments and the seed; each batch's cells and
        effects depend on its name too, so adding a batch leaves the others unchanged.

    Returns
    -------
    MuData; ``obs`` has ``cell_type``, ``batch`` and ``modality`` (e.g. ``"atac+rna"``).
    RNA counts are in ``X`` (float32 CSR), ATAC is binary CSR, protein dense CLR values.
    """
    batches = dict(DEFAULT_LAYOUT if batches is None else batches)
    for name, mods in batches.items():
        unknown = set(mods) - set(MODALITIES)
        if unknown or not mods:
            raise ValueError(f"batch '{name}': modalities must be a non-empty subset of {MODALITIES}, got {mods}")
    rng = np.random.default_rng(seed)
    n_hidden = 8
    centroids = rng.normal(0.0, 1.5, size=(n_types, n_hidden))
    maps = {
        "rna": (rng.normal(0, 0.6, size=(n_hidden, n_genes)), rng.normal(0, 1.0, size=n_genes)),
        "atac": (rng.normal(0, 0.8, size=(n_hidden, n_peaks)), rng.normal(-1.5, 0.5, size=n_peaks)),
        "protein": (rng.normal(0, 0.5, size=(n_hidden, n_proteins)), rng.normal(3.0, 0.5, size=n_proteins)),
    }
    sizes = {"rna": n_genes, "atac": n_peaks, "protein": n_proteins}
    parts = {m: [] for m in MODALITIES}
    obs_all = []
    for name, mods in batches.items():
        brng = np.random.default_rng([seed, *name.encode()])
        types = brng.integers(0, n_types, size=n_cells_per_batch)
        hidden = centroids[types] + brng.normal(0.0, 0.4, size=(n_cells_per_batch, n_hidden))
        effects = {m: brng.normal(0.0, batch_effect, size=sizes[m]) for m in MODALITIES}
        cells = pd.Index([f"{name}_{i}" for i in range(n_cells_per_batch)])
        obs = pd.DataFrame(
            {
                CELL_TYPE_KEY: [f"type_{t}" for t in types],
                BATCH_KEY: name,
                MODALITY_KEY: "+".join(sorted(mods)),
            },
            index=cells,
        )
        obs_all.append(obs)
        for m in mods:
            weights, bias = maps[m]
            signal = np.tanh(hidden @ weights) * 1.5 + bias + effects[m]
            parts[m].append((obs, _observe(brng, m, signal, library_size)))
    adatas = {}
    for m in MODALITIES:
        if not parts[m]:
            continue
        obs = pd.concat([o for o, _ in parts[m]])
        blocks = [x for _, x in parts[m]]
        x = sp.vstack(blocks, format="csr") if sp.issparse(blocks[0]) else np.vstack(blocks)
        prefix = {"rna": "gene", "atac": "peak", "protein": "protein"}[m]
        var = pd.DataFrame(index=pd.Index([f"{prefix}_{j}" for j in range(sizes[m])]))
        adatas[m] = ad.AnnData(X=x, obs=obs.copy(), var=var)
    mdata = md.MuData(adatas)
    mdata.obs = pd.concat(obs_all).reindex(mdata.obs_names)
    return mdata


def _observe(rng: np.random.Generator, modality: str, signal: np.ndarray, library_size: float):
    n = signal.shape[0]
    if modality == "rna":
        p = np.exp(signal - signal.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        mean = p * rng.lognormal(np.log(library_size), 0.3, size=(n, 1))
        theta = 5.0
        counts = rng.poisson(rng.gamma(theta, mean / theta))
        return sp.csr_matrix(counts.astype(np.float32))
    if modality == "atac":
        return sp.csr_matrix((rng.random(signal.shape) < 1 / (1 + np.exp(-signal))).astype(np.float32))
    counts = rng.poisson(np.exp(signal)).astype(np.float64)
    logs = np.log1p(counts)
    return (logs - logs.mean(1, keepdims=True)).astype(np.float32)  # CLR of counts + 1
