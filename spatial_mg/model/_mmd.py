"""Maximum mean discrepancy with a multi-scale RBF kernel, weighted so no boolean indexing.

Groups come as non-negative weights over the rows of one minibatch (a one-hot matrix for
batches, a presence mask for modalities). That keeps every shape static, so the
penalties cost no host-device synchronisation on a GPU.
"""

from __future__ import annotations

import torch

# Bandwidths (in latent units) from well inside a cluster to across the whole latent space.
DEFAULT_BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def multiscale_rbf(x: torch.Tensor, y: torch.Tensor, bandwidths=DEFAULT_BANDWIDTHS) -> torch.Tensor:
    """Sum over bandwidths ``b`` of ``exp(-|x_i - y_j|^2 / (2 b^2))``, ``(len(x), len(y))``."""
    # squared distances by expansion: no sqrt, so no NaN gradient at zero distance
    d2 = (x.pow(2).sum(-1, keepdim=True) + y.pow(2).sum(-1) - 2 * x @ y.T).clamp(min=0.0)
    gammas = torch.tensor([0.5 / b**2 for b in bandwidths], dtype=x.dtype, device=x.device)
    return torch.exp(-d2.unsqueeze(-1) * gammas).sum(-1)


def group_mmd(z: torch.Tensor, weights: torch.Tensor, bandwidths=DEFAULT_BANDWIDTHS) -> torch.Tensor:
    """Mean squared MMD over all pairs of groups that are non-empty in this minibatch.

    Parameters
    ----------
    z
        Points, ``(n, d)``.
    weights
        Group membership, ``(n, n_groups)``, non-negative (one-hot for a label).

    Returns
    -------
    Scalar; zero when fewer than two groups are present.
    """
    kernel = multiscale_rbf(z, z, bandwidths)
    size = weights.sum(0)
    w = weights / size.clamp(min=1.0)
    means = w.T @ kernel @ w  # means[a, b] = mean kernel between groups a and b
    diag = torch.diagonal(means)
    mmd2 = diag[:, None] + diag[None, :] - 2 * means
    present = (size > 0).to(z.dtype)
    pairs = torch.triu(present[:, None] * present[None, :], diagonal=1)
    return (mmd2 * pairs).sum() / pairs.sum().clamp(min=1.0)


def paired_mmd(
    x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, bandwidths=DEFAULT_BANDWIDTHS
) -> torch.Tensor:
    """Squared MMD between the rows of ``x`` and of ``y`` that have weight (cells with both).

    Returns zero when no row has weight.
    """
    w = weights / weights.sum().clamp(min=1.0)
    kxx = w @ multiscale_rbf(x, x, bandwidths) @ w
    kyy = w @ multiscale_rbf(y, y, bandwidths) @ w
    kxy = w @ multiscale_rbf(x, y, bandwidths) @ w
    return kxx + kyy - 2 * kxy
