"""Output folders: one run at a time, complete or not at all, and an overwrite leaves only the new results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from spatial_mg._claim import PathInUseError
from spatial_mg.pipeline import run_evaluate
from spatial_mg.pipeline._outputs import OutputFolder

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
QUIET = dict(echo=lambda *a, **k: None)


def _maps(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    adata = ad.AnnData(
        rng.normal(size=(30, 4)).astype(np.float32),
        obs=pd.DataFrame(index=[f"spot{i}" for i in range(30)]),
        var=pd.DataFrame(index=[f"m{i}" for i in range(4)]),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(path)
    return path


@pytest.fixture
def maps(tmp_path) -> dict[str, Path]:
    return {name: _maps(tmp_path / "inputs" / f"{name}.h5ad", seed) for seed, name in enumerate(["pred", "truth", "other"])}


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


# --- two runs into one folder -----------------------------------------------------------------
_EVALUATE = """
import os, pathlib, sys, time
from spatial_mg.pipeline._outputs import OutputFolder
from spatial_mg.cli import main

real = OutputFolder.write_csv
def slowly(self, name, table):
    time.sleep(1.0)  # both runs are under way before either writes
    return real(self, name, table)
OutputFolder.write_csv = slowly

ready = pathlib.Path(sys.argv[4])
(ready / str(os.getpid())).touch()
while len(list(ready.iterdir())) < 2:
    time.sleep(0.01)
