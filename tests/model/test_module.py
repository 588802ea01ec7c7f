import pyro
import pytest
import torch
from pyro.infer import TraceMeanField_ELBO

from spatial_mg.model._module import PoEModule

MODS = [("rna", "nb", 12), ("msi", "gaussian", 5), ("atac", "bernoulli", 7)]


def _batch(n=10, n_obs=40, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = {
        "rna": torch.poisson(torch.full((n, 12), 3.0), generator=gen),
        "msi": torch.randn(n, 5, generator=gen),
        "atac": (torch.rand(n, 7, generator=gen) < 0.3).float(),
    }
    mask = torch.ones(3, n, dtype=torch.bool)
    mask[1, ::2] = False
    mask[2, 1::3] = False
    return {
        "idx": torch.arange(n),
        "n_obs": n_obs,
        "x": x,
        "mask": mask,
        "codes": torch.zeros(n, 1, dtype=torch.long),
        "log_library": {"rna": x["rna"].sum(1).log(), "msi": torch.zeros(n), "atac": torch.zeros(n)},
        "log_factorial": {},
        "nonzero": {},
        "groups": (torch.arange(n) % 2),
    }


def _module(**kw):
    torch.manual_seed(0)
    m = PoEModule(MODS, n_latent=3, n_hidden=8, covariate_sizes=[(2, 0)], dropout_rate=0.0, **kw)
    return m.eval()


@pytest.mark.parametrize("fusion", ["poe", "moe"])
def test_loss_terms_sum_to_pyro_trace_mean_field_elbo(fusion):
    module, batch = _module(fusion=fusion), _batch()
    pyro.set_rng_seed(3)
    ours = sum(module.loss_terms(batch, kl_weight=0.5).values())
    pyro.set_rng_seed(3)
    theirs = TraceMeanField_ELBO().differentiable_loss(module.model, module.guide, batch, 0.5)
    assert torch.allclose(ours, theirs, rtol=1e-5)


def test_terms_are_per_cell_means_whatever_the_data_set_size():
    module = _module()
    pyro.set_rng_seed(0)
    small = module.loss_terms(_batch(n_obs=40))
    pyro.set_rng_seed(0)
    large = module.loss_terms(_batch(n_obs=4000))
    for k in small:
        assert torch.allclose(small[k], large[k])
    assert set(small) == {"kl_z", "nll_rna", "nll_msi", "nll_atac"}


def test_an_absent_modality_changes_neither_posterior_nor_loss():
    module, batch = _module(), _batch()
    other = _batch()
    absent = ~batch["mask"][1]
    other["x"]["msi"][absent] = 1e4  # garbage where the modality is absent
    post, _, _ = module.posterior(batch, batch["mask"])
    post2, _, _ = module.posterior(other, other["mask"])
    assert torch.equal(post.mean, post2.mean) and torch.equal(post.stddev, post2.stddev)
    pyro.set_rng_seed(1)
    a = module.loss_terms(batch)
    pyro.set_rng_seed(1)
    b = module.loss_terms(other)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # but data that is present does change it
    other["x"]["msi"][~absent] += 1.0
    pyro.set_rng_seed(1)
    assert not torch.equal(module.loss_terms(other)["nll_msi"], a["nll_msi"])


def test_penalties_appear_with_their_weights():
    module, batch = _module(batch_mmd_weight=2.0, n_mmd_groups=2, modality_mmd_weight=3.0), _batch()
    terms = module.loss_terms(batch)
    assert {"mmd_batch", "mmd_modality"} <= set(terms)
    unweighted = _module(batch_mmd_weight=1.0, n_mmd_groups=2, modality_mmd_weight=1.0)
    terms1 = unweighted.loss_terms(batch)
    assert torch.allclose(terms["mmd_modality"], 3 * terms1["mmd_modality"])


def test_modality_dropout_keeps_exactly_one_present_modality():
    module = _module(modality_dropout=1.0)
    mask = _batch(n=200)["mask"]
    shown = module.hide_modalities(mask)
    multi = mask.sum(0) > 1
    assert (shown.sum(0)[multi] == 1).all() and not (shown & ~mask).any()
    assert torch.equal(shown[:, ~multi], mask[:, ~multi])


def test_prediction_hides_the_target_from_the_encoders_and_flags_prior_only_cells():
    module, batch = _module(), _batch()
    torch.manual_seed(0)
    mean, std, prior_only = module.posterior_predictive(batch, "msi", n_samples=8)
    other = _batch()
    other["x"]["msi"] += 5.0  # the target's own values must not matter
    torch.manual_seed(0)
    mean2, std2, _ = module.posterior_predictive(other, "msi", n_samples=8)
    assert torch.equal(mean, mean2) and torch.equal(std, std2)
    assert mean.shape == (10, 5) and (std > 0).all()
    assert not prior_only.any()
    only_msi = _batch()
    only_msi["mask"][:, :4] = torch.tensor([False, True, False]).unsqueeze(1)
    _, _, prior_only = module.posterior_predictive(only_msi, "msi", n_samples=2)
    assert prior_only.tolist() == [True] * 4 + [False] * 6


def test_latent_mean_of_one_modality_is_its_expert_with_the_prior_and_nan_where_absent():
    module, batch = _module(), _batch()
    z_msi = module.latent_mean(batch, "msi")
    assert torch.isnan(z_msi[~batch["mask"][1]]).all()
    alone = _batch()
    alone["mask"][[0, 2]] = False  # msi the only modality: the joint posterior is its expert with the prior
    present = batch["mask"][1]
    assert torch.equal(z_msi[present], module.latent_mean(alone)[present])


def test_modality_weights_scale_that_likelihood_alone():
    batch = _batch()
    pyro.set_rng_seed(1)  # the same draw of z for both
    plain = _module().loss_terms(batch)
    pyro.set_rng_seed(1)
    weighted = _module(modality_weights=(("msi", 4.0),)).loss_terms(batch)
    torch.testing.assert_close(weighted["nll_msi"], 4.0 * plain["nll_msi"])
    torch.testing.assert_close(weighted["nll_rna"], plain["nll_rna"])
    torch.testing.assert_close(weighted["kl_z"], plain["kl_z"])
