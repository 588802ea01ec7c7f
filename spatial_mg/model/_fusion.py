"""Fusing per-modality Gaussian experts into one posterior: product (PoE) or mixture (MoE).

Experts come stacked as ``(n_modalities, n_cells, n_latent)`` with a presence mask of
shape ``(n_modalities, n_cells)``; an absent expert leaves the fusion entirely. Masks are
applied with ``torch.where`` rather than multiplication, so the garbage an encoder emits
for an absent (all-zero) input can never leak in, not even as ``nan * 0``.
"""

from __future__ import annotations

import math

import torch
from pyro.distributions import Independent, Normal, TorchDistribution, constraints

from . import _draws

LOGVAR_MIN, LOGVAR_MAX = -10.0, 8.0  # keeps precisions finite in float32


class _Normal(Normal):
    """Pyro's Normal, its noise drawn by :func:`spatial_mg.model._draws.standard_normal`
    (the same draws however a minibatch is split across ranks; cells on the first dim)."""

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        eps = _draws.standard_normal(shape, self.loc.dtype, self.loc.device, dim=len(sample_shape))
        return self.loc + eps * self.scale


def diag_normal(loc: torch.Tensor, scale: torch.Tensor | float) -> TorchDistribution:
    """Diagonal Gaussian over the latent (event dim 1), without per-step argument checks."""
    return Independent(_Normal(loc, scale, validate_args=False), 1, validate_args=False)


def product_of_experts(
    mu: torch.Tensor, logvar: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Precision-weighted product of the present experts and the N(0, I) prior expert.

    Parameters
    ----------
    mu, logvar
        Expert means and log-variances, ``(n_modalities, n_cells, n_latent)``.
    mask
        Boolean presence, ``(n_modalities, n_cells)``.

    Returns
    -------
    Mean and standard deviation of the joint Gaussian, each ``(n_cells, n_latent)``.
    """
    present = mask.unsqueeze(-1)
    precision = torch.where(present, torch.exp(-logvar), 0.0)
    weighted = torch.where(present, mu * precision, 0.0)
    total = 1.0 + precision.sum(0)  # the prior expert contributes precision 1, mean 0
    return weighted.sum(0) / total, total.rsqrt()


class MixtureOfExperts(TorchDistribution):
    """Equal-weight mixture of the present diagonal-Gaussian experts (event dim 1).

    Sampling picks one present expert per cell and draws from it reparameterised, as in
    MMVAE; the choice itself carries no gradient. A cell with no present expert falls back
    to the N(0, I) prior, so the distribution is always proper.

    Parameters
    ----------
    mu, logvar
        Expert means and log-variances, ``(n_modalities, n_cells, n_latent)``.
    mask
        Boolean presence, ``(n_modalities, n_cells)``.
    """

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(self, mu: torch.Tensor, logvar: torch.Tensor, mask: torch.Tensor, validate_args=None):
        none = ~mask.any(0, keepdim=True)
        prior_mu = torch.zeros_like(mu[:1])
        self.locs = torch.cat([mu, prior_mu]).transpose(0, 1)  # (cells, K+1, latent)
        self.scales = torch.cat([torch.exp(0.5 * logvar), torch.ones_like(prior_mu)]).transpose(0, 1)
        weights = torch.cat([mask, none]).transpose(0, 1).to(mu.dtype)
        self.weights = weights / weights.sum(-1, keepdim=True)
        batch_shape, event_shape = mu.shape[1:2], mu.shape[2:]
        super().__init__(batch_shape, event_shape, validate_args=validate_args)

    @property
    def mean(self) -> torch.Tensor:
        return (self.weights.unsqueeze(-1) * self.locs).sum(-2)

    @property
    def variance(self) -> torch.Tensor:
        second = (self.weights.unsqueeze(-1) * (self.scales**2 + self.locs**2)).sum(-2)
        return second - self.mean**2

    def rsample(self, sample_shape=torch.Size()) -> torch.Tensor:
        shape = torch.Size(sample_shape) + self.batch_shape
        cells = len(sample_shape)  # the dim of the cells, for draws shared out among ranks (_draws)
        # the expert by inverse CDF: the first whose cumulative weight exceeds u ~ U(0, 1);
        # dividing by the total makes the last positive weight's end exactly 1 > u
        cdf = self.weights.cumsum(-1)
        cdf = cdf / cdf[..., -1:]
        u = _draws.rand(shape, self.weights.device, dim=cells).to(cdf.dtype)
        choice = (u.unsqueeze(-1) >= cdf).sum(-1)
        choice = choice.reshape(*shape, 1, 1).expand(*shape, 1, self.locs.shape[-1])
        expand = (*shape, *self.locs.shape[-2:])
        loc = self.locs.expand(expand).gather(-2, choice).squeeze(-2)
        scale = self.scales.expand(expand).gather(-2, choice).squeeze(-2)
        return loc + scale * _draws.standard_normal(loc.shape, loc.dtype, loc.device, dim=cells)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        z = value.unsqueeze(-2)
        comp = -0.5 * (((z - self.locs) / self.scales) ** 2 + 2 * self.scales.log() + math.log(2 * math.pi))
        return torch.logsumexp(comp.sum(-1) + self.weights.log(), dim=-1)

    def expand(self, batch_shape, _instance=None):
        if torch.Size(batch_shape) != self.batch_shape:  # built per minibatch, at full shape
            raise NotImplementedError("MixtureOfExperts cannot be broadcast to another batch shape")
        return self
