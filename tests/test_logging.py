"""The package's logging: smg.settings.verbosity, one plain handler that steps aside, the CLI's
treatment of warnings, and the progress lines of registration and unpacking."""

from __future__ import annotations

import logging
import warnings
import zipfile
from contextlib import contextmanager
from types import SimpleNamespace

import numpy as np
import pytest

import spatial_mg as smg
from spatial_mg._logging import ROOT, cli_logging, is_noise

SITE = "/venv/lib/python3.11/site-packages"


@contextmanager
def no_root_handlers():
    """As in a plain Python session: nobody configured logging (pytest adds root handlers)."""
    root = logging.getLogger()
    saved = root.handlers
    root.handlers = []
    try:
        yield
    finally:
        root.handlers = saved


# --- settings.verbosity --------------------------------------------------------------------------
@pytest.mark.parametrize(("value", "level"), [("warning", 30), ("DEBUG", 10), (logging.ERROR, 40), (" Info ", 20)])
def test_verbosity_takes_a_level_or_its_name_and_reads_back_the_level(value, level):
    with smg.settings.override("info"):
        smg.settings.verbosity = value
        assert smg.settings.verbosity == level == logging.getLogger(ROOT).level


def test_verbosity_refuses_anything_else_and_override_restores():
    before = smg.settings.verbosity
    for wrong in (3, True, "loud", None, 20.0):
        with pytest.raises(ValueError, match="verbosity must be a logging level"):
            smg.settings.verbosity = wrong
    with smg.settings.override("error"):
        assert smg.settings.verbosity == logging.ERROR
    assert smg.settings.verbosity == before == logging.INFO  # scvi-tools' default
    assert "verbosity='info'" in repr(smg.settings)


# --- the handler -----------------------------------------------------------------------------------
def test_records_are_plain_lines_on_stderr_when_nobody_configured_logging(capsys):
    log = logging.getLogger("spatial_mg.align._register")
    with no_root_handlers():
        log.info("registration 1/7 prepare: 0.1 s")
        log.warning("a warning")
        log.debug("not shown at INFO")
        with smg.settings.override("warning"):
            log.info("not shown at WARNING")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == ["registration 1/7 prepare: 0.1 s", "warning: a warning"]


def test_a_program_that_configures_logging_gets_each_record_once(capsys):
    received = []
    handler = logging.Handler()
    handler.emit = received.append
    with no_root_handlers():
        logging.getLogger().addHandler(handler)  # what logging.basicConfig() does
        logging.getLogger("spatial_mg.datasets._fetch").info("unpacking 'x.zip' (1.0 kB)")
    assert [r.getMessage() for r in received] == ["unpacking 'x.zip' (1.0 kB)"]
    assert capsys.readouterr().err == ""  # the package's handler stepped aside


# --- warnings in the CLI -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("category", "filename", "message", "noise"),
    [
        (FutureWarning, f"{SITE}/mudata/_core/mudata.py", "From 0.4 .update() will not pull", True),
        (SyntaxWarning, f"{SITE}/docrep/__init__.py", "invalid escape sequence", True),
        (UserWarning, "/usr/lib/python3.11/contextlib.py", "zarr v3 autosharding will be the default", True),
        (DeprecationWarning, f"{SITE}/jax/_src/api.py", "jax.tree_map is deprecated", True),
        (RuntimeWarning, f"{SITE}/anndata/_core/anndata.py", "overflow", False),  # about the data: shown
        (UserWarning, "/work/spatial_mg/align/_pair.py", "Pairing with a low-confidence registration", False),
        (UserWarning, "analysis.py", "my own", False),  # a user's own script
    ],
)
def test_known_third_party_noise_is_told_from_real_warnings(category, filename, message, noise):
    assert is_noise(category, filename, message) is noise


def _warn(message: str, category: type[Warning], filename: str) -> None:
    """A warning as if raised at line 1 of ``filename``."""
    warnings.warn_explicit(message, category, filename, 1, module=filename.rsplit("/", 1)[-1][:-3])


