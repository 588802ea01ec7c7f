"""The direct loss (training's hot path) equals the ELBO read off Pyro's traces, term by term."""

import pytest
import torch
from test_module import MODS, _batch

from spatial_mg.model._likelihoods import log_factorial_sum
from spatial_mg.model._module import PoEModule


def _nonzero(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's non-zero columns and values, zero-padded: the CPU data path's compact form."""
    width = int((x > 0).sum(1).max())
    order = torch.argsort((x > 0).float(), dim=1, descending=True, stable=True)[:, :width]
    vals = x.gather(1, order)
    return torch.where(vals > 0, order, 0), vals


def _both(module: PoEModule, batch: dict, kl_weight: float, seed: int = 5):
    """Terms and per-term gradients of every parameter, direct and traced, with the same draws."""
    out = []
    for traced in (False, True):
        torch.manual_seed(seed)
        terms = module.loss_terms(batch, kl_weight, traced=traced)
        grads = {}
        for k, v in terms.items():
            params = [p for p in module.parameters() if p.requires_grad]
            g = torch.autograd.grad(v, params, retain_graph=True, allow_unused=True)
            grads[k] = [torch.zeros_like(p) if gi is None else gi for p, gi in zip(params, g)]
        out.append((terms, grads))
    return out


CASES = {
    "poe": {},
    "moe": {"fusion": "moe"},
    "poe, training: dropout, modality dropout, MMDs, weights": {
        "dropout_rate": 0.2,
        "modality_dropout": 0.5,
        "batch_mmd_weight": 1.0,
        "n_mmd_groups": 2,
        "modality_mmd_weight": 0.5,
        "modality_weights": (("msi", 3.0),),
    },
    "moe, training": {"fusion": "moe", "dropout_rate": 0.2, "modality_dropout": 0.5},
    "per-batch dispersion, heteroscedastic": {"dispersion": "feature-batch", "batch_covariate": 0, "heteroscedastic": True},
}


@pytest.mark.parametrize("case", list(CASES))
def test_direct_loss_equals_the_traced_elbo_per_term(case):
    kw = dict(CASES[case])
    training = kw.pop("dropout_rate", 0.0) > 0
    torch.manual_seed(0)
    module = PoEModule(MODS, n_latent=3, n_hidden=8, covariate_sizes=[(2, 0)], dropout_rate=0.2 if training else 0.0, **kw)
    module.train(training)
    batch = _batch(n=24, n_obs=400)
    batch["codes"] = (torch.arange(24) % 2).unsqueeze(1)
    # the compact NB path too: precomputed log factorials and the padded non-zeros
    batch["log_factorial"] = {"rna": log_factorial_sum(batch["x"]["rna"])}
    batch["nonzero"] = {"rna": _nonzero(batch["x"]["rna"])}
    (direct, g_direct), (traced, g_traced) = _both(module, batch, kl_weight=0.3)
    assert set(direct) == set(traced)
    expected = {"kl_z", "nll_rna", "nll_msi", "nll_atac"}
    assert expected <= set(direct)
    if "batch_mmd_weight" in kw:
        assert {"mmd_batch", "mmd_modality"} <= set(direct)
    for k in direct:
        torch.testing.assert_close(direct[k], traced[k], rtol=1e-5, atol=1e-6, msg=f"term {k}")
        for a, b in zip(g_direct[k], g_traced[k]):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=f"gradient of {k}")


def test_the_comparison_sees_a_wrong_term():
    """Guard of the test above: a direct path that drops the KL warm-up factor is caught."""
    torch.manual_seed(0)
    module = PoEModule(MODS, n_latent=3, n_hidden=8, covariate_sizes=[(2, 0)], dropout_rate=0.0).eval()
    batch = _batch(n=24, n_obs=400)
    torch.manual_seed(1)
    direct = module.loss_terms(batch, 1.0)
    torch.manual_seed(1)
    traced = module.loss_terms(batch, 0.3, traced=True)
    assert not torch.allclose(direct["kl_z"], traced["kl_z"], rtol=1e-5)
    torch.testing.assert_close(direct["nll_msi"], traced["nll_msi"])


def test_training_on_the_direct_loss_follows_the_traced_one(mdata):
    """A few epochs (sparse counts on the compact CPU path, validation, averaging): the
    same trajectory through either loss, to float tolerance."""
    from poevae_data import QUICK

    from spatial_mg.model import PoEVAE

    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"})
    runs = []
    for traced in (False, True):
        model = PoEVAE(mdata, n_latent=4, n_hidden=16)
        model.train(**{**QUICK, "max_epochs": 4, "early_stopping": False}, traced_elbo=traced)
        runs.append(model)
    direct, traced = (m.history for m in runs)
    for column in ("train_loss", "val_loss", "train_kl_z", "val_nll_rna"):
        assert direct[column].to_numpy() == pytest.approx(traced[column].to_numpy(), rel=1e-4)
    for (name, a), b in zip(runs[0].module.state_dict().items(), runs[1].module.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5, msg=name)


def test_the_encoder_reads_counts_from_their_non_zeros_exactly():
    """The NB encoder input computed on the padded non-zeros equals the dense one, bit for
    bit, including rows with a count in column 0 (where the padding also lands) and empty rows."""
    torch.manual_seed(0)
    module = PoEModule(MODS, n_latent=3, n_hidden=8)
    block = module.blocks[0]
    x = torch.poisson(torch.full((6, 12), 0.7))
    x[0, 0], x[1] = 5.0, 0.0
    log_library = x.sum(1).clamp_min(1.0).log()
    dense = block.encoder_input(x, log_library)
    compact = block.encoder_input(x, log_library, _nonzero(x))
    assert torch.equal(dense, compact) and dense[0, 0] > 0
