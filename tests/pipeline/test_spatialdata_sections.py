"""A section read by spatialdata-io registers, pairs and predicts as the same section read from its files."""

from __future__ import annotations

import numpy as np
import pytest
import spatialdata as sd
import spatialdata_io

from spatial_mg.align import pair, register
from spatial_mg.pipeline import (
    predict_section,
    predictions_spatialdata,
    read_peak_list,
    read_section,
    stack_sections,
    train_model,
)


@pytest.fixture(scope="module")
def visium_sdata(written):
    root, _, _ = written
    return {name: spatialdata_io.visium(root / name / "outs", dataset_id=name) for name in ("S1", "S2")}


@pytest.fixture(scope="module")
def model(aligned):
    return train_model(stack_sections({"S1": aligned[0].pairs}), max_epochs=3, accelerator="cpu", progress_bar=False)


def test_spatialdata_io_reads_the_written_outs_as_read_visium_does(visium_sdata, aligned):
    from spatial_mg.io import section_from_spatialdata

    rna = section_from_spatialdata(visium_sdata["S1"])
    expected = aligned[0].rna
    assert rna.obs_names.equals(expected.obs_names)
    # the grid is fitted on the table's spots (read_visium: every listed spot of the capture area)
    assert np.abs(rna.obsm["spatial"] - expected.obsm["spatial"]).max() < 1.0
    np.testing.assert_array_equal(rna.X.toarray(), expected.X.toarray())


def test_register_and_pair_from_spatialdata(visium_sdata, aligned):
    section = aligned[0]
    expected = section.registration
    reg = register(visium_sdata["S1"], section.msi, device="cpu")
    msi_um = reg.msi_um(section.msi)[reg.msi_tissue]
    # the same registration up to its own spread (refits from nearby starts end this far apart) and the
    # content's moves: the micrometres differ by the two grid fits' fraction of a micrometre, and this
    # pose is a loose one, so the content moves it by a share of its optimum, which is itself uncertain
    # by hundreds of um here (content_sd_um): each run's move can differ by up to its own size
    assert reg.qc.confidence == expected.qc.confidence and reg.qc.reflection == expected.qc.reflection
    moves = sum(r.qc.details.get("content_move_um", 0.0) for r in (reg, expected))
    assert np.median(reg.distance_to(expected.pose, msi_um)) < expected.qc.details["pose_spread_um"] + moves
    pairs = pair(visium_sdata["S1"], section.msi, reg)
    shared = pairs.obs_names.intersection(section.pairs.obs_names)
    assert len(shared) >= 0.95 * max(pairs.n_obs, section.pairs.n_obs)
    got, want = pairs["msi"][shared].X, section.pairs["msi"][shared].layers["raw"]
    for j in range(got.shape[1]):
        assert np.corrcoef(got[:, j], want[:, j])[0, 1] > 0.9
    assert "images" not in pairs["rna"].uns["spatial"]["S1"]


def test_predict_from_spatialdata(visium_sdata, written, model, tmp_path):
    root, _, _ = written
    from_sdata = read_section(visium_sdata["S2"])
    from_files = read_section(root / "S2" / "outs")
    assert from_sdata.name == "S2" and set(from_sdata.rna.obs["section"]) == {"S2"}
    pred = predict_section(model, from_sdata)
    expected = predict_section(model, from_files)
    assert pred.obs_names.equals(expected.obs_names)
    np.testing.assert_allclose(pred.X, expected.X, rtol=1e-5)  # the model reads counts, which are the same
    # the predictions' store holds the section's H&E in micrometres
    predictions_spatialdata(pred, section=from_sdata.rna).write(tmp_path / "predicted.zarr")
    back = sd.read_zarr(tmp_path / "predicted.zarr")
    assert set(back.images) == {"he_image"} and back.images["he_image"].dtype == np.uint8
    assert back.tables["table"].obs_names.equals(pred.obs_names)


def test_read_section_from_zarr_stores(visium_sdata, written, aligned, tmp_path):
    from spatial_mg.align import to_spatialdata

    root, _, _ = written
    visium_sdata["S1"].write(tmp_path / "S1_visium.zarr")
    section = aligned[0]
    to_spatialdata(section.rna, section.msi, section.registration).write(tmp_path / "aligned.zarr")
    peaks = read_peak_list(root / "peaks.csv")
    # spots from spatialdata-io's store, MSI from the imzML
    mixed = read_section(tmp_path / "S1_visium.zarr", root / "S1" / "msi" / "S1.imzML", mz_bins=peaks)
    assert mixed.name == "S1" and mixed.rna.obs_names.equals(section.rna.obs_names)
    # both from our own store: the very objects that were aligned
    again = read_section(tmp_path / "aligned.zarr", tmp_path / "aligned.zarr", name="S1")
    assert again.rna.obs_names.equals(section.rna.obs_names) and again.msi.obs_names.equals(section.msi.obs_names)
    np.testing.assert_array_equal(again.rna.obsm["spatial"], section.rna.obsm["spatial"])
    np.testing.assert_array_equal(again.msi.X, section.msi.X)
    assert again.msi.uns["spatial_mg"]["pixel_size_um"] == section.msi.uns["spatial_mg"]["pixel_size_um"]
    section.registration.check_pair(again.rna, again.msi)  # the registration applies to them
    with pytest.raises(ValueError, match="pixel_size_um and normalize are for imzML"):
        read_section(tmp_path / "aligned.zarr", tmp_path / "aligned.zarr", pixel_size_um=50.0)
    (tmp_path / "broken.zarr").mkdir()
    (tmp_path / "broken.zarr" / "zarr.json").write_text("{")
    with pytest.raises(ValueError, match="broken.zarr' cannot be read as a SpatialData zarr store"):
        read_section(tmp_path / "broken.zarr")


def test_the_model_predicts_from_a_spatialdata_section(tmp_path):
    import warnings

    import numpy as np
    import spatialdata_io

    from spatial_mg.io import section_from_spatialdata
    from spatial_mg.model import PoEVAE
    from spatial_mg.sim import paired_truth, synthetic_vicari

    data = synthetic_vicari(n_sections=2, n_spots=150, n_genes=40, n_metabolites=5, seed=3)
    data.write(tmp_path / "d")
    pairs = paired_truth(data, sections=[0], seed=1)
    PoEVAE.setup_mudata(pairs, likelihoods={"rna": "nb", "msi": "gaussian"})
    model = PoEVAE(pairs, n_latent=4, n_hidden=16).train(max_epochs=3, progress_bar=False, accelerator="cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sdata = spatialdata_io.visium(tmp_path / "d" / "S2" / "outs", dataset_id="S2")
    from_sdata = model.predict(sdata, target="msi")
    from_anndata = model.predict(section_from_spatialdata(sdata, load_images=False), target="msi")
    np.testing.assert_array_equal(from_sdata.X, from_anndata.X)
    assert "spatial" in from_sdata.obsm
    assert model.get_latent_representation(sdata, modality="rna").shape == (from_sdata.n_obs, 4)
