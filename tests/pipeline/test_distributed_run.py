"""The pipeline under torchrun: every rank trains, rank 0 alone writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from spatial_mg.pipeline import run_train


def test_a_rank_other_than_0_writes_no_output(pairs_files, tmp_path, monkeypatch):
    for key, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(key, value)
    lines = []
    model = run_train(pairs=pairs_files, out=tmp_path / "out", max_epochs=1, accelerator="cpu", strategy="single",
                      calibrate=False, echo=lines.append)
    assert len(model.history) == 1  # it trained ...
    assert not (tmp_path / "out").exists() and lines == []  # ... and left writing and reporting to rank 0
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())  # no staging or lock left either


@pytest.mark.slow
def test_torchrun_launch_of_the_cli_trains_as_one_process(pairs_files, tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]), OMP_NUM_THREADS="1")
    common = ["train", "--pairs", *map(str, pairs_files), "--epochs", "2", "--accelerator", "cpu", "--no-calibration", "--quiet"]
    subprocess.run([str(torchrun), "--nproc-per-node", "2", "-m", "spatial_mg.cli", *common, "--out", str(tmp_path / "ddp")],
                   check=True, env=env, cwd=tmp_path, capture_output=True)
    subprocess.run([sys.executable, "-m", "spatial_mg.cli", *common, "--out", str(tmp_path / "one")],
                   check=True, env=env, cwd=tmp_path, capture_output=True)
    ddp, one = (pd.read_csv(tmp_path / name / "history.csv") for name in ("ddp", "one"))
    losses = [c for c in one.columns if c.startswith(("train_", "val_"))]
    pd.testing.assert_frame_equal(ddp[losses], one[losses], rtol=1e-5)
    assert (tmp_path / "ddp" / "model").is_dir()
