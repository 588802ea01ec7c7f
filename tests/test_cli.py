"""The spatial-mg command line."""

from __future__ import annotations

import subprocess
import sys

from spatial_mg.cli import main


def test_demo_command_exists_and_explains_itself(capsys):
    assert main(["demo"]) == 0
    assert "register the MSI pixels" in capsys.readouterr().out


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
