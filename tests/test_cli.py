"""The spatial-mg command line."""

from __future__ import annotations

import subprocess
import sys

from spatial_mg.cli import main


def test_demo_smoke_writes_every_output_with_finite_numbers(tmp_path, capsys):
    import json

    import numpy as np
    import pandas as pd

    out = tmp_path / "demo"
    assert main(["demo", "--smoke", "--out", str(out), "--data-dir", str(tmp_path / "cache")]) == 0
    captured = capsys.readouterr()
    assert "[7/7]" in captured.err  # progress was logged
    assert captured.out.splitlines() == [f"done in {captured.out.split()[2]} s: {out}/report.md"]  # the result alone
    for name in ("metrics.json", "metabolites.csv", "report.md", "registration.png", "latent_umap.png",
                 "maps_best.png", "maps_median.png", "maps_worst.png", "correlation_vs_morans_i.png"):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    for method, figures in metrics["prediction"]["test_vs_measured"].items():
        assert np.isfinite(figures["flat_pearson"]), method
    assert all(np.isfinite(r["median_error_um"]) for r in metrics["registration"].values())
    table = pd.read_csv(out / "metabolites.csv", index_col=0)
    assert np.isfinite(table[["poe_vae_pearson", "ridge_pearson", "morans_i_measured"]].to_numpy()).all()
    # a second run into the same folder is refused without --overwrite
    assert main(["demo", "--smoke", "--out", str(out), "--data-dir", str(tmp_path / "cache")]) == 2


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: spatial-mg" in capsys.readouterr().out


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "spatial_mg.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "spatial-mg" in out.stdout


def test_demo_writes_data_the_readers_read(tmp_path, capsys):
    from spatial_mg.io import read_imzml, read_visium

    assert main(["demo", "--write-data", str(tmp_path / "data")]) == 0
    assert "wrote sections" in capsys.readouterr().out
    section = tmp_path / "data" / "S1"
    rna = read_visium(section / "outs")
    msi = read_imzml(section / "msi" / "S1.imzML", bin_width=1.0)
    assert rna.n_obs > 100 and msi.n_obs > 100
