import math

import torch

from spatial_mg.model._fusion import MixtureOfExperts, product_of_experts


def _experts(m=3, n=5, d=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, n, d, generator=g), torch.randn(m, n, d, generator=g)


def _log_normal(z, mu, var):
    return -0.5 * ((z - mu) ** 2 / var + torch.log(2 * math.pi * var))


def test_poe_is_the_normalised_product_of_present_experts_and_prior():
    mu, logvar = _experts()
    mask = torch.tensor([[True, True, False, True, False], [True, False, False, True, True], [False, True, False, True, True]])
    loc, scale = product_of_experts(mu, logvar, mask)
    z = torch.randn(7, 5, 4)
    # log of the product of densities minus the fused log density is constant in z
    prod = _log_normal(z, 0.0, torch.ones(1))
    for k in range(3):
        prod = prod + torch.where(mask[k, :, None], _log_normal(z, mu[k], logvar[k].exp()), 0.0)
    diff = prod - _log_normal(z, loc, scale**2)
    assert torch.allclose(diff, diff[:1].expand_as(diff), atol=1e-4)
    # a cell with no expert keeps the prior
    assert torch.allclose(loc[2], torch.zeros(4)) and torch.allclose(scale[2], torch.ones(4))


def test_poe_ignores_whatever_an_absent_expert_says():
    mu, logvar = _experts()
    mask = torch.tensor([[True] * 5, [False] * 5, [True] * 5])
    loc, scale = product_of_experts(mu, logvar, mask)
    mu2, logvar2 = mu.clone(), logvar.clone()
    mu2[1], logvar2[1] = float("nan"), float("inf")
    loc2, scale2 = product_of_experts(mu2, logvar2, mask)
    assert torch.equal(loc, loc2) and torch.equal(scale, scale2)


def test_moe_mean_is_the_average_of_present_experts_and_density_is_the_mixture():
    mu, logvar = _experts()
    mask = torch.tensor([[True, True, False, True, False], [True, False, False, True, True], [False, True, False, True, True]])
    q = MixtureOfExperts(mu, logvar, mask)
    w = mask.float() / mask.float().sum(0).clamp(min=1)
    expected = (w[..., None] * mu).sum(0)
    expected[2] = 0.0  # no expert: the prior
    assert torch.allclose(q.mean, expected, atol=1e-6)
    z = torch.randn(5, 4)
    dens = sum(
        w[k] * torch.exp(_log_normal(z, mu[k], logvar[k].exp()).sum(-1)) for k in range(3)
    )
    dens[2] = torch.exp(_log_normal(z[2], 0.0, torch.ones(1)).sum(-1))
    assert torch.allclose(q.log_prob(z), dens.log(), atol=1e-5)


def test_moe_samples_come_from_present_experts_only():
    mu = torch.tensor([[[0.0]], [[100.0]]])
    logvar = torch.full_like(mu, -8.0)
    q = MixtureOfExperts(mu, logvar, torch.tensor([[True], [False]]))
    z = q.rsample((200,))
    assert z.shape == (200, 1, 1) and z.abs().max() < 1.0
    mu.requires_grad_(True)
    MixtureOfExperts(mu, logvar, torch.tensor([[True], [True]])).rsample((50,)).sum().backward()
    assert mu.grad.abs().sum() > 0  # reparameterised


def test_moe_picks_each_present_expert_by_its_weight():
    # experts far apart: which one each sample came from is plain; a skipped absent expert
    # between two present ones must never be picked, and each present one half the time
    mu = torch.tensor([[[0.0]], [[50.0]], [[100.0]]])
    logvar = torch.full_like(mu, -8.0)
    torch.manual_seed(0)
    z = MixtureOfExperts(mu, logvar, torch.tensor([[True], [False], [True]])).rsample((4000,)).squeeze()
    near_first, near_absent = (z.abs() < 1).float().mean(), ((z - 50).abs() < 1).float().mean()
    assert near_absent == 0 and abs(float(near_first) - 0.5) < 0.03 and ((z - 100).abs() < 1).float().mean() + near_first == 1
