"""The CLI steps round-trip on small synthetic files: align -> train -> predict -> evaluate."""

from __future__ import annotations

import json

import anndata as ad
import pytest

from spatial_mg.cli import main
from spatial_mg.sim import synthetic_vicari


@pytest.fixture(scope="module")
def sections(tmp_path_factory):
    root = tmp_path_factory.mktemp("sections")
    data = synthetic_vicari(n_sections=2, n_spots=200, n_genes=60, n_metabolites=6, msi_pitch_um=100.0, seed=3)
    data.write(root)
    return root, data


def test_align_train_predict_evaluate(tmp_path, sections, capsys):
    root, data = sections
    peaks = str(root / "peaks.csv")
    for name in ("S1", "S2"):
        args = ["align", "--visium", str(root / name / "outs"), "--msi", str(root / name / "msi" / f"{name}.imzML")]
        assert main([*args, "--mz-bins", peaks, "--out", str(tmp_path / name)]) == 0
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


def test_config_file_fills_flags(tmp_path, sections):
    root, _ = sections
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        f'visium = "{root / "S1" / "outs"}"\nmsi = "{root / "S1" / "msi" / "S1.imzML"}"\n'
        f'mz_bins = "{root / "peaks.csv"}"\nout = "{tmp_path / "from_config"}"\n'
    )
    assert main(["align", "--config", str(cfg)]) == 0
    assert (tmp_path / "from_config" / "pairs.h5mu").is_file()
