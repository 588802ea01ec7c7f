"""Small paired data for the PoE-VAE tests (seconds to train); imported by tests and conftest."""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.sparse as sp


def paired(n: int = 120, n_genes: int = 30, n_mets: int = 8, n_msi: int | None = None, seed: int = 0) -> md.MuData:
    """RNA counts (CSR) for ``n`` spots, metabolites for the first ``n_msi`` of them, two sections."""
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(n, 3))
    rate = np.exp(hidden @ rng.normal(0, 0.7, size=(3, n_genes)) + 1.0)
    counts = rng.poisson(rate).astype(np.float32)
    mets = (np.tanh(hidden @ rng.normal(size=(3, n_mets))) * 2 + 5 + 0.2 * rng.normal(size=(n, n_mets))).astype(np.float32)
    obs = pd.DataFrame({"section": np.where(np.arange(n) < n // 2, "s0", "s1")}, index=[f"spot{i}" for i in range(n)])
    rna = ad.AnnData(sp.csr_matrix(counts), obs=obs.copy(), var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]))
    n_msi = n if n_msi is None else n_msi
    msi = ad.AnnData(mets[:n_msi], obs=obs.iloc[:n_msi].copy(), var=pd.DataFrame(index=[f"m{i}" for i in range(n_mets)]))
    mdata = md.MuData({"rna": rna, "msi": msi})
    mdata.obs["section"] = obs["section"].reindex(mdata.obs_names)
    return mdata


QUICK = dict(max_epochs=3, batch_size=32, progress_bar=False, accelerator="cpu")
