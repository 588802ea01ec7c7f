"""What the CLI shows (--quiet, --verbose) and the flags that map the Python API: align --normalize,
--strict, --tissue-image, --msi-edge and --no-content, train --batch-key, --fusion, MMD weights, --checkpoint-dir / --resume and --n-models."""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import re
import warnings

import anndata as ad
import mudata as md
import numpy as np
import pytest

from spatial_mg import cli
from spatial_mg.cli import main
from spatial_mg.sim import synthetic_vicari

STAGES = ["prepare", "transport coupling", "candidate poses", "refine", "choose", "settle", "content", "verify", "assess"]


def _run(argv: list[str]) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of one CLI run."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def sections(tmp_path_factory):
    root = tmp_path_factory.mktemp("sections")
    # seed 1: S2 registers with high confidence; S1 (a tiny tissue, 100 um pixels) lands about
    # 55 um off where its outlines agree best, a QC miss recorded in alignment_notes.md. The
    # tests below align S1 with a wrong pixel size only (S1_FLAGS)
    synthetic_vicari(n_sections=2, n_spots=200, n_genes=60, n_metabolites=6, msi_pitch_um=100.0, seed=1).write(root)
    return root


def _align_args(root, name: str) -> list[str]:
    msi = root / name / "msi" / f"{name}.imzML"
    return ["align", "--visium", str(root / name / "outs"), "--msi", str(msi), "--mz-bins", str(root / "peaks.csv")]


# S1 with a wrong pixel size (60 um, not 100): it needs a scale of ~1.5, so it is registered and paired
# but not trusted; with --normalize tic and --msi-scale linear, which must reach the reader and the pairs
S1_FLAGS = ["--pixel-size-um", "60", "--normalize", "tic", "--msi-scale", "linear"]


@pytest.fixture(scope="module")
def aligned(sections, tmp_path_factory, registration_cache):
    """Both sections aligned by the CLI: S2 at the default verbosity, S1 with S1_FLAGS and --quiet.

    S1's registration (a real one: nothing registered these inputs before) is kept in
    ``registration_cache`` for the --strict run of the same inputs below; S2's runs outside it.
    """
    out = tmp_path_factory.mktemp("aligned")
    runs = {"S2": _run([*_align_args(sections, "S2"), "--out", str(out / "S2")])}
    with registration_cache.reused():
        runs["S1"] = _run([*_align_args(sections, "S1"), *S1_FLAGS, "--quiet", "--out", str(out / "S1")])
    return out, runs


# --- what a user sees ------------------------------------------------------------------------------
def test_align_shows_one_line_per_registration_stage_then_the_result(aligned):
    out, runs = aligned
    code, stdout, stderr = runs["S2"]
    assert code == 0
    lines = stderr.splitlines()
    assert len(lines) == len(STAGES)  # no third-party warnings, nothing else
    for i, (line, stage) in enumerate(zip(lines, STAGES), start=1):
        assert re.fullmatch(rf"registration {i}/{len(STAGES)} {stage}: \d+\.\d s", line), line
    (result,) = stdout.splitlines()
    assert result.startswith("S2: ") and "spots paired; confidence high" in result and str(out / "S2") in result


def test_quiet_prints_only_the_result_and_warnings(aligned):
    code, stdout, stderr = aligned[1]["S1"]
    assert code == 0
    assert len(stdout.splitlines()) == 1 and stdout.startswith("S1: ") and "confidence" in stdout
    # no stage lines; warnings, if any, stay visible, one line each
    assert all(line.startswith("warning: ") for line in stderr.splitlines())


def test_quiet_keeps_the_low_confidence_warning_on_one_line(aligned):
    # S1's wrong pixel size (60 um, not 100) needs a scale of ~1.5: registered, paired, not trusted
    code, stdout, stderr = aligned[1]["S1"]
    assert code == 0
    assert len(stdout.splitlines()) == 1 and stdout.startswith("S1: ") and "confidence low" in stdout
    override, warning = stderr.splitlines()  # no stage lines; the warnings stay visible, one line each
    assert override.startswith("warning: pixel_size_um=(60.0, 60.0) overrides the pixel size recorded")
    assert warning.startswith("warning: Pairing with a low-confidence registration: the fitted scale")


