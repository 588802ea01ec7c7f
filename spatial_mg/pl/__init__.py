"""Figures: metabolite maps (truth | prediction | uncertainty), the registration overlay, the
latent UMAP, and prediction correlation against spatial structure (Moran's I)."""

from ._latent import latent_umap
from ._maps import metabolite_maps
from ._predictability import correlation_vs_morans_i
from ._registration import registration

__all__ = ["correlation_vs_morans_i", "latent_umap", "metabolite_maps", "registration"]
