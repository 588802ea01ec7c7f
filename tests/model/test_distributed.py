"""Data-parallel training on torch.distributed (gloo, two local ranks on the CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from poevae_data import paired

from spatial_mg._errors import DeviceUnavailableError
from spatial_mg.model import PoEVAE, _distributed, _model
from spatial_mg.model._draws import rows_of_batch

SMALL = dict(n_latent=4, n_hidden=16)
# dropout, modality dropout and latent draws all on (the defaults): the ranks must draw alike
KW = dict(batch_size=32, progress_bar=False, accelerator="cpu", kl_warmup_epochs=1, patience=100)


@pytest.fixture(scope="module")
def data():
    mdata = paired(n=120)
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"})
    return mdata


@pytest.fixture(scope="module")
def two_ranks(data, tmp_path_factory):
    """Two epochs on two ranks, checkpointed; every rank's result kept."""
    results = []
    real = _distributed.spawn_training

    def keep(*args, **kwargs):
        results.extend(real(*args, **kwargs))
        return results

    ckpt = tmp_path_factory.mktemp("ddp_ckpt")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_model, "spawn_training", keep)  # where train() looks it up
        model = PoEVAE(data, **SMALL).train(max_epochs=2, strategy="ddp", devices=2, checkpoint_dir=ckpt, **KW)
    return model, results, ckpt


def _weights(model):
    return {k: v.detach().cpu().clone() for k, v in model.module.state_dict().items()}