def test_normalize_tic_reaches_the_reader(aligned, sections):
    from spatial_mg.align import RegistrationResult, pair
    from spatial_mg.pipeline import read_peak_list, read_section

    out, _ = aligned
    written = md.read_h5mu(out / "S1" / "pairs.h5mu")["msi"]
    reg = RegistrationResult.from_json((out / "S1" / "registration.json").read_text())
    peaks = read_peak_list(sections / "peaks.csv")
    msi_file = sections / "S1" / "msi" / "S1.imzML"
    by_mode = {}
    for mode in ("tic", None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the pixel-size and low-confidence warnings: not what this test is about
            section = read_section(sections / "S1" / "outs", msi_file, mz_bins=peaks, normalize=mode, pixel_size_um=60.0)
            by_mode[mode] = pair(section.rna, section.msi, reg)["msi"]
    np.testing.assert_allclose(np.asarray(written.X), np.asarray(by_mode["tic"].X), rtol=1e-6)
    assert not np.allclose(np.asarray(written.X), np.asarray(by_mode[None].X))


def test_strict_refuses_a_low_confidence_registration_and_writes_nothing(sections, aligned, registration_cache, tmp_path):
    before = sorted(tmp_path.iterdir())
    # S1's wrong pixel size (60 um, not 100) needs a scale of ~1.5: registered, but not trusted. The inputs
    # are those of the quiet run in `aligned`, whose registration is reused: what --strict does with it is
    # the subject here (the quiet run shows that registration is low, and why)
    with registration_cache.reused():
        code, stdout, stderr = _run([*_align_args(sections, "S1"), *S1_FLAGS, "--strict",
                                     "--out", str(tmp_path / "strict")])
    assert code == 2 and stdout == ""
    error = stderr.splitlines()[-1]
    assert error.startswith("spatial-mg align: error: S1: the registration's confidence is low (")
    assert "scale" in error and "strict mode writes nothing" in error
    assert "Pairing with a low-confidence" not in stderr  # the error names the reasons once
    assert sorted(tmp_path.iterdir()) == before  # no folder, no staging folder, no lock


# --- training flags ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ensemble(aligned, tmp_path_factory):
    out, _ = aligned
    where = tmp_path_factory.mktemp("trained")
    pairs = [str(out / "S1" / "pairs.h5mu"), str(out / "S2" / "pairs.h5mu")]
    argv = ["train", "--pairs", *pairs, "--epochs", "2", "--n-models", "2", "--seed", "4", "--batch-key", "section",
            "--fusion", "moe", "--batch-mmd-weight", "0.5", "--modality-mmd-weight", "0.1",
            "--checkpoint-dir", str(where / "ck"), "--accelerator", "cpu", "--quiet", "--out", str(where / "m")]
    return where, _run(argv)


def test_train_flags_reach_the_model_and_an_ensemble_is_saved_by_seed(ensemble):
    from spatial_mg.model import PoEVAE

    where, (code, stdout, stderr) = ensemble
    assert code == 0 and stderr == "", stderr
    assert "2 models (seeds 4 to 5)" in stdout
    record = json.loads((where / "m" / "ensemble.json").read_text())
    assert [(m["seed"], m["folder"]) for m in record["members"]] == [(4, "model"), (5, "model_seed5")]
    for seed, folder in ((4, "model"), (5, "model_seed5")):
        model = PoEVAE.load(where / "m" / folder)  # each member loads alone
        assert model.seed == seed and model.is_trained
        config = model.module_config
        assert (config.fusion, config.batch_mmd_weight, config.modality_mmd_weight) == ("moe", 0.5, 0.1)
        assert model.registry.batch_key == "section" and model.registry.covariates["section"] == ["S1", "S2"]
        assert (where / "ck" / f"seed{seed}" / "last.ckpt").is_file()


def test_predict_with_an_ensemble_uses_the_mixture(ensemble, sections, tmp_path):
    from spatial_mg.io import read_visium
    from spatial_mg.model import PoEVAE, predict_ensemble

    where, _ = ensemble
    visium = sections / "S2" / "outs"
    assert _run(["predict", "--model", str(where / "m"), "--visium", str(visium), "--accelerator", "cpu",
                 "--out", str(tmp_path / "p")])[0] == 0
    pred = ad.read_h5ad(tmp_path / "p" / "predicted.h5ad")
    members = [PoEVAE.load(where / "m" / f) for f in ("model", "model_seed5")]
    spots = read_visium(visium)
    spots.obs["section"] = "S2"
    expected = predict_ensemble(members, spots)
    np.testing.assert_allclose(pred.X, expected.X, rtol=1e-5)
    np.testing.assert_allclose(pred.layers["std"], expected.layers["std"], rtol=1e-5)
    assert pred.uns["spatial_mg"]["prediction"]["n_models"] == 2 and (pred.layers["model_std"] > 0).any()
    # the first model alone, from its own folder
    assert _run(["predict", "--model", str(where / "m" / "model"), "--visium", str(visium), "--accelerator", "cpu",
                 "--out", str(tmp_path / "one")])[0] == 0
    single = ad.read_h5ad(tmp_path / "one" / "predicted.h5ad")
    assert "model_std" not in single.layers
    np.testing.assert_allclose(single.X, members[0].predict(spots, target="msi").X, rtol=1e-5)


def test_resume_continues_an_interrupted_run_from_its_checkpoint(aligned, tmp_path, monkeypatch):
    import torch

    from spatial_mg.model import PoEVAE
    from spatial_mg.model._training import Trainer

    out, _ = aligned
    argv = ["train", "--pairs", str(out / "S1" / "pairs.h5mu"), "--epochs", "4", "--checkpoint-dir", str(tmp_path / "ck"),
            "--accelerator", "cpu", "--quiet", "--out", str(tmp_path / "m")]
    epoch = Trainer._epoch

    def stopped_in_the_third(self, i):
        if i == 2:
            raise KeyboardInterrupt
        return epoch(self, i)

    monkeypatch.setattr(Trainer, "_epoch", stopped_in_the_third)
    assert _run(argv)[0] == 130
    monkeypatch.undo()
    saved = torch.load(tmp_path / "ck" / "last.ckpt", weights_only=True)["history"]
    assert len(saved) == 2
    code, _, stderr = _run([*argv, "--resume"])
    assert code == 0, stderr
    history = PoEVAE.load(tmp_path / "m" / "model").history
    assert len(history) == 4
    # the first two epochs are the interrupted run's, timings included: continued, not trained afresh
    assert history["seconds"].to_numpy()[:2].tolist() == [row["seconds"] for row in saved]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--resume"], "needs checkpoint_dir (--checkpoint-dir)"),
        (["--batch-key", "none", "--batch-mmd-weight", "1"], "give batch_key (--batch-key)"),
        (["--batch-mmd-weight", "-1"], "argument --batch-mmd-weight: must be a finite number of at least 0"),
        (["--fusion", "sum"], "argument --fusion: invalid choice: 'sum'"),
        (["--n-models", "0"], "argument --n-models: must be at least 1"),
        (["--accelerator", "tpu"], "argument --accelerator: invalid choice"),
        (["-q", "-v"], "not allowed with argument"),
    ],
)
def test_bad_training_flags_are_one_line_before_any_work(tmp_path, capsys, extra, message):
    try:
        code = main(["train", "--pairs", str(tmp_path / "missing.h5mu"), "--out", str(tmp_path / "m"), *extra])
    except SystemExit as done:  # argparse's refusal of a flag
        code = done.code
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "m").exists()


