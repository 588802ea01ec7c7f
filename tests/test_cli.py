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
