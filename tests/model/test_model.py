"""PoEVAE, the user class: training, inference, persistence, checkpoints, bad input."""

import warnings
from pathlib import Path

import mudata as md
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from spatial_mg._constants import SETUP_UNS_KEY
from spatial_mg.model import PoEVAE
from spatial_mg.model import _training

from poevae_data import QUICK, paired

SMALL = dict(n_latent=4, n_hidden=16)


def _setup(mdata, **kw):
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"}, **kw)
    return mdata


def test_train_latent_and_predict(trained, mdata):
    h = trained.history
    assert len(h) == 3 and {"train_nll_rna", "train_nll_msi", "train_kl_z", "val_loss"} <= set(h.columns)
    z = trained.get_latent_representation()
    assert z.shape == (mdata.n_obs, 4) and np.isfinite(z).all()
    pred = trained.predict(mdata["rna"], target="msi")
    assert pred.shape == (mdata.n_obs, 8) and list(pred.var_names) == list(mdata["msi"].var_names)
    assert (pred.layers["std"] > 0).all() and np.isfinite(pred.X).all()
    # Gaussian predictions come back in the units trained on, not standardised ones
    assert abs(pred.X.mean() - mdata["msi"].X.mean()) < 1.0 and pred.X.mean() > 3
    assert pred.uns["spatial_mg"]["prediction"]["target"] == "msi"


def test_per_modality_latent_is_nan_where_the_modality_is_missing():
    mdata = _setup(paired(n_msi=80))
    model = PoEVAE(mdata, **SMALL)
    z_msi = model.get_latent_representation(modality="msi")
    has = np.isin(mdata.obs_names, mdata["msi"].obs_names)
    assert np.isnan(z_msi[~has]).all() and np.isfinite(z_msi[has]).all()
    assert np.isfinite(model.get_latent_representation(modality="rna")).all()


def test_inputs_are_never_modified(mdata):
    before = {m: mdata[m].copy() for m in mdata.mod}
    obs, uns, obsm = mdata.obs.copy(), set(mdata.uns), set(mdata.obsm)
    _setup(mdata, batch_key="section")
    assert set(mdata.uns) == uns | {SETUP_UNS_KEY}  # setup's one, documented, change
    setup = dict(mdata.uns)
    model = PoEVAE(mdata, **SMALL)
    model.train(**QUICK)
    model.predict(mdata["rna"], target="msi")
    model.get_latent_representation(mdata)
    for m in ("rna", "msi"):
        a, b = mdata[m].X, before[m].X
        assert (a != b).nnz == 0 if sp.issparse(a) else np.array_equal(a, b)
        assert mdata[m].obs.equals(before[m].obs) and not mdata[m].layers.keys() and not mdata[m].uns
    assert mdata.obs.equals(obs) and dict(mdata.uns) == setup and set(mdata.obsm) == obsm


def test_setup_travels_with_copies_and_h5mu_files(mdata, tmp_path):
    _setup(mdata, batch_key="section")
    model = PoEVAE(mdata, **SMALL).train(**QUICK)
    copied = PoEVAE(mdata.copy(), **SMALL).train(**QUICK)
    mdata.write(tmp_path / "set_up.h5mu")
    reread = md.read_h5mu(tmp_path / "set_up.h5mu")
    from_file = PoEVAE(reread, **SMALL).train(**QUICK)
    assert copied.registry == model.registry == from_file.registry
    z = model.get_latent_representation()
    assert np.array_equal(copied.get_latent_representation(), z)
    assert np.array_equal(from_file.get_latent_representation(), z)


def test_values_are_checked_once_at_setup(mdata, monkeypatch):
    from spatial_mg.model import _data

    calls = []
    real = _data.check_values
    monkeypatch.setattr(_data, "check_values", lambda *a: calls.append(a[2]) or real(*a))
    _setup(mdata)
    assert len(calls) == 2  # rna and msi, scanned by setup
    PoEVAE(mdata, **SMALL)
    assert len(calls) == 2  # the model reads them without scanning again


