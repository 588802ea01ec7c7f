"""From a MuData or AnnData to validated host arrays, and from those to device minibatches.

:func:`read_data` checks values and features against a :class:`Registry` and returns a
:class:`HostData` that never copies more than it must (matrices stay in each modality's
own row order; a row map links the cells of the MuData to them). :class:`DeviceData`
keeps everything as tensors on the training device, sparse counts as CSR, and gathers a
minibatch by index without any host work, so a GPU step needs no synchronisation.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .._constants import NORMALIZE_TARGET_SUM
from .._neighbourhood import neighbourhood_mean
from ._disk import DiskMatrix, feature_moments_on_disk, feed_disk_matrix, is_backed
from ._registry import Registry, codes_for, obs_column

_CHUNK = 1 << 24  # values per chunk when scanning a dense matrix


@dataclass
class ModalityData:
    """One modality's values (float32, rows in the modality's own order) and per-row stats."""

    matrix: np.ndarray | sp.csr_matrix
    rowmap: np.ndarray  # (n_obs,) int64: row in ``matrix`` of each cell, -1 if absent
    present: np.ndarray  # (n_obs,) bool: the modality counts as observed for the cell
    library: np.ndarray | None = None  # NB: row sums
    log_factorial: np.ndarray | None = None  # NB: sum_g lgamma(x_g + 1) per row
    context: np.ndarray | sp.csr_matrix | None = None  # spatial context: neighbourhood means, rows as ``matrix``


@dataclass
class HostData:
    """Validated arrays of one data set, aligned to its cells (``obs_names``)."""

    obs_names: pd.Index
    modalities: dict[str, ModalityData]  # only the modalities this data set has
    codes: np.ndarray  # (n_obs, n_covariates) int64
    groups: np.ndarray | None  # (n_obs,) int64 MMD group, or None

    @property
    def n_obs(self) -> int:
        return len(self.obs_names)

    def concat(self, other: HostData) -> HostData:
        """Cells of ``self`` then ``other`` (for training reference and query together)."""
        mods = {}
        for name in dict.fromkeys([*self.modalities, *other.modalities]):
            parts = [_pad(d.modalities.get(name), d.n_obs) for d in (self, other)]
            filled = [p for p in parts if p.matrix is not None]
            matrix = _stack([p.matrix for p in filled])
            offsets, rowmaps = 0, []
            for p in parts:
                rowmaps.append(np.where(p.rowmap >= 0, p.rowmap + offsets, -1))
                offsets += 0 if p.matrix is None else p.matrix.shape[0]
            stat = lambda k: None if getattr(filled[0], k) is None else np.concatenate([getattr(p, k) for p in filled])  # noqa: E731
            context = None
            if any(p.context is not None for p in filled):
                if any(p.context is None for p in filled):
                    raise ValueError(f"modality '{name}' has a spatial context in one data set but not in the other")
                context = _stack([p.context for p in filled])
            mods[name] = ModalityData(
                matrix,
                np.concatenate(rowmaps),
                np.concatenate([p.present for p in parts]),
                stat("library"),
                stat("log_factorial"),
                context,
            )
        groups = None if self.groups is None or other.groups is None else np.concatenate([self.groups, other.groups])
        return HostData(self.obs_names.append(other.obs_names), mods, np.vstack([self.codes, other.codes]), groups)

    def content_hash(self) -> str:
        """SHA-256 of everything training reads from these data: the cells' names, each
        modality's values (the CSR parts, or the dense values) with its row map and
        presence, the covariate codes and the MMD groups.

        Two data sets of the same shape but other values, cells or labels differ here,
        so a checkpoint of the one is not resumed on the other. The arrays are fed to
        the hash in pieces, never copied whole; index arrays as int64 and values as
        float32, so the same data read with other index widths hash alike.
        """
        digest = hashlib.sha256()
        _feed_text(digest, self.obs_names)
        for name, data in self.modalities.items():
            if isinstance(data.matrix, DiskMatrix):
                _feed_text(digest, [name, "on disk"])
                feed_disk_matrix(digest, data.matrix)
                _feed_array(digest, data.rowmap, np.int64)
                _feed_array(digest, data.present, np.bool_)
                continue
            _feed_text(digest, [name])
            _feed_matrix(digest, data.matrix)
            if data.context is not None:  # data without one hash as they did before contexts existed
                _feed_text(digest, ["spatial context"])
                _feed_matrix(digest, data.context)
            _feed_array(digest, data.rowmap, np.int64)
            _feed_array(digest, data.present, np.bool_)
        _feed_array(digest, self.codes, np.int64)
        _feed_text(digest, ["groups" if self.groups is not None else "no groups"])
        if self.groups is not None:
            _feed_array(digest, self.groups, np.int64)
        return digest.hexdigest()


def _stack(matrices):
    """Rows of ``matrices`` one after the other: CSR if any is sparse."""
    return sp.vstack(matrices, format="csr") if any(sp.issparse(m) for m in matrices) else np.vstack(matrices)


def _feed_matrix(digest, matrix) -> None:
    """The layout, then the CSR parts or the dense values."""
    _feed_text(digest, ["csr" if sp.issparse(matrix) else "dense"])
    if sp.issparse(matrix):
        _feed_array(digest, np.asarray(matrix.shape), np.int64)
        _feed_array(digest, matrix.indptr, np.int64)
        _feed_array(digest, matrix.indices, np.int64)
        _feed_array(digest, matrix.data, np.float32)
    else:
        _feed_array(digest, matrix, np.float32)


def _feed_text(digest, items) -> None:
    """Strings, length-prefixed so that no two lists of names feed the same bytes."""
    for item in items:
        raw = str(item).encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(8, "little"))
        digest.update(raw)


def _feed_array(digest, array, dtype) -> None:
    """The shape, then the values as ``dtype`` in row blocks of about ``_CHUNK`` values
    (a block is copied only where its type or layout differs)."""
    array = np.asarray(array)
    digest.update(np.asarray(array.shape, dtype=np.int64).tobytes())
    rows = array.reshape(array.shape[0], int(np.prod(array.shape[1:]))) if array.ndim else array.reshape(1, 1)
    step = max(1, _CHUNK // max(1, rows.shape[1]))
    for start in range(0, rows.shape[0], step):
        digest.update(np.ascontiguousarray(rows[start : start + step], dtype=dtype).data)


def _pad(data: ModalityData | None, n_obs: int) -> ModalityData:
    if data is not None:
        return data
    return ModalityData(None, np.full(n_obs, -1, dtype=np.int64), np.zeros(n_obs, dtype=bool))


# --- reading ------------------------------------------------------------------------------
def _values_in_chunks(matrix):
    """The stored values in pieces of about ``_CHUNK``, so checks never double the memory."""
    if sp.issparse(matrix):
        for start in range(0, matrix.data.size, _CHUNK):
            yield matrix.data[start : start + _CHUNK]
        return
    step = max(1, _CHUNK // max(1, matrix.shape[1]))
    for start in range(0, matrix.shape[0], step):
        yield np.asarray(matrix[start : start + step])


def check_values(matrix, likelihood: str, where: str) -> None:
    """Raise on NaN/inf anywhere, and on values the likelihood cannot score."""
    for chunk in _values_in_chunks(matrix):
        if not np.isfinite(chunk).all():
            raise ValueError(f"{where} contains NaN or infinite values; remove or impute them before training")
        if likelihood == "nb":
            if (chunk < 0).any():
                raise ValueError(f"{where} has negative values, but likelihood 'nb' needs raw counts")
            if (chunk != np.round(chunk)).any():
                bad = chunk[chunk != np.round(chunk)].ravel()[0]
                raise ValueError(
                    f"{where} has non-integer values (e.g. {bad}), but likelihood 'nb' needs raw counts: "
                    "pass the counts layer (layers={...: 'counts'}) or use likelihood 'gaussian'"
                )
        elif likelihood == "bernoulli" and ((chunk != 0) & (chunk != 1)).any():
            raise ValueError(f"{where} has values other than 0 and 1, but likelihood 'bernoulli' needs binarised data (X > 0)")


def _aligned_matrix(adata, name: str, entry, what: str, validate: bool):
    """The modality's matrix with columns in registry order (reordered by name if needed);
    ``validate``: scan its values too (:func:`check_values`)."""
    matrix = adata.X if entry.layer is None else adata.layers.get(entry.layer)
    where = f"modality '{name}' ({'X' if entry.layer is None else f'layer {entry.layer!r}'}) of the {what}"
    if matrix is None:
        raise KeyError(f"{where} is missing")
    names = pd.Index(adata.var_names.astype(str))
    if not names.is_unique:
        raise ValueError(f"{where} has duplicate feature names; run .var_names_make_unique()")
    if not names.equals(pd.Index(entry.features)):
        pos = names.get_indexer(entry.features)
        if (pos < 0).any():
            missing = [f for f, p in zip(entry.features, pos) if p < 0]
            raise ValueError(
                f"{where} lacks {len(missing)} of the {len(entry.features)} features the model was trained on, "
                f"e.g. {missing[:5]}; give the query the training features (reordering and extra features are fine)"
            )
        matrix = matrix[:, pos]
    if sp.issparse(matrix):
        matrix = sp.csr_matrix(matrix, dtype=np.float32)  # shares the arrays when already so
    elif isinstance(matrix, np.ndarray):
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    else:
        raise TypeError(f"{where} is a {type(matrix).__name__}; give a numpy array or a scipy sparse matrix")
    if validate:
        check_values(matrix, entry.likelihood, where)
    return matrix


def read_data(
    data,
    registry: Registry,
    *,
    what: str = "training data",
    anndata_modality: str | None = None,
    require_all: bool = True,
    validate: bool = True,
) -> HostData:
    """Validate ``data`` (MuData, or AnnData of one modality) against ``registry``.

    A cell has a modality when it is in that modality's AnnData and, where the registry
    names a mask key, that boolean obs column is True. All-zero rows are never read as
    missing.

    Parameters
    ----------
    data
        MuData, or AnnData holding the modality ``anndata_modality``.
    registry
        What setup recorded; features are aligned to it by name.
    what
        Name of the data set for error messages.
    anndata_modality
        The modality an AnnData holds.
    require_all
        Every registered modality must be in ``data`` (training); otherwise missing ones
        are simply absent for all cells (prediction, query mapping).
    validate
        Scan every value (NaN, negative or fractional counts, ...). False for data that
        setup has already scanned: the structure (features, cells, masks, categories) is
        still checked, which is cheap.

    Notes
    -----
    Matrices of backed data (``backed="r"``, :func:`~spatial_mg.model._disk.is_backed`)
    stay on disk as :class:`~spatial_mg.model._disk.DiskMatrix`; they are scanned once in
    row chunks for the checks and the per-row statistics.
    """
    mods = getattr(data, "mod", None)
    if mods is None:
        if anndata_modality is None:
            raise ValueError("an AnnData query needs the modality it holds")
        mods = {anndata_modality: data}
    obs_names = pd.Index(data.obs_names.astype(str))
    if not obs_names.is_unique:
        raise ValueError(f"the {what} has duplicate cell names (obs_names); run .obs_names_make_unique()")
    missing = [m for m in registry.names if m not in mods or mods[m].n_obs == 0]
    if require_all and missing:
        raise KeyError(f"modalities {missing} were named in setup but are absent from the {what}; it has {sorted(mods)}")
    if len(missing) == len(registry.names):
        raise KeyError(f"the {what} has none of the model's modalities {registry.names}; it has {sorted(mods)}")
    modalities = {}
    for name, entry in registry.modalities.items():
        if name not in mods or mods[name].n_obs == 0:  # an empty modality is an absent one
            continue
        adata = mods[name]
        if is_backed(adata):
            matrix = _disk_matrix(adata, name, entry, what)
        else:
            matrix = _aligned_matrix(adata, name, entry, what, validate)
        rowmap = pd.Index(adata.obs_names.astype(str)).get_indexer(obs_names).astype(np.int64)
        present = rowmap >= 0
        if entry.mask_key is not None and _has_obs(data, entry.mask_key):
            explicit = obs_column(data, entry.mask_key, fill=False).reindex(obs_names)
            if explicit.dtype != bool:
                raise TypeError(f"mask key '{entry.mask_key}' must be a boolean obs column, not {explicit.dtype}")
            if (explicit.to_numpy() & ~present).any():
                raise ValueError(f"mask key '{entry.mask_key}' is True for cells absent from modality '{name}'")
            present &= explicit.to_numpy()
        library = log_factorial = None
        if isinstance(matrix, DiskMatrix):
            library, log_factorial = _scan_disk(matrix, entry.likelihood, validate)
        elif entry.likelihood == "nb":
            library = np.asarray(matrix.sum(1), dtype=np.float64).ravel()
            log_factorial = _log_factorial_rows(matrix)
        if library is not None:
            empty = int((library[rowmap[present]] == 0).sum())
            if empty:
                warnings.warn(
                    f"{empty} cell(s) of the {what} have no counts in modality '{name}'; they stay observed "
                    "(a zero row is data, not a missing modality) with library size 1",
                    stacklevel=3,
                )
        context = None
        if name in registry.spatial_context:
            if isinstance(matrix, DiskMatrix):
                raise ValueError(
                    f"modality '{name}' of the {what} is on disk (backed), and the model reads its spatial context, "
                    "which needs the spots in memory: read it without backed=, or set up without spatial_context"
                )
            context = spatial_context(data, adata, matrix, registry, name, what)
        modalities[name] = ModalityData(matrix, rowmap, present, library, log_factorial, context)
    if not np.any([m.present for m in modalities.values()], axis=0).all():
        n = int((~np.any([m.present for m in modalities.values()], axis=0)).sum())
        raise ValueError(f"{n} cell(s) of the {what} have none of the modalities {registry.names}; drop them")
    codes = np.zeros((len(obs_names), len(registry.covariates)), dtype=np.int64)
    for k, (key, categories) in enumerate(registry.covariates.items()):
        codes[:, k] = codes_for(obs_column(data, key).reindex(obs_names), categories, key)
    groups = None
    if registry.mmd_key is not None and _has_obs(data, registry.mmd_key):
        values = obs_column(data, registry.mmd_key).reindex(obs_names)
        labels = values.astype(str).to_numpy()
        groups = pd.Categorical(labels, categories=registry.mmd_categories).codes.astype(np.int64)
        groups[groups < 0] = len(registry.mmd_categories)  # unseen groups: their own group, unpenalised
    return HostData(obs_names, modalities, codes, groups)


def spatial_context(data, adata, matrix, registry: Registry, name: str, what: str):
    """Each spot's neighbourhood mean of ``matrix`` (rows of ``adata``): spots within the
    registry's radius, in micrometres, of the same section (the registry's ``batch_key``;
    data without that column are one section). Sparse stays sparse."""
    key = registry.spatial_key
    if key not in adata.obsm:
        raise KeyError(
            f"the model uses the spatial context of modality '{name}', but the {what} has no "
            f"obsm['{key}'] (spot coordinates in micrometres) for it; pass a spatial section"
        )
    coords = np.asarray(adata.obsm[key], dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] < 2 or not np.isfinite(coords[:, :2]).all():
        raise ValueError(f"obsm['{key}'] of modality '{name}' in the {what} must be finite (spots, 2) coordinates in um")
    groups = None
    group_key = registry.batch_key
    if group_key is not None and (group_key in adata.obs.columns or _has_obs(data, group_key)):
        column = adata.obs[group_key] if group_key in adata.obs.columns else obs_column(data, group_key)
        groups = column.reindex(pd.Index(adata.obs_names)).astype(str).to_numpy()
    return neighbourhood_mean(matrix, coords, registry.spatial_context[name], groups).astype(np.float32)


def _disk_matrix(adata, name: str, entry, what: str) -> DiskMatrix:
    """The modality's matrix in the file, its features in registry order (not reordered on disk)."""
    handle = adata.X if entry.layer is None else adata.layers.get(entry.layer)
    where = f"modality '{name}' ({'X' if entry.layer is None else f'layer {entry.layer!r}'}) of the {what}"
    if handle is None:
        raise KeyError(f"{where} is missing")
    names = pd.Index(adata.var_names.astype(str))
    if not names.equals(pd.Index(entry.features)):
        raise ValueError(
            f"{where} is on disk (backed) with features in another order than, or other than, the model's: write it "
            "with the model's features in their order, or load it into memory (read without backed=)"
        )
    return DiskMatrix(handle, where)


