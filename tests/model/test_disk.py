"""Training on data that stay on disk (backed MuData), a chunk of cells at a time."""

from __future__ import annotations

import anndata as ad
import mudata as md
import numpy as np
import pytest
from poevae_data import paired

from spatial_mg.model import PoEVAE, _disk
from spatial_mg.model._chunked import ChunkedData
from spatial_mg.model._disk import DiskMatrix

SMALL = dict(n_latent=4, n_hidden=16)
KW = dict(max_epochs=3, batch_size=32, progress_bar=False, accelerator="cpu")
LIKELIHOODS = {"rna": "nb", "msi": "gaussian"}


@pytest.fixture
def written(tmp_path):
    path = tmp_path / "pairs.h5mu"
    paired(n=120, n_msi=100).write(path)  # mosaic: 20 spots without metabolites
    return path


def _weights(model):
    return {k: v.detach().cpu() for k, v in model.module.state_dict().items()}


@pytest.mark.parametrize("row_by_row", [True, False])  # False: storage chunks too large, rows read by blocks
def test_backed_training_gives_the_in_memory_result_reading_a_chunk_at_a_time(written, monkeypatch, row_by_row):
    monkeypatch.setattr(_disk, "ROW_READ_CHUNK_BYTES", _disk.ROW_READ_CHUNK_BYTES if row_by_row else 0)
    in_memory = md.read_h5mu(written)
    on_disk = md.read_h5mu(written, backed="r")
    for data in (in_memory, on_disk):
        PoEVAE.setup_mudata(data, likelihoods=LIKELIHOODS)
    reads = []
    real_read = ChunkedData._read

    def counted(self, cells):
        reads.append(cells.size)
        return real_read(self, cells)

    monkeypatch.setattr(ChunkedData, "_read", counted)
    a = PoEVAE(in_memory, **SMALL).train(**KW)
    model = PoEVAE(on_disk, **SMALL)
    matrices = [m.matrix for m in model._host.modalities.values()]
    assert all(isinstance(m, DiskMatrix) for m in matrices)  # nothing loaded whole
    assert matrices[0].scattered_reads == row_by_row  # anndata stores CSR arrays in small chunks
    b = model.train(chunk_size=40, **KW)
    # the memory is set by the chunk: never more cells at a time than chunk_size
    assert reads and max(reads) <= 40 and len(reads) >= 3 * 3  # 108 training cells: three chunks an epoch
    losses = [c for c in a.history.columns if c.startswith(("train_", "val_"))]
    np.testing.assert_allclose(b.history[losses].to_numpy(), a.history[losses].to_numpy(), rtol=1e-5)
    wa, wb = _weights(a), _weights(b)
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa if wa[k].numel()) < 1e-4
    np.testing.assert_allclose(b.get_latent_representation(), a.get_latent_representation(), atol=1e-4)


def test_a_wrong_cell_order_would_show(written):
    # the comparison above is sharp: training on the same cells in another order differs
    data = md.read_h5mu(written)
    PoEVAE.setup_mudata(data, likelihoods=LIKELIHOODS)
    a = PoEVAE(data, **SMALL).train(**KW)
    b = PoEVAE(data, **SMALL).train(**dict(KW, seed=1))
    assert not np.allclose(a.history["train_loss"], b.history["train_loss"], rtol=1e-5)


def test_setup_checks_the_values_on_disk_naming_the_modality(tmp_path):
    mdata = paired(n=60)
    mdata["rna"].X[3, 2] = -1.0
    mdata.write(tmp_path / "bad.h5mu")
    backed = md.read_h5mu(tmp_path / "bad.h5mu", backed="r")
    with pytest.raises(ValueError, match=r"modality 'rna' \(X\) of the training data has negative values"):
        PoEVAE.setup_mudata(backed, likelihoods=LIKELIHOODS)


def test_ddp_in_new_processes_refuses_data_on_disk_saying_what_works(written):
    backed = md.read_h5mu(written, backed="r")
    PoEVAE.setup_mudata(backed, likelihoods=LIKELIHOODS)
    with pytest.raises(ValueError, match="launch with torchrun .* or load the data into memory"):
        PoEVAE(backed, **SMALL).train(strategy="ddp", devices=2, **KW)


def test_backed_data_stay_as_they_were(written):
    backed = md.read_h5mu(written, backed="r")
    before = backed["rna"].X[np.arange(10)].toarray()
    PoEVAE.setup_mudata(backed, likelihoods=LIKELIHOODS)
    PoEVAE(backed, **SMALL).train(**dict(KW, max_epochs=1))
    assert np.array_equal(backed["rna"].X[np.arange(10)].toarray(), before)
    assert np.array_equal(md.read_h5mu(written)["rna"].X[:10].toarray(), before)


def test_prediction_from_a_backed_query_equals_the_in_memory_one(written):
    data = md.read_h5mu(written)
    PoEVAE.setup_mudata(data, likelihoods=LIKELIHOODS)
    model = PoEVAE(data, **SMALL).train(**dict(KW, max_epochs=1))
    backed = md.read_h5mu(written, backed="r")
    a = model.predict(data, target="msi", n_samples=4)
    b = model.predict(backed, target="msi", n_samples=4)
    np.testing.assert_allclose(b.X, a.X, rtol=1e-5)
    np.testing.assert_allclose(b.layers["std"], a.layers["std"], rtol=1e-4, atol=1e-6)
    assert list(b.obs_names) == list(a.obs_names)
    data["rna"].write_h5ad(written.with_name("rna.h5ad"))  # an RNA-only section, backed
    rna_only = ad.read_h5ad(written.with_name("rna.h5ad"), backed="r")
    np.testing.assert_allclose(model.predict(rna_only, n_samples=4).X, model.predict(data["rna"], n_samples=4).X, rtol=1e-5)
