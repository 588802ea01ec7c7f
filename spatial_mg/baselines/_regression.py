"""Reference predictors for cross-modal prediction: ridge and kNN on PCA of log-normalised RNA.

What the PoE-VAE must beat (the SMA paper's question: can RNA predict metabolites?). Both
fit on paired training cells: RNA counts -> log-normalise (counts per 10,000, log1p) ->
PCA fitted on the training cells -> ridge regression (penalty chosen by efficient
leave-one-out) or k-nearest-neighbour averaging.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._constants import NORMALIZE_TARGET_SUM, SECTION_KEY, SPATIAL_KEY, UNS_KEY

RIDGE_ALPHAS = np.logspace(-2, 5, 15)


def _counts(adata: ad.AnnData, layer: str | None, genes: pd.Index | None = None):
    if genes is not None:
        missing = genes.difference(adata.var_names)
        if len(missing):
            raise KeyError(f"{len(missing)} training gene(s) missing from the query RNA, e.g. {list(missing[:5])}")
        adata = adata[:, genes]
    x = adata.layers[layer] if layer is not None else adata.X
    return sp.csr_matrix(x, dtype=np.float64) if sp.issparse(x) else np.asarray(x, dtype=np.float64)


def log_normalize(counts) -> np.ndarray:
    """Counts per 10,000 then log1p, as ``scanpy.pp.normalize_total`` + ``log1p`` (dense out)."""
    lib = np.asarray(counts.sum(1)).ravel()
    scale = NORMALIZE_TARGET_SUM / np.maximum(lib, 1.0)
    scaled = sp.diags(scale) @ counts if sp.issparse(counts) else counts * scale[:, None]
    return np.log1p(scaled.toarray() if sp.issparse(scaled) else scaled)


def _smoothed(adata: ad.AnnData, counts, smooth_um: float | None):
    """Counts averaged over each spot's neighbourhood (within ``smooth_um``, per section), or as they are."""
    if smooth_um is None:
        return counts
    from .._neighbourhood import neighbourhood_mean

    if SPATIAL_KEY not in adata.obsm:
        raise KeyError(f"smooth_um needs the spots' micrometres in obsm[{SPATIAL_KEY!r}].")
    groups = adata.obs[SECTION_KEY].to_numpy() if SECTION_KEY in adata.obs else None
    return neighbourhood_mean(counts, np.asarray(adata.obsm[SPATIAL_KEY]), smooth_um, groups)


def _pca_features(train_rna, test_rna, n_pcs, layer, smooth_um=None):
    from sklearn.decomposition import PCA

    genes = train_rna.var_names
    x_train = log_normalize(_smoothed(train_rna, _counts(train_rna, layer), smooth_um))
    x_test = log_normalize(_smoothed(test_rna, _counts(test_rna, layer, genes), smooth_um))
    pca = PCA(n_components=min(n_pcs, *x_train.shape), random_state=0).fit(x_train)
    return pca.transform(x_train), pca.transform(x_test)


def _target(target) -> tuple[np.ndarray, pd.Index]:
    if hasattr(target, "X"):
        x = target.X
        return (x.toarray() if sp.issparse(x) else np.asarray(x, dtype=np.float64)), target.var_names
    x = np.asarray(target, dtype=np.float64)
    return x, pd.Index([str(i) for i in range(x.shape[1])])


def _as_anndata(pred: np.ndarray, test_rna: ad.AnnData, features: pd.Index, method: str) -> ad.AnnData:
    out = ad.AnnData(pred.astype(np.float32), obs=test_rna.obs.copy(), var=pd.DataFrame(index=features))
    if SPATIAL_KEY in test_rna.obsm:  # predicted maps draw where the spots are
        out.obsm[SPATIAL_KEY] = np.asarray(test_rna.obsm[SPATIAL_KEY]).copy()
    out.uns[UNS_KEY] = {"prediction": {"model": method}}
    return out


def predict_ridge(
    train_rna: ad.AnnData,
    train_target,
    test_rna: ad.AnnData,
    n_pcs: int = 50,
    layer: str | None = None,
    smooth_um: float | None = None,
) -> ad.AnnData:
    """Ridge regression of the target on ``n_pcs`` PCs of log-normalised RNA.

    Parameters
    ----------
    train_rna
        Training cells, raw counts (``X`` or ``layer``).
    train_target
        The paired target (AnnData or array), same cells in the same order.
    test_rna
        Cells to predict; needs the training genes (matched by name).
    n_pcs
        PCA components.
    layer
        Layer of the counts in both RNA AnnData.
    smooth_um
        Average each spot's counts with its neighbours' within this radius (micrometres,
        ``obsm["spatial"]``, section by section by ``obs["section"]``) first, so that
        spatial context is credited to the baseline too; None: each spot alone.

    Returns
    -------
    AnnData, test cells x target features.
    """
    from sklearn.linear_model import RidgeCV

    pcs_train, pcs_test = _pca_features(train_rna, test_rna, n_pcs, layer, smooth_um)
    y, features = _target(train_target)
    model = RidgeCV(alphas=RIDGE_ALPHAS).fit(pcs_train, y)
    return _as_anndata(model.predict(pcs_test), test_rna, features, "ridge" if smooth_um is None else "ridge_smoothed")


def predict_knn(
    train_rna: ad.AnnData,
    train_target,
    test_rna: ad.AnnData,
    n_pcs: int = 50,
    k: int = 15,
    layer: str | None = None,
    smooth_um: float | None = None,
) -> ad.AnnData:
    """Mean target of the ``k`` nearest training cells in ``n_pcs`` PCs of log-normalised RNA.

    Parameters are those of :func:`predict_ridge`, plus ``k`` neighbours.
    """
    from sklearn.neighbors import KNeighborsRegressor

    pcs_train, pcs_test = _pca_features(train_rna, test_rna, n_pcs, layer, smooth_um)
    y, features = _target(train_target)
    model = KNeighborsRegressor(n_neighbors=min(k, len(y))).fit(pcs_train, y)
    return _as_anndata(model.predict(pcs_test), test_rna, features, f"knn{k}" + ("" if smooth_um is None else "_smoothed"))
