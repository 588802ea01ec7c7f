"""The tutorials: each runs as a plain script in smoke mode, and each .ipynb matches its .py.

A tutorial is a jupytext percent script (``tutorials/NN_name.py``) paired with the executed
notebook (``tutorials/NN_name.ipynb``). Here each script runs in a subprocess on the
built-in synthetic data with ``SPATIAL_MG_SMOKE=1`` (small sizes, few epochs), writing only
into a temporary folder, and must leave its results there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
SCRIPTS = sorted(TUTORIALS.glob("[0-9][0-9]_*.py"))


def _run(script: Path, tmp_path: Path) -> Path:
    env = {k: v for k, v in os.environ.items() if k != "SPATIAL_MG_TUTORIAL_DATA"}  # synthetic data only
    env.update(SPATIAL_MG_SMOKE="1", MPLBACKEND="Agg", SPATIAL_MG_TUTORIAL_OUT=str(tmp_path))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{script.name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return tmp_path / script.stem


def test_the_three_tutorials_are_there():
    assert [p.stem for p in SCRIPTS] == [
        "01_align_str_msi",
        "02_predict_metabolites_rna_only",
        "03_mosaic_integration_and_query",
    ]
    for script in SCRIPTS:
        assert script.with_suffix(".ipynb").is_file(), f"{script.name} has no paired notebook"


def test_01_align_writes_spatialdata_pairs_and_registration(tmp_path):
    import mudata as md
    import spatialdata as sd

    out = _run(TUTORIALS / "01_align_str_msi.py", tmp_path)
    sdata = sd.read_zarr(out / "S1.zarr")
    assert {"rna_spots", "msi_pixels"} <= set(sdata.shapes)
    assert {"rna_table", "msi_table"} <= set(sdata.tables)
    pairs = md.read_h5mu(out / "S1_pairs.h5mu")
    assert pairs.n_obs > 0 and set(pairs.mod) == {"rna", "msi"}
    affine = np.asarray(json.loads((out / "S1_registration.json").read_text())["affine"])
    assert affine.shape == (3, 3) and np.isfinite(affine).all()
    assert (out / "S1_registration.png").stat().st_size > 0
    assert not (tmp_path / "tutorials").exists() and sorted(p.name for p in tmp_path.iterdir()) == [out.name]


def test_02_predict_writes_predictions_with_std_and_scores(tmp_path):
    import anndata as ad
    import pandas as pd

    out = _run(TUTORIALS / "02_predict_metabolites_rna_only.py", tmp_path)
    pred = ad.read_h5ad(out / "S3_predicted.h5ad")
    assert pred.n_obs > 0 and pred.n_vars > 0 and "spatial" in pred.obsm
    assert np.isfinite(pred.X).all() and (pred.layers["std"] > 0).all()
    table = pd.read_csv(out / "S3_metabolites.csv", index_col=0)
    assert {"morans_i", "poe_vae_pearson", "ridge_pearson", "knn15_pearson", "moscot_pearson"} <= set(table.columns)
    assert np.isfinite(table[["poe_vae_pearson", "ridge_pearson"]].to_numpy()).all()
    assert (out / "model" / "model.pt").is_file()
    assert (out / "S3_maps.png").stat().st_size > 0


def test_03_mosaic_writes_model_latent_and_imputations(tmp_path):
    import anndata as ad

    out = _run(TUTORIALS / "03_mosaic_integration_and_query.py", tmp_path)
    latent = ad.read_h5ad(out / "latent.h5ad")
    assert np.isfinite(latent.obsm["X_poe"]).all() and set(latent.obs["sample"]) >= {"reference", "query_rna"}
    for target in ("protein", "atac"):
        imputed = ad.read_h5ad(out / f"query_rna_imputed_{target}.h5ad")
        assert imputed.n_obs > 0 and np.isfinite(imputed.X).all() and "std" in imputed.layers
    assert (out / "reference_model" / "model.pt").is_file()


# --- .py and .ipynb in sync ----------------------------------------------------------------
def _percent_cells(script: Path) -> list[tuple[str, str]]:
    """Cells of a jupytext percent script: (type, source), without the YAML header."""
    parts = re.split(r"^# %%(.*)$", script.read_text(), flags=re.M)[1:]  # marker, body, marker, body, ...
    out = []
    for marker, body in zip(parts[::2], parts[1::2]):
        lines = body.split("\n")[1:]
        if "[markdown]" in marker:
            lines = [re.sub(r"^# ?", "", line) for line in lines]
            out.append(("markdown", "\n".join(lines).strip()))
        else:
            out.append(("code", "\n".join(lines).strip()))
    return out


def _notebook_cells(notebook: Path) -> list[tuple[str, str]]:
    cells = json.loads(notebook.read_text())["cells"]
    return [(c["cell_type"], "".join(c["source"]).strip()) for c in cells]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_notebook_cells_match_the_script(script):
    assert _notebook_cells(script.with_suffix(".ipynb")) == _percent_cells(script), (
        f"{script.with_suffix('.ipynb').name} is out of sync with {script.name}: "
        f"run `jupytext --sync {script.name}` in tutorials/, or re-execute the notebook"
    )


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_jupytext_reads_both_as_the_same_notebook(script):
    jupytext = pytest.importorskip("jupytext")

    def cells(path):
        return [(c.cell_type, c.source.strip()) for c in jupytext.read(path).cells]

    assert cells(script) == cells(script.with_suffix(".ipynb"))