def _scan_disk(matrix: DiskMatrix, likelihood: str, validate: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
    """One pass over a matrix on disk: check the values (``validate``), count the non-zeros,
    and for NB the library size and log-factorial of each row."""
    nb = likelihood == "nb"
    library, log_factorial = [], []
    nnz = 0
    for _, block in matrix.blocks():
        if validate:
            check_values(block, likelihood, matrix.where)
        nnz += block.nnz if sp.issparse(block) else int(np.count_nonzero(block))
        if nb:
            library.append(np.asarray(block.sum(1), dtype=np.float64).ravel())
            log_factorial.append(_log_factorial_rows(block))
    matrix.nnz = nnz
    if not nb:
        return None, None
    return np.concatenate(library), np.concatenate(log_factorial)


def _has_obs(data, key: str) -> bool:
    mods = getattr(data, "mod", {})
    return key in data.obs.columns or any(key in m.obs.columns for m in mods.values())


def _log_factorial_rows(matrix) -> np.ndarray:
    from scipy.special import gammaln

    if sp.issparse(matrix):  # row blocks of about _CHUNK values: no copy of the matrix
        out = np.zeros(matrix.shape[0])
        indptr = matrix.indptr
        start = 0
        while start < matrix.shape[0]:
            stop = int(np.searchsorted(indptr, indptr[start] + _CHUNK, side="right")) - 1
            stop = min(max(stop, start + 1), matrix.shape[0])
            values = gammaln(matrix.data[indptr[start] : indptr[stop]].astype(np.float64) + 1.0)
            ends = np.cumsum(np.concatenate([[0], values]))
            out[start:stop] = ends[indptr[start + 1 : stop + 1] - indptr[start]] - ends[indptr[start:stop] - indptr[start]]
            start = stop
        return out
    step = max(1, _CHUNK // max(1, matrix.shape[1]))
    return np.concatenate(
        [gammaln(matrix[s : s + step].astype(np.float64) + 1.0).sum(1) for s in range(0, matrix.shape[0], step)]
    )


def data_scales(host: HostData, registry: Registry) -> dict[str, dict]:
    """What each modality's observation model is scaled by, from the training data.

    Gaussian modalities are modelled standardised per feature: ``center`` (mean) and
    ``spread`` (standard deviation; 1 for a constant feature, which is then modelled
    unscaled, with a warning). NB modalities get ``typical_library``, the median library
    size, used where a prediction has no library of its own.

    Returns
    -------
    Modality name -> ``{"center", "spread"}`` or ``{"typical_library"}`` (Bernoulli: ``{}``),
    for :meth:`PoEModule.set_data_scales`.
    """
    scales: dict[str, dict] = {}
    for name, entry in registry.modalities.items():
        data = host.modalities[name]
        scales[name] = {}
        if entry.likelihood == "gaussian":
            mean, std = feature_moments(data)
            flat = std <= 1e-8 * np.maximum(1.0, np.abs(mean))
            if flat.any():
                feats = [f for f, b in zip(entry.features, flat) if b]
                warnings.warn(
                    f"modality '{name}': {len(feats)} feature(s) have zero variance (e.g. {feats[:3]}); they are "
                    "modelled unscaled and predicted as their constant value",
                    stacklevel=3,
                )
                std = np.where(flat, 1.0, std)
            scales[name] = {"center": mean, "spread": std}
        elif entry.likelihood == "nb":
            library = data.library[np.unique(data.rowmap[data.present])]
            scales[name] = {"typical_library": float(np.median(library)) if library.size else NORMALIZE_TARGET_SUM}
    return scales


def feature_moments(data: ModalityData) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation over the cells where the modality is present."""
    rows = np.unique(data.rowmap[data.present])
    if isinstance(data.matrix, DiskMatrix):
        return feature_moments_on_disk(data.matrix, rows)
    m = data.matrix[rows]
    mean = np.asarray(m.mean(0), dtype=np.float64).ravel()
    sq = m.multiply(m).mean(0) if sp.issparse(m) else np.mean(np.square(m, dtype=np.float64), axis=0)
    var = np.maximum(np.asarray(sq, dtype=np.float64).ravel() - mean**2, 0.0)
    return mean, np.sqrt(var)


# --- device side --------------------------------------------------------------------------
class _Storage:
    """Rows of one matrix on a device: dense, or CSR gathered into a dense minibatch.

    CSR rows are gathered through a padded window (cells x widest row) so a GPU step
    needs no host sync; on CPU the window is cut to the minibatch's widest row, and the
    window itself is the compact non-zero form the NB likelihood can use.
    """

    def __init__(self, matrix, device: torch.device, sparse: bool):
        self.n_features = matrix.shape[1]
        self.sparse = sparse
        if not sparse:
            dense = matrix.toarray() if sp.issparse(matrix) else matrix
            self.dense = torch.as_tensor(dense, device=device)
            return
        matrix = sp.csr_matrix(matrix)
        self.crow = torch.as_tensor(matrix.indptr.astype(np.int64), device=device)
        self.col = torch.as_tensor(matrix.indices.astype(np.int32, copy=False), device=device)
        self.val = torch.as_tensor(matrix.data, device=device)
        nnz = np.diff(matrix.indptr)
        self.width = max(1, int(nnz.max()) if len(nnz) else 0)
        self.offsets = torch.arange(self.width, device=device)
        self.cut_window = device.type == "cpu"

    def rows(self, r: torch.Tensor, nonzero: bool = False):
        """Dense rows ``r``; with ``nonzero`` also their padded (cols, vals) (or None)."""
        if not self.sparse:
            return self.dense[r], None
        start = self.crow[r]
        count = self.crow[r + 1] - start
        offsets = self.offsets
        if self.cut_window:  # on CPU a .item() is free: cut the window to this batch
            offsets = offsets[: max(1, int(count.max()))]
        valid = offsets < count.unsqueeze(1)
        pos = torch.where(valid, start.unsqueeze(1) + offsets, 0)
        flat = pos.view(-1)  # index_select: about twice as fast as indexing by a 2-D tensor on a CPU
        cols = self.col.index_select(0, flat).view(pos.shape).long() if self.val.numel() else torch.zeros_like(pos)
        vals = self.val.index_select(0, flat).view(pos.shape) * valid if self.val.numel() else torch.zeros(pos.shape, device=pos.device)
        out = torch.zeros(r.shape[0], self.n_features, device=r.device, dtype=vals.dtype)
        out.scatter_add_(1, cols, vals)  # padding adds 0 to column of position 0
        return out, ((cols, vals) if nonzero else None)


class DeviceData:
    """A data set as device tensors; :meth:`batch` builds a minibatch from cell indices.

    Parameters
    ----------
    host
        The validated arrays.
    registry
        Gives modality order and feature counts (modalities the data set lacks are zeros,
        masked out for every cell).
    device
        Where the tensors live.
    dense_limit_bytes
        Sparse matrices whose dense float32 form is smaller are densified once (faster
        gathers); larger ones stay CSR. Default: a quarter of the free GPU memory, or
        1 GiB of host memory on CPU.
    whole
        For a chunk of a larger data set (:class:`~spatial_mg.model._chunked.ChunkedData`):
        modality name -> (rows, non-zeros) of the whole data set, by which dense or sparse
        storage is chosen, so that every chunk is stored as the whole would be.

    Notes
    -----
    On CPU, count (NB) modalities sparser than half are kept CSR whatever their size:
    minibatches then also carry the non-zero entries, and the NB likelihood evaluates its
    special functions (the costliest part of a CPU step) on those alone.
    """

    def __init__(
        self,
        host: HostData,
        registry: Registry,
        device: torch.device,
        dense_limit_bytes: int | None = None,
        whole: dict[str, tuple[int, int]] | None = None,
    ):
        self.device = device
        self.n_obs = host.n_obs
        if dense_limit_bytes is None:
            dense_limit_bytes = torch.cuda.mem_get_info(device)[0] // 4 if device.type == "cuda" else 1 << 30
        self.names = registry.names
        self.likelihoods = {n: e.likelihood for n, e in registry.modalities.items()}
        self.n_features = {n: len(e.features) for n, e in registry.modalities.items()}
        self.storage, self.rowmap, self.log_library, self.log_factorial = {}, {}, {}, {}
        self.context: dict[str, _Storage] = {}
        self.compact: set[str] = set()  # NB modalities whose minibatches carry their non-zeros
        self.whole = whole or {}
        presence = np.zeros((len(self.names), host.n_obs), dtype=bool)
        for k, name in enumerate(self.names):
            data = host.modalities.get(name)
            if data is None:
                continue
            presence[k] = data.present
            self.storage[name] = _Storage(data.matrix, device, self._keep_sparse(data.matrix, name, device, dense_limit_bytes))
            self.rowmap[name] = torch.as_tensor(np.maximum(data.rowmap, 0), device=device)
            if data.context is not None:
                dense_enough = 4 * data.context.shape[0] * data.context.shape[1] <= dense_limit_bytes
                self.context[name] = _Storage(data.context, device, sparse=sp.issparse(data.context) and not dense_enough)
            if data.library is not None:
                self.log_library[name] = torch.as_tensor(np.log(np.maximum(data.library, 1.0)), dtype=torch.float32, device=device)
                self.log_factorial[name] = torch.as_tensor(data.log_factorial, dtype=torch.float32, device=device)
        self.presence = torch.as_tensor(presence, device=device)
        self.codes = torch.as_tensor(host.codes, device=device)
        self.groups = None if host.groups is None else torch.as_tensor(host.groups, device=device)

    def _keep_sparse(self, matrix, name: str, device: torch.device, dense_limit_bytes: int) -> bool:
        n, f = matrix.shape
        nnz = matrix.nnz if sp.issparse(matrix) else int(np.count_nonzero(matrix))
        if name in self.whole:
            n, nnz = self.whole[name]
        if device.type == "cpu" and self.likelihoods[name] == "nb" and nnz < 0.5 * n * f:
            self.compact.add(name)
            return True
        return sp.issparse(matrix) and 4 * n * f > dense_limit_bytes

    def batch(self, idx: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
        """The minibatch of cells ``idx`` (a device tensor); ``mask`` overrides presence."""
        n = idx.shape[0]
        x, log_library, log_factorial, nonzero, context = {}, {}, {}, {}, {}
        for name in self.names:
            if name in self.storage:
                r = self.rowmap[name][idx]
                x[name], nz = self.storage[name].rows(r, nonzero=name in self.compact)
                if name in self.context:
                    context[name] = self.context[name].rows(r)[0]
                if nz is not None:
                    nonzero[name] = nz
                if name in self.log_library:
                    log_library[name] = self.log_library[name][r]
                    log_factorial[name] = self.log_factorial[name][r]
            else:
                x[name] = torch.zeros(n, self.n_features[name], device=self.device)
            log_library.setdefault(name, torch.zeros(n, device=self.device))
        return {
            "idx": idx,
            "n_obs": self.n_obs,
            "x": x,
            "mask": self.presence[:, idx] if mask is None else mask,
            "codes": self.codes[idx],
            "log_library": log_library,
            "log_factorial": log_factorial,
            "nonzero": nonzero,
            "context": context,
            "groups": None if self.groups is None else self.groups[idx],
        }
