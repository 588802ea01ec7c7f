"""`spatial-mg align` and `predict` write SpatialData stores that spatialdata.read_zarr opens at the named path."""

from __future__ import annotations

import anndata as ad
import numpy as np
import spatialdata as sd
import spatialdata_io
from spatialdata.transformations import get_transformation

from spatial_mg.align import RegistrationResult
from spatial_mg.cli import main


def test_align_and_predict_stores_open_at_their_names(written, aligned, registration_cache, tmp_path):
    root, _, _ = written
    s1 = ["--visium", str(root / "S1" / "outs"), "--msi", str(root / "S1" / "msi" / "S1.imzML"), "--device", "cpu"]
    with registration_cache.reused():  # S1 as `aligned` registered it: the stores written around it are the subject
        assert main(["align", *s1, "--mz-bins", str(root / "peaks.csv"), "--out", str(tmp_path / "S1")]) == 0
    store = tmp_path / "S1" / "spatialdata.zarr"
    aligned = sd.read_zarr(store)  # the store itself, not a folder holding one
    assert not any(p.suffix == ".zarr" for p in store.iterdir())
    assert set(aligned.tables) == {"rna_table", "msi_table"} and {"rna_spots", "msi_pixels"} <= set(aligned.shapes)
    assert "he_image" in aligned.images and aligned.images["he_image"].dtype == np.uint8
    reg = RegistrationResult.from_json((tmp_path / "S1" / "registration.json").read_text())
    to_global = get_transformation(aligned.shapes["msi_pixels"], to_coordinate_system="global")
    np.testing.assert_allclose(to_global.to_affine_matrix(("x", "y"), ("x", "y")), reg.affine)

    pairs = str(tmp_path / "S1" / "pairs.h5mu")
    assert main(["train", "--pairs", pairs, "--epochs", "2", "--out", str(tmp_path / "model")]) == 0
    # the RNA-only section as spatialdata-io's store: --visium takes it as it takes outs/
    spatialdata_io.visium(root / "S2" / "outs", dataset_id="S2").write(tmp_path / "S2.zarr")
    args = ["predict", "--model", str(tmp_path / "model"), "--visium", str(tmp_path / "S2.zarr"), "--out", str(tmp_path / "p")]
    assert main(args) == 0
    predicted = sd.read_zarr(tmp_path / "p" / "predicted.zarr")
    assert "he_image" in predicted.images  # the section's H&E, under the predicted maps
    table = ad.read_h5ad(tmp_path / "p" / "predicted.h5ad")
    assert set(table.obs["section"]) == {"S2"}  # named by the store's library
    assert predicted.tables["table"].obs_names.equals(table.obs_names)
    np.testing.assert_allclose(np.asarray(predicted.tables["table"].X), np.asarray(table.X))
    np.testing.assert_allclose(predicted.tables["table"].layers["std"], table.layers["std"])
