"""The joint latent space drawn as a UMAP, one panel per obs key (section, domain, cell type)."""

from __future__ import annotations

import anndata as ad

from .._constants import LATENT_KEY


def latent_umap(
    adata: ad.AnnData,
    color: str | list[str],
    *,
    use_rep: str = LATENT_KEY,
    n_neighbors: int = 15,
    random_state: int = 0,
    save=None,
):
    """UMAP of a latent representation (default the PoE-VAE's ``obsm["X_poe"]``).

    The neighbour graph and the embedding are computed with scanpy on a copy, so ``adata``
    is left as it was; panels are drawn with ``scanpy.pl.umap``.

    Parameters
    ----------
    adata
        Cells or spots with the latent in ``obsm[use_rep]`` and the ``color`` keys in
        ``obs`` (e.g. ``adata.obsm["X_poe"] = model.get_latent_representation(mdata)``).
    color
        One ``obs`` key or several: one panel each.
    use_rep, n_neighbors, random_state
        Passed to ``scanpy.pp.neighbors`` / ``scanpy.tl.umap``.
    save
        Optional path to save the figure to.

    Returns
    -------
    The matplotlib Figure.
    """
    import matplotlib.pyplot as plt
    import scanpy as sc

    keys = [color] if isinstance(color, str) else list(color)
    if use_rep not in adata.obsm:
        raise KeyError(
            f"adata.obsm has no {use_rep!r}: store the latent first, e.g. "
            f"adata.obsm[{use_rep!r}] = model.get_latent_representation(...)."
        )
    missing = [k for k in keys if k not in adata.obs]
    if missing:
        raise KeyError(f"colour keys {missing} are not columns of adata.obs (columns: {list(adata.obs.columns)[:8]}).")
    view = ad.AnnData(obs=adata.obs[keys].copy(), obsm={use_rep: adata.obsm[use_rep]})
    sc.pp.neighbors(view, use_rep=use_rep, n_neighbors=min(n_neighbors, max(2, view.n_obs - 1)), random_state=random_state)
    sc.tl.umap(view, random_state=random_state)
    fig, axes = plt.subplots(1, len(keys), figsize=(5.5 * len(keys), 4.5), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        sc.pl.umap(view, color=key, ax=ax, show=False, title=f"latent by {key}")
    fig.tight_layout()
    if save is not None:
        fig.savefig(save, dpi=120, bbox_inches="tight")
    return fig
