"""Training on pairs that stay on disk: stacked a section at a time, read a chunk at a time
(the pipeline's and the CLI's side of issue 16's data from disk)."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import scipy.sparse as sp

from spatial_mg.cli import main
from spatial_mg.model import PoEVAE
from spatial_mg.pipeline import run_train, stack_sections, stack_sections_on_disk, train_model
from spatial_mg.pipeline._stack_on_disk import close_backed

QUICK = dict(max_epochs=4, accelerator="cpu", progress_bar=False, calibrate=False)


def _dense(matrix) -> np.ndarray:
    return matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)


def test_stacking_on_disk_gives_the_stack_of_stack_sections(aligned, tmp_path):
    sections = [(s.name, s.pairs) for s in aligned]
    in_memory = stack_sections(dict(sections))
    on_disk = stack_sections_on_disk(iter(sections), tmp_path / "stack")
    try:
        assert all(on_disk[mod].isbacked for mod in ("rna", "msi"))
        assert sorted(p.name for p in (tmp_path / "stack").iterdir()) == ["msi.h5ad", "rna.h5ad"]  # no parts left
        assert list(on_disk.obs_names) == list(in_memory.obs_names)
        assert on_disk.obs["section"].equals(in_memory.obs["section"])
        for mod in ("rna", "msi"):
            a, b = in_memory[mod], on_disk[mod]
            assert list(b.var_names) == list(a.var_names)
            np.testing.assert_array_equal(_dense(b.X[:]), _dense(a.X))
            np.testing.assert_array_equal(b.obsm["spatial"], a.obsm["spatial"])
            # the same values; the file stores the section's strings as a categorical
            assert b.obs[a.obs.columns].astype(str).equals(a.obs.astype(str))
        assert on_disk["msi"].uns.get("spatial_mg") == in_memory["msi"].uns.get("spatial_mg")
    finally:
        close_backed(on_disk)


def test_training_on_the_disk_stack_gives_the_in_memory_result(aligned, tmp_path):
    sections = [(s.name, s.pairs) for s in aligned]
    a = train_model(stack_sections(dict(sections)), **QUICK)
    on_disk = stack_sections_on_disk(iter(sections), tmp_path / "stack")
    try:
        b = train_model(on_disk, **QUICK)
        assert b._host is not None and any(type(m.matrix).__name__ == "DiskMatrix" for m in b._host.modalities.values())
    finally:
        close_backed(on_disk)
    assert a.registry.batch_key == b.registry.batch_key == "section"
    losses = [c for c in a.history.columns if c.startswith(("train_", "val_"))]
    # the feature moments are summed over chunks on disk: equal to float rounding (~1e-6),
    # a difference that the later epochs carry along, mostly in the small KL term
    np.testing.assert_allclose(b.history[losses].to_numpy()[0], a.history[losses].to_numpy()[0], rtol=1e-4)
    np.testing.assert_allclose(b.history[losses].to_numpy(), a.history[losses].to_numpy(), rtol=1e-3, atol=1e-3)


def test_run_train_on_disk_writes_the_model_and_removes_its_scratch(pairs_files, tmp_path):
    lines = []
    model = run_train(pairs=pairs_files, out=tmp_path / "out", max_epochs=2, accelerator="cpu", calibrate=False,
                      on_disk=True, echo=lines.append)
    assert "read from disk" in lines[-1] and "2 section(s)" in lines[-1]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # the stacked files are gone
    loaded = PoEVAE.load(tmp_path / "out" / "model")
    assert loaded.registry.batch_key == "section" and len(model.history) == 2


def test_on_disk_refuses_calibration_before_reading_anything(pairs_files, tmp_path):
    with pytest.raises(ValueError, match="no-calibration"):
        run_train(pairs=pairs_files, out=tmp_path / "out", max_epochs=1, accelerator="cpu", on_disk=True)
    assert not (tmp_path / "out").exists()


def test_the_cli_trains_from_disk(pairs_files, tmp_path):
    out = io.StringIO()
    argv = ["train", "--pairs", *map(str, pairs_files), "--out", str(tmp_path / "cli"), "--epochs", "1",
            "--accelerator", "cpu", "--on-disk", "--no-calibration"]
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    assert "read from disk" in out.getvalue()
    assert (tmp_path / "cli" / "model").is_dir()


def test_on_disk_under_torchrun_is_refused_naming_what_to_do(pairs_files, tmp_path, monkeypatch):
    for key, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match="every rank stack"):
        run_train(pairs=pairs_files, out=tmp_path / "out", max_epochs=1, accelerator="cpu", calibrate=False, on_disk=True)
    assert not (tmp_path / "out").exists()