sys.exit(main(["evaluate", "--pred", sys.argv[1], "--truth", sys.argv[2], "--out", sys.argv[3]]))
"""


def test_two_runs_into_one_folder_exactly_one_wins_and_no_half_file_shows(tmp_path, maps):
    out, ready = tmp_path / "eval", tmp_path / "ready"
    ready.mkdir()
    seen, stop = [], threading.Event()

    def watch():  # every file that shows under the folder's name is whole
        while not stop.is_set():
            if out.is_dir():
                for name in _visible(out):
                    text = (out / name).read_text()
                    seen.append((name, json.loads(text) if name.endswith(".json") else len(text.splitlines())))

    watcher = threading.Thread(target=watch)
    watcher.start()
    argv = [sys.executable, "-c", _EVALUATE, str(maps["pred"]), str(maps["truth"]), str(out), str(ready)]
    runs = [subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(run.pid, run.wait(timeout=120), run.stderr.read()) for run in runs]
    stop.set()
    watcher.join()

    assert sorted(code for _, code, _ in results) == [0, 2], results
    (winner,) = [pid for pid, code, _ in results if code == 0]
    (error,) = [err for _, code, err in results if code == 2]
    assert error.count("\n") == 1 and "Traceback" not in error  # one clear line
    assert f"'{out}' is being written by the run pid {winner}" in error
    assert _visible(out) == ["metabolites.csv", "metrics.json"]
    assert {name for name, _ in seen} <= {"metabolites.csv", "metrics.json"}
    assert all(rows == 5 for name, rows in seen if name == "metabolites.csv")  # header + 4 metabolites, never fewer
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval", "inputs", "ready"]  # no lock or staging left


def test_a_second_run_while_the_first_is_under_way_is_refused_in_one_line(tmp_path):
    with OutputFolder(tmp_path / "out") as first:
        first.write_text("a.txt", "a")
        with pytest.raises(PathInUseError, match=rf"'{tmp_path / 'out'}' is being written by the run pid {os.getpid()}"):
            with OutputFolder(tmp_path / "out", overwrite=True):
                pass
    assert _visible(tmp_path / "out") == ["a.txt"]


# --- overwrite: only the new results, and the old ones kept until the new ones are complete -----
def test_an_overwritten_folder_holds_only_the_new_runs_outputs(tmp_path, maps):
    out = tmp_path / "eval"
    run_evaluate(pred=maps["pred"], truth=maps["truth"], out=out, **QUIET)
    (out / "predicted.zarr").mkdir()  # what an older, different run left in the folder
    (out / "predicted.zarr" / "zarr.json").write_text("{}")
    (out / "notes.txt").write_text("old")
    run_evaluate(pred=maps["pred"], truth=maps["truth"], out=out, overwrite=True, **QUIET)
    assert _visible(out) == ["metabolites.csv", "metrics.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval", "inputs"]


def test_a_run_that_fails_midway_leaves_the_old_results_whole_and_keeps_what_it_finished(tmp_path, maps, monkeypatch, capsys):
    out = tmp_path / "eval"
    run_evaluate(pred=maps["pred"], truth=maps["truth"], out=out, **QUIET)
    before = {name: (out / name).read_bytes() for name in _visible(out)}

    def disk_full(self, name, payload):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(OutputFolder, "write_json", disk_full)  # after metabolites.csv, before metrics.json
    with pytest.raises(OSError, match="No space left"):
        run_evaluate(pred=maps["other"], truth=maps["truth"], out=out, overwrite=True, **QUIET)
    assert {name: (out / name).read_bytes() for name in _visible(out)} == before  # no mix of old and new
    (staged,) = tmp_path.glob(".eval.staged-*")
    assert os.listdir(staged) == ["metabolites.csv"]
    assert (staged / "metabolites.csv").read_bytes() != before["metabolites.csv"]  # the new run's finished table
    err = capsys.readouterr().err
    assert f"'{out}' was left as it was" in err and str(staged) in err and "metabolites.csv" in err


def test_overwrite_never_replaces_a_folder_holding_an_input(tmp_path, maps):
    out = maps["pred"].parent
    with pytest.raises(ValueError, match=rf"holds this run's input '{maps['pred']}'"):
        run_evaluate(pred=maps["pred"], truth=maps["truth"], out=out, overwrite=True, **QUIET)
    assert _visible(out) == ["other.h5ad", "pred.h5ad", "truth.h5ad"]


def test_a_folder_with_results_is_refused_without_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "metrics.json").write_text("{}")
    with pytest.raises(FileExistsError, match="already holds results.*--overwrite"):
        OutputFolder(tmp_path / "out")
    assert (tmp_path / "out" / "metrics.json").read_text() == "{}"


def test_an_output_path_that_is_or_lies_under_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file; give a folder"):
        OutputFolder(tmp_path / "file")
    with pytest.raises(NotADirectoryError, match=rf"lies under '{tmp_path / 'file'}', which is a file"):
        OutputFolder(tmp_path / "file" / "sub" / "out")


# --- nothing under the name until the run ends ----------------------------------------------------
def test_results_appear_together_when_the_run_ends(tmp_path):
    out = tmp_path / "a" / "out"
    with OutputFolder(out) as folder:
        folder.write_text("one.txt", "1")
        folder.write_json("two.json", {"n": 2})
        assert not out.exists()  # the run is not done
    assert _visible(out) == ["one.txt", "two.json"] and json.loads((out / "two.json").read_text()) == {"n": 2}
    assert sorted(p.name for p in out.parent.iterdir()) == ["out"]


def test_a_run_that_fails_before_writing_leaves_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        with OutputFolder(tmp_path / "out"):
            raise FileNotFoundError("input missing")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_folder_is_filled_in_place(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    inode = out.stat().st_ino
    with OutputFolder(out) as folder:
        folder.write_text("a.txt", "a")
    assert out.stat().st_ino == inode and _visible(out) == ["a.txt"]


def test_a_symlinked_folder_is_filled_where_it_points(tmp_path):
    real = tmp_path / "scratch" / "out"
    real.mkdir(parents=True)
    (real / "old.txt").write_text("old")
    (tmp_path / "out").symlink_to(real)
    with OutputFolder(tmp_path / "out", overwrite=True) as folder:
        folder.write_text("new.txt", "new")
    assert (tmp_path / "out").is_symlink() and _visible(real) == ["new.txt"]


def test_writing_outside_the_block_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="with OutputFolder"):
        OutputFolder(tmp_path / "out").write_text("a.txt", "a")


# --- a run that was killed ------------------------------------------------------------------------
_KILLED = """
import sys, time
from spatial_mg.pipeline._outputs import OutputFolder
with OutputFolder(sys.argv[1]) as folder:
    folder.write_text("finished.txt", "done")
    print("wrote", flush=True)
    time.sleep(60)
"""


def test_the_run_after_a_killed_one_says_where_its_finished_files_are(tmp_path, capsys):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, str(out)], env=ENV, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "wrote"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    with OutputFolder(out) as folder:
        folder.write_text("new.txt", "new")
    err = capsys.readouterr().err
    (staged,) = tmp_path.glob(".out.staged-*")
    assert f"pid {proc.pid}" in err and "no longer running" in err and f"finished are in '{staged}'" in err
    assert (staged / "finished.txt").read_text() == "done"  # kept: a crash loses no finished work
    assert _visible(out) == ["new.txt"]


def test_a_mount_point_is_refused_before_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(os.path, "ismount", lambda path: Path(path) == tmp_path / "usb")
    (tmp_path / "usb").mkdir()
    with pytest.raises(ValueError, match="is a mount point; give a folder inside it"):
        OutputFolder(tmp_path / "usb")


def test_overwrite_of_the_working_folder_is_refused(tmp_path, monkeypatch):
    (tmp_path / "old.txt").write_text("old")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="current working folder"):
        OutputFolder(".", overwrite=True)
    assert (tmp_path / "old.txt").read_text() == "old"