def test_modalities_keyword_is_deprecated_but_works(mdata):
    with pytest.warns(FutureWarning, match="likelihoods="):
        PoEVAE.setup_mudata(mdata, modalities={"rna": "nb", "msi": "gaussian"})
    old = PoEVAE(mdata, **SMALL)
    new = PoEVAE(_setup(paired()), **SMALL)
    assert old.registry == new.registry
    assert np.array_equal(old.get_latent_representation(), new.get_latent_representation())
    with pytest.raises(TypeError, match="not both"):
        PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb"}, modalities={"rna": "nb"})
    with pytest.raises(TypeError, match="likelihoods="):
        PoEVAE.setup_mudata(mdata)


def test_seeded_runs_repeat_and_seeds_matter(mdata):
    _setup(mdata)
    runs = []
    for seed in (0, 0, 1):
        model = PoEVAE(mdata, seed=seed, **SMALL)
        model.train(**QUICK)
        runs.append((model.history.drop(columns="seconds"), model.get_latent_representation()))
    assert runs[0][0].equals(runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    assert not np.allclose(runs[0][1], runs[2][1])


def test_save_load_predict_identical(trained, mdata, tmp_path):
    trained.save(tmp_path / "model")
    with pytest.raises(FileExistsError):
        trained.save(tmp_path / "model")
    loaded = PoEVAE.load(tmp_path / "model")
    for kw in ({}, {"return_std": False}):
        a = trained.predict(mdata["rna"], target="msi", **kw)
        b = loaded.predict(mdata["rna"], target="msi", **kw)
        assert np.array_equal(a.X, b.X)
    assert np.array_equal(a.layers.get("std", 0), b.layers.get("std", 0))
    assert np.array_equal(trained.get_latent_representation(mdata), loaded.get_latent_representation(mdata))
    assert loaded.history.equals(trained.history)
    with pytest.raises(ValueError, match="no data"):
        loaded.get_latent_representation()
    trained.save(tmp_path / "model", overwrite=True)


def test_load_with_data_leaves_the_data_alone(trained, tmp_path):
    trained.save(tmp_path / "model")
    fresh = paired()  # never set up
    attached = PoEVAE.load(tmp_path / "model", mdata=fresh)
    assert SETUP_UNS_KEY not in fresh.uns and not fresh.uns
    assert np.array_equal(attached.get_latent_representation(), trained.get_latent_representation(fresh))
    attached.train(**QUICK)
    assert len(attached.history) == 2 * QUICK["max_epochs"]


def test_models_saved_in_the_first_format_still_load():
    """``data/model_v1`` was saved by the code of 69729af (``data/make_model_v1.py``)."""
    saved = Path(__file__).parent / "data" / "model_v1"
    assert torch.load(saved / "model.pt", weights_only=True)["format_version"] == 1
    model = PoEVAE.load(saved)
    mdata = paired(n=24, n_genes=6, n_mets=3, seed=0)
    expected = np.load(saved / "expected.npz")
    pred = model.predict(mdata["rna"], target="msi", return_std=True, n_samples=4)
    np.testing.assert_allclose(pred.X, expected["msi"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(pred.layers["std"], expected["msi_std"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.get_latent_representation(mdata), expected["z"], rtol=1e-5, atol=1e-6)
    assert model.module_config.dispersion == "feature-batch" and model.module_config.covariate_sizes == ((2, 0),)


def _weights(model):
    return {k: v.clone() for k, v in model.module.state_dict().items()}


def test_a_crash_loses_no_finished_epoch_and_resume_continues_exactly(mdata, tmp_path, monkeypatch):
    _setup(mdata)
    kw = dict(QUICK, max_epochs=4, kl_warmup_epochs=2, patience=100, lr_patience=0, ema_epochs=2)
    straight = PoEVAE(mdata, **SMALL)
    straight.train(**kw)

    crashing = PoEVAE(mdata, **SMALL)
    real_epoch = _training.Trainer._epoch

    def epoch_or_crash(self, epoch):
        if epoch == 2:
            raise KeyboardInterrupt("power cut")
        return real_epoch(self, epoch)

    monkeypatch.setattr(_training.Trainer, "_epoch", epoch_or_crash)
    with pytest.raises(KeyboardInterrupt):
        crashing.train(checkpoint_dir=tmp_path / "ckpt", **kw)
    monkeypatch.setattr(_training.Trainer, "_epoch", real_epoch)
    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    assert saved["epochs_done"] == 2 and len(saved["history"]) == 2

    resumed = PoEVAE(mdata, **SMALL)
    resumed.train(checkpoint_dir=tmp_path / "ckpt", resume=True, **kw)
    assert list(resumed.history.index) == [1, 2, 3, 4]
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    drop = ["seconds"]
    assert resumed.history.drop(columns=drop).equals(straight.history.drop(columns=drop))


def test_learning_rate_drops_on_plateau_only_when_asked(mdata):
    _setup(mdata)
    constant = PoEVAE(mdata, **SMALL).train(**dict(QUICK, max_epochs=12, kl_warmup_epochs=0))
    assert (constant.history["lr"] == 3e-3).all()
    # lr_patience=0: every epoch that does not beat the best so far halves the rate
    decayed = PoEVAE(mdata, **SMALL).train(**dict(QUICK, max_epochs=12, kl_warmup_epochs=0, lr_patience=0, lr=0.3))
    lr = decayed.history["lr"].to_numpy()
    assert lr[0] == 0.3 and np.all(np.diff(lr) <= 0) and lr[-1] < 0.3 and lr[-1] >= 0.3 * 1e-2
    assert set(np.round(lr / 0.3, 12)) <= {0.5**k for k in range(7)} | {0.01}  # halvings, floored at 1 %


def test_weight_averaging_keeps_the_moving_average_of_the_trajectory(mdata, monkeypatch):
    _setup(mdata)
    trajectory = []
    real_average = _training.Trainer._average

    def recording(self):
        trajectory.append(self.flat.flat.detach().clone())
        real_average(self)

    monkeypatch.setattr(_training.Trainer, "_average", recording)
    kw = dict(QUICK, max_epochs=3, validation_fraction=0.0, early_stopping=False, ema_epochs=1.5)
    model = PoEVAE(mdata, **SMALL).train(**kw)
    steps_per_epoch = len(trajectory) // 3
    first = [p.detach() for p in PoEVAE(mdata, **SMALL).module.parameters()]  # the average starts here
    expected = torch.cat([p.reshape(-1) for p in first])
    for t, w in enumerate(trajectory, start=1):
        decay = min(np.exp(-1 / (1.5 * steps_per_epoch)), (1 + t) / (10 + t))
        expected = decay * expected + (1 - decay) * w
    final = torch.cat([p.detach().reshape(-1) for p in model.module.parameters()])
    torch.testing.assert_close(final, expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(final, trajectory[-1])  # not simply the last step's weights


def test_resume_with_weight_averaging_refuses_a_checkpoint_without_it(mdata, tmp_path):
    _setup(mdata)
    PoEVAE(mdata, **SMALL).train(checkpoint_dir=tmp_path, **dict(QUICK, max_epochs=2, ema_epochs=None))
    with pytest.raises(ValueError, match="other training settings .*ema_epochs None in the checkpoint, 20.0 now"):
        PoEVAE(mdata, **SMALL).train(checkpoint_dir=tmp_path, resume=True, **dict(QUICK, max_epochs=3))


def test_resume_refuses_a_checkpoint_of_another_model(mdata, tmp_path):
    _setup(mdata)
    PoEVAE(mdata, **SMALL).train(checkpoint_dir=tmp_path, **QUICK)
    with pytest.raises(ValueError, match="another model"):
        PoEVAE(mdata, n_latent=5, n_hidden=16).train(checkpoint_dir=tmp_path, resume=True, **QUICK)


def test_nan_stops_training_naming_term_and_epoch(mdata):
    _setup(mdata)
    model = PoEVAE(mdata, **SMALL)
    calls = {"n": 0}

    def poison(module, inputs, output):
        if module.training:
            calls["n"] += 1
            if calls["n"] >= 7:  # epoch 2 (4 training steps per epoch), step 3
                return output * float("nan")
        return output

    model.module.blocks[1].decoder.register_forward_hook(poison)
    with pytest.raises(FloatingPointError, match=r"'nll_msi'.*epoch 2 \(step 3\)"):
        model.train(**dict(QUICK, max_epochs=5))
    assert len(model.history) == 1  # the finished epoch is kept ...
    assert all(torch.isfinite(p).all() for p in model.module.parameters())  # ... with its weights


def test_missing_modality_is_the_mask_never_an_all_zero_row():
    mdata = paired(n_msi=80)
    x = mdata["rna"].X.toarray()
    x[5] = 0  # observed, with no counts
    mdata["rna"].X = sp.csr_matrix(x)
    mdata["msi"].obs["measured"] = np.arange(80) >= 10
    _setup(mdata, mask_keys={"msi": "measured"})
    with pytest.warns(UserWarning, match="no counts"):
        model = PoEVAE(mdata, **SMALL)
    z_rna = model.get_latent_representation(modality="rna")
    z_msi = model.get_latent_representation(modality="msi")
    assert np.isfinite(z_rna[5]).all()
    has = np.isin(mdata.obs_names, mdata["msi"].obs_names[10:])
    assert np.isnan(z_msi[~has]).all() and np.isfinite(z_msi[has]).all()


def test_mosaic_cells_with_any_subset_train_as_one():
    from spatial_mg.sim import synthetic_mosaic

    mdata = synthetic_mosaic(n_cells_per_batch=30, n_genes=40, n_peaks=50, n_proteins=10)
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "atac": "bernoulli", "protein": "gaussian"}, batch_key="batch")
    model = PoEVAE(mdata, fusion="moe", heteroscedastic=True, **SMALL)
    model.train(**QUICK)
    assert np.isfinite(model.get_latent_representation()).all()
    protein = model.predict(mdata, target="protein")
    assert protein.layers["std"].std(0).mean() > 0  # per-cell scales: stds differ between cells
    pred = model.predict(mdata, target="rna", normalize=True)
    assert np.allclose(pred.X.sum(1), 1e4, rtol=1e-3)
    counts = model.predict(mdata, target="rna", return_std=False)
    has_rna = np.isin(mdata.obs_names, mdata["rna"].obs_names)
    lib = np.asarray(mdata["rna"].X.sum(1)).ravel()
    assert np.allclose(counts.X[has_rna].sum(1), lib, rtol=1e-3)  # at the cell's own library size
    atac = model.predict(mdata, target="atac")
    assert (atac.X >= 0).all() and (atac.X <= 1).all()


def test_query_surgery_freezes_every_reference_weight():
    from spatial_mg.sim import synthetic_mosaic

    full = synthetic_mosaic(
        {"r1": ("rna", "protein"), "r2": ("rna",), "q": ("rna", "protein")}, n_cells_per_batch=40, n_genes=40, n_proteins=10
    )
    ref, query = full[full.obs["batch"] != "q"].copy(), full[full.obs["batch"] == "q"].copy()
    PoEVAE.setup_mudata(ref, likelihoods={"rna": "nb", "protein": "gaussian"}, batch_key="batch")
    model = PoEVAE(ref, dispersion="feature-batch", **SMALL)
    model.train(**QUICK)
    before = _weights(model)
    z_ref = model.get_latent_representation()
    with pytest.raises(ValueError, match="load_query_data"):
        model.get_latent_representation(query)
    qmodel = PoEVAE.load_query_data(query, model)
    trainable = [n for n, p in qmodel.module.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith(".new") for n in trainable)
    start = _weights(qmodel)
    qmodel.train(**QUICK)
    after = _weights(qmodel)
    for k, v in before.items():  # rows of new categories live under ".new", the rest is reference
        if not k.endswith(".new"):
            assert torch.equal(after[k], v), k
    assert any(not torch.equal(after[k], start[k]) for k in after if k.endswith(".new"))
    assert np.array_equal(qmodel.get_latent_representation(ref), z_ref)
    assert np.array_equal(model.get_latent_representation(), z_ref)
    assert np.isfinite(qmodel.get_latent_representation()).all()

    joint = PoEVAE.load_query_data(query, model, query_in_train=True)
    assert all(p.requires_grad for p in joint.module.parameters())
    assert joint._host.n_obs == ref.n_obs + query.n_obs
    joint.train(**QUICK)


def test_checkpoint_is_written_atomically_each_epoch(mdata, tmp_path):
    _setup(mdata)
    PoEVAE(mdata, **SMALL).train(checkpoint_dir=tmp_path, **QUICK)
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["epochs_done"] == 3


# --- bad input ----------------------------------------------------------------------------
def _counts_with(mdata, value):
    x = mdata["rna"].X.toarray()
    x[3, 2] = value
    mdata["rna"].X = sp.csr_matrix(x)
    return mdata


@pytest.mark.parametrize(
    ("value", "message"), [(-1.0, "negative"), (1.5, "non-integer"), (np.nan, "NaN"), (np.inf, "infinite")]
)
def test_bad_counts_are_refused(mdata, value, message):
    with pytest.raises(ValueError, match=message):
        _setup(_counts_with(mdata, value))


def test_nan_in_gaussian_modality_is_refused(mdata):
    mdata["msi"].X[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"modality 'msi'.*NaN"):
        _setup(mdata)


def test_named_but_absent_modality_layer_or_setup(mdata):
    with pytest.raises(KeyError, match="'atac' is not in the MuData"):
        PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "atac": "bernoulli"})
    with pytest.raises(KeyError, match="no layer 'counts'"):
        PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb"}, layers={"rna": "counts"})
    with pytest.raises(ValueError, match="likelihood"):
        PoEVAE.setup_mudata(mdata, likelihoods={"rna": "poisson"})
    with pytest.raises(ValueError, match="setup_mudata"):
        PoEVAE(paired())
    garbled = paired()
    garbled.uns[SETUP_UNS_KEY] = "{not json"
    with pytest.raises(ValueError, match="run setup_mudata again"):
        PoEVAE(garbled)
    with pytest.raises(ValueError, match="0 and 1"):
        PoEVAE.setup_mudata(mdata, likelihoods={"msi": "bernoulli"})


def test_counts_layer_is_used_and_x_left_alone(mdata):
    mdata["rna"].layers["counts"] = mdata["rna"].X.copy()
    mdata["rna"].X = mdata["rna"].X * 0.37  # e.g. normalised: not counts
    with pytest.raises(ValueError, match="non-integer"):
        _setup(mdata)
    _setup(mdata, layers={"rna": "counts"})
    PoEVAE(mdata, **SMALL)


def test_predict_aligns_reordered_features_and_refuses_missing_ones(trained, mdata):
    rna = mdata["rna"]
    expected = trained.predict(rna, target="msi").X
    shuffled = rna[:, rna.var_names[::-1]].copy()
    assert np.array_equal(trained.predict(shuffled, target="msi").X, expected)
    with pytest.raises(ValueError, match="lacks 2 of the 30 features"):
        trained.predict(rna[:, 2:].copy(), target="msi", modality="rna")
    with pytest.raises(KeyError, match="unknown target"):
        trained.predict(rna, target="atac")


def test_predictions_carry_the_query_spot_coordinates(trained, mdata):
    rna = mdata["rna"].copy()
    rna.obsm["spatial"] = np.arange(2 * rna.n_obs, dtype=float).reshape(-1, 2)
    pred = trained.predict(rna[::-1].copy(), target="msi", return_std=False)  # rows follow the query
    assert np.array_equal(pred.obsm["spatial"], rna.obsm["spatial"][::-1])
    both = mdata.copy()
    both.mod["rna"].obsm["spatial"] = rna.obsm["spatial"]
    pred = trained.predict(both, target="msi", return_std=False)
    expected = pd.DataFrame(rna.obsm["spatial"], index=rna.obs_names).loc[pred.obs_names].to_numpy()
    assert np.array_equal(pred.obsm["spatial"], expected)
    assert "spatial" not in trained.predict(mdata["rna"], target="msi", return_std=False).obsm


def test_unseen_category_needs_query_mapping(mdata):
    _setup(mdata, batch_key="section")
    model = PoEVAE(mdata, **SMALL)
    query = mdata["rna"].copy()
    query.obs["section"] = "s2"
    with pytest.raises(ValueError, match=r"unseen in training: \['s2'\].*load_query_data"):
        model.predict(query, target="msi")


def test_zero_variance_gaussian_feature_is_predicted_as_its_constant(mdata):
    mdata["msi"].X[:, 0] = 7.5
    _setup(mdata)
    with pytest.warns(UserWarning, match="zero variance"):
        model = PoEVAE(mdata, **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.train(**QUICK)
    pred = model.predict(mdata["rna"], target="msi")
    assert np.isfinite(pred.X).all() and np.allclose(pred.X[:, 0], 7.5, atol=0.5)


def test_a_modality_with_no_cells_counts_as_absent(trained):
    data = paired(n_msi=80)
    rna_only = data[~np.isin(data.obs_names, data["msi"].obs_names)].copy()
    assert rna_only["msi"].n_obs == 0
    pred = trained.predict(rna_only, target="msi")
    assert pred.shape == (40, 8) and np.isfinite(pred.X).all()
