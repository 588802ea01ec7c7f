"""Every CLI failure is one line on stderr naming what is wrong, exit 2; --debug shows the traceback."""

from __future__ import annotations

import pytest

from spatial_mg import cli
from spatial_mg.cli import main


def _err_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_an_unexpected_failure_is_one_line_and_debug_shows_it(tmp_path, capsys, monkeypatch):
    def broken(**kwargs):
        raise ZeroDivisionError("a bug")

    import spatial_mg.pipeline

    monkeypatch.setattr(spatial_mg.pipeline, "run_evaluate", broken)
    args = ["evaluate", "--pred", "p.h5ad", "--truth", "t.h5mu", "--out", str(tmp_path / "e")]
    assert main(args) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and "unexpected ZeroDivisionError: a bug" in lines[0] and "--debug" in lines[0]
    with pytest.raises(ZeroDivisionError):
        main([*args, "--debug"])
    with pytest.raises(ZeroDivisionError):
        main(["--debug", *args])


def test_an_interrupt_keeps_quiet_and_exits_130(tmp_path, capsys, monkeypatch):
    def interrupted(**kwargs):
        raise KeyboardInterrupt

    import spatial_mg.pipeline

    monkeypatch.setattr(spatial_mg.pipeline, "run_evaluate", interrupted)
    assert main(["evaluate", "--pred", "p", "--truth", "t", "--out", str(tmp_path / "e")]) == 130
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--pred", "--truth"])
def test_files_of_the_wrong_kind_are_named(tmp_path, capsys, flag):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    other = tmp_path / "other.h5ad"
    import anndata as ad
    import numpy as np

    ad.AnnData(np.ones((2, 2), dtype=np.float32)).write_h5ad(other)
    files = {"--pred": str(other), "--truth": str(other)}
    files[flag] = str(text)
    assert main(["evaluate", "--pred", files["--pred"], "--truth", files["--truth"], "--out", str(tmp_path / "e")]) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and str(text) in lines[0] and "give " in lines[0]


def test_an_empty_peak_list_is_named(tmp_path, capsys, visium_dir, imzml_continuous):
    empty = tmp_path / "peaks.csv"
    empty.write_text("")
    args = ["align", "--visium", str(visium_dir), "--msi", str(imzml_continuous), "--mz-bins", str(empty)]
    assert main([*args, "--out", str(tmp_path / "o")]) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and str(empty) in lines[0] and "'mz' column" in lines[0]


def test_a_missing_gpu_is_a_user_error_not_a_crash(capsys):
    from spatial_mg import DeviceUnavailableError

    assert cli._one_line(DeviceUnavailableError("no CUDA device; use 'cpu'")) == "no CUDA device; use 'cpu'"
    assert "unexpected" in cli._one_line(RuntimeError("x"))


def test_a_query_without_the_training_genes_says_which_are_missing(tmp_path):
    import anndata as ad
    import mudata as md
    import numpy as np

    from spatial_mg.model import PoEVAE

    rng = np.random.default_rng(0)
    rna = ad.AnnData(rng.poisson(2.0, (60, 8)).astype(np.float32))
    rna.var_names = [f"g{i}" for i in range(8)]
    msi = ad.AnnData(rng.normal(size=(60, 3)).astype(np.float32))
    msi.var_names = ["m1", "m2", "m3"]
    mdata = md.MuData({"rna": rna, "msi": msi})
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb", "msi": "gaussian"})
    model = PoEVAE(mdata, n_latent=2, n_hidden=8)
    with pytest.raises(ValueError, match=r"lacks 3 of the 8 'rna' features.*5 overlap.*'g5'"):
        model.predict(rna[:, :5].copy(), target="msi")


def test_damaged_model_and_checkpoint_files_never_advise_unsafe_loading(tmp_path):
    import anndata as ad
    import mudata as md
    import numpy as np

    from spatial_mg.model import PoEVAE

    rng = np.random.default_rng(0)
    mdata = md.MuData({"rna": ad.AnnData(rng.poisson(2.0, (40, 6)).astype(np.float32))})
    PoEVAE.setup_mudata(mdata, likelihoods={"rna": "nb"})
    model = PoEVAE(mdata, n_latent=2, n_hidden=8)
    model.train(max_epochs=1, progress_bar=False, accelerator="cpu", checkpoint_dir=tmp_path / "ckpt")
    model.save(tmp_path / "m")
    for path in (tmp_path / "m" / "model.pt", tmp_path / "ckpt" / "last.ckpt"):
        path.write_bytes(b"\x80\x04" + bytes(range(256)) * 4)  # a pickle opcode, then noise
    with pytest.raises(ValueError, match="model.pt' cannot be read") as err:
        PoEVAE.load(tmp_path / "m")
    assert "weights_only" not in str(err.value)
    with pytest.raises(ValueError, match="last.ckpt' cannot be read") as err:
        model.train(max_epochs=2, progress_bar=False, accelerator="cpu", checkpoint_dir=tmp_path / "ckpt", resume=True)
    assert "weights_only" not in str(err.value)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "--pairs", "p.h5mu", "--epochs", "-1", "--out", "o"], "argument --epochs: must be at least 1, not -1"),
        (["train", "--pairs", "p.h5mu", "--batch-size", "0", "--out", "o"], "argument --batch-size: must be at least 1"),
        (["align", "--pixel-size-um", "nan", "--out", "o"], "argument --pixel-size-um: must be a finite number above 0"),
        (["trian"], "invalid choice: 'trian'"),
    ],
)
def test_a_bad_flag_is_one_line_naming_it(capsys, args, expected):
    with pytest.raises(SystemExit) as done:
        main(args)
    assert done.value.code == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and expected in lines[0] and "--help" in lines[0]


def test_a_config_value_out_of_range_names_the_file_and_key(tmp_path, capsys):
    config = tmp_path / "run.toml"
    config.write_text('pairs = ["p.h5mu"]\nepochs = 0\nout = "o"\n')
    assert main(["train", "--config", str(config)]) == 2
    lines = _err_lines(capsys)
    assert len(lines) == 1 and str(config) in lines[0] and "'epochs'" in lines[0] and "at least 1" in lines[0]
