"""Random draws of a training step that do not depend on how its minibatch is split.

In distributed training each rank computes the loss of its rows of the global minibatch.
Were each rank to draw its own noise (latent samples, dropout masks, modality dropout),
a cell's draws would depend on the number of ranks and the run would differ from a
single-process one. Instead every rank holds the same random state, draws the noise of
the whole global minibatch, and keeps its own rows: ``N`` ranks then compute what one
process computes on the same global minibatch, up to the order of float sums.

Outside :func:`rows_of_batch` (a single process) every function here is exactly the
torch call it stands for, so single-process results stay what they were.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch.distributions.utils import _standard_normal

# (first row, stop row, rows in the global minibatch) of this rank's share, or None
_ROWS: ContextVar[tuple[int, int, int] | None] = ContextVar("spatial_mg_rows_of_batch", default=None)
# gathers every rank's rows of a tensor into the global minibatch's (see whole_minibatch)
_GATHER: ContextVar[Callable[[torch.Tensor, int, int], torch.Tensor] | None] = ContextVar("spatial_mg_gather", default=None)


@contextmanager
def rows_of_batch(start: int, stop: int, total: int, gather: Callable[[torch.Tensor, int, int], torch.Tensor] | None = None):
    """Inside the block, cell-indexed draws are made for ``total`` cells and rows
    ``start:stop`` of them kept (this rank's share of a global minibatch); ``gather(t,
    dim, total)`` (:meth:`~spatial_mg.model._distributed.Group.gather_rows`) serves
    :func:`whole_minibatch`."""
    if not 0 <= start <= stop <= total:
        raise ValueError(f"rows {start}:{stop} are not inside a minibatch of {total} cells")
    token, gather_token = _ROWS.set((start, stop, total)), _GATHER.set(gather)
    try:
        yield
    finally:
        _ROWS.reset(token)
        _GATHER.reset(gather_token)


def whole_minibatch(tensor: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``tensor`` (cells on ``dim``) of the whole global minibatch: every rank's rows, in
    order, with gradients flowing back to the rank each row came from. Outside
    :func:`rows_of_batch` (or without a ``gather``), ``tensor`` itself.

    For terms that are not sums over cells (the MMD penalties): computed on the whole
    minibatch on every rank, each weighted by its share as the loss is, their gradients
    summed across ranks are those of one process.
    """
    rows, gather = _ROWS.get(), _GATHER.get()
    if rows is None or gather is None:
        return tensor
    return gather(tensor, dim, rows[2])


def _global(shape, dim: int):
    """The shape to draw and the slice to keep, or None outside :func:`rows_of_batch`."""
    rows = _ROWS.get()
    if rows is None:
        return None
    start, stop, total = rows
    dim = dim % len(shape)
    if shape[dim] != stop - start:
        raise RuntimeError(f"a draw of shape {tuple(shape)} has {shape[dim]} cells on dim {dim}, not this rank's {stop - start}")
    full = list(shape)
    full[dim] = total
    keep = [slice(None)] * len(shape)
    keep[dim] = slice(start, stop)
    return torch.Size(full), tuple(keep)


def standard_normal(shape, dtype, device, dim: int = 0) -> torch.Tensor:
    """``N(0, 1)`` noise of ``shape``, cells on ``dim``."""
    shape = torch.Size(shape)
    plan = _global(shape, dim)
    if plan is None:
        return _standard_normal(shape, dtype=dtype, device=device)
    full, keep = plan
    return _standard_normal(full, dtype=dtype, device=device)[keep]


def rand(shape, device, dim: int = 0) -> torch.Tensor:
    """``U(0, 1)`` noise of ``shape``, cells on ``dim``."""
    shape = torch.Size(shape)
    plan = _global(shape, dim)
    if plan is None:
        return torch.rand(shape, device=device)
    full, keep = plan
    return torch.rand(full, device=device)[keep]


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``torch.nn.functional.dropout`` of ``(cells, ...)`` activations ``x``."""
    if _ROWS.get() is None or not training or p == 0:
        return torch.nn.functional.dropout(x, p, training)
    full, keep = _global(x.shape, 0)
    if p == 1:
        return x * 0.0
    # what torch's CPU dropout computes: a Bernoulli(1 - p) mask divided by 1 - p
    noise = torch.empty(full, dtype=x.dtype, device=x.device).bernoulli_(1 - p)
    noise.div_(1 - p)
    return x * noise[keep]


class Dropout(torch.nn.Dropout):
    """``nn.Dropout`` whose mask follows :func:`rows_of_batch` (no parameters: state dicts
    are those of ``nn.Dropout``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
