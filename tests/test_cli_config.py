"""Config files: every value is checked as its flag would check it; any file ends in settings or one clear error."""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spatial_mg.cli import CliError, _apply_config, _build_parser, main
from spatial_mg.pipeline._config import read_config

COMMANDS = ("align", "train", "predict", "evaluate")
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _apply(command: str, text: str | bytes, suffix: str, *extra: str):
    """The arguments of ``command`` after the config file with ``text`` filled them."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"run{suffix}"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        argv = [command, "--config", str(path), *extra]
        parser = _build_parser()
        return _apply_config(parser, parser.parse_args(argv), argv)


def _actions(command: str) -> dict:
    parser = _build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {a.dest: a for a in sub._actions if a.dest not in ("help", "config")}


def _result_or_clear_error(command: str, text: str | bytes, suffix: str):
    """Settings of the right types, or the project's own error naming the file: never anything else."""
    try:
        args = _apply(command, text, suffix)
    except (CliError, ValueError) as err:
        message = str(err)
        assert f"run{suffix}" in message and "\n" not in message, message
        return None
    for dest, action in _actions(command).items():
        value = getattr(args, dest)
        if value is None or value == action.default:
            continue
        if action.nargs == 0:
            assert isinstance(value, bool)
        elif action.nargs in ("+", "*"):
            assert isinstance(value, list) and all(isinstance(v, str) for v in value)
        elif getattr(action.type, "base", action.type) is int:
            assert isinstance(value, int) and not isinstance(value, bool)
        elif getattr(action.type, "base", action.type) is float:
            assert isinstance(value, float) and math.isfinite(value)
        else:
            assert isinstance(value, str) and "\0" not in value
        if action.choices:
            assert value in action.choices
    return args


