"""``spatial_mg.settings``: package-wide settings (scvi-tools' ``scvi.settings`` habit).

>>> import spatial_mg as smg
>>> smg.settings.verbosity = "warning"  # or logging.WARNING: only warnings and errors
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from ._logging import ROOT, package_handler

_NAMES = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR,
          "critical": logging.CRITICAL}


def _level(value) -> int:
    """A logging level from a level (``logging.INFO``) or its name (``"info"``, any case)."""
    if isinstance(value, str) and value.strip().lower() in _NAMES:
        return _NAMES[value.strip().lower()]
    if isinstance(value, int) and not isinstance(value, bool) and value in _NAMES.values():
        return value
    raise ValueError(
        f"verbosity must be a logging level (logging.DEBUG, INFO, WARNING, ERROR, CRITICAL) or its name "
        f"({', '.join(repr(n) for n in _NAMES)}), not {value!r}"
    )


class Settings:
    """Settings of spatial_mg; the one instance is ``spatial_mg.settings``.

    Attributes
    ----------
    verbosity
        Level of the ``spatial_mg`` logger: ``logging.INFO`` by default (progress of
        long steps, such as a registration's stages), ``"warning"`` for warnings and
        errors only, ``"debug"`` for more. Set it as a level or its name; it reads back as
        the level (an int). The records go to stderr as plain lines unless the program
        configured logging itself (``logging.basicConfig()``, or a handler on the
        ``spatial_mg`` logger), which then receives them instead.
    """

    def __init__(self):
        package_handler()  # installed once, with the default level

    @property
    def verbosity(self) -> int:
        return logging.getLogger(ROOT).getEffectiveLevel()

    @verbosity.setter
    def verbosity(self, value: int | str) -> None:
        logging.getLogger(ROOT).setLevel(_level(value))

    @contextmanager
    def override(self, verbosity: int | str) -> Iterator[None]:
        """Use ``verbosity`` inside the block only (``with smg.settings.override("warning"): ...``)."""
        logger = logging.getLogger(ROOT)
        previous = logger.level
        logger.setLevel(_level(verbosity))
        try:
            yield
        finally:
            logger.setLevel(previous)

    def __repr__(self) -> str:
        return f"spatial_mg settings: verbosity={logging.getLevelName(self.verbosity).lower()!r}"


settings = Settings()
