"""A model folder on disk: concurrent saves, and predictions written over older ones."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch

from spatial_mg.model import PoEVAE
from spatial_mg.pipeline import run_predict


@pytest.mark.parametrize("overwrite", [False, True])
def test_two_saves_to_one_path_exactly_one_wins_and_the_model_is_never_missing(trained, tmp_path, monkeypatch, overwrite):
    path = tmp_path / "model"
    if overwrite:
        trained.save(path)
    barrier, results, missing, stop = threading.Barrier(2), {}, [], threading.Event()
    real_save = torch.save

    def save_while_the_other_saves(obj, f, *args, **kwargs):
        try:
            barrier.wait(timeout=1.0)  # both saves inside their writes at once, if both get there
        except threading.BrokenBarrierError:
            pass
        real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_while_the_other_saves)

    def save(tag):
        try:
            trained.save(path, overwrite=overwrite)
            results[tag] = "saved"
        except FileExistsError as err:  # PathInUseError while the other saves; "exists" had it finished
            results[tag] = str(err)

    def watch():
        while not stop.is_set():
            if overwrite and not (path / "model.pt").is_file():
                missing.append(1)

    threads = [threading.Thread(target=watch)] + [threading.Thread(target=save, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join()
    stop.set()
    threads[0].join()

    assert sorted(results.values()).count("saved") == 1, results
    (refusal,) = [r for r in results.values() if r != "saved"]
    assert f"is being written by the run pid {os.getpid()}" in refusal or "already exists" in refusal
    assert not missing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no .old-*, .tmp-* or lock left
    loaded = PoEVAE.load(path)
    assert loaded.history.equals(trained.history)


def test_predict_overwrite_leaves_no_older_spatialdata_beside_the_new_table(trained, mdata, tmp_path):
    trained.save(tmp_path / "model")
    rna = mdata["rna"].copy()
    rna.obsm["spatial"] = np.random.default_rng(0).uniform(0, 1000, size=(rna.n_obs, 2))
    rna.write_h5ad(tmp_path / "with_spots.h5ad")
    del rna.obsm["spatial"]
    rna.write_h5ad(tmp_path / "without_spots.h5ad")
    quiet = dict(model=tmp_path / "model", out=tmp_path / "pred", accelerator="cpu", echo=lambda *a, **k: None)

    run_predict(rna=tmp_path / "with_spots.h5ad", **quiet)
    assert sorted(os.listdir(tmp_path / "pred")) == ["predicted.h5ad", "predicted.zarr"]
    run_predict(rna=tmp_path / "without_spots.h5ad", overwrite=True, **quiet)
    assert sorted(os.listdir(tmp_path / "pred")) == ["predicted.h5ad"]  # the older maps went with the older run
