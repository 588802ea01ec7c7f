"""method='landmarks': the fit through user point pairs, with its residual."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from spatial_mg.align import register

from align_data import median_error


def test_landmarks_recover_the_transform(mirrored_pair):
    rna, msi, affine = mirrored_pair
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 2000, size=(6, 2))
    dst = affine.apply(src) + rng.normal(0, 3.0, size=(6, 2))  # a few um of placement error
    reg = register(rna, msi, method="landmarks", landmarks=(src, dst))
    assert reg.method == "landmarks"
    assert median_error(reg, msi, affine) < 10
    assert reg.qc.reflection and reg.qc.confidence == "high"
    assert 1.0 < reg.qc.residual_um < 8.0  # RMS of the 3 um scatter
    assert len(reg.qc.details["landmark_loo_um"]) == 6


def test_landmark_table_and_affine(mirrored_pair):
    rna, msi, affine = mirrored_pair
    src = np.array([[0, 0], [1500, 100], [200, 1800], [1400, 1600]], float)
    dst = affine.apply(src)
    table = pd.DataFrame(np.hstack([src, dst]), columns=["msi_x", "msi_y", "rna_x", "rna_y"])
    reg = register(rna, msi, method="landmarks", landmarks=table, transform="affine")
    np.testing.assert_allclose(reg.affine, affine, atol=1e-6)
    assert reg.qc.residual_um == pytest.approx(0.0, abs=1e-6)


# --- the SMA / MAGPIE landmark files as published ------------------------------------------
def test_the_real_sma_landmark_file_gives_the_hand_conversion():
    """The published file (MSI grid, Visium hires pixels) through register, against the
    conversion by hand: hires pixels / the file's hires scale factor -> full-resolution
    pixels -> the spots' micrometres by a similarity fit of their full-resolution pixels."""
    import json

    from align_data import SMA, SMA_LANDMARKS, SMA_MSI_PIXEL_UM, load_sma

    from spatial_mg.align import fit_similarity

    rna, msi, _, _ = load_sma()
    cols = ["barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres"]
    spots = pd.read_csv(SMA / "visium" / "spatial" / "tissue_positions_list.csv", header=None, names=cols)
    spots = spots.set_index("barcode").loc[rna.obs_names]
    fullres_to_um = fit_similarity(spots[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(float), rna.obsm["spatial"])
    hires_scalef = json.loads((SMA / "visium" / "spatial" / "scalefactors_json.json").read_text())["tissue_hires_scalef"]
    marks = pd.read_csv(SMA_LANDMARKS)
    by_hand = fit_similarity(
        marks[["X_left", "Y_left"]].to_numpy(float) * SMA_MSI_PIXEL_UM,
        fullres_to_um.apply(marks[["X_right", "Y_right"]].to_numpy(float) / hires_scalef),
    )

    for given in (SMA_LANDMARKS, str(SMA_LANDMARKS), marks):  # a path, its text, or the table read by pandas
        reg = register(rna, msi, method="landmarks", landmarks=given)
        np.testing.assert_allclose(reg.affine, by_hand.matrix, rtol=1e-6, atol=1e-3)
    # the facts of the fixture's README: ~98 um per MSI pixel, a reflection, ~91 um median scatter
    assert reg.qc.reflection and reg.qc.scale == pytest.approx(0.98, abs=0.01)
    assert reg.qc.details["landmark_median_um"] == pytest.approx(91, abs=5)
    assert marks.equals(pd.read_csv(SMA_LANDMARKS))  # the table given is not changed


def test_sma_landmarks_follow_the_recorded_msi_pixel_size():
    from align_data import SMA_LANDMARKS, load_sma

    from spatial_mg.align import landmarks_um

    rna, msi, _, _ = load_sma()
    msi_um, rna_um = landmarks_um(SMA_LANDMARKS, rna, msi)
    halved = msi.copy()
    halved.uns["spatial_mg"]["pixel_size_um"] = [50.0, 25.0]  # x and y steps apart
    msi_half, rna_same = landmarks_um(SMA_LANDMARKS, rna, halved)
    np.testing.assert_allclose(msi_half, msi_um * [0.5, 0.25])
    np.testing.assert_array_equal(rna_same, rna_um)
    np.testing.assert_allclose(landmarks_um(SMA_LANDMARKS, rna, halved, msi_pixel_size_um=100.0)[0], msi_um)


def test_sma_landmarks_without_scale_factors_or_pixel_size_are_clear_errors():
    from align_data import SMA_LANDMARKS, load_sma

    from spatial_mg.align import landmarks_um

    rna, msi, _, _ = load_sma()
    bare = rna.copy()
    del bare.uns["spatial"]
    with pytest.raises(ValueError, match="tissue_hires_scalef.*read_visium"):
        register(bare, msi, method="landmarks", landmarks=SMA_LANDMARKS)
    unsized = msi.copy()
    del unsized.uns["spatial_mg"]["pixel_size_um"]
    with pytest.raises(ValueError, match="grid units.*pixel size"):
        landmarks_um(SMA_LANDMARKS, rna, unsized)


def test_a_landmark_table_of_unknown_or_mixed_columns_is_refused(mirrored_pair, tmp_path):
    rna, msi, _ = mirrored_pair
    points = np.array([[0, 0], [1500, 100], [200, 1800], [1400, 1600]], float)
    with pytest.raises(KeyError, match="X_left, Y_left|X_left', 'Y_left"):
        register(rna, msi, method="landmarks", landmarks=pd.DataFrame(np.hstack([points, points]), columns=list("abcd")))
    both = pd.DataFrame(np.hstack([points, points, points, points]),
                        columns=["msi_x", "msi_y", "rna_x", "rna_y", "X_left", "Y_left", "X_right", "Y_right"])
    with pytest.raises(ValueError, match="keep one set"):
        register(rna, msi, method="landmarks", landmarks=both)
    with pytest.raises(FileNotFoundError, match="landmarks csv"):
        register(rna, msi, method="landmarks", landmarks=tmp_path / "missing.csv")


def test_spatial_mg_align_takes_the_published_landmark_file(tmp_path, capsys):
    """``spatial-mg align --landmarks landmarks_noHE.csv``: the csv reaches register as
    published, and the pose is the one register finds from the same file."""
    import json

    from align_data import SMA_LANDMARKS, SMA_MSI_PIXEL_UM, sma_msi_grid, write_sma_outs

    from spatial_mg.align import RegistrationResult
    from spatial_mg.cli import main
    from spatial_mg.io import read_sma_csv, read_visium

    outs = write_sma_outs(tmp_path / "V11L12-038_D1")
    grid = sma_msi_grid()
    rng = np.random.default_rng(0)
    export = grid[["x", "y", "spot_id"]].assign(**{f"{mz:.4f}": rng.lognormal(3, 0.5, len(grid)) for mz in (124.0, 146.0, 180.1)})
    csv = tmp_path / "msi.csv"
    export.to_csv(csv, index=False)
    argv = ["align", "--visium", str(outs), "--msi", str(csv), "--pixel-size-um", str(SMA_MSI_PIXEL_UM),
            "--landmarks", str(SMA_LANDMARKS), "--out", str(tmp_path / "aligned")]
    assert main(argv) == 0, capsys.readouterr().err
    saved = RegistrationResult.from_json((tmp_path / "aligned" / "registration.json").read_text())
    direct = register(read_visium(outs), read_sma_csv(csv, pixel_size_um=SMA_MSI_PIXEL_UM), method="landmarks",
                      landmarks=SMA_LANDMARKS)
    assert saved.method == "landmarks"
    np.testing.assert_allclose(saved.affine, direct.affine, rtol=1e-9, atol=1e-6)
    assert json.loads((tmp_path / "aligned" / "registration.json").read_text())["qc"]["details"]["n_landmarks"] == 10
