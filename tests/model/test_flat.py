"""Flat parameter buffers: the same optimisation as per-tensor Adam and clipping, in one pass."""

import copy

import pytest
import torch

from spatial_mg.model._flat import FlatParameters


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.LayerNorm(5), torch.nn.ReLU(), torch.nn.Linear(5, 3))


def _loss(net: torch.nn.Module, step: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(step)
    x = torch.randn(16, 7, generator=g)
    return (net(x) ** 2).sum() * 10  # large enough that clipping at 1.0 acts


def test_steps_match_per_tensor_adam_with_clipping():
    ref, net = _net(), _net()
    flat = FlatParameters(list(net.parameters()))
    opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-2, weight_decay=1e-2)
    opt = torch.optim.Adam([flat.flat], lr=1e-2, weight_decay=1e-2)
    for step in range(5):
        opt_ref.zero_grad()
        _loss(ref, step).backward()
        norm_ref = torch.nn.utils.clip_grad_norm_(ref.parameters(), 1.0)
        opt_ref.step()
        flat.zero_grad()
        _loss(net, step).backward()
        norm = flat.clip_grad_norm_(1.0)
        opt.step()
        assert norm_ref > 1.0  # clipping was exercised
        torch.testing.assert_close(norm, norm_ref)
    for a, b in zip(ref.parameters(), net.parameters()):
        torch.testing.assert_close(a, b)


def test_parameters_and_gradients_are_views_of_the_buffers():
    net = _net()
    before = copy.deepcopy(net.state_dict())
    flat = FlatParameters(list(net.parameters()))
    for k, v in net.state_dict().items():  # values unchanged by re-seating
        torch.testing.assert_close(v, before[k])
    _loss(net, 0).backward()
    assert torch.equal(flat.flat.grad, torch.cat([p.grad.reshape(-1) for p in net.parameters()]))
    assert flat.flat.grad.abs().sum() > 0
    with torch.no_grad():
        flat.flat.add_(1.0)  # what the optimiser does: the module sees it
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, before[k] + 1.0)


def test_a_gradient_reset_outside_the_buffer_is_caught():
    net = _net()
    flat = FlatParameters(list(net.parameters()))
    next(net.parameters()).grad = None
    with pytest.raises(RuntimeError, match="flat buffer"):
        flat.zero_grad()


def test_load_state_dict_keeps_the_views():
    net = _net()
    flat = FlatParameters(list(net.parameters()))
    other = _net(seed=1).state_dict()
    net.load_state_dict(other)
    assert torch.equal(flat.flat.detach(), torch.cat([v.reshape(-1) for v in other.values()]))