# --- the flags and the library agree -----------------------------------------------------------------
def test_choices_and_defaults_are_the_library_s():
    from spatial_mg.align._pair import STRATEGIES
    from spatial_mg.model import DEFAULT_SEED, ModuleConfig

    from spatial_mg.align._register import MSI_EDGES, register

    assert cli.STRATEGIES == STRATEGIES and cli.MSI_EDGES == MSI_EDGES
    args = cli._build_parser().parse_args(["train"])
    assert (args.fusion, args.modality_mmd_weight) == (ModuleConfig.fusion, ModuleConfig.modality_mmd_weight)
    # unset, so that train_model decides as it does in Python (the section MMD when the section is the batch)
    assert args.batch_mmd_weight is None and args.context_radius_um is None
    assert (args.seed, args.n_models, args.resume, args.batch_key, args.checkpoint_dir) == (DEFAULT_SEED, 1, False, "auto", None)
    args = cli._build_parser().parse_args(["align"])
    assert (args.normalize, args.strict, args.strategy, args.device) == ("none", False, "spot_mean", None)
    # align's flags left alone give register's own defaults
    defaults = {k: p.default for k, p in inspect.signature(register).parameters.items()}
    assert cli._register_options(args) == {k: defaults[k] for k in ("tissue_image", "msi_edge", "content")}


