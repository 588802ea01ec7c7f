import pytest
import torch

from spatial_mg.model._likelihoods import NegativeBinomialLog, log_factorial_sum


def _counts(n=64, g=50, seed=0):
    gen = torch.Generator().manual_seed(seed)
    rate = torch.exp(torch.randn(g, generator=gen) * 1.2 - 1.0)
    x = torch.poisson(rate.expand(n, g), generator=gen)
    x[::3, 0] += 45.0  # counts past the small-count table, scored exactly
    return x


def _padded_nonzero(x):
    width = int((x > 0).sum(1).max())
    cols = torch.zeros(x.shape[0], width, dtype=torch.long)
    vals = torch.zeros(x.shape[0], width)
    for i, row in enumerate(x):
        nz = row.nonzero().ravel()
        cols[i, : len(nz)], vals[i, : len(nz)] = nz, row[nz]
    return cols, vals


@pytest.mark.parametrize("per_cell_theta", [False, True])
@pytest.mark.parametrize("sparse", [False, True])
def test_nb_log_prob_and_gradients_equal_torch(per_cell_theta, sparse):
    x = _counts()
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(x.shape, generator=gen, requires_grad=True)
    shape = x.shape if per_cell_theta else x.shape[1:]
    log_theta = (0.5 * torch.randn(shape, generator=gen)).requires_grad_(True)
    log_lib = torch.log(x.sum(1) + 1.0)
    weights = torch.randn(x.shape[0], generator=gen)

    def ours():
        nz = _padded_nonzero(x) if sparse else None
        fact = log_factorial_sum(x) if sparse else None
        return NegativeBinomialLog(log_theta, logits=logits, log_library=log_lib, log_factorial=fact, nonzero=nz).log_prob(x)

    def reference():
        log_mu = torch.log_softmax(logits, -1) + log_lib[:, None]
        nb = torch.distributions.NegativeBinomial(total_count=log_theta.exp(), logits=log_mu - log_theta)
        return nb.log_prob(x).sum(-1)

    results = []
    for f in (ours, reference):
        logits.grad = log_theta.grad = None
        lp = f()
        (lp * weights).sum().backward()
        results.append((lp.detach(), logits.grad.clone(), log_theta.grad.clone()))
    (lp, g_logits, g_theta), (ref, ref_logits, ref_theta) = results
    assert torch.allclose(lp, ref, rtol=1e-5, atol=1e-5 * ref.abs().max())
    assert torch.allclose(g_logits, ref_logits, rtol=1e-4, atol=1e-5 * ref_logits.abs().max())
    assert torch.allclose(g_theta, ref_theta, rtol=1e-4, atol=1e-5 * ref_theta.abs().max())


def test_nb_from_log_mu_matches_and_moments():
    x = _counts(n=8, g=5)
    log_mu = torch.randn(8, 5)
    log_theta = torch.randn(5)
    d = NegativeBinomialLog(log_theta, log_mu)
    ref = torch.distributions.NegativeBinomial(total_count=log_theta.exp(), logits=log_mu - log_theta).log_prob(x).sum(-1)
    assert torch.allclose(d.log_prob(x), ref, atol=1e-4)
    assert d.batch_shape == (8,) and d.event_shape == (5,)
    mu, theta = log_mu.exp(), log_theta.exp()
    assert torch.allclose(d.mean, mu) and torch.allclose(d.variance, mu + mu**2 / theta)
    torch.manual_seed(0)
    draws = NegativeBinomialLog(torch.zeros(3), torch.log(torch.tensor([[2.0, 5.0, 0.5]]))).sample((20000,))
    assert torch.allclose(draws.mean(0), torch.tensor([[2.0, 5.0, 0.5]]), rtol=0.05)
    assert torch.allclose(draws.var(0), torch.tensor([[6.0, 30.0, 0.75]]), rtol=0.1)


@pytest.mark.parametrize("per_cell_scale", [False, True])
def test_diagonal_gaussian_equals_torch_normal_to_event(per_cell_scale):
    from torch.distributions import Independent, Normal

    from spatial_mg.model._likelihoods import gaussian

    gen = torch.Generator().manual_seed(2)
    x = torch.randn(30, 7, generator=gen)
    loc = torch.randn(30, 7, generator=gen, requires_grad=True)
    raw = torch.randn((30, 7) if per_cell_scale else (7,), generator=gen, requires_grad=True)
    ours = gaussian(loc, torch.nn.functional.softplus(raw) + 1e-3)
    ref = Independent(Normal(loc, torch.nn.functional.softplus(raw) + 1e-3), 1)
    assert ours.batch_shape == ref.batch_shape and ours.event_shape == ref.event_shape
    a, b = ours.log_prob(x), ref.log_prob(x)
    torch.testing.assert_close(a, b)
    for ga, gb in zip(torch.autograd.grad(a.sum(), [loc, raw]), torch.autograd.grad(b.sum(), [loc, raw])):
        torch.testing.assert_close(ga, gb)
    torch.testing.assert_close(ours.mean, ref.mean)
    torch.testing.assert_close(ours.variance, ref.variance)
    torch.manual_seed(0)
    draws = ours.sample((4000,))
    assert draws.shape == (4000, 30, 7)
    assert torch.allclose(draws.mean(0), loc.detach(), atol=0.15)
