"""The package's logging: one ``spatial_mg`` logger, a child per module, one plain handler.

Modules log through ``logging.getLogger(__name__)``. On import the ``spatial_mg`` logger
gets its level from :data:`spatial_mg.settings` (INFO, as scvi-tools does) and one
:class:`PlainHandler`, which writes each record as one line on stderr, but only while no
other handler would receive it: a program that configures logging itself
(``logging.basicConfig()``, or a handler of its own on ``spatial_mg``) gets the records
there, and once only. The command line forces the handler on for the run
(:func:`cli_logging`), with third-party noise kept out.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = "spatial_mg"
DEFAULT_LEVEL = logging.INFO

# Packages whose FutureWarning / DeprecationWarning / UserWarning / SyntaxWarning are about
# their own future, not about the user's data; the command line shows them at DEBUG only.
NOISY_PACKAGES = frozenset(
    {"zarr", "mudata", "anndata", "docrep", "spatialdata", "spatialdata_io", "xarray", "dask", "numba", "jax",
     "jaxlib", "ott", "moscot", "ome_zarr", "multiscale_spatial_image", "squidpy", "scanpy", "pkg_resources"}
)
NOISY_CATEGORIES = (FutureWarning, DeprecationWarning, PendingDeprecationWarning, UserWarning, SyntaxWarning)
# Noise that its package attributes elsewhere (zarr's stack level points into contextlib).
NOISY_MESSAGES = re.compile(r"zarr v3 autosharding")
# Loggers that speak at INFO about their internals. moscot's and spatialdata's own loggers
# (``*._logging``, which squidpy uses too) print each step to stdout through rich handlers.
CHATTY_LOGGERS = ("moscot", "moscot._logging", "spatialdata", "spatialdata._logging", "squidpy", "ott", "jax", "jaxlib")


class PlainHandler(logging.Handler):
    """One line per record on the current ``sys.stderr``, unless another handler receives it.

    ``forced``: write even so (the command line, which owns its output).
    """

    def __init__(self):
        super().__init__()
        self.forced = False
        self.setFormatter(PlainFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        if not self.forced and _handled_elsewhere(record, self):
            return
        try:
            stream = sys.stderr  # looked up each time: tests and notebooks swap it
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:  # logging must never take the program down
            self.handleError(record)


class PlainFormatter(logging.Formatter):
    """INFO records as their message; the others with their level first (``warning: ...``)."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno == logging.INFO else f"{record.levelname.lower()}: {text}"


def _handled_elsewhere(record: logging.LogRecord, ours: logging.Handler) -> bool:
    """Whether a handler other than ``ours`` sits on the record's way up the logger tree."""
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        if any(handler is not ours for handler in logger.handlers):
            return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


def package_handler() -> PlainHandler:
    """The package's handler, added to the ``spatial_mg`` logger the first time this is called."""
    logger = logging.getLogger(ROOT)
    for handler in logger.handlers:
        if isinstance(handler, PlainHandler):
            return handler
    handler = PlainHandler()
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(DEFAULT_LEVEL)
    return handler


# --- progress ---------------------------------------------------------------------------------
class Stages:
    """Numbered stages of one long step, each logged with its seconds when it ends.

    Examples
    --------
    >>> stages = Stages(log, "registration", 3)  # doctest: +SKIP
    >>> with stages("prepare"):  # doctest: +SKIP
    ...     ...  # logs "registration 1/3 prepare: 0.2 s" (and, at DEBUG, a line when it starts)
    """

    def __init__(self, logger: logging.Logger, step: str, total: int):
        self.logger, self.step, self.total, self.done = logger, step, total, 0

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.done += 1
        label = f"{self.step} {self.done}/{self.total} {name}"
        self.logger.debug("%s ...", label)
        start = time.perf_counter()
        yield
        self.logger.info("%s: %.1f s", label, time.perf_counter() - start)


# --- the command line ---------------------------------------------------------------------------
@contextmanager
def cli_logging(level: int) -> Iterator[None]:
    """The command line's output for one run: spatial_mg's records at ``level`` and above
    as plain lines on stderr, warnings as such lines, known third-party noise at DEBUG.

    Everything is restored afterwards (the CLI also runs inside tests and notebooks).
    """
    logger = logging.getLogger(ROOT)
    handler = package_handler()
    saved = (logger.level, logger.propagate, handler.forced)
    chatty = {name: logging.getLogger(name).level for name in CHATTY_LOGGERS}
    at_least_warning = _AtLeast(max(level, logging.WARNING))
    logger.setLevel(level)
    logger.propagate = False  # the CLI owns the output: pytest's or a user's root handlers get no copies
    handler.forced = True
    for name in CHATTY_LOGGERS:
        # the level for their child loggers; the filter because moscot and spatialdata set
        # their loggers' level to INFO when first imported, which may happen during the run
        logging.getLogger(name).setLevel(at_least_warning.level)
        logging.getLogger(name).addFilter(at_least_warning)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _log_warning
            yield
    finally:
        logger.setLevel(saved[0])
        logger.propagate, handler.forced = saved[1], saved[2]
        for name, old in chatty.items():
            chatty_logger = logging.getLogger(name)
            chatty_logger.removeFilter(at_least_warning)
            if chatty_logger.level == at_least_warning.level:  # else its package set its own on import: keep it
                chatty_logger.setLevel(old)


class _AtLeast(logging.Filter):
    """Lets records of ``level`` and above through."""

    def __init__(self, level: int):
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


_warnings_log = logging.getLogger(f"{ROOT}.warnings")


def _log_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """``warnings.showwarning`` of the CLI: one log line per warning; third-party noise at DEBUG."""
    text = " ".join(str(message).split())
    if is_noise(category, filename, text):
        _warnings_log.debug("%s (%s from %s:%s)", text, category.__name__, filename, lineno)
    elif _ours(filename):
        _warnings_log.warning("%s", text)
    else:
        _warnings_log.warning("%s (%s from %s:%s)", text, category.__name__, filename, lineno)


def is_noise(category: type[Warning], filename: str, message: str) -> bool:
    """Whether a warning is known third-party noise: of a noisy category, raised from a
    noisy package's files (or with a message known to be such noise)."""
    if not issubclass(category, NOISY_CATEGORIES):
        return False
    return NOISY_MESSAGES.search(message) is not None or not NOISY_PACKAGES.isdisjoint(Path(filename).parts)


def _ours(filename: str) -> bool:
    return ROOT in Path(filename).parts
