"""The CLI steps round-trip on small synthetic files: align -> train -> predict -> evaluate."""

from __future__ import annotations

import json

import anndata as ad
import pytest

from spatial_mg.cli import main


@pytest.fixture(scope="module")
def sections(sections_seed3):
    """Two small synthetic sections (seed 3; the files the pipeline tests read too)."""
    return sections_seed3


def test_align_train_predict_evaluate(tmp_path, sections, sections_seed3_aligned, registration_cache, capsys):
    root, data = sections
    peaks = str(root / "peaks.csv")
    for name in ("S1", "S2"):
        args = ["align", "--visium", str(root / name / "outs"), "--msi", str(root / name / "msi" / f"{name}.imzML")]
        # each section as sections_seed3_aligned registered it (its registration reused: the CLI's steps
        # around it are the subject; tests/test_cli_flags.py runs the CLI's own registrations)
        with registration_cache.reused():
            assert main([*args, "--mz-bins", peaks, "--device", "cpu", "--out", str(tmp_path / name)]) == 0
        assert (tmp_path / name / "pairs.h5mu").is_file() and (tmp_path / name / "spatialdata.zarr").is_dir()
    assert main(["train", "--pairs", str(tmp_path / "S1" / "pairs.h5mu"), "--epochs", "3", "--out", str(tmp_path / "m")]) == 0
    assert main(["predict", "--model", str(tmp_path / "m"), "--visium", str(root / "S2" / "outs"), "--out", str(tmp_path / "p")]) == 0
    pred = ad.read_h5ad(tmp_path / "p" / "predicted.h5ad")
    assert pred.n_obs == data.sections[1].rna.n_obs and "std" in pred.layers
    assert list(pred.var_names) == list(data.sections[1].msi.var_names)
    truth = str(tmp_path / "S2" / "pairs.h5mu")
    assert main(["evaluate", "--pred", str(tmp_path / "p" / "predicted.h5ad"), "--truth", truth, "--out", str(tmp_path / "e")]) == 0
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert -1 <= metrics["median_pearson"] <= 1 and metrics["n_metabolites"] == 6
    # barcodes repeat between slides: scoring S2's prediction against S1's MSI is refused
    wrong = str(tmp_path / "S1" / "pairs.h5mu")
    assert main(["evaluate", "--pred", str(tmp_path / "p" / "predicted.h5ad"), "--truth", wrong, "--out", str(tmp_path / "w")]) == 2
    assert "same section" in capsys.readouterr().err


def test_results_are_not_overwritten(tmp_path, sections, capsys):
    root, _ = sections
    out = tmp_path / "done"
    out.mkdir()
    (out / "metrics.json").write_text("{}")
    args = ["align", "--visium", str(root / "S1" / "outs"), "--msi", str(root / "S1" / "msi" / "S1.imzML"), "--out", str(out)]
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "metrics.json").read_text() == "{}"


def test_missing_path_and_wrong_type_are_clear_errors(tmp_path, sections, capsys):
    root, _ = sections
    assert main(["align", "--visium", str(tmp_path / "nope"), "--msi", "x.imzML", "--out", str(tmp_path / "o")]) == 2
    assert "nope" in capsys.readouterr().err
    wrong = tmp_path / "spectra.txt.gz"
    wrong.write_text("not msi")
    assert main(["align", "--visium", str(root / "S1" / "outs"), "--msi", str(wrong), "--out", str(tmp_path / "o2")]) == 2
    assert "imzML" in capsys.readouterr().err


def test_config_file_fills_flags(tmp_path, sections, sections_seed3_aligned, registration_cache):
    root, _ = sections
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'visium = "{root / "S1" / "outs"}"\nmsi = "{root / "S1" / "msi" / "S1.imzML"}"\n'
        f'mz_bins = "{root / "peaks.csv"}"\ndevice = "cpu"\nout = "{tmp_path / "from_config"}"\n'
    )
    with registration_cache.reused():  # S1 as sections_seed3_aligned registered it, reused: what the file fills in is the subject
        assert main(["align", "--config", str(cfg)]) == 0
    assert (tmp_path / "from_config" / "pairs.h5mu").is_file()
