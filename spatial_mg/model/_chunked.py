"""Minibatches of training data on disk (:mod:`spatial_mg.model._disk`), a chunk of cells at a time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ._data import DeviceData, HostData, ModalityData


class ChunkedData:
    """Minibatches of a data set on disk, read ``chunk_size`` cells at a time; the
    interface of :class:`~spatial_mg.model._data.DeviceData` that training uses.

    Parameters
    ----------
    host
        :class:`~spatial_mg.model._data.HostData` whose matrices are :class:`~spatial_mg.model._disk.DiskMatrix`.
    registry, device
        As for ``DeviceData``.
    chunk_size
        Cells on the device at a time (a minibatch larger than it is read whole).

    Notes
    -----
    :meth:`begin_pass` gives the order in which minibatches will ask for cells (an epoch's
    shuffled training cells, or the validation cells). A minibatch must be a set of cells
    close together in that order (a run of it, or a rank's share of one); the chunk read
    is the next ``chunk_size`` places of the order from its first cell.
    """

    def __init__(self, host, registry, device: torch.device, chunk_size: int):
        self.host, self.registry, self.device = host, registry, device
        self.n_obs = host.n_obs
        self.chunk_size = int(chunk_size)
        # DeviceData chooses dense or sparse storage by the size and density of the whole data set
        self.whole = {name: (data.matrix.shape[0], data.matrix.nnz) for name, data in host.modalities.items()}
        self.begin_pass(np.arange(self.n_obs))

    def begin_pass(self, order) -> None:
        """Minibatches will now come in ``order`` (cell indices, a tensor or array)."""
        order = order.cpu().numpy() if isinstance(order, torch.Tensor) else np.asarray(order)
        self._order = order.astype(np.int64)
        self._place = np.full(self.n_obs, -1, dtype=np.int64)
        self._place[self._order] = np.arange(self._order.size)
        self._window = (0, 0)
        self._chunk = None

    def batch(self, idx: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
        """The minibatch of cells ``idx``, as :meth:`DeviceData.batch` gives it."""
        place = self._place[idx.cpu().numpy()]
        if (place < 0).any():
            raise RuntimeError("a minibatch asked for cells outside the order given to begin_pass")
        lo, hi = self._window
        if self._chunk is None or place.min() < lo or place.max() >= hi:
            lo = int(place.min())
            hi = min(self._order.size, max(lo + self.chunk_size, int(place.max()) + 1))
            self._chunk = self._read(self._order[lo:hi])
            self._window = (lo, hi)
        local = torch.as_tensor(place - lo, device=self.device)
        out = self._chunk.batch(local, mask)
        out["idx"], out["n_obs"] = idx, self.n_obs  # the plate scales by the whole data set
        return out

    def _read(self, cells: np.ndarray):
        """``cells`` (in this order) from disk onto the device, as a DeviceData."""
        mods = {}
        for name, data in self.host.modalities.items():
            rows = data.rowmap[cells]
            wanted = np.unique(rows[rows >= 0])
            matrix = data.matrix.rows(wanted)
            local = np.where(rows >= 0, np.searchsorted(wanted, rows), -1)
            stat = lambda v: None if v is None else v[wanted]  # noqa: E731
            mods[name] = ModalityData(matrix, local, data.present[cells], stat(data.library), stat(data.log_factorial))
        groups = None if self.host.groups is None else self.host.groups[cells]
        sub = HostData(pd.RangeIndex(cells.size).astype(str), mods, self.host.codes[cells], groups)
        return DeviceData(sub, self.registry, self.device, whole=self.whole)
