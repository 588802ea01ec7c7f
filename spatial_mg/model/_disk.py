"""Training data that stay on disk: backed AnnData / MuData, read a chunk of cells at a time.

A MuData read with ``mudata.read_h5mu(path, backed="r")`` (or AnnData with
``anndata.read_h5ad(path, backed="r")`` in it) keeps its matrices in the file. Setup and
the model then scan them once, in row chunks, for what training needs per cell (checks,
library sizes, log-factorials, Gaussian feature moments) and keep only those vectors in
memory. Training asks :class:`~spatial_mg.model._chunked.ChunkedData` for minibatches in the order of the epoch; it
reads the cells of the next ``chunk_size`` places of that order from disk, puts them on
the device as a small :class:`~spatial_mg.model._data.DeviceData`, and serves minibatches
from it, so the memory is set by the chunk, not by the number of cells. The minibatches
are those of the in-memory path, cell for cell: the same seed and order give the same
training, up to float rounding in the per-cell statistics.
"""

from __future__ import annotations

import hashlib

import numpy as np
import scipy.sparse as sp

SCAN_ROWS = 8192  # rows per chunk when scanning a matrix on disk
ROW_READ_CHUNK_BYTES = 256 << 10  # largest storage chunk from which rows are read one by one


def is_backed(data) -> bool:
    """Whether ``data`` (MuData or AnnData) keeps a matrix on disk (``backed="r"``)."""
    mods = getattr(data, "mod", None)
    adatas = list(mods.values()) if mods is not None else [data]
    return bool(getattr(data, "isbacked", False)) or any(getattr(a, "isbacked", False) for a in adatas)


def _in_memory(block) -> np.ndarray | sp.csr_matrix:
    if sp.issparse(block):
        return sp.csr_matrix(block, dtype=np.float32)
    return np.ascontiguousarray(block, dtype=np.float32)


class DiskMatrix:
    """A matrix in a file (an h5py dataset or anndata's backed sparse dataset), read by rows.

    Parameters
    ----------
    handle
        The backed matrix; ``handle[a:b]`` and ``handle[sorted_rows]`` read rows.
    where
        Its name in messages.
    """

    def __init__(self, handle, where: str):
        self.handle = handle
        self.where = where
        self.shape = tuple(int(s) for s in handle.shape)
        self.sparse = sp.issparse(handle) or hasattr(handle, "format")  # anndata's backed sparse datasets have one
        if getattr(handle, "format", "csr") != "csr":
            raise ValueError(
                f"{where} is stored on disk as {handle.format.upper()}; reading cells from it needs CSR: write it as CSR "
                "(adata.X = scipy.sparse.csr_matrix(adata.X)) or load it into memory"
            )
        self.nnz: int | None = None  # set by the first scan (read_data)
        # HDF5 reads whole storage chunks and caches the last few (1 MiB by default): rows
        # read one by one in order reuse small chunks, but a chunk too large for the cache
        # is read again for every row
        stored = handle.group["data"] if hasattr(handle, "group") else handle
        chunks = getattr(stored, "chunks", None)
        chunk_bytes = 0 if chunks is None else int(np.prod(chunks)) * stored.dtype.itemsize
        self.scattered_reads = chunk_bytes <= ROW_READ_CHUNK_BYTES

    def blocks(self, rows: int = SCAN_ROWS):
        """``(start, block)`` over the matrix in row order, each block in memory (float32)."""
        for start in range(0, self.shape[0], rows):
            yield start, _in_memory(self.handle[start : min(start + rows, self.shape[0])])

    def rows(self, index: np.ndarray):
        """Rows ``index`` (sorted, unique) in memory, in that order (float32 CSR or array).

        A run of rows is one read. Scattered rows are read one by one where the file
        stores the arrays contiguously; from chunked (or compressed) storage, where one
        row costs a whole storage chunk, the span is read in blocks of rows and the rows
        picked from them, so each byte is read once.
        """
        if index.size == 0:
            return sp.csr_matrix((0, self.shape[1]), dtype=np.float32) if self.sparse else np.zeros((0, self.shape[1]), np.float32)
        first, last = int(index[0]), int(index[-1]) + 1
        if last - first == index.size:
            return _in_memory(self.handle[first:last])
        if self.scattered_reads:
            return _in_memory(self.handle[index])
        parts = []
        for start in range(first, last, SCAN_ROWS):
            lo, hi = np.searchsorted(index, [start, start + SCAN_ROWS])
            if hi > lo:
                parts.append(_in_memory(self.handle[start : min(start + SCAN_ROWS, last)])[index[lo:hi] - start])
        return sp.vstack(parts, format="csr") if self.sparse else np.concatenate(parts)


def feature_moments_on_disk(matrix: DiskMatrix, present_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation over rows ``present_rows`` (sorted), in one scan."""
    total = np.zeros(matrix.shape[1])
    squares = np.zeros(matrix.shape[1])
    keep = np.zeros(matrix.shape[0], dtype=bool)
    keep[present_rows] = True
    for start, block in matrix.blocks():
        mine = keep[start : start + block.shape[0]]
        block = block[mine] if not mine.all() else block
        if sp.issparse(block):
            total += np.asarray(block.sum(0), dtype=np.float64).ravel()
            squares += np.asarray(block.multiply(block).sum(0), dtype=np.float64).ravel()
        else:
            total += block.sum(0, dtype=np.float64)
            squares += np.square(block, dtype=np.float64).sum(0)
    n = max(1, present_rows.size)
    mean = total / n
    return mean, np.sqrt(np.maximum(squares / n - mean**2, 0.0))


def feed_disk_matrix(digest: hashlib._Hash, matrix: DiskMatrix) -> None:
    """Feed the matrix's values to ``digest`` in row chunks (its own framing: a checkpoint of
    data on disk resumes on the same data on disk)."""
    digest.update(np.asarray(matrix.shape, dtype=np.int64).tobytes())
    for _, block in matrix.blocks():
        if sp.issparse(block):
            digest.update(np.diff(block.indptr).astype(np.int64).tobytes())
            digest.update(block.indices.astype(np.int64).tobytes())
            digest.update(block.data.astype(np.float32).tobytes())
        else:
            digest.update(np.ascontiguousarray(block, dtype=np.float32).tobytes())
