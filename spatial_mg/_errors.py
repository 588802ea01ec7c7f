"""The project's own error types, beside the built-in ones it raises for bad input.

Bad input raises the built-in type that fits (``ValueError``, ``KeyError``,
``FileNotFoundError``, ...) with a message that names the file, key or argument and says
what to do; the types here cover the failures that are neither, so that callers (the
command line among them) can tell them from bugs.
"""

from __future__ import annotations


class DeviceUnavailableError(RuntimeError):
    """An accelerator that was asked for is not there (no CUDA device for torch, no GPU for JAX)."""


class RegistrationFailedError(RuntimeError):
    """No pose could be fitted: the two sections do not look like the same tissue, or the solver failed."""
