import torch

from spatial_mg.model._mmd import group_mmd, multiscale_rbf, paired_mmd


def _mmd2(x, y):
    return multiscale_rbf(x, x).mean() + multiscale_rbf(y, y).mean() - 2 * multiscale_rbf(x, y).mean()


def test_mmd_is_zero_for_one_distribution_and_grows_with_the_shift():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 3, generator=gen)
    weights = torch.nn.functional.one_hot(torch.arange(1000) % 2, 2).float()
    same = group_mmd(x, weights)  # biased (V-statistic) estimate: O(1 / n) above zero
    shifted = x + weights[:, 1:2] * torch.tensor([1.0, 0.0, 0.0])
    far = x + weights[:, 1:2] * torch.tensor([3.0, 0.0, 0.0])
    assert 0 <= same < 0.02 and group_mmd(shifted, weights) > 10 * same
    assert group_mmd(far, weights) > group_mmd(shifted, weights)


def test_group_mmd_equals_the_explicit_pairwise_average_and_skips_empty_groups():
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(30, 2, generator=gen)
    labels = torch.tensor([0] * 10 + [1] * 12 + [3] * 8)  # group 2 empty
    weights = torch.nn.functional.one_hot(labels, 4).float()
    groups = [z[labels == k] for k in (0, 1, 3)]
    expected = (_mmd2(groups[0], groups[1]) + _mmd2(groups[0], groups[2]) + _mmd2(groups[1], groups[2])) / 3
    assert torch.allclose(group_mmd(z, weights), expected, atol=1e-5)
    assert group_mmd(z, torch.nn.functional.one_hot(torch.zeros(30, dtype=torch.long), 2).float()) == 0


def test_paired_mmd_uses_only_weighted_rows():
    gen = torch.Generator().manual_seed(2)
    x, y = torch.randn(20, 2, generator=gen), torch.randn(20, 2, generator=gen)
    w = (torch.arange(20) < 12).float()
    assert torch.allclose(paired_mmd(x, y, w), _mmd2(x[:12], y[:12]), atol=1e-5)
    y2 = y.clone()
    y2[12:] = 1e3  # rows without both modalities cannot matter
    assert torch.allclose(paired_mmd(x, y2, w), paired_mmd(x, y, w))
    assert paired_mmd(x, y, torch.zeros(20)) == 0