def test_both_ranks_end_with_bit_identical_weights(two_ranks):
    model, results, _ = two_ranks
    assert len(results) == 2
    a, b = results[0]["state_dict"], results[1]["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(v, a[k]) for k, v in _weights(model).items())  # the model holds rank 0's


def test_two_ranks_take_the_steps_of_one_process_with_the_same_global_batch(data, two_ranks):
    model, _, _ = two_ranks
    single = PoEVAE(data, **SMALL).train(max_epochs=2, **KW)
    ddp, one = model.history, single.history
    losses = [c for c in one.columns if c.startswith(("train_", "val_"))]
    assert list(ddp.index) == [1, 2] and set(losses) <= set(ddp.columns)
    # the same per-term losses to float tolerance (only the order of the sums differs) ...
    np.testing.assert_allclose(ddp[losses].to_numpy(), one[losses].to_numpy(), rtol=1e-5)
    # ... and so the same weights; a rank drawing its own noise would be off by far more
    a, b = _weights(model), _weights(single)
    assert max(float((a[k] - b[k]).abs().max()) for k in a if a[k].numel()) < 1e-4


def test_the_saved_model_is_an_ordinary_model_folder(data, two_ranks, tmp_path):
    model, _, _ = two_ranks
    model.save(tmp_path / "m")
    loaded = PoEVAE.load(tmp_path / "m", accelerator="cpu")
    np.testing.assert_array_equal(loaded.get_latent_representation(data), model.get_latent_representation(data))


def test_a_checkpoint_written_by_rank_0_resumes_the_group(data, two_ranks):
    _, _, ckpt = two_ranks
    saved = torch.load(ckpt / "last.ckpt", weights_only=True)
    assert saved["epochs_done"] == 2
    resumed = PoEVAE(data, **SMALL).train(max_epochs=3, strategy="ddp", devices=2, checkpoint_dir=ckpt, resume=True, **KW)
    straight = PoEVAE(data, **SMALL).train(max_epochs=3, **KW)
    assert list(resumed.history.index) == [1, 2, 3]
    np.testing.assert_allclose(resumed.history["val_loss"], straight.history["val_loss"], rtol=1e-5)
    a, b = _weights(resumed), _weights(straight)
    assert max(float((a[k] - b[k]).abs().max()) for k in a if a[k].numel()) < 1e-4


def test_draws_of_a_share_are_the_rows_of_the_whole_minibatch_draws():
    torch.manual_seed(3)
    whole = torch.nn.functional.dropout(torch.ones(10, 6), 0.5, True), torch.rand(2, 10)
    shares = []
    for start, stop in ((0, 4), (4, 10)):
        torch.manual_seed(3)
        with rows_of_batch(start, stop, 10):
            from spatial_mg.model import _draws

            shares.append((_draws.dropout(torch.ones(stop - start, 6), 0.5, True), _draws.rand((2, stop - start), "cpu", dim=1)))
    assert torch.equal(torch.cat([s[0] for s in shares]), whole[0])
    assert torch.equal(torch.cat([s[1] for s in shares], 1), whole[1])


def test_ddp_without_devices_outside_torchrun_says_what_to_give(data, monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ValueError, match=r"strategy='ddp' needs devices=N .* torchrun"):
        PoEVAE(data, **SMALL).train(max_epochs=1, strategy="ddp", **KW)


def test_more_ranks_than_gpus_is_refused_naming_both(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DeviceUnavailableError, match=r"devices=2 on accelerator 'gpu' needs 2 GPUs.*torch sees 1"):
        _distributed.plan("ddp", 2, torch.device("cuda"))


def test_a_minibatch_smaller_than_the_group_is_refused_before_starting(data):
    with pytest.raises(ValueError, match=r"needs at least 2 cells in every training minibatch.*batch_size=1"):
        PoEVAE(data, **SMALL).train(max_epochs=1, strategy="ddp", devices=2, **dict(KW, batch_size=1))


def test_single_strategy_with_several_devices_is_refused():
    with pytest.raises(ValueError, match="strategy='single' trains in one process"):
        _distributed.plan("single", 2, torch.device("cpu"))


def test_rows_share_out_a_minibatch_like_tensor_split():
    for n in (7, 8, 9):
        parts = torch.tensor_split(torch.arange(n), 3)
        for rank in range(3):
            start, stop = _distributed.Group(rank, 3, torch.device("cpu")).rows(n)
            assert torch.equal(torch.arange(start, stop), parts[rank])


def test_mixture_draws_of_a_share_are_the_rows_of_the_whole_minibatch_draws():
    from spatial_mg.model._fusion import MixtureOfExperts

    mu, logvar = torch.randn(2, 10, 3), torch.randn(2, 10, 3)
    mask = torch.rand(2, 10) < 0.7
    torch.manual_seed(5)
    whole = MixtureOfExperts(mu, logvar, mask).rsample()
    shares = []
    for start, stop in ((0, 5), (5, 10)):
        torch.manual_seed(5)
        with rows_of_batch(start, stop, 10):
            shares.append(MixtureOfExperts(mu[:, start:stop], logvar[:, start:stop], mask[:, start:stop]).rsample())
    assert torch.equal(torch.cat(shares), whole)


@pytest.fixture
def torchrun_rank(monkeypatch):
    """This process as rank 1 of 2 of a torchrun launch (its variables only: no group is joined)."""
    for key, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(key, value)


def test_under_torchrun_auto_is_ddp_and_devices_must_match_the_launch(torchrun_rank):
    assert _distributed.plan("auto", None, torch.device("cpu")) == "torchrun"
    assert _distributed.plan("single", None, torch.device("cpu")) == "single"
    assert not _distributed.is_main_process()
    with pytest.raises(ValueError, match=r"started by torchrun with 2 processes on this node, but devices=3"):
        _distributed.plan("ddp", 3, torch.device("cpu"))
    with pytest.raises(ValueError, match=r"give accelerator='gpu', not 'cuda:1'"):
        _distributed.plan("ddp", None, torch.device("cuda", 1))


def test_mmd_penalties_on_two_ranks_are_those_of_the_whole_minibatch():
    """The MMDs compare distributions, not cells: each rank computes them on the whole
    minibatch (gathered, gradients flowing back), so two ranks still take one process's
    steps; an odd batch gives the ranks unequal shares (16 and 15)."""
    mdata = paired(n=124, n_msi=100)  # mosaic: the modality MMD's mask differs from presence
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"}, batch_key="section")
    arch = dict(SMALL, batch_mmd_weight=1.0, modality_mmd_weight=0.5)
    kw = dict(KW, batch_size=31, max_epochs=2)
    ddp = PoEVAE(mdata, **arch).train(strategy="ddp", devices=2, **kw)
    one = PoEVAE(mdata, **arch).train(**kw)
    assert {"train_mmd_batch", "train_mmd_modality"} <= set(one.history.columns)
    losses = [c for c in one.history.columns if c.startswith(("train_", "val_"))]
    np.testing.assert_allclose(ddp.history[losses].to_numpy(), one.history[losses].to_numpy(), rtol=1e-5)
    a, b = _weights(ddp), _weights(one)
    assert max(float((a[k] - b[k]).abs().max()) for k in a if a[k].numel()) < 1e-4