# --- values of the wrong type ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('overwrite = "false"', "'overwrite' must be true or false (unquoted), not the text 'false'"),
        ("overwrite = 0", "'overwrite' must be true or false"),
        ("epochs = true", "'epochs' must be a whole number, not the boolean true"),
        ("epochs = 3.5", "'epochs' must be a whole number, not the number 3.5"),
        ('epochs = "10"', "'epochs' must be a whole number, not the text '10'"),
        ("seed = 1e3", "'seed' must be a whole number"),
        ("pairs = [1, 2]", "'pairs' must be text (in quotes), not the number 1"),
        ("pairs = {a = 1}", "'pairs' must be text (in quotes), not a table"),
        ("accelerator = 1", "'accelerator' must be text"),
        ("command = 'align'", "unknown setting 'command'"),
        ("config = 'other.toml'", "unknown setting 'config'"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_its_key(text, message):
    with pytest.raises((CliError, ValueError), match=re.escape(message)):
        _apply("train", text, ".toml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("msi_scale = 'log2'", "'msi_scale' must be one of 'log1p', 'linear', not the text 'log2'"),
        ("ppm = nan", "'ppm' must be a finite number, not the number nan"),
        ("pixel_size_um = -inf", "'pixel_size_um' must be a finite number"),
        ("name = 2024", "'name' must be text (in quotes), not the number 2024"),
    ],
)
def test_align_values_are_checked_too(text, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _apply("align", text, ".toml")


def test_the_cli_reports_a_string_boolean_in_one_line(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(f"pairs: [{tmp_path / 'a.h5mu'}]\nout: {tmp_path / 'model'}\noverwrite: 'false'\n")
    assert main(["train", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"'{config}': 'overwrite' must be true or false" in err
    assert not (tmp_path / "model").exists()


# --- values of the right type --------------------------------------------------------------------
def test_values_of_the_right_type_fill_the_flags():
    args = _apply("train", 'pairs = "a.h5mu"\nepochs = 3\noverwrite = true\nout = "m"', ".toml")
    assert (args.pairs, args.epochs, args.overwrite, args.out) == (["a.h5mu"], 3, True, "m")
    args = _apply("align", "ppm: 5\nmsi_scale: linear\noverwrite: no\nname:\n", ".yaml")
    assert (args.ppm, args.msi_scale, args.overwrite, args.name) == (5.0, "linear", False, None)
    assert isinstance(args.ppm, float)


@pytest.mark.parametrize("flag", ["--epochs", "--epochs=7", "--epo", "--ep=7"])
def test_the_command_line_wins_also_when_abbreviated(flag):
    extra = [flag] if "=" in flag else [flag, "7"]
    assert _apply("train", "epochs = 3", ".toml", *extra).epochs == 7


# --- files that are not configs --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "suffix", "message"),
    [
        ("a: [1, 2\nb: 3", ".yaml", "Could not read config file"),
        ("a: b: c", ".yaml", "Could not read config file"),
        ("? [a, b]\n: 1", ".yaml", "Could not read config file"),
        ("[" * 3000, ".yaml", "nested too deeply|Could not read"),
        (b"\xff\xfe epochs = 3", ".toml", "not UTF-8 text"),
        ("epochs = 1" + "0" * 5000, ".toml", "Could not read config file"),
        ("- 1\n- 2", ".yaml", "key = value settings at its top level"),
        ("just text", ".yaml", "key = value settings at its top level"),
    ],
)
def test_a_file_that_is_not_a_config_is_one_clear_error(text, suffix, message):
    with pytest.raises(ValueError, match=message):
        _apply("train", text, suffix)


def test_read_config_names_a_folder_and_a_wrong_suffix(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found.*it is a folder"):
        read_config(tmp_path)
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(ValueError, match=r"must end in \.toml, \.yaml or \.yml"):
        read_config(tmp_path / "run.json")


# --- properties ---------------------------------------------------------------------------------
@FUZZ
@given(data=st.binary(max_size=200), suffix=st.sampled_from([".toml", ".yaml"]), command=st.sampled_from(COMMANDS))
def test_random_bytes_end_in_settings_or_a_clear_error(data, suffix, command):
    _result_or_clear_error(command, data, suffix)


def _toml(value) -> str:
    """A value in TOML syntax (the standard library reads TOML but does not write it)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


EXTREMES = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, -1, 2**63 - 1, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 5e-324, 1.7976931348623157e308, math.inf, -math.inf, math.nan]),
)
SCALARS = st.one_of(EXTREMES, st.booleans(), st.text(max_size=12), st.sampled_from(["false", "true", "", "log1p", "\0"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=2), max_leaves=6)
KEYS = st.sampled_from(sorted({d for c in COMMANDS for d in _actions(c)} | {"command", "config", "Epochs", "n-latent"}))


@FUZZ
@given(settings_=st.dictionaries(KEYS, VALUES, max_size=5), command=st.sampled_from(COMMANDS), as_yaml=st.booleans())
def test_any_settings_end_in_typed_flags_or_an_error_naming_the_key(settings_, command, as_yaml):
    if as_yaml:
        text, suffix = yaml.safe_dump(settings_, allow_unicode=True), ".yaml"
    else:
        text, suffix = "".join(f"{json.dumps(k)} = {_toml(v)}\n" for k, v in settings_.items()), ".toml"
    args = _result_or_clear_error(command, text, suffix)
    if args is not None:  # each setting that the command has, and that is set, arrived with its value
        for key, value in settings_.items():
            if value is not None and not isinstance(value, list | dict):
                assert getattr(args, key.replace("-", "_")) == value


@FUZZ
@given(key=st.sampled_from(["epochs", "n_latent", "batch_size", "seed"]), value=EXTREMES, as_yaml=st.booleans())
def test_numeric_extremes_are_whole_numbers_or_refused(key, value, as_yaml):
    text = yaml.safe_dump({key: value}) if as_yaml else f"{key} = {_toml(value)}\n"
    args = _result_or_clear_error("train", text, ".yaml" if as_yaml else ".toml")
    minimum = 0 if key == "seed" else 1  # the flags' ranges: a seed may be 0, the sizes not
    assert (args is not None) == (isinstance(value, int) and not isinstance(value, bool) and value >= minimum)


VALID = {
    ".toml": 'pairs = ["a/pairs.h5mu", "b/pairs.h5mu"]\nepochs = 20\nbatch_size = 128\noverwrite = false\nout = "model"\n',
    ".yaml": "pairs:\n  - a/pairs.h5mu\n  - b/pairs.h5mu\nepochs: 20\nbatch_size: 128\noverwrite: false\nout: model\n",
}


@FUZZ
@given(suffix=st.sampled_from(sorted(VALID)), cut=st.integers(min_value=0, max_value=200))
def test_a_truncated_config_ends_in_settings_or_a_clear_error(suffix, cut):
    _result_or_clear_error("train", VALID[suffix][:cut], suffix)
