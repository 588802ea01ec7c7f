"""RNA counts: gene programmes per cell state, mixed per spot, negative-binomial sampled."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_LIBRARY_SD = 0.3  # log-normal spread of UMIs per spot around the section mean


@dataclass(frozen=True)
class GeneProgrammes:
    """Expression profile of each cell state and the per-gene overdispersion.

    Attributes
    ----------
    names, ids
        Gene symbols and Ensembl-like identifiers.
    profiles
        ``(n_states, n_genes)`` expression frequencies, rows sum to 1.
    dispersion
        ``(n_genes,)`` negative-binomial inverse dispersion theta (variance mu + mu^2 / theta).
    """

    names: np.ndarray
    ids: np.ndarray
    profiles: np.ndarray
    dispersion: np.ndarray

    @classmethod
    def sample(cls, rng: np.random.Generator, n_genes: int, n_states: int) -> GeneProgrammes:
        """Heavy-tailed gene abundances (hence realistic sparsity) plus marker genes per state."""
        base = rng.normal(0.0, 2.0, size=n_genes)
        effects = rng.normal(0.0, 0.25, size=(n_states, n_genes))
        n_markers = max(3, n_genes // 12)
        for k in range(n_states):
            markers = rng.choice(n_genes, size=n_markers, replace=False)
            effects[k, markers] += rng.normal(2.0, 0.5, size=n_markers)
        logits = base + effects
        profiles = np.exp(logits - logits.max(axis=1, keepdims=True))
        profiles /= profiles.sum(axis=1, keepdims=True)
        return cls(
            names=np.array([f"Gene{g + 1:04d}" for g in range(n_genes)]),
            ids=np.array([f"ENSMUSG{g + 1:011d}" for g in range(n_genes)]),
            profiles=profiles,
            dispersion=np.exp(rng.normal(np.log(5.0), 0.7, size=n_genes)),
        )

    def sample_counts(
        self,
        rng: np.random.Generator,
        proportions: np.ndarray,
        library_mean: np.ndarray,
        batch_lfc: np.ndarray,
    ) -> np.ndarray:
        """Spots x genes int32 counts.

        A spot's expected profile is the mixture of its cell states' profiles, shifted by
        the section's per-gene log fold changes; its library size is log-normal around
        ``library_mean`` (per spot), so the section mean is ``library_mean`` on average.
        """
        freq = proportions @ (self.profiles * np.exp(batch_lfc))
        freq /= freq.sum(axis=1, keepdims=True)
        library = library_mean * np.exp(rng.normal(-(_LIBRARY_SD**2) / 2, _LIBRARY_SD, size=len(freq)))
        mu = library[:, None] * freq
        theta = self.dispersion
        return rng.poisson(rng.gamma(theta, mu / theta)).astype(np.int32)  # gamma-Poisson = negative binomial
