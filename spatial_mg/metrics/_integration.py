"""How well a latent space integrates: cell types apart, batches or modalities mixed.

scIB's definitions: NMI and ARI of a clustering against the true labels, the silhouette
of a batch-like label within each cell type (``1 - |s|``: 1 is perfectly mixed), and
k-nearest-neighbour label transfer from a reference to a query.
"""

from __future__ import annotations

import numpy as np


def _labels(x) -> np.ndarray:
    return np.asarray(x).astype(str)


def cluster_agreement(latent: np.ndarray, labels, n_clusters: int | None = None, seed: int = 0) -> dict[str, float]:
    """NMI and ARI of a k-means clustering of ``latent`` against ``labels``.

    Parameters
    ----------
    latent
        Cells x dimensions.
    labels
        True labels (e.g. cell types).
    n_clusters
        Default: the number of distinct labels.
    seed
        Seed of k-means.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels = _labels(labels)
    k = n_clusters or len(np.unique(labels))
    clusters = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(np.asarray(latent, dtype=np.float64))
    return {
        "nmi": float(normalized_mutual_info_score(labels, clusters)),
        "ari": float(adjusted_rand_score(labels, clusters)),
    }


def mixing_silhouette(latent: np.ndarray, groups, cell_types) -> float:
    """scIB's batch ASW: mean over cell types of ``1 - |silhouette(groups)|`` (1: mixed).

    ``groups`` is the label to mix: batch, or the modality set a cell was measured with.
    Cell types with a single group are skipped.
    """
    from sklearn.metrics import silhouette_samples

    latent = np.asarray(latent, dtype=np.float64)
    groups, cell_types = _labels(groups), _labels(cell_types)
    scores = []
    for t in np.unique(cell_types):
        sel = cell_types == t
        if len(np.unique(groups[sel])) < 2 or sel.sum() < 3:
            continue
        scores.append(np.mean(1.0 - np.abs(silhouette_samples(latent[sel], groups[sel]))))
    return float(np.mean(scores)) if scores else float("nan")


def label_transfer_accuracy(reference: np.ndarray, reference_labels, query: np.ndarray, query_labels, k: int = 15) -> float:
    """Share of query cells whose majority label among their ``k`` nearest reference cells is right."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(n_neighbors=k).fit(np.asarray(reference), _labels(reference_labels))
    return float(np.mean(knn.predict(np.asarray(query)) == _labels(query_labels)))
