"""Config files for the command line: TOML or YAML, keys named like the flags.

:func:`read_config` reads the file into a flat mapping; :func:`config_value` checks one
value against what its flag accepts, so that a config file can set nothing the command line
could not (``overwrite = "false"``, a string, is refused rather than read as true).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from os import PathLike
from pathlib import Path

from .._validation import existing_file

SUFFIXES = (".toml", ".yaml", ".yml")


def read_config(path: str | PathLike) -> dict:
    """Read a flat mapping of settings from ``path`` (``.toml``, ``.yaml`` or ``.yml``).

    Raises ``ValueError`` naming the file for anything that is not such a mapping: a wrong
    suffix, text that is not UTF-8, a syntax error, or a list or value at the top level.
    """
    path = existing_file(path, "config file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"Config file '{path}' must end in .toml, .yaml or .yml.")
    try:
        values = _parse(path.read_bytes().decode("utf-8"), suffix)
    except UnicodeDecodeError as err:
        raise ValueError(f"Could not read config file '{path}': it is not UTF-8 text (byte {err.start}).") from None
    except RecursionError:
        raise ValueError(f"Could not read config file '{path}': it is nested too deeply.") from None
    except (ValueError, OSError, ImportError) as err:
        reason = " ".join(str(err).split())  # YAML's messages span lines; ours is one
        raise ValueError(f"Could not read config file '{path}': {reason}") from None
    if not isinstance(values, dict):
        raise ValueError(f"Config file '{path}' must hold key = value settings at its top level.")
    return {str(k): (str(v) if isinstance(v, Path) else v) for k, v in values.items()}


def _parse(text: str, suffix: str):
    if suffix == ".toml":
        import tomllib

        return tomllib.loads(text)
    import yaml

    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as err:  # not a ValueError: turned into one, like TOML's
        raise ValueError(str(err)) from None


def config_value(
    source: str | PathLike,
    key: str,
    value,
    *,
    kind: Callable | None = None,
    flag: bool = False,
    many: bool = False,
    choices: Sequence | None = None,
):
    """``value`` of setting ``key`` in config file ``source``, checked as its flag would check it.

    Parameters
    ----------
    kind
        The flag's type: ``int``, ``float`` or None/``str`` for text.
    flag
        An on/off flag (``--overwrite``): only true or false.
    many
        The flag takes several values (``--pairs a b``): a list, or one value.
    choices
        The values the flag allows.

    Returns
    -------
    The value to use (a float for float flags, a list for ``many``). A YAML empty value
    (None) is returned as None: the setting is left unset.
    """
    if value is None:
        return None
    if flag:
        if not isinstance(value, bool):
            _refuse(source, key, value, "true or false (unquoted)")
        return value
    if many:
        if isinstance(value, list):
            return [_scalar(source, key, item, kind, choices) for item in value]
        return [_scalar(source, key, value, kind, choices)]
    return _scalar(source, key, value, kind, choices)


def _refuse(source, key: str, value, expected: str):
    raise ValueError(f"Config file '{source}': '{key}' must be {expected}, not {_described(value)}.")


def _scalar(source, key: str, value, kind: Callable | None, choices: Sequence | None):
    def fail(expected: str):
        _refuse(source, key, value, expected)

    base = getattr(kind, "base", kind)  # a checking type (whole numbers >= 1, say) names its base type
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            fail("a whole number")
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            fail("a number")
        if not math.isfinite(value):
            fail("a finite number")
        value = float(value)
    if base in (int, float):
        if kind is not base:
            try:
                value = kind(value)
            except (TypeError, ValueError) as err:
                fail(f"a number its flag accepts ({err})")
    elif kind in (None, str):
        if not isinstance(value, str):
            fail("text (in quotes)")
        if "\0" in value:
            fail("text without NUL characters")
    else:  # a flag with its own parser: give it the text, as the command line would
        if not isinstance(value, str):
            fail("text (in quotes)")
        try:
            value = kind(value)
        except (TypeError, ValueError) as err:
            fail(f"a value its flag accepts ({err})")
    if choices is not None and value not in choices:
        fail("one of " + ", ".join(repr(c) for c in choices))
    return value


def _described(value) -> str:
    """How a refused value reads in an error: its kind and (briefly) itself."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"the text {text!r}"
    if isinstance(value, int) and value.bit_length() > 64:  # too long to show (or even to print past 4300 digits)
        return f"a number of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, list):
        return f"a list of {len(value)} value(s)"
    if isinstance(value, dict):
        return "a table of settings"
    return f"a value of type {type(value).__name__}"
