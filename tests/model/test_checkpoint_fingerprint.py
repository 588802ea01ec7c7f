"""Resume continues only the run that wrote the checkpoint: same model, same data (by
content, not shape), same settings that change the result; a refusal says what differs."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from spatial_mg.model import PoEVAE
from spatial_mg.model._data import HostData, ModalityData

from poevae_data import QUICK, paired

SMALL = dict(n_latent=4, n_hidden=16)
RUN = dict(QUICK, max_epochs=2, kl_warmup_epochs=1, patience=100)


def _setup(mdata):
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"}, batch_key="section")
    return mdata


def _checkpointed(tmp_path, mdata=None, **settings):
    mdata = _setup(mdata if mdata is not None else paired())
    PoEVAE(mdata, **SMALL).train(checkpoint_dir=tmp_path, **dict(RUN, **settings))
    return tmp_path


def _other_values(mdata):  # one count changed: same shape, names and categories
    counts = mdata["rna"].X.copy()
    counts.data[0] += 1
    mdata["rna"].X = counts
    return mdata


def _other_names(mdata):
    names = [f"spot{i}" for i in range(mdata.n_obs)][::-1]
    for mod in mdata.mod.values():
        mod.obs_names = [names[int(n[4:])] for n in mod.obs_names]
    mdata.update()
    return mdata


def _other_sections(mdata):  # the same cells, labelled with the other section
    for frame in (mdata.obs, *(m.obs for m in mdata.mod.values())):
        frame["section"] = frame["section"].map({"s0": "s1", "s1": "s0"})
    return mdata


@pytest.mark.parametrize(
    "change",
    [lambda m: paired(seed=1), _other_values, _other_names, _other_sections],
    ids=["another_sample", "one_count", "cell_names", "covariate_labels"],
)
def test_resume_refuses_other_data_of_the_same_shape(tmp_path, change):
    ckpt = _checkpointed(tmp_path)
    other = _setup(change(paired()))
    assert other["rna"].shape == paired()["rna"].shape
    with pytest.raises(ValueError, match=r"last\.ckpt' was written for other data .*resume with the data it was trained on"):
        PoEVAE(other, **SMALL).train(checkpoint_dir=ckpt, resume=True, **dict(RUN, max_epochs=3))


@pytest.mark.parametrize(
    ("setting", "value"),
    [("lr", 1e-2), ("batch_size", 16), ("weight_decay", 0.0), ("kl_weight", 1.0), ("validation_fraction", 0.2),
     ("seed", 3), ("gradient_clip", None), ("ema_epochs", 5.0), ("patience", 7), ("kl_warmup_epochs", 0)],
)
def test_resume_refuses_other_settings_naming_them(tmp_path, setting, value):
    ckpt = _checkpointed(tmp_path)
    with pytest.raises(ValueError, match=rf"other training settings \({setting} .* in the checkpoint, {value!r} now\)"):
        PoEVAE(_setup(paired()), **SMALL).train(checkpoint_dir=ckpt, resume=True, **dict(RUN, **{setting: value}))


def test_warmup_left_to_the_rule_says_how_to_train_longer(tmp_path):
    ckpt = _checkpointed(tmp_path, kl_warmup_epochs=None, max_epochs=4)  # warm-up 1
    with pytest.raises(ValueError, match="kl_warmup_epochs 1 in the checkpoint, 2 now.*pass the checkpoint's number"):
        PoEVAE(_setup(paired()), **SMALL).train(checkpoint_dir=ckpt, resume=True, **dict(RUN, kl_warmup_epochs=None, max_epochs=8))


def test_training_longer_with_other_bookkeeping_resumes_exactly(tmp_path):
    straight = PoEVAE(_setup(paired()), **SMALL).train(**dict(RUN, max_epochs=4))
    ckpt = _checkpointed(tmp_path)
    longer = dict(RUN, max_epochs=4, checkpoint_every=3, progress_bar=True)
    resumed = PoEVAE(_setup(paired()), **SMALL).train(checkpoint_dir=ckpt, resume=True, **longer)
    assert list(resumed.history.index) == [1, 2, 3, 4]
    a, b = straight.module.state_dict(), resumed.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_checkpoint_without_the_record_of_its_data_is_refused(tmp_path):
    ckpt = _checkpointed(tmp_path)
    state = torch.load(ckpt / "last.ckpt", weights_only=True)
    state["fingerprint"] = "2c1f0e9d"  # what checkpoints held before: a hash, not its parts
    torch.save(state, ckpt / "last.ckpt")
    with pytest.raises(ValueError, match="older spatial_mg .* cannot be checked"):
        PoEVAE(_setup(paired()), **SMALL).train(checkpoint_dir=ckpt, resume=True, **RUN)


def _host(matrix, names=("a", "b", "c"), codes=None, groups=None):
    n = matrix.shape[0]
    codes = np.zeros((n, 1), dtype=np.int64) if codes is None else codes
    data = ModalityData(matrix, np.arange(n), np.ones(n, dtype=bool))
    return HostData(pd.Index(list(names)), {"rna": data}, codes, groups)


def test_content_hash_sees_every_value_and_label_but_not_the_index_width():
    counts = sp.csr_matrix(np.array([[0, 2, 1], [3, 0, 0], [0, 0, 5]], dtype=np.float32))
    base = _host(counts).content_hash()
    wide = counts.copy()
    wide.indices, wide.indptr = wide.indices.astype(np.int64), wide.indptr.astype(np.int64)
    assert _host(wide).content_hash() == base
    moved = counts.copy()
    moved.indices = moved.indices.copy()
    moved.indices[0] = 0  # the same values in another column
    changed = counts.copy()
    changed.data = changed.data.copy()
    changed.data[-1] = 6
    others = [
        _host(moved),
        _host(changed),
        _host(counts, names=("a", "c", "b")),
        _host(counts, codes=np.array([[0], [1], [0]])),
        _host(counts, groups=np.zeros(3, dtype=np.int64)),
        _host(counts.toarray()),
    ]
    hashes = {h.content_hash() for h in others}
    assert base not in hashes and len(hashes) == len(others)


def test_a_checkpoint_of_another_device_is_refused(tmp_path):
    ckpt = _checkpointed(tmp_path)
    state = torch.load(ckpt / "last.ckpt", weights_only=True)
    state["fingerprint"]["settings"]["accelerator"] = "cuda"  # as a GPU run would have written it
    torch.save(state, ckpt / "last.ckpt")
    with pytest.raises(ValueError, match=r"accelerator 'cuda' in the checkpoint, 'cpu' now"):
        PoEVAE(_setup(paired()), **SMALL).train(checkpoint_dir=ckpt, resume=True, **RUN)