def test_the_cli_shows_warnings_as_one_line_each_and_noise_only_when_verbose(capsys):
    logger = logging.getLogger(ROOT)
    before = (logger.level, logger.propagate, warnings.showwarning)
    with cli_logging(logging.INFO):
        _warn("Pairing with a low-confidence registration: only 3% of spots\n  lie under it.", UserWarning,
              "/work/spatial_mg/align/_pair.py")
        _warn("From 0.4 .update() will not pull obs/var columns", FutureWarning, f"{SITE}/mudata/_core/mudata.py")
        _warn("a warning of another package", UserWarning, f"{SITE}/somepkg/core.py")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "warning: Pairing with a low-confidence registration: only 3% of spots lie under it."
    assert lines[1].startswith("warning: a warning of another package (UserWarning from ") and len(lines) == 2
    with cli_logging(logging.DEBUG):
        _warn("From 0.4 .update() will not pull obs/var columns", FutureWarning, f"{SITE}/mudata/_core/mudata.py")
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("debug: From 0.4 .update() will not pull") and "mudata.py" in line
    assert (logger.level, logger.propagate, warnings.showwarning) == before  # all restored


def test_the_cli_quiets_the_solver_stack_s_loggers_for_the_run():
    received = []
    own = logging.getLogger("moscot._logging")  # moscot's own logger, with its own handler
    handler = logging.Handler()
    handler.emit = received.append
    own.addHandler(handler)
    before = own.level
    try:
        with cli_logging(logging.DEBUG):
            own.setLevel(logging.INFO)  # what importing moscot does, during the run
            own.info("Solving `1` problems")
            own.warning("did not converge")
            assert logging.getLogger("jax._src.xla_bridge").getEffectiveLevel() == logging.WARNING
        own.info("after the run")
    finally:
        own.removeHandler(handler)
        own.setLevel(before)
    assert [r.getMessage() for r in received] == ["did not converge", "after the run"]


# --- progress lines ----------------------------------------------------------------------------------
def test_a_registration_logs_one_line_per_stage_with_its_seconds(caplog):
    from spatial_mg.align import register
    from spatial_mg.sim import synthetic_vicari

    section = synthetic_vicari(n_sections=1, n_spots=150, n_genes=20, n_metabolites=4, msi_pitch_um=100.0, seed=1).sections[0]
    src = np.asarray(section.msi.obsm["spatial"], float)[:: max(1, section.msi.n_obs // 6)][:6]
    dst = src @ section.affine[:2, :2].T + section.affine[:2, 2]
    caplog.set_level(logging.INFO, logger=ROOT)
    register(section.rna, section.msi, method="landmarks", landmarks=(src, dst))
    lines = [r.getMessage() for r in caplog.records if r.name == "spatial_mg.align._register"]
    assert [line.split(":")[0] for line in lines] == [
        "registration 1/3 prepare", "registration 2/3 landmark fit", "registration 3/3 assess"
    ]
    assert all(line.endswith(" s") and float(line.split(": ")[1][:-2]) >= 0 for line in lines)


def test_unpacking_says_which_archive_how_large_and_how_far(tmp_path, caplog, monkeypatch):
    from spatial_mg.datasets import _fetch

    archive = tmp_path / "record.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i in range(20):
            zf.writestr(f"data/part{i:02d}.txt", "x" * 1000)
    monkeypatch.setattr(_fetch, "PROGRESS_BYTES", 0)  # as if it were a large archive
    caplog.set_level(logging.INFO, logger=ROOT)
    _fetch._unpack(archive, SimpleNamespace(unpack="zip", unpack_nested=False), tmp_path / "unpacked" / "record")
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("unpacking 'record.zip' (") and " kB)" in lines[0]
    percents = [int(line.split(": ")[1].split("%")[0]) for line in lines[1:]]
    assert percents == list(range(10, 101, 10))
    assert lines[-1].endswith("(20.0 kB of 20.0 kB)")
    assert len(list((tmp_path / "unpacked" / "record" / "data").iterdir())) == 20