class _TinySection:
    """What ``read_section`` returns, as far as ``align_section`` reads it before registering."""

    name = "tiny"
    rna = ad.AnnData(np.ones((3, 2), np.float32))
    msi = ad.AnnData(np.ones((3, 2), np.float32))


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--tissue-image", "none"], {"tissue_image": None, "msi_edge": "soft", "content": True}),
        (["--msi-edge", "hard", "--no-content"], {"tissue_image": "auto", "msi_edge": "hard", "content": False}),
    ],
)
def test_registration_flags_reach_register(flags, expected, tmp_path, monkeypatch):
    import spatial_mg.align as align_module

    seen = {}

    class Seen(Exception):
        pass

    def fake_register(rna, msi, **kwargs):  # stands in for the registration: only its arguments matter here
        seen.update(kwargs)
        raise Seen

    monkeypatch.setattr(align_module, "register", fake_register)
    monkeypatch.setattr("spatial_mg.pipeline._runs.read_section", lambda *a, **k: _TinySection())
    code, _, stderr = _run(["align", "--visium", str(tmp_path), "--msi", str(tmp_path / "x.imzML"), *flags,
                            "--out", str(tmp_path / "o")])
    assert code != 0 and "Seen" in stderr  # stopped at the registration, as the stand-in does
    assert {k: seen[k] for k in expected} == expected


def test_accelerators_offered_are_ones_the_model_accepts():
    import torch

    from spatial_mg import DeviceUnavailableError
    from spatial_mg.model._model import _device

    for name in cli.ACCELERATORS:
        try:
            assert isinstance(_device(name), torch.device)
        except DeviceUnavailableError:  # gpu / cuda on a machine without one: a known device, not a bad name
            assert name in ("gpu", "cuda")


def test_new_flags_are_checked_in_config_files_too(tmp_path):
    from spatial_mg.cli import _apply_config, _build_parser

    config = tmp_path / "run.toml"
    config.write_text('n_models = 3\nfusion = "moe"\nbatch_mmd_weight = 1\nbatch_key = "section"\nresume = true\n')
    parser = _build_parser()
    argv = ["train", "--config", str(config)]
    args = _apply_config(parser, parser.parse_args(argv), argv)
    assert (args.n_models, args.fusion, args.batch_mmd_weight, args.batch_key, args.resume) == (3, "moe", 1.0, "section", True)
    config.write_text('msi_edge = "hard"\nno_content = true\ntissue_image = "none"\n')
    argv = ["align", "--config", str(config)]
    args = _apply_config(parser, parser.parse_args(argv), argv)
    assert cli._register_options(args) == {"tissue_image": None, "msi_edge": "hard", "content": False}
    for text, message in (('fusion = "sum"', "one of 'poe', 'moe'"), ("n_models = 0", "must be at least 1"),
                          ("strict = 1", "true or false"), ('msi_edge = "sharp"', "one of 'soft', 'hard'")):
        config.write_text(text)
        argv = ["align" if "strict" in text or "msi_edge" in text else "train", "--config", str(config)]
        with pytest.raises(ValueError, match=re.escape(message)):
            _apply_config(parser, parser.parse_args(argv), argv)


def test_fetch_quiet_silences_pooch_s_download_lines_for_the_run():
    import logging

    import pooch

    before = pooch.get_logger().level
    with cli._pooch_quiet(True):
        assert pooch.get_logger().level == logging.WARNING
    with cli._pooch_quiet(False):
        assert pooch.get_logger().level == before
    assert pooch.get_logger().level == before
